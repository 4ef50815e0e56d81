//! The Redis token store: the only module that imports `redis`.
//!
//! Its files: this one holds `RedisTokens` (opening, keys, the version check, the
//! `TokenStore` and `Revocation` impls); `index.rs` a user's index (filing and revoking
//! pairs); `counters.rs` the `Counters` and `Codes` impls; `import.rs` the legacy import;
//! `conn.rs` the connection in its three modes (what may be resent, `ASK`);
//! `sentinel.rs` following the master the sentinels name; `ops.rs` an operation's
//! writes in stages, and `WAIT`; `near.rs` the near cache.
//!
//! Key layout under a configurable prefix `P` (default `tc:`), every key derived from the
//! SHA-256 of a token, never from the token itself:
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `P a:<hash>` | string | the client's `token_expire_time` | an access token's record (or, revoked, the revoked value) |
//! | `P r:<hash>` | string | 2 × `token_expire_time` | a refresh token's record (or the revoked value) |
//! | `P u:<username>` | sorted set | the longest-lived member | a user's pairs: one member per pair (`index.rs`), score = the pair's end (-1 while being revoked) |
//! | `P s:<value>` | string | the freshness window and a margin | a request signature already used |
//! | `P n:<name>` | string (integer) | its window, from the first hit | a counter: login attempts, requests per network, code guesses and sends |
//! | `P l:<name>` | string | the lock's duration | a lock: the resend lock of verification codes |
//! | `P v:<name>` | string | the code's lifetime | a verification code |
//! | `P m:<source>:<table>` | string (integer) | none | the last row id `import-legacy-tokens` carried over from a legacy token table |
//!
//! The keys of one token sit on different cluster slots (an access token is found by its
//! hash alone, so nothing else can share its slot). The writes of one operation are `Ops` in stages
//! (`ops.rs`): one pipeline on a single node, each command on its own, stage after
//! stage, on a cluster. The atomic steps are Lua scripts on one slot: single-use refresh on the
//! refresh key (it returns the value and marks it used, same TTL, so a replay is
//! recognised); filing and taking pairs on the user's index (`index.rs` says why no
//! interleaving can leave a revoked token valid).
//!
//! `<hash>` is 22 characters (128 bits of SHA-256, base64url); values are in the binary
//! form of `value.rs`.
//!
//! One multiplexed connection (per node on a cluster) serves every request: concurrent
//! requests are pipelined on it, it reconnects by itself, and no pool checkout (which
//! costs deadpool-redis a PING round trip) sits on the hot path. `conn.rs` says how each
//! mode connects and why no command is ever sent twice.
mod conn;
mod counters;
mod import;
mod index;
mod near;
mod ops;
mod sentinel;

pub use conn::{OpenError, RedisConn, RedisMode, RedisTarget};
pub use ops::{slot_of, Replication};
use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisError, Value};

use super::super::{
    AccessRecord, FamilyId, Issue, IssuedPair, ParentPair, RefreshState, Revocation, StoreError,
    TokenHash, TokenStore,
};
use super::keys::kind;
use super::value;
use crate::telemetry::{self, StoreOp};

/// Redis behind the `TokenStore` trait.
#[derive(Clone)]
pub struct RedisTokens {
    conn: RedisConn,
    /// Whether the Redis version was found new enough (checked until it is).
    version_ok: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How many replicas a revocation (and, with `on_issue`, a login or refresh) waits for.
    durability: Durability,
    /// The near cache of access records, when on (`--near-cache`).
    near: Option<std::sync::Arc<near::NearCache>>,
    take_refresh: redis::Script,
    prefix: String,
}

