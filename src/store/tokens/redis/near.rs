//! The near cache (`--near-cache`): access records kept in process and answered without
//! a Redis round trip, kept exact by Redis itself.
//!
//! A connection of its own (RESP3) turns on server-assisted client-side caching in
//! broadcast mode for the access keys, `CLIENT TRACKING ON BCAST PREFIX <prefix>a:`:
//! Redis then tells it of every change to any access key, by any client (this instance's
//! own writes included), with an `invalidate` push naming the key, and of a flush with an
//! empty one. Each push removes the entry.
//!
//! Why no invalidation is lost:
//!
//! - **The race between a miss's read and its insert.** A change may land between the
//!   GET that misses and the insert of its answer, its push arriving before the answer.
//!   Each miss takes a ticket first: the epoch of the key's bucket (one of 1,024, by the
//!   hash) and the cache's generation. Every push bumps its key's bucket, a flush or a
//!   lost connection the generation; the answer is inserted only if neither moved. A push
//!   that arrives after the insert removes the entry then. (The redis crate's
//!   experimental `cache-aio` inserts without such a check; it is not used.)
//! - **The tracking connection lost, or in doubt.** Its task sees the library's
//!   `Disconnection` push, or a PING that fails or takes over a second, and empties the
//!   cache and serves nothing from it (every check goes to Redis) until a new connection
//!   has tracking on again. A Redis restart is such a loss (and its data may be gone).
//! - **An expired token** is never answered: the record carries its expiry, checked on
//!   every hit.
//!
//! How stale a hit can be: the time from a change in Redis to its push being handled
//! here (measured by `loadtest/near_cache_staleness.py`). Standalone Redis only: with a
//! cluster or Sentinel the server refuses `--near-cache` at start.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::super::{AccessRecord, TokenHash};
use crate::clock::unix_now;
use crate::telemetry;

/// Buckets of the per-key epochs: a push bumps only its key's bucket, so a miss's insert
/// is refused only when a change near it (or a flush) happened meanwhile.
const BUCKETS: usize = 1024;

/// Process-side cache of access records, kept exact by Redis's invalidation pushes.
pub struct NearCache {
    entries: quick_cache::sync::Cache<TokenHash, AccessRecord>,
    /// Whether tracking is on, on a live connection: only then is anything served.
    live: AtomicBool,
    generation: AtomicU64,
    epochs: Box<[AtomicU64]>,
    /// The access keys' prefix (`<prefix>a:`), to read a pushed key's hash.
    key_prefix: String,
}

/// A miss's ticket: the insert of its answer is allowed only if nothing moved since.
#[derive(Clone, Copy)]
pub struct Ticket {
    generation: u64,
    epoch: u64,
}

fn bucket(hash: &TokenHash) -> usize {
    usize::from(u16::from_le_bytes([hash.0[0], hash.0[1]])) % BUCKETS
}

