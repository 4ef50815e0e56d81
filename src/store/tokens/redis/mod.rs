//! The Redis token store: the only module that imports `redis`.
//!
//! Key layout under a configurable prefix `P` (default `tc:`), every key derived from the
//! SHA-256 of a token, never from the token itself:
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `P a:<hash>` | string | the client's `token_expire_time` | an access token's record |
//! | `P r:<hash>` | string | 2 × `token_expire_time` | a refresh token's record |
//! | `P u:<username>` | sorted set | the longest-lived member | one 17-byte member per pair (`r` + refresh hash, or `a` + access hash), score = the pair's end |
//! | `P s:<value>` | string | the freshness window | a request signature already used |
//! | `P n:<name>` | string (integer) | its window, from the first hit | a counter: failed logins, requests per IP, wrong codes |
//! | `P l:<name>` | string | the lock's duration | a lock: the resend lock of verification codes |
//! | `P v:<name>` | string | the code's lifetime | a verification code |
//! | `P m:<source>:<table>` | string (integer) | none | the last row id `import-legacy-tokens` carried over from a legacy token table |
//!
//! The keys of one token sit on different cluster slots (an access token is found by its
//! hash alone, so nothing else can share its slot). So no command touches two keys of
//! different slots except a revocation's `MGET`, which the cluster client splits by slot
//! (and fails when a master is out of reach); deletions are one `DEL` per slot; and
//! the writes of one operation are `Ops` in stages (`conn.rs`): one pipeline on a single
//! node, grouped by slot stage after stage on a cluster. The one atomic step that
//! matters, single-use refresh, is one Lua script on one key: it returns the refresh
//! value and marks it used (same TTL), so a replay is recognised.
//!
//! `<hash>` is 22 characters (128 bits of SHA-256, base64url); values are in the binary
//! form of `value.rs`.
//!
//! One multiplexed connection (per node on a cluster) serves every request: concurrent
//! requests are pipelined on it, it reconnects by itself, and no pool checkout (which
//! costs deadpool-redis a PING round trip) sits on the hot path. `conn.rs` says how each
//! mode connects and why no command is ever sent twice.
mod conn;
mod near;

use conn::Ops;
pub use conn::{slot_of, OpenError, RedisConn, RedisMode, RedisTarget};
use redis::{AsyncCommands, Cmd, RedisError};

use super::super::import::{ImportedToken, LegacyTable, TokenImport};
use super::super::{
    AccessRecord, Codes, Counter, Counters, FamilyId, IssuedPair, RefreshState, Revocation,
    StoreError, TokenHash, TokenStore,
};
use super::keys::kind;
use super::value;
use crate::clock::unix_now;
use crate::secret::Secret;
use crate::telemetry::{self, StoreOp};

/// Redis behind the `TokenStore` trait.
#[derive(Clone)]
pub struct RedisTokens {
    conn: RedisConn,
    /// Whether the Redis version was found new enough (checked until it is).
    version_ok: std::sync::Arc<std::sync::atomic::AtomicBool>,
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

    /// Turns the near cache on (`near.rs`): standalone Redis only.
    pub fn enable_near_cache(
        &mut self,
        target: &RedisTarget,
        max_entries: usize,
    ) -> Result<(), OpenError> {
        if target.mode != RedisMode::Standalone {
            return Err(OpenError::Config(format!(
                "--near-cache works with --redis-mode standalone only, not {} (its \
                 invalidations would have to come from every master)",
                target.mode.name()
            )));
        }
        let near = near::start(&target.urls, &self.prefix, max_entries, target.timeout).map_err(
            |source| OpenError::Redis {
                what: "cannot start the near cache".into(),
                source,
            },
        )?;
        self.near = Some(near);
        Ok(())
    }

    fn key(&self, kind: &str, suffix: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + suffix.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(suffix);
        key
    }

    /// Deletes the pairs of a user's index that `select` picks: their keys and their
    /// members. Three round trips: the members, the refresh values (which name each
    /// pair's access token and family), the deletions.
    async fn revoke_members(
        &self,
        username: &str,
        operation: &'static str,
        select: impl Fn(&IndexedPair) -> bool,
    ) -> Result<u64, StoreError> {
        let index = self.key(kind::INDEX, username);
        let mut conn = self.conn.clone();
        let members: Vec<Vec<u8>> = self.bounded(operation, conn.zrange(&index, 0, -1)).await?;
        self.revoke_listed(&index, operation, members, select).await
    }

