//! refresh_token: a refresh token is single-use; the first caller wins atomically and
//! gets a new pair with the same user, client, token type and lifetime. No SQL.
use super::{required, DomainError, Engine, Issued};
use crate::store::{RecordStore, TokenHash, TokenStore};

impl<T: TokenStore, R: RecordStore> Engine<T, R> {
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<Issued, DomainError> {
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
        self.issue(&g.username, &g.app_key, &g.token_type, g.lifetime)
            .await
    }
}