impl NearCache {
    fn new(max_entries: usize, key_prefix: String) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(max_entries.max(1)),
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            epochs: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            key_prefix,
        }
    }

    /// The record of a live token, when cached and tracking is on.
    pub fn get(&self, hash: &TokenHash) -> Option<AccessRecord> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        match self.entries.get(hash) {
            Some(record) if record.expires > unix_now() => {
                telemetry::near_cache("hit");
                Some(record)
            }
            Some(_) => {
                // Expired: never answered from here; Redis has let it go too.
                self.entries.remove(hash);
                telemetry::near_cache("miss");
                None
            }
            None => {
                telemetry::near_cache("miss");
                None
            }
        }
    }

    /// Taken before a miss reads Redis; `None` while tracking is off (nothing inserted).
    pub fn ticket(&self, hash: &TokenHash) -> Option<Ticket> {
        // The generation first: a flush between the two loads makes the ticket stale.
        let generation = self.generation.load(Ordering::Acquire);
        let epoch = self.epochs[bucket(hash)].load(Ordering::Acquire);
        self.live
            .load(Ordering::Acquire)
            .then_some(Ticket { generation, epoch })
    }

    /// Inserts a miss's answer, unless a change to its bucket, a flush or a lost
    /// connection came after its ticket.
    pub fn insert(&self, ticket: Ticket, hash: TokenHash, record: &AccessRecord) {
        if record.expires <= unix_now() || self.moved(ticket, &hash) {
            return;
        }
        self.entries.insert(hash, record.clone());
        // Checked again after the insert: a push handled between the check and the
        // insert would otherwise be lost. If anything moved, the entry goes again.
        if self.moved(ticket, &hash) {
            self.entries.remove(&hash);
        }
    }

    /// Whether a flush or a change of `hash`'s bucket came after `ticket`.
    fn moved(&self, ticket: Ticket, hash: &TokenHash) -> bool {
        self.generation.load(Ordering::Acquire) != ticket.generation
            || self.epochs[bucket(hash)].load(Ordering::Acquire) != ticket.epoch
    }

    /// This instance revoked the token: gone at once (the push follows).
    pub fn forget(&self, hash: &TokenHash) {
        self.epochs[bucket(hash)].fetch_add(1, Ordering::AcqRel);
        self.entries.remove(hash);
    }

    /// A push named this key.
    fn invalidate_key(&self, key: &[u8]) {
        let hash = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(&self.key_prefix))
            .and_then(TokenHash::decode);
        match hash {
            Some(hash) => self.forget(&hash),
            // A key of the prefix this cache cannot read: empty everything, to be sure.
            None => self.flush(),
        }
    }

    /// Everything goes (and every ticket taken before is refused).
    fn flush(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
        telemetry::near_cache_flush();
    }

    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
            self.flush();
        } else {
            self.flush();
            self.live.store(true, Ordering::Release);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn handle(&self, push: PushInfo) -> bool {
        match push.kind {
            PushKind::Invalidate => {
                telemetry::near_cache_invalidations();
                match push.data.into_iter().next() {
                    Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
                        for key in keys {
                            match key {
                                Value::BulkString(k) => self.invalidate_key(&k),
                                Value::SimpleString(k) => self.invalidate_key(k.as_bytes()),
                                _ => self.flush(),
                            }
                        }
                    }
                    // Nil: a flush of the database; anything else: doubt.
                    _ => self.flush(),
                }
                true
            }
            PushKind::Disconnection => false,
            _ => true,
        }
    }
}

/// Starts the near cache and the task that keeps tracking on (reconnecting as needed).
pub fn start(
    url: &str,
    prefix: &str,
    max_entries: usize,
    timeout: Duration,
) -> redis::RedisResult<Arc<NearCache>> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let cache = Arc::new(NearCache::new(max_entries, format!("{prefix}a:")));
    let tracked = format!("{prefix}a:");
    let task_cache = cache.clone();
    tokio::spawn(async move {
        // After a tracking connection that never got going, wait longer each time (up to
        // 5 s); after one that worked, try again at once.
        let mut pause = Duration::from_millis(100);
        loop {
            let worked = track(&client, &tracked, &task_cache, timeout).await;
            task_cache.set_live(false);
            pause = if worked {
                Duration::from_millis(100)
            } else {
                (pause * 2).min(Duration::from_secs(5))
            };
            tokio::time::sleep(pause).await;
        }
    });
    Ok(cache)
}

/// One tracking connection, until it is lost or in doubt; whether tracking was on.
async fn track(
    client: &redis::Client,
    tracked: &str,
    cache: &NearCache,
    timeout: Duration,
) -> bool {
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(tx);
    let Ok(mut conn) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return false;
    };
    let on: redis::RedisResult<()> = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(tracked)
        .query_async(&mut conn)
        .await;
    if let Err(e) = on {
        tracing::warn!(error = %e, "near cache: CLIENT TRACKING refused; the cache stays off");
        return false;
    }
    let _: redis::RedisResult<()> = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("tokencache-near-cache")
        .query_async(&mut conn)
        .await;
    cache.set_live(true);
    // The health checks run beside the pushes, never in their way: a PING that Redis is
    // slow to answer (a fork, a slow command) must not hold back an invalidation already
    // received.
    let (lost, in_doubt) = tokio::sync::oneshot::channel::<()>();
    let health = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            ping.tick().await;
            let pong =
                tokio::time::timeout(PING_DOUBT, conn.req_packed_command(&redis::cmd("PING")))
                    .await;
            if !matches!(pong, Ok(Ok(_))) {
                let _ = lost.send(());
                return;
            }
        }
    });
    serve_pushes(cache, &mut rx, in_doubt).await;
    health.abort();
    true
}