impl RedisTokens {
    /// Opens Redis in the mode `target` names (see `RedisConn::open`: standalone starts
    /// while Redis is down and every command fails fast, code 1, until it is back).
    pub async fn open(target: &RedisTarget, prefix: &str) -> Result<Self, OpenError> {
        let conn = RedisConn::open(target).await?;
        telemetry::store_connections("redis", 1);
        let store = Self {
            conn,
            version_ok: Default::default(),
            durability: Durability::default(),
            near: None,
            take_refresh: take_refresh_script(),
            prefix: prefix.to_owned(),
        };
        // A Redis too old is refused at start; one not reachable yet is checked by every
        // readiness probe until it answers (not ready while it is too old).
        match store.version_problem().await {
            Ok(Some(problem)) => return Err(OpenError::Config(problem)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the Redis version at start"),
        }
        Ok(store)
    }

    /// Waits for replicas as `durability` says (none until this is called).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Turns the near cache on (`near.rs`), in any mode.
    pub fn enable_near_cache(
        &mut self,
        target: &RedisTarget,
        max_entries: usize,
    ) -> Result<(), OpenError> {
        self.near = Some(near::start(target, &self.conn, &self.prefix, max_entries)?);
        Ok(())
    }

    fn key(&self, kind: &str, suffix: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + suffix.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(suffix);
        key
    }

    /// Redis's eviction policy when Redis can evict keys (a `maxmemory` is set and the
    /// policy is not `noeviction`); `None` when it cannot, or when it does not say (CONFIG
    /// disabled, as on some managed services, or Redis unreachable).
    ///
    /// Evicting any key of this layout breaks a promise: an evicted refresh value or
    /// index leaves a revoked access token valid, an evicted counter resets a lockout,
    /// an evicted signature allows a replay.
    pub async fn eviction_policy(&self) -> Option<String> {
        let mut conn = self.conn.clone();
        let infos = conn.masters_info("memory").await.ok()?;
        infos.iter().find_map(|info| {
            let maxmemory: u64 = info_field(info, "maxmemory")?.parse().ok()?;
            let policy = info_field(info, "maxmemory_policy")?;
            (maxmemory > 0 && policy != "noeviction").then_some(policy.to_owned())
        })
    }

    /// Why the Redis version cannot serve (`Some`: a master runs a version before 7.0,
    /// whose `EXPIRE` lacks `NX`/`GT`: every login would fail), or `None` when every
    /// master can. Once every master was found new enough it is not asked again.
    async fn version_problem(&self) -> Result<Option<String>, StoreError> {
        use std::sync::atomic::Ordering;
        if self.version_ok.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let infos = self.bounded("version", conn.masters_info("server")).await?;
        for info in &infos {
            let version = info_field(info, "redis_version").unwrap_or("unknown");
            let major: Option<u32> = version.split('.').next().and_then(|m| m.parse().ok());
            if major.is_none_or(|m| m < MIN_REDIS_MAJOR) {
                return Ok(Some(format!(
                    "Redis {version} found: tokencache needs Redis {MIN_REDIS_MAJOR}.0 or \
                     later (EXPIRE NX and GT)"
                )));
            }
        }
        self.version_ok.store(true, Ordering::Relaxed);
        Ok(None)
    }

    /// Which mode Redis is in (standalone, cluster, sentinel).
    pub fn mode(&self) -> RedisMode {
        self.conn.mode()
    }

    /// Runs one Redis exchange, timed and counted.
    ///
    /// The bound comes from the connection itself: redis-rs times every command out after
    /// the response timeout and every (re)connect attempt after the connection timeout,
    /// with one retry. A second timer of our own per command cost the hot path a timer
    /// wheel insert and removal for nothing.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        op: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let timer = StoreOp::start("redis", operation);
        let result = op.await.map_err(|source| StoreError::Unavailable {
            store: "redis",
            source: Box::new(Failed { operation, source }),
        });
        timer.finish(result.is_ok());
        result
    }
}

/// An access key's value read: the record of a live token, `None` for no key or a revoked
/// one.
fn access_record(raw: Option<Vec<u8>>) -> Result<Option<AccessRecord>, StoreError> {
    match raw {
        None => Ok(None),
        Some(v) if value::is_revoked(&v) => Ok(None),
        Some(v) => Ok(Some(
            value::decode_access(&v).ok_or_else(|| corrupt("access token"))?,
        )),
    }
}

/// How many replicas must have a write before it is answered (see `ops::Replication`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durability {
    /// Revocations (logout, logout-all, a password change, a disabled user, a replayed
    /// refresh token, the cap's trims) and a new pair's filing in its user's index:
    /// `None`, answered without waiting.
    pub revocations: Option<Replication>,
    /// A login's or refresh's tokens wait too (not only its index entry).
    pub on_issue: bool,
}

impl Durability {
    /// The replication a login or refresh waits for.
    pub(super) fn issue(&self) -> Option<Replication> {
        self.revocations.filter(|_| self.on_issue)
    }
}

/// The oldest Redis major version the store's commands run on.
const MIN_REDIS_MAJOR: u32 = 7;

/// A field of an `INFO` answer (`name:value` lines).
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

/// A refresh key's value: none when absent or revoked.
fn decode_refresh(raw: Option<Vec<u8>>) -> Result<Option<RefreshState>, StoreError> {
    match raw {
        None => Ok(None),
        Some(v) if value::is_revoked(&v) => Ok(None),
        Some(v) => value::decode_refresh_state(&v)
            .map(Some)
            .ok_or_else(|| corrupt("refresh token")),
    }
}