    /// Deletes the pairs of `members` (raw members of the index `index`) that `select`
    /// picks. Two round trips: the refresh values of those members, the deletions.
    async fn revoke_listed(
        &self,
        index: &str,
        operation: &'static str,
        members: Vec<Vec<u8>>,
        select: impl Fn(&IndexedPair) -> bool,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let members: Vec<(Vec<u8>, Member)> = members
            .into_iter()
            .filter_map(|raw| Member::parse(&raw).map(|m| (raw, m)))
            .collect();
        // One MGET: the cluster client splits it by slot.
        let refresh_keys: Vec<String> = members
            .iter()
            .filter_map(|(_, member)| match member {
                Member::Refresh(hash) => Some(self.key(kind::REFRESH, &hash.encode())),
                Member::AccessOnly(_) => None,
            })
            .collect();
        let mut values: std::vec::IntoIter<Option<Vec<u8>>> = if refresh_keys.is_empty() {
            Vec::new().into_iter()
        } else {
            self.bounded(operation, conn.mget::<_, Vec<_>>(&refresh_keys))
                .await?
                .into_iter()
        };
        let mut keys: Vec<String> = Vec::new();
        let mut forgotten: Vec<TokenHash> = Vec::new();
        let mut removed_members: Vec<Vec<u8>> = Vec::new();
        for (raw, member) in members {
            let pair = match member {
                Member::AccessOnly(access) => IndexedPair {
                    access: Some(access),
                    refresh: None,
                    family: None,
                },
                Member::Refresh(refresh) => {
                    // A refresh value outlives its access token by its TTL: when it is
                    // gone, so is the access token, unless Redis evicted it (the server
                    // warns at start when Redis may evict). Unreadable: nothing to find.
                    let record = values
                        .next()
                        .flatten()
                        .and_then(|v| value::decode_refresh_state(&v))
                        .map(|state| match state {
                            RefreshState::Live(r) | RefreshState::Used(r) => r,
                        });
                    IndexedPair {
                        access: record.as_ref().map(|r| r.access),
                        refresh: Some(refresh),
                        family: record.map(|r| r.family),
                    }
                }
            };
            if !select(&pair) {
                continue;
            }
            if let Some(access) = pair.access {
                if let Some(near) = &self.near {
                    near.forget(&access);
                }
                forgotten.push(access);
                keys.push(self.key(kind::ACCESS, &access.encode()));
            }
            if let Some(refresh) = pair.refresh {
                keys.push(self.key(kind::REFRESH, &refresh.encode()));
            }
            removed_members.push(raw);
        }
        if removed_members.is_empty() {
            return Ok(0);
        }
        // The tokens first, then their members: a failure between the two leaves members
        // that name nothing (skipped, and gone with the index), never a token the index
        // no longer names.
        // Every selected pair names at least one key (its refresh or its access token).
        // One DEL per slot, never one multi-slot DEL: the cluster client splits those but
        // silently skips a node it has no connection to (a revocation would answer
        // success and leave the token). On one node the DELs are one pipeline.
        let mut by_slot: Vec<(u16, Vec<&String>)> = Vec::new();
        for key in &keys {
            let slot = slot_of(key.as_bytes());
            match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, group)) => group.push(key),
                None => by_slot.push((slot, vec![key])),
            }
        }
        let mut ops = Ops::new();
        for (_, group) in &by_slot {
            ops.keep(group[0].as_bytes(), Cmd::del(group));
        }
        ops.then()
            .ignore(index.as_bytes(), Cmd::zrem(index, removed_members));
        let removed: Vec<u64> = self.bounded(operation, ops.run(&self.conn)).await?;
        // Forgotten again now that the keys are gone: a miss that read one before the DEL
        // may have cached it meanwhile (its push also removes it, a moment later).
        if let Some(near) = &self.near {
            for access in forgotten {
                near.forget(&access);
            }
        }
        Ok(removed.iter().sum())
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
        let result = op.await.map_err(unavailable);
        timer.finish(result.is_ok());
        result
    }
}

/// The oldest Redis major version the store's commands run on.
const MIN_REDIS_MAJOR: u32 = 7;

/// A field of an `INFO` answer (`name:value` lines).
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable {
        store: "redis",
        source: Box::new(e),
    }
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

