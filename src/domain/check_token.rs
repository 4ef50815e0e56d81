//! check_token, the hot path: one token-store read, no SQL.
use super::{required, DomainError, Engine};
use crate::store::{TokenHash, TokenStore};
use crate::telemetry;

/// What a live access token tells a gateway.
#[derive(Debug)]
pub struct TokenInfo {
    pub username: String,
    pub app_key: String,
    pub token_type: String,
    /// Seconds until the token dies.
    pub seconds_left: i64,
}

impl<T: TokenStore, R> Engine<T, R> {
    /// Looks up an access token: exactly one GET on the token store.
    pub async fn check_token(&self, token: Option<&str>) -> Result<TokenInfo, DomainError> {
        let result = self.lookup(token).await;
        telemetry::token_check(match &result {
            Ok(_) => "valid",
            Err(DomainError::Store(_)) => "store_error",
            Err(_) => "invalid",
        });
        result
    }

    async fn lookup(&self, token: Option<&str>) -> Result<TokenInfo, DomainError> {
        let token = required(token, "token")?;
        let record = self
            .tokens
            .access(&TokenHash::of(token))
            .await?
            .ok_or(DomainError::InvalidToken)?;
        let seconds_left = record.expires - crate::clock::unix_now();
        if seconds_left <= 0 {
            return Err(DomainError::InvalidToken);
        }
        Ok(TokenInfo {
            username: record.username,
            app_key: record.app_key,
            token_type: record.token_type,
            seconds_left,
        })
    }
}
