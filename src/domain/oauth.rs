//! OAuth 2.0 (RFC 6749) grants for clients that authenticate with their app_key and
//! app_secret: password, refresh_token (the same single-use rotation) and
//! client_credentials (a token for the client itself, no refresh token).

use std::net::IpAddr;
use std::sync::Arc;

use super::{DomainError, Engine, Grant, Issued, Refresh};
use crate::store::{
    Client, ClientRecords, Counters, Revocation, TokenHash, TokenStore, UserRecords,
};

/// The username of client_credentials tokens: the client itself, marked so it never
/// collides with a user account.
pub fn client_subject(app_key: &str) -> String {
    format!("client:{app_key}")
}

impl<T: TokenStore + Revocation + Counters, R: ClientRecords + UserRecords> Engine<T, R> {
    /// The enabled, unexpired client whose secret this is (`InvalidClient` otherwise);
    /// `from` is where the request came from (the budget of unknown app keys).
    pub async fn authenticate_client(
        &self,
        app_key: &str,
        secret: &str,
        from: IpAddr,
    ) -> Result<Arc<Client>, DomainError> {
        let client = match self.cached_client(app_key, from).await? {
            Some(c) if !c.disabled => c,
            _ => return Err(DomainError::InvalidClient),
        };
        if !client.app_secret.ct_eq(secret) {
            return Err(DomainError::InvalidClient);
        }
        if client
            .expire_time
            .is_some_and(|t| t <= crate::clock::utc_now())
        {
            return Err(DomainError::InvalidClient);
        }
        Ok(client)
    }

    fn lifetime(client: &Client) -> u32 {
        u32::try_from(client.token_expire_time).unwrap_or(1)
    }

    /// grant_type=password: the user's password, checked as authorize checks it.
    pub async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: &str,
    ) -> Result<Issued, DomainError> {
        let result = async {
            let user = self.check_password(username, password).await?;
            let grant = Grant {
                username: &user.account,
                app_key: &client.app_key,
                token_type: "oauth2",
                lifetime: Self::lifetime(client),
            };
            self.issue("oauth2_password", grant, None, Refresh::ClientOnly)
                .await
        }
        .await;
        if let Err(e) = &result {
            crate::telemetry::login_failure(e.reason());
        }
        result
    }

    /// grant_type=refresh_token: rotates a refresh token of this client.
    pub async fn refresh_grant(
        &self,
        client: &Client,
        refresh_token: &str,
    ) -> Result<Issued, DomainError> {
        self.rotate_hash(&TokenHash::of(refresh_token), Some(&client.app_key))
            .await
    }

    /// grant_type=client_credentials: an access token for the client itself.
    pub async fn client_credentials_grant(&self, client: &Client) -> Result<Issued, DomainError> {
        let subject = client_subject(&client.app_key);
        let grant = Grant {
            username: &subject,
            app_key: &client.app_key,
            token_type: "client_credentials",
            lifetime: Self::lifetime(client),
        };
        self.issue("oauth2_client_credentials", grant, None, Refresh::None)
            .await
    }
}
