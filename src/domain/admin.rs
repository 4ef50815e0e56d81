//! Administration of clients and users (the `client` and `user` CLI commands).
use chrono::NaiveDateTime;

use super::account::{self, new_name_ok, Found};
use super::{token, DomainError, Engine};
use crate::secret::Secret;
use crate::store::{
    Client, ClientRecords, Counters, NewClient, NewUser, Revocation, StoreError, TokenStore,
    UserRecords,
};

/// A client to create, as given on the command line.
#[derive(Debug)]
pub struct ClientSpec {
    pub app_key: String,
    /// Generated when `None`.
    pub secret: Option<Secret>,
    pub token_ttl: i32,
    pub strict_verify: i32,
    pub expires: Option<NaiveDateTime>,
    pub allow_nopwd: bool,
}

impl ClientSpec {
    /// `strict_verify` unless one is given: 1, verification codes forced.
    pub const DEFAULT_STRICT_VERIFY: i32 = 1;
}

/// The app_key of a user created on the command line unless one is given: none (the
/// user registered through no app).
pub const NO_APP_KEY: &str = "";

impl<T: TokenStore + Revocation + Counters, R: ClientRecords + UserRecords> Engine<T, R> {
    /// Creates a client; returns its secret (generated unless given).
    pub async fn create_client(&self, spec: ClientSpec) -> Result<Secret, DomainError> {
        if spec.app_key.is_empty() || spec.app_key.len() > 128 {
            return Err(DomainError::InvalidParam("app_key"));
        }
        if spec.token_ttl <= 0 {
            return Err(DomainError::InvalidParam("token_ttl"));
        }
        if !matches!(spec.strict_verify, 1 | 2) {
            return Err(DomainError::InvalidParam("strict_verify"));
        }
        let secret = spec
            .secret
            .unwrap_or_else(|| Secret::new(token::generate()));
        if secret.is_empty() || secret.expose().len() > 128 {
            return Err(DomainError::InvalidParam("secret"));
        }
        let client = NewClient {
            app_key: spec.app_key,
            app_secret: secret.clone(),
            expire_time: spec.expires,
            strict_verify: spec.strict_verify,
            token_expire_time: spec.token_ttl,
            allow_nopwd: spec.allow_nopwd,
        };
        self.records
            .create_client(&client)
            .await
            .map_err(conflict_is_exists)?;
        self.clients.forget(&client.app_key);
        Ok(secret)
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, DomainError> {
        Ok(self.records.clients().await?)
    }

    pub async fn show_client(&self, app_key: &str) -> Result<Client, DomainError> {
        self.records
            .client(app_key)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// Stops new logins for a client. Tokens already issued live until they expire.
    pub async fn disable_client(&self, app_key: &str) -> Result<(), DomainError> {
        found(self.records.disable_client(app_key).await?)?;
        self.clients.forget(app_key);
        Ok(())
    }

    /// Creates a user with an argon2id hash of the password.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        app_key: &str,
    ) -> Result<(), DomainError> {
        if username.is_empty() || username.chars().count() > 191 {
            return Err(DomainError::InvalidParam("username"));
        }
        new_name_ok(username)?;
        if password.is_empty() {
            return Err(DomainError::InvalidParam("password"));
        }
        if self.find_user(username).await?.taken() {
            return Err(DomainError::AlreadyExists);
        }
        let user = NewUser {
            account: username.to_owned(),
            password_hash: self.passwords.hash(password).await?,
            account_type: account::account_type(username),
            app_key: app_key.to_owned(),
            reg_ip: String::new(),
            bundle_id: String::new(),
        };
        self.records
            .create_user(&user)
            .await
            .map_err(conflict_is_exists)
    }

    /// The stored spelling of the account a name given to the CLI stands for: ASCII
    /// case aside, the name must be the account's own (`OtherSpelling` names the account
    /// the database matched instead); `None` when no account collates equal to it.
    async fn account_name(&self, username: &str) -> Result<Option<String>, DomainError> {
        match self.find_user(username).await? {
            Found::Same(user) => Ok(Some(user.account)),
            Found::LookAlike(user) => Err(DomainError::OtherSpelling {
                stored: user.account,
            }),
            Found::None => Ok(None),
        }
    }

    /// Sets a new password, revokes every live token of the user and lifts a login
    /// lockout (the guesser's password is no longer the one to guess); everything under
    /// the account's stored spelling.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<u64, DomainError> {
        if password.is_empty() {
            return Err(DomainError::InvalidParam("password"));
        }
        let account = self
            .account_name(username)
            .await?
            .ok_or(DomainError::NotFound)?;
        let hash = self.passwords.hash(password).await?;
        found(self.records.set_password(&account, &hash).await?)?;
        let revoked = self.tokens.revoke_user(&account).await?;
        self.clear_login_failures(&account).await?;
        Ok(revoked)
    }

    /// Revokes every live token of a user, under the account's stored spelling (a name
    /// with no account, a client's subject say, as given).
    pub async fn logout_user(&self, username: &str) -> Result<u64, DomainError> {
        let account = self.account_name(username).await?;
        let revoked = self
            .tokens
            .revoke_user(account.as_deref().unwrap_or(username))
            .await?;
        crate::telemetry::revocation("cli");
        Ok(revoked)
    }

    /// Disables a user and revokes every live token of the user.
    pub async fn disable_user(&self, username: &str) -> Result<u64, DomainError> {
        let account = self
            .account_name(username)
            .await?
            .ok_or(DomainError::NotFound)?;
        found(self.records.disable_user(&account).await?)?;
        Ok(self.tokens.revoke_user(&account).await?)
    }
}

fn conflict_is_exists(e: StoreError) -> DomainError {
    match e {
        StoreError::Conflict => DomainError::AlreadyExists,
        other => DomainError::Store(other),
    }
}

fn found(was_there: bool) -> Result<(), DomainError> {
    if was_there {
        Ok(())
    } else {
        Err(DomainError::NotFound)
    }
}