/// A pair's entry in the user's index, 17 bytes: `r` and the refresh hash, or `a` and
/// the access hash for a pair without a refresh token (client_credentials). The rest of
/// a pair (its access hash, its family) is in the refresh value, which outlives the
/// access token: a short member keeps the index small (one-pair index: 88 bytes of
/// `MEMORY USAGE` for a short username, 104 with the 52-character text member before).
enum Member {
    Refresh(TokenHash),
    AccessOnly(TokenHash),
}

impl Member {
    fn of(pair: &IssuedPair) -> Vec<u8> {
        match &pair.refresh {
            Some((hash, _)) => Self::bytes(b'r', hash),
            None => Self::bytes(b'a', &pair.access_hash),
        }
    }

    fn bytes(tag: u8, hash: &TokenHash) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(17);
        bytes.push(tag);
        bytes.extend_from_slice(&hash.0);
        bytes
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let (&tag, hash) = bytes.split_first()?;
        let hash = TokenHash(hash.try_into().ok()?);
        match tag {
            b'r' => Some(Self::Refresh(hash)),
            b'a' => Some(Self::AccessOnly(hash)),
            _ => None,
        }
    }
}

/// A pair found through the index. `access` and `family` are `None` when its refresh
/// value is gone.
struct IndexedPair {
    access: Option<TokenHash>,
    refresh: Option<TokenHash>,
    family: Option<FamilyId>,
}

impl TokenStore for RedisTokens {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn access(&self, hash: &TokenHash) -> Result<Option<AccessRecord>, StoreError> {
        let ticket = match &self.near {
            Some(near) => {
                if let Some(record) = near.get(hash) {
                    return Ok(Some(record));
                }
                near.ticket(hash)
            }
            None => None,
        };
        let key = self.key(kind::ACCESS, &hash.encode());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded("get_access", conn.get(key)).await?;
        let record = raw
            .map(|v| value::decode_access(&v).ok_or_else(|| corrupt("access token")))
            .transpose()?;
        if let (Some(near), Some(ticket), Some(record)) = (&self.near, ticket, &record) {
            near.insert(ticket, *hash, record);
        }
        Ok(record)
    }

    async fn issue(&self, pair: &IssuedPair) -> Result<u64, StoreError> {
        let access_ttl = u64::from(pair.access.lifetime.max(1));
        let refresh_ttl = access_ttl * 2;
        let index = self.key(kind::INDEX, &pair.access.username);
        let member = Member::of(pair);
        let (index_ttl, member_end) = match &pair.refresh {
            Some((_, r)) => (refresh_ttl, r.grant.expires),
            None => (access_ttl, pair.access.expires),
        };

        let mut ops = Ops::new();
        // The index first: a token never exists without its index entry. The score's
        // fraction, the microsecond of the issue, orders the pairs that end in the same
        // second by age (the session cap revokes the oldest first).
        let score = member_end as f64 + f64::from(crate::clock::subsec_micros()) / 1e6;
        index_add(&mut ops, &index, member, score, index_ttl);
        ops.ignore(
            index.as_bytes(),
            Cmd::zrembyscore(&index, "-inf", unix_now()),
        )
        // The index's size, for the session cap, in the same round trip.
        .keep(index.as_bytes(), Cmd::zcard(&index))
        .then();
        let access_key = self.key(kind::ACCESS, &pair.access_hash.encode());
        ops.ignore(
            access_key.as_bytes(),
            Cmd::set_ex(&access_key, value::encode_access(&pair.access), access_ttl),
        );
        if let Some((hash, record)) = &pair.refresh {
            let refresh_key = self.key(kind::REFRESH, &hash.encode());
            ops.ignore(
                refresh_key.as_bytes(),
                Cmd::set_ex(&refresh_key, value::encode_refresh(record), refresh_ttl),
            );
        }
        let (pairs,): (u64,) = self.bounded("issue", ops.run(&self.conn)).await?;
        Ok(pairs)
    }

    async fn refresh(&self, hash: &TokenHash) -> Result<Option<RefreshState>, StoreError> {
        let key = self.key(kind::REFRESH, &hash.encode());
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded("get_refresh", conn.get(key)).await?;
        raw.map(|v| value::decode_refresh_state(&v).ok_or_else(|| corrupt("refresh token")))
            .transpose()
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
        raw.map(|v| value::decode_refresh_state(&v).ok_or_else(|| corrupt("refresh token")))
            .transpose()
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
        // The members are removed one by one (an index left empty is gone): deleting the
        // whole key would also drop a pair issued since the members were read.
        self.revoke_members(username, "revoke_user", |_| true).await
    }