/// How often the tracking connection is checked, and how long its PING may take before
/// the connection is in doubt (the cache is then emptied and unused until tracking is
/// back).
const PING_EVERY: Duration = Duration::from_millis(500);
const PING_DOUBT: Duration = Duration::from_secs(1);

/// Applies every push as it arrives, until the connection is lost (its `Disconnection`
/// push, the channel closed) or the health check says it is in doubt.
async fn serve_pushes(
    cache: &NearCache,
    rx: &mut mpsc::UnboundedReceiver<PushInfo>,
    mut in_doubt: tokio::sync::oneshot::Receiver<()>,
) {
    let mut gauge = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            // Pushes first: of everything ready at once, invalidations go before anything.
            biased;
            push = rx.recv() => match push {
                Some(push) => {
                    if !cache.handle(push) {
                        return;
                    }
                }
                None => return,
            },
            _ = &mut in_doubt => return,
            _ = gauge.tick() => telemetry::near_cache_entries(cache.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires: i64) -> AccessRecord {
        AccessRecord {
            username: "alice".into(),
            app_key: "app".into(),
            token_type: "web".into(),
            expires,
            lifetime: 3600,
        }
    }

    #[test]
    fn a_change_between_the_read_and_the_insert_keeps_the_answer_out() {
        let cache = NearCache::new(100, "t:a:".into());
        cache.set_live(true);
        let hash = TokenHash::of("token");
        let future = unix_now() + 3600;

        let ticket = cache.ticket(&hash).unwrap();
        cache.invalidate_key(format!("t:a:{}", hash.encode()).as_bytes());
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), None, "a push after the ticket");

        let ticket = cache.ticket(&hash).unwrap();
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), Some(record(future)));

        // A push after the insert removes it.
        cache.invalidate_key(format!("t:a:{}", hash.encode()).as_bytes());
        assert_eq!(cache.get(&hash), None);

        // A flush between ticket and insert too; and nothing is served while off.
        let ticket = cache.ticket(&hash).unwrap();
        cache.flush();
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), None);
        let ticket = cache.ticket(&hash).unwrap();
        cache.insert(ticket, hash, &record(future));
        cache.set_live(false);
        assert_eq!(cache.get(&hash), None);
        assert!(cache.ticket(&hash).is_none());
    }

    /// The health check of the tracking connection may take its time (Redis slow to
    /// answer a PING): an invalidation that arrived meanwhile is applied at once.
    #[tokio::test]
    async fn an_invalidation_is_applied_while_a_health_check_hangs() {
        let cache = Arc::new(NearCache::new(100, "t:a:".into()));
        cache.set_live(true);
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash).unwrap();
        cache.insert(ticket, hash, &record(unix_now() + 60));
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A health check that never answers.
        let (_hanging, in_doubt) = tokio::sync::oneshot::channel::<()>();
        let serving = cache.clone();
        tokio::spawn(async move { serve_pushes(&serving, &mut rx, in_doubt).await });
        tx.send(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![Value::BulkString(
                format!("t:a:{}", hash.encode()).into_bytes(),
            )])],
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while cache.get(&hash).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the invalidation waited for the health check"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[test]
    fn an_expired_record_is_never_served() {
        let cache = NearCache::new(100, "t:a:".into());
        cache.set_live(true);
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash).unwrap();
        cache.entries.insert(hash, record(unix_now() - 1));
        assert_eq!(cache.get(&hash), None);
        cache.insert(ticket, hash, &record(unix_now()));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn an_unreadable_key_or_an_empty_push_flushes_everything() {
        let cache = NearCache::new(100, "t:a:".into());
        cache.set_live(true);
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash).unwrap();
        cache.insert(ticket, hash, &record(unix_now() + 60));
        cache.invalidate_key(b"t:a:not-a-hash");
        assert_eq!(cache.get(&hash), None);
        let ticket = cache.ticket(&hash).unwrap();
        cache.insert(ticket, hash, &record(unix_now() + 60));
        assert!(cache.handle(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        }));
        assert_eq!(cache.get(&hash), None);
    }
}
