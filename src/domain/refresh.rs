//! refresh_token: a refresh token is single-use; the first caller wins atomically and
//! gets a new pair with the same user, client, token type and lifetime. Presenting it
//! again revokes every pair of the login it descends from. No SQL.
use super::{required, DomainError, Engine, Grant, Issued, Refresh};
use crate::store::{ParentPair, RefreshState, Revocation, TokenHash, TokenStore};
use crate::telemetry;

impl<T: TokenStore + Revocation, R> Engine<T, R> {
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<Issued, DomainError> {
        let token = required(refresh_token, "refresh_token").inspect_err(|_| {
            telemetry::refresh("invalid");
        })?;
        self.rotate_hash(&TokenHash::of(token), None).await
    }

    /// Uses the refresh token with this hash (of `client` only, when given), and counts
    /// the outcome. A token used before is a replay: every pair of its login is revoked.
    pub(crate) async fn rotate_hash(
        &self,
        hash: &TokenHash,
        client: Option<&str>,
    ) -> Result<Issued, DomainError> {
        let result = self.rotate(hash, client).await;
        telemetry::refresh(match &result {
            Ok(_) => "ok",
            Err(DomainError::Store(_)) => "store_error",
            Err(_) => "invalid",
        });
        result
    }

    async fn rotate(&self, hash: &TokenHash, client: Option<&str>) -> Result<Issued, DomainError> {
        if let Some(client) = client {
            // Check the owner before using the token, so another client cannot burn it.
            match self.tokens.refresh(hash).await? {
                Some(RefreshState::Live(r)) if r.grant.app_key == client => {}
                _ => return Err(DomainError::InvalidToken),
            }
        }
        let record = match self.tokens.take_refresh(hash, client.is_some()).await? {
            None => return Err(DomainError::InvalidToken),
            // A client's token presented without its credentials: refused, and left
            // unused for its client.
            Some(RefreshState::Live(r)) if r.client_only && client.is_none() => {
                return Err(DomainError::InvalidToken)
            }
            Some(RefreshState::Used(r)) => {
                let revoked = self
                    .tokens
                    .revoke_family(&r.grant.username, &r.family)
                    .await?;
                telemetry::refresh_reuse();
                tracing::warn!(
                    username = r.grant.username,
                    app_key = r.grant.app_key,
                    revoked,
                    "refresh token replayed: every token of that login revoked"
                );
                return Err(DomainError::InvalidToken);
            }
            Some(RefreshState::Live(r)) => r,
        };
        if record.grant.expires <= crate::clock::unix_now() {
            return Err(DomainError::InvalidToken);
        }
        let g = &record.grant;
        let grant = Grant {
            username: &g.username,
            app_key: &g.app_key,
            token_type: &g.token_type,
            lifetime: g.lifetime,
        };
        let parent = ParentPair {
            access: record.access,
            refresh: *hash,
            family: record.family,
        };
        self.issue("refresh_token", grant, Some(parent), Refresh::of(&record))
            .await
    }
}
