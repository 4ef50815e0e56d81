//! Revocation and introspection: logout (one pair, or every token of a user), RFC 7009
//! revocation by the owning client, RFC 7662 introspection. Reads and deletes go through
//! the token store only; check_token stays one GET.
use super::{required, DomainError, Engine};
use crate::store::{AccessRecord, RefreshState, Revocation, TokenHash, TokenStore};
use crate::telemetry;

/// Which kind of token a value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A live token, as introspection describes it.
#[derive(Debug)]
pub struct Introspection {
    pub kind: TokenKind,
    pub record: AccessRecord,
    /// Unix seconds at which the token was issued.
    pub issued_at: i64,
}

/// A token found by value: its kind, its record, and the access hash of its pair.
struct Found {
    kind: TokenKind,
    record: AccessRecord,
    pair: TokenHash,
    live: bool,
}

impl<T: TokenStore + Revocation, R> Engine<T, R> {
    /// Looks a token up as an access token and as a refresh token, in the order the hint
    /// suggests.
    async fn find(&self, token: &str, hint: Option<&str>) -> Result<Option<Found>, DomainError> {
        let hash = TokenHash::of(token);
        let refresh_first = hint == Some("refresh_token");
        for kind in if refresh_first {
            [TokenKind::Refresh, TokenKind::Access]
        } else {
            [TokenKind::Access, TokenKind::Refresh]
        } {
            let found = match kind {
                TokenKind::Access => self.tokens.access(&hash).await?.map(|record| Found {
                    kind,
                    record,
                    pair: hash,
                    live: true,
                }),
                TokenKind::Refresh => self.tokens.refresh(&hash).await?.map(|state| {
                    let (record, live) = match state {
                        RefreshState::Live(r) => (r, true),
                        RefreshState::Used(r) => (r, false),
                    };
                    Found {
                        kind,
                        pair: record.access,
                        record: record.grant,
                        live,
                    }
                }),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// RFC 7662: what a live token stands for; `None` for anything else.
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<&str>,
    ) -> Result<Option<Introspection>, DomainError> {
        let now = crate::clock::unix_now();
        Ok(self
            .find(token, hint)
            .await?
            .filter(|f| f.live && f.record.expires > now)
            .map(|f| {
                let span =
                    i64::from(f.record.lifetime) * if f.kind == TokenKind::Refresh { 2 } else { 1 };
                Introspection {
                    kind: f.kind,
                    issued_at: f.record.expires - span,
                    record: f.record,
                }
            }))
    }

    /// RFC 7009: revokes a token of `client` and the pair it belongs to. Unknown tokens
    /// and other clients' tokens are ignored (the caller answers 200 either way).
    pub async fn revoke(
        &self,
        client: &str,
        token: &str,
        hint: Option<&str>,
    ) -> Result<u64, DomainError> {
        let Some(found) = self.find(token, hint).await? else {
            // A retry after a 503 answers 200 only once the earlier revocation holds.
            self.tokens.confirm_revoked(&TokenHash::of(token)).await?;
            return Ok(0);
        };
        if found.record.app_key != client {
            tracing::info!(client, "revocation of another client's token ignored");
            return Ok(0);
        }
        let revoked = self
            .tokens
            .revoke_pair(&found.record.username, &found.pair)
            .await?;
        telemetry::revocation("revoke");
        Ok(revoked)
    }

    /// Logout: revokes the pair of this token (access or refresh), or with `all` every
    /// live token of its user. 102 when the token is not live.
    pub async fn logout(&self, token: Option<&str>, all: bool) -> Result<u64, DomainError> {
        let token = required(token, "token")?;
        let Some(found) = self.find(token, None).await?.filter(|f| f.live) else {
            // Not live, perhaps revoked by an earlier try of this logout that answered
            // 503: answered "invalid" only once that revocation holds.
            self.tokens.confirm_revoked(&TokenHash::of(token)).await?;
            return Err(DomainError::InvalidToken);
        };
        let username = &found.record.username;
        let revoked = if all {
            self.tokens.revoke_user(username).await?
        } else {
            self.tokens.revoke_pair(username, &found.pair).await?
        };
        telemetry::revocation("logout");
        Ok(revoked)
    }
}