    async fn revoke_pair(&self, username: &str, access: &TokenHash) -> Result<u64, StoreError> {
        self.revoke_members(username, "revoke_pair", |p| p.access == Some(*access))
            .await
    }

    async fn revoke_family(&self, username: &str, family: &FamilyId) -> Result<u64, StoreError> {
        self.revoke_members(username, "revoke_family", |p| p.family == Some(*family))
            .await
    }

    async fn revoke_oldest(&self, username: &str, keep: usize) -> Result<u64, StoreError> {
        let index = self.key(kind::INDEX, username);
        let mut conn = self.conn.clone();
        let size: usize = self.bounded("revoke_oldest", conn.zcard(&index)).await?;
        if size <= keep {
            return Ok(0);
        }
        // The index scores each pair with its end: the lowest scores are the oldest. Only
        // their refresh values are read, not the whole index's.
        let oldest: Vec<Vec<u8>> = self
            .bounded(
                "revoke_oldest",
                conn.zrange(&index, 0, (size - keep - 1) as isize),
            )
            .await?;
        self.revoke_listed(&index, "revoke_oldest", oldest, |_| true)
            .await
    }
}

impl Counters for RedisTokens {
    async fn claim_once(&self, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        self.set_nx_ex("claim_once", &self.key(kind::ONCE, value), ttl_secs)
            .await
    }

    async fn hit(&self, counter: &str, window_secs: u64) -> Result<Counter, StoreError> {
        let key = self.key(kind::COUNTER, counter);
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
        let (count, ttl): (u64, i64) = self.bounded("hit", pipe.query_async(&mut conn)).await?;
        Ok(Counter {
            count,
            ttl: seconds_left(ttl),
        })
    }

    async fn peek(&self, counter: &str) -> Result<Counter, StoreError> {
        let key = self.key(kind::COUNTER, counter);
        let mut pipe = redis::pipe();
        pipe.get(&key).ttl(&key);
        let mut conn = self.conn.clone();
        let (count, ttl): (Option<u64>, i64) =
            self.bounded("peek", pipe.query_async(&mut conn)).await?;
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

impl TokenImport for RedisTokens {
    /// One pipeline a batch: each token as `issue` writes one (index entry first, then
    /// the key) but with `SET NX`, so a key already there (a refresh token used since an
    /// interrupted run, say) is left as it is and counted as present; then the resume
    /// mark, once the pipeline answered without an error.
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
                    Member::bytes(b'a', hash),
                    self.key(kind::ACCESS, &hash.encode()),
                    value::encode_access(record),
                    record.expires,
                ),
                ImportedToken::Refresh { hash, record } => (
                    &record.grant.username,
                    Member::bytes(b'r', hash),
                    self.key(kind::REFRESH, &hash.encode()),
                    value::encode_refresh(record),
                    record.grant.expires,
                ),
            };
            let ttl = (expires - now).max(1);
            let index = self.key(kind::INDEX, username);
            index_add(
                &mut indexes,
                &index,
                member,
                expires as f64,
                ttl.unsigned_abs(),
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
        // Every index entry before any token (two stages on a cluster; one pipeline, in
        // this order, on one node).
        indexes.then().append(sets);
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
    fn import_key(&self, source: &str, table: LegacyTable) -> String {
        self.key(kind::IMPORT_MARK, &format!("{source}:{}", table.name()))
    }
}

/// Adds a pair's member to a user's index, scored with the pair's end, and keeps the
/// index as long as its longest-lived member: `EXPIRE NX` sets a TTL on a new index, `GT`
/// extends it for a longer-lived member.
fn index_add(ops: &mut Ops, index: &str, member: Vec<u8>, score: f64, ttl: u64) {
    let key = index.as_bytes();
    ops.ignore(key, Cmd::zadd(index, member, score))
        .ignore(
            key,
            redis::cmd("EXPIRE").arg(index).arg(ttl).arg("NX").clone(),
        )
        .ignore(
            key,
            redis::cmd("EXPIRE").arg(index).arg(ttl).arg("GT").clone(),
        );
}

/// Redis's TTL answer as seconds left: -2 (no key) and -1 (no expiry) are 0.
fn seconds_left(ttl: i64) -> u64 {
    u64::try_from(ttl).unwrap_or(0)
}