/// A failed operation, named in the error (which one timed out says where to look).
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {source}")]
struct Failed {
    operation: &'static str,
    source: RedisError,
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt {
        store: "redis",
        what,
        detail: "unreadable value".into(),
    }
}

/// Uses a refresh token: returns its value and marks it used (its first byte
/// `LIVE_REFRESH` becomes `USED_REFRESH`), keeping its TTL; a client's token
/// (`LIVE_CLIENT_REFRESH`) only when ARGV[1] is 1 (the caller authenticated the client).
/// One key, so it is atomic and Cluster-safe.
fn take_refresh_script() -> redis::Script {
    redis::Script::new(&format!(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return v end
local kind = string.byte(v, 1)
local used
if kind == {live} then used = {used}
elseif kind == {live_client} and ARGV[1] == '1' then used = {used_client}
end
if used then
  redis.call('SET', KEYS[1], string.char(used) .. string.sub(v, 2), 'KEEPTTL')
end
return v
",
        live = value::LIVE_REFRESH,
        used = value::USED_REFRESH,
        live_client = value::LIVE_CLIENT_REFRESH,
        used_client = value::USED_CLIENT_REFRESH,
    ))
}

impl TokenStore for RedisTokens {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        let key = self.key(kind::ACCESS, &hash.encode());
        if let Some(near) = &self.near {
            if let Some(record) = near.get(hash) {
                return Ok(Some(record));
            }
            // A miss is read on its master's tracking connection, and kept only from there.
            if let Some((ticket, mut tracked)) = near.reader(hash, &key) {
                let get = redis::cmd("GET").arg(&key).to_owned();
                let read = self
                    .bounded("get_access", async {
                        match tracked.req_packed_command(&get).await? {
                            Value::Nil => Ok(Some(None)),
                            Value::BulkString(v) => Ok(Some(Some(v))),
                            // A refusal (`MOVED`, `ASK`: the slot is served elsewhere now)
                            // or anything unexpected: read as if there were no cache.
                            _ => Ok(None),
                        }
                    })
                    .await;
                match read {
                    Ok(Some(raw)) => {
                        let record = access_record(raw)?;
                        if let Some(record) = &record {
                            near.insert(ticket, *hash, record);
                        }
                        return Ok(record);
                    }
                    _ => near.misread(),
                }
            }
        }
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded("get_access", conn.get(key)).await?;
        access_record(raw)
    }

    async fn issue(
        &self,
        pair: &IssuedPair,
        parent: Option<&ParentPair>,
        cap: usize,
    ) -> Result<Issue, StoreError> {
        self.issue_pair(pair, parent, cap).await
    }

    async fn refresh(&self, hash: &TokenHash) -> Result<Option<RefreshState>, StoreError> {
        let key = self.key(kind::REFRESH, &hash.encode());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded("get_refresh", conn.get(key)).await?;
        decode_refresh(raw)
    }

    async fn take_refresh(
        &self,
        hash: &TokenHash,
        by_client: bool,
    ) -> Result<Option<RefreshState>, StoreError> {
        let key = self.key(kind::REFRESH, &hash.encode());
        let mut conn = self.conn.clone();
        let mut invocation = self.take_refresh.key(key);
        invocation.arg(u8::from(by_client));
        let raw: Option<Vec<u8>> = self
            .bounded("take_refresh", invocation.invoke_async(&mut conn))
            .await?;
        decode_refresh(raw)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded("ping", conn.ready()).await?;
        match self.version_problem().await? {
            None => Ok(()),
            Some(problem) => Err(StoreError::Unavailable {
                store: "redis",
                source: problem.into(),
            }),
        }
    }
}

impl Revocation for RedisTokens {
    async fn revoke_user(&self, username: &str) -> Result<u64, StoreError> {
        self.revoke("revoke_user", username, "all", &[], None).await
    }

    async fn revoke_pair(&self, username: &str, access: &TokenHash) -> Result<u64, StoreError> {
        self.revoke("revoke_pair", username, "pair", &access.0, Some(access))
            .await
    }

    async fn revoke_family(&self, username: &str, family: &FamilyId) -> Result<u64, StoreError> {
        self.revoke("revoke_family", username, "family", &family.0, None)
            .await
    }

    async fn confirm_revoked(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        self.confirm_revoked(hash).await
    }
}
