//! refresh_token: a refresh token is single-use; the first caller wins atomically and
//! gets a new pair with the same user, client, token type and lifetime. No SQL.
use super::{required, DomainError, Engine, Issued};
use crate::store::{RecordStore, TokenHash, TokenStore};
use crate::telemetry;

impl<T: TokenStore, R: RecordStore> Engine<T, R> {
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<Issued, DomainError> {
        let result = self.rotate(refresh_token).await;
        telemetry::refresh(match &result {
            Ok(_) => "ok",
            Err(DomainError::Store(_)) => "store_error",
            Err(_) => "invalid",
        });
        result
    }

    async fn rotate(&self, refresh_token: Option<&str>) -> Result<Issued, DomainError> {
        let token = required(refresh_token, "refresh_token")?;
        let record = self
            .tokens
            .take_refresh(&TokenHash::of(token))
            .await?
            .ok_or(DomainError::InvalidToken)?;
        if record.grant.expires <= crate::store::tokens::unix_now() {
            return Err(DomainError::InvalidToken);
        }
        let g = record.grant;
        self.issue(
            "refresh_token",
            &g.username,
            &g.app_key,
            &g.token_type,
            g.lifetime,
        )
        .await
    }
}
