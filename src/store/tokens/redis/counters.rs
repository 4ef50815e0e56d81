//! Counters, locks, one-time values and verification codes on Redis: the `Counters` and
//! `Codes` impls of `RedisTokens`. Each is one string key under its kind (`n:`, `l:`,
//! `s:`, `v:`), and each operation one command or one pipeline on that key; a lock found
//! held asks its TTL in a second command.
use redis::AsyncCommands;

use super::RedisTokens;
use crate::secret::Secret;
use crate::store::tokens::keys::kind;
use crate::store::{Codes, Counter, Counters, StoreError};

impl RedisTokens {
    /// `SET key 1 NX EX ttl`: `true` when this call set it (the key was absent).
    async fn set_nx_ex(
        &self,
        operation: &'static str,
        key: &str,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .bounded(
                operation,
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
}

/// A counter's hit: `INCR`, the window set by the first hit only (`EXPIRE … NX`: never
/// pushed back by later ones), and the count with the seconds left.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return {n, redis.call('TTL', KEYS[1])}
";

/// A counter's count (nil when absent) and seconds left.
const PEEK: &str = r"
return {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}
";

impl Counters for RedisTokens {
    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        self.set_nx_ex("claim_once", &self.key(kind::ONCE, value), ttl_secs)
            .await
    }

    async fn hit(&self, counter: &str, window_secs: u64) -> Result<Counter, StoreError> {
        let key = self.key(kind::COUNTER, counter);
        // One script, not a pipeline: on a cluster a command refused whole (`MOVED`, `ASK`)
        // is sent again, where a pipeline refused in part could not be (conn.rs).
        let mut conn = self.conn.clone();
        let hit = redis::cmd("EVAL")
            .arg(HIT)
            .arg(1)
            .arg(&key)
            .arg(window_secs.max(1))
            .clone();
        let (count, ttl): (u64, i64) = self.bounded("hit", hit.query_async(&mut conn)).await?;
        Ok(Counter {
            count,
            ttl: seconds_left(ttl),
        })
    }

    async fn peek(&self, counter: &str) -> Result<Counter, StoreError> {
        let key = self.key(kind::COUNTER, counter);
        let mut conn = self.conn.clone();
        let peek = redis::cmd("EVAL").arg(PEEK).arg(1).arg(&key).clone();
        let (count, ttl): (Option<u64>, i64) =
            self.bounded("peek", peek.query_async(&mut conn)).await?;
        Ok(Counter {
            count: count.unwrap_or(0),
            ttl: seconds_left(ttl),
        })
    }

    async fn clear(&self, counter: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded("clear", conn.del::<_, ()>(self.key(kind::COUNTER, counter)))
            .await
    }

    async fn lock(&self, name: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        let key = self.key(kind::LOCK, name);
        if self.set_nx_ex("lock", &key, ttl_secs).await? {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let ttl: i64 = self.bounded("lock", conn.ttl(&key)).await?;
        // The lock may have expired between the two commands: say "one more second"
        // rather than pretend it was taken.
        Ok(Some(seconds_left(ttl).max(1)))
    }

    async fn unlock(&self, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded("unlock", conn.del::<_, ()>(self.key(kind::LOCK, name)))
            .await
    }
}

impl Codes for RedisTokens {
    async fn put_code(&self, name: &str, code: &Secret, ttl_secs: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(
            "put_code",
            conn.set_ex::<_, _, ()>(self.key(kind::CODE, name), code.expose(), ttl_secs.max(1)),
        )
        .await
    }

    async fn code(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = self
            .bounded("code", conn.get(self.key(kind::CODE, name)))
            .await?;
        Ok(raw.map(Secret::new))
    }

    async fn take_code(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u64 = self
            .bounded("take_code", conn.del(self.key(kind::CODE, name)))
            .await?;
        Ok(removed == 1)
    }
}

/// Redis's TTL answer as seconds left: -2 (no key) and -1 (no expiry) are 0.
fn seconds_left(ttl: i64) -> u64 {
    u64::try_from(ttl).unwrap_or(0)
}
