//! `import-legacy-tokens` into Redis: each batch of the original's live tokens written
//! as `issue` files a pair, but with `SET NX`, and the resume mark after it.
//!
//! A rerun never brings a revoked token back: a revocation leaves the revoked value in
//! the token's key until the token would have expired (see `index.rs`), so `SET NX` finds
//! the key taken and leaves it. A token used since (a refresh token spent) is left as it
//! is too, and counted as present.
use redis::AsyncCommands;

use super::index::Member;
use super::ops::Ops;
use super::RedisTokens;
use crate::clock::unix_now;
use crate::store::import::{ImportedToken, LegacyTable, TokenImport};
use crate::store::tokens::keys::kind;
use crate::store::tokens::value;
use crate::store::StoreError;

impl TokenImport for RedisTokens {
    /// Every index entry of a batch (confirmed by replicas as revocations are), then
    /// every token with `SET NX`; then the resume mark, once all of it answered without
    /// an error.
    async fn import_batch(
        &self,
        source: &str,
        table: LegacyTable,
        last_id: i64,
        tokens: &[ImportedToken],
    ) -> Result<Vec<bool>, StoreError> {
        let now = unix_now();
        let mut indexes = Ops::new();
        let mut sets = Ops::new();
        for token in tokens {
            let (username, member, key, value, expires) = match token {
                ImportedToken::Access { hash, record } => (
                    &record.username,
                    Member {
                        access: *hash,
                        refresh: None,
                    },
                    self.key(kind::ACCESS, &hash.encode()),
                    value::encode_access(record),
                    record.expires,
                ),
                ImportedToken::Refresh { hash, record } => (
                    &record.grant.username,
                    Member {
                        access: record.access,
                        refresh: Some((*hash, record.family)),
                    },
                    self.key(kind::REFRESH, &hash.encode()),
                    value::encode_refresh(record),
                    record.grant.expires,
                ),
            };
            let ttl = (expires - now).max(1);
            let index = self.index_key(username);
            // Scored with the token's end; the index lives as long as its longest member
            // (`EXPIRE NX` on a new index, `GT` for a longer-lived member).
            let key_of_index = index.as_bytes();
            indexes
                .ignore(
                    key_of_index,
                    redis::Cmd::zadd(&index, member.bytes(), expires as f64),
                )
                .ignore(
                    key_of_index,
                    redis::cmd("EXPIRE").arg(&index).arg(ttl).arg("NX").clone(),
                )
                .ignore(
                    key_of_index,
                    redis::cmd("EXPIRE").arg(&index).arg(ttl).arg("GT").clone(),
                );
            sets.keep(
                key.as_bytes(),
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl)
                    .clone(),
            );
        }
        let mut conn = self.conn.clone();
        // Every index entry before any token, and on as many replicas as a revocation
        // waits for: a token must not outlive its entry through a failover (its key on
        // another master), unlisted by a later logout-all.
        indexes
            .replicated(self.durability.revocations)
            .then()
            .replicated(None)
            .append(sets);
        let set: Vec<Option<String>> = if tokens.is_empty() {
            Vec::new()
        } else {
            self.bounded("import_batch", indexes.run(&self.conn))
                .await?
        };
        // The mark only once every command of the batch succeeded (a pipeline with a
        // failed command answers an error, but Redis ran the rest of it).
        self.bounded(
            "import_mark",
            conn.set::<_, _, ()>(self.import_key(source, table), last_id),
        )
        .await?;
        Ok(set.into_iter().map(|s| s.is_some()).collect())
    }

    async fn import_mark(&self, source: &str, table: LegacyTable) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        let mark: Option<i64> = self
            .bounded("import_mark", conn.get(self.import_key(source, table)))
            .await?;
        Ok(mark.unwrap_or(0))
    }
}

impl RedisTokens {
    /// The resume mark of `table` of the source `source` (its identity: see
    /// `LegacySource::source_identity`).
    fn import_key(&self, source: &str, table: LegacyTable) -> String {
        self.key(kind::IMPORT_MARK, &format!("{source}:{}", table.name()))
    }
}
