//! The Redis token store: the only module that imports `redis`.
//!
//! Key layout under a configurable prefix `P` (default `tc:`), every key derived from the
//! SHA-256 of a token, never from the token itself:
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `P a:<hash>` | string | the client's `token_expire_time` | an access token's record (JSON) |
//! | `P r:<hash>` | string | 2 × `token_expire_time` | a refresh token's record (JSON) |
//! | `P u:<username>` | sorted set | the longest-lived member | `a<hash>` / `r<hash>`, score = expiry |
//! | `P s:<value>` | string | the freshness window | a request signature already used |
//! | `P n:<name>` | string (integer) | its window, from the first hit | a counter: failed logins, requests per IP, wrong codes |
//! | `P l:<name>` | string | the lock's duration | a lock: the resend lock of verification codes |
//! | `P v:<name>` | string | the code's lifetime | a verification code |
//!
//! Every command touches one key, and the multi-command writes are plain (non-atomic)
//! pipelines, so the layout works unchanged on Redis Cluster. The one atomic step that
//! matters, single-use refresh, is a single GETDEL.
//!
//! One multiplexed connection (`ConnectionManager`) serves every request: concurrent
//! requests are pipelined on it, it reconnects by itself, and no pool checkout (which
//! costs deadpool-redis a PING round trip) sits on the hot path.
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};

use super::super::{
    AccessRecord, Counter, IssuedPair, RefreshRecord, StoreError, TokenHash, TokenStore,
};
use super::unix_now;
use crate::secret::Secret;

/// Redis behind the `TokenStore` trait.
#[derive(Clone)]
pub struct RedisTokens {
    conn: ConnectionManager,
    prefix: String,
    /// Upper bound on any one operation, reconnection included: no request hangs on Redis.
    timeout: Duration,
}

impl RedisTokens {
    /// Connects lazily: the server starts even while Redis is down, and every command
    /// fails fast (code 1) until it is back.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    fn key(&self, kind: &str, suffix: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + suffix.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(suffix);
        key
    }

    /// Runs one Redis exchange under the operation timeout.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(unavailable),
            Err(elapsed) => Err(StoreError::Unavailable {
                store: "redis",
                source: Box::new(elapsed),
            }),
        }
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable {
        store: "redis",
        source: Box::new(e),
    }
}

fn corrupt(what: &'static str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        store: "redis",
        what,
        detail: e.to_string(),
    }
}

impl TokenStore for RedisTokens {
    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        let key = self.key("a:", &hash.encode());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded(conn.get(key)).await?;
        raw.map(|v| serde_json::from_slice(&v).map_err(|e| corrupt("access token", e)))
            .transpose()
    }

    async fn issue(&self, pair: &IssuedPair) -> Result<(), StoreError> {
        let access_ttl = u64::from(pair.access.lifetime.max(1));
        let refresh_ttl = access_ttl * 2;
        let access_id = pair.access_hash.encode();
        let refresh_id = pair.refresh_hash.encode();
        let index = self.key("u:", &pair.access.username);
        let access_value = serde_json::to_vec(&pair.access).map_err(|e| corrupt("access", e))?;
        let refresh_value = serde_json::to_vec(&pair.refresh).map_err(|e| corrupt("refresh", e))?;

        let mut pipe = redis::pipe();
        // The index first: a token never exists without its index entry.
        pipe.zadd(&index, format!("a{access_id}"), pair.access.expires)
            .ignore()
            .zadd(&index, format!("r{refresh_id}"), pair.refresh.grant.expires)
            .ignore()
            .zrembyscore(&index, "-inf", unix_now())
            .ignore()
            // NX sets a TTL on a new index, GT extends it for a longer-lived member.
            .cmd("EXPIRE")
            .arg(&index)
            .arg(refresh_ttl)
            .arg("NX")
            .ignore()
            .cmd("EXPIRE")
            .arg(&index)
            .arg(refresh_ttl)
            .arg("GT")
            .ignore()
            .set_ex(self.key("a:", &access_id), access_value, access_ttl)
            .ignore()
            .set_ex(self.key("r:", &refresh_id), refresh_value, refresh_ttl)
            .ignore();
        let mut conn = self.conn.clone();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    async fn take_refresh(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>, StoreError> {
        let key = self.key("r:", &hash.encode());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded(conn.get_del(key)).await?;
        raw.map(|v| serde_json::from_slice(&v).map_err(|e| corrupt("refresh token", e)))
            .transpose()
    }

    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let key = self.key("s:", value);
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .bounded(
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn revoke_user(&self, username: &str) -> Result<u64, StoreError> {
        let index = self.key("u:", username);
        let mut conn = self.conn.clone();
        let members: Vec<String> = self.bounded(conn.zrange(&index, 0, -1)).await?;
        // One DEL per key: the keys sit on different cluster slots.
        let mut pipe = redis::pipe();
        for member in &members {
            let (kind, id) = member.split_at(1);
            let kind = if kind == "a" { "a:" } else { "r:" };
            pipe.del(self.key(kind, id));
        }
        pipe.del(&index).ignore();
        let removed: Vec<u64> = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(removed.iter().sum())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(redis::cmd("PING").query_async::<()>(&mut conn))
            .await
    }

    async fn hit(&self, counter: &str, window_secs: u64) -> Result<Counter, StoreError> {
        let key = self.key("n:", counter);
        let mut pipe = redis::pipe();
        // NX: the window starts at the first hit and is never pushed back by later ones.
        pipe.incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window_secs.max(1))
            .arg("NX")
            .ignore()
            .ttl(&key);
        let mut conn = self.conn.clone();
        let (count, ttl): (u64, i64) = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(Counter {
            count,
            ttl: seconds_left(ttl),
        })
    }

    async fn peek(&self, counter: &str) -> Result<Counter, StoreError> {
        let key = self.key("n:", counter);
        let mut pipe = redis::pipe();
        pipe.get(&key).ttl(&key);
        let mut conn = self.conn.clone();
        let (count, ttl): (Option<u64>, i64) = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(Counter {
            count: count.unwrap_or(0),
            ttl: seconds_left(ttl),
        })
    }

    async fn clear(&self, counter: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.del::<_, ()>(self.key("n:", counter)))
            .await
    }

    async fn lock(&self, name: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        let key = self.key("l:", name);
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .bounded(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut conn),
            )
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        let ttl: i64 = self.bounded(conn.ttl(&key)).await?;
        // The lock may have expired between the two commands: say "one more second"
        // rather than pretend it was taken.
        Ok(Some(seconds_left(ttl).max(1)))
    }

    async fn unlock(&self, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.del::<_, ()>(self.key("l:", name))).await
    }

    async fn put_code(&self, name: &str, code: &Secret, ttl_secs: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.set_ex::<_, _, ()>(self.key("v:", name), code.expose(), ttl_secs.max(1)))
            .await
    }

    async fn code(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = self.bounded(conn.get(self.key("v:", name))).await?;
        Ok(raw.map(Secret::new))
    }

    async fn take_code(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u64 = self.bounded(conn.del(self.key("v:", name))).await?;
        Ok(removed == 1)
    }
}

/// Redis's TTL answer as seconds left: -2 (no key) and -1 (no expiry) are 0.
fn seconds_left(ttl: i64) -> u64 {
    u64::try_from(ttl).unwrap_or(0)
}
