//! The near cache (`--near-cache`): access records kept in process and answered without
//! a Redis round trip, kept exact by Redis itself. It works in every mode: one tracking
//! connection to the one server (standalone), to the master the sentinels name (Sentinel),
//! or to every master that owns slots (a cluster).
//!
//! Each tracking connection (RESP3) turns on server-assisted client-side caching in
//! broadcast mode for the access keys, `CLIENT TRACKING ON BCAST PREFIX <prefix>a:`:
//! its master then tells it of every change to any access key, by any client (this
//! instance's own writes included), with an `invalidate` push naming the key, and of a
//! flush with an empty one. Each push removes the entry. A replica sends the same pushes
//! for the writes it applies from its master (checked on Redis 7.0), so a master demoted
//! in a planned switch keeps invalidating until it is left.
//!
//! **A miss is read on the tracking connection of the master that serves its key**, not on
//! the store's connection, and only an answer read there is kept: so every cached record
//! came from a master that was tracked, and was serving that key, when it was read. A
//! master that no longer serves the key's slot answers `MOVED` or `ASK`; a connection lost
//! or in doubt has no reader; either way the check is answered through the store's
//! connection and nothing is kept.
//!
//! Why no invalidation is lost:
//!
//! - **The race between a miss's read and its insert.** A change may land between the
//!   GET that misses and the insert of its answer, its push arriving before the answer.
//!   Each miss takes a ticket first: the epoch of the key's bucket (one of 1,024, by the
//!   hash) and the cache's generation. Every push bumps its key's bucket, a flush the
//!   generation; the answer is inserted only if neither moved. A push that arrives after
//!   the insert removes the entry then. (The redis crate's experimental `cache-aio`
//!   inserts without such a check; it is not used.)
//! - **A tracking connection lost, or in doubt.** Its task sees the library's
//!   `Disconnection` push, or a health check that fails or takes over a second, and
//!   empties the whole cache; the master's keys are read through the store's connection
//!   (and not kept) until a new connection has tracking on again. A Redis restart is such
//!   a loss (and its data may be gone). The health check, every 500 ms, asks `ROLE` (a
//!   master demoted to replica is left, and the next connection goes to the master the
//!   sentinels or the slot map name now) and, on a cluster, `CLUSTER INFO` (a master cut
//!   off from the cluster's majority says `cluster_state:fail` before its replica is
//!   promoted).
//! - **A cluster's slot map changing.** The map is read every second, and at once after
//!   a read found its key's slot served elsewhere. A master that appears gets a tracking
//!   connection; one that owns no slot any more loses it; any change empties the cache.
//!   Until its connection is on, a new master's keys have no reader. A slot moved by
//!   `MIGRATE` deletes its keys on the old master, which pushes their invalidations.
//! - **An expired token** is never answered: the record carries its expiry, checked on
//!   every hit.
//!
//! How stale a hit can be: the time from a change in Redis to its push being handled
//! here (measured by `loadtest/near_cache_staleness.py`).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, Notify};

use super::super::{AccessRecord, TokenHash};
use super::conn::{node_info, slot_ranges, OpenError, RedisConn, RedisMode, RedisTarget};
use super::ops::slot_of;
use crate::clock::unix_now;
use crate::telemetry;

/// Buckets of the per-key epochs: a push bumps only its key's bucket, so a miss's insert
/// is refused only when a change near it (or a flush) happened meanwhile.
const BUCKETS: usize = 1024;

/// A cluster's slots.
const SLOTS: usize = 16384;

/// Process-side cache of access records, kept exact by Redis's invalidation pushes.
pub struct NearCache {
    entries: quick_cache::sync::Cache<TokenHash, AccessRecord>,
    generation: AtomicU64,
    epochs: Box<[AtomicU64]>,
    /// The access keys' prefix (`<prefix>a:`), to read a pushed key's hash.
    key_prefix: String,
    /// Which tracking connection reads which key.
    routes: RwLock<Routes>,
    /// A read found its slot served elsewhere: the slot map is read again now.
    moved: Notify,
}

/// The tracking connections, by key.
enum Routes {
    /// Standalone and Sentinel: one master serves every key.
    One(Arc<Source>),
    /// A cluster: the tracked master of each slot as the slot map last said (`None`
    /// before the map is read).
    Slots(Vec<Option<Arc<Source>>>),
}

/// One master's tracking connection: `Some` while tracking is on and not in doubt.
#[derive(Default)]
pub struct Source {
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Source {
    fn set(&self, conn: Option<MultiplexedConnection>) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    fn get(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
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
    fn new(max_entries: usize, key_prefix: String, routes: Routes) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(max_entries.max(1)),
            generation: AtomicU64::new(0),
            epochs: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            key_prefix,
            routes: RwLock::new(routes),
            moved: Notify::new(),
        }
    }

    /// The record of a live token, when cached.
    pub fn get(&self, hash: &TokenHash) -> Option<AccessRecord> {
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

    /// A miss's ticket, and the tracking connection of the master that serves `key`, on
    /// which the miss is to be read; `None` while that master has none (the miss is then
    /// read through the store's connection, and not kept).
    pub fn reader(&self, hash: &TokenHash, key: &str) -> Option<(Ticket, MultiplexedConnection)> {
        // The ticket first: a connection lost after it was taken moves the generation.
        let ticket = self.ticket(hash);
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let source = match &*routes {
            Routes::One(source) => source,
            Routes::Slots(table) => table[usize::from(slot_of(key.as_bytes()))].as_ref()?,
        };
        Some((ticket, source.get()?))
    }

    /// A read on a tracking connection failed or was refused (its slot moved): nothing is
    /// kept, and a cluster's slot map is read again.
    pub fn misread(&self) {
        telemetry::near_cache_misread();
        self.moved.notify_one();
    }

    fn ticket(&self, hash: &TokenHash) -> Ticket {
        // The generation first: a flush between the two loads makes the ticket stale.
        let generation = self.generation.load(Ordering::Acquire);
        let epoch = self.epochs[bucket(hash)].load(Ordering::Acquire);
        Ticket { generation, epoch }
    }

    /// Inserts a miss's answer, unless a change to its bucket or a flush came after its
    /// ticket.
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

/// How a tracking connection reaches its master.
enum Dial {
    /// One node's address: the standalone server, or a cluster's master.
    Node {
        client: redis::Client,
        cluster: bool,
    },
    /// The master the sentinels name at each connection.
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

impl Dial {
    async fn connect(&self, config: &AsyncConnectionConfig) -> RedisResult<MultiplexedConnection> {
        match self {
            Dial::Node { client, .. } => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
            Dial::Sentinel(client) => {
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(config)
                    .await
            }
        }
    }

    fn cluster(&self) -> bool {
        matches!(self, Dial::Node { cluster: true, .. })
    }
}

fn resp3(info: redis::ConnectionInfo) -> redis::ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

/// Starts the near cache and the tasks that keep tracking on (reconnecting as needed, and
/// on a cluster following the slot map through `conn`).
pub fn start(
    target: &RedisTarget,
    conn: &RedisConn,
    prefix: &str,
    max_entries: usize,
) -> Result<Arc<NearCache>, OpenError> {
    let invalid = |source| OpenError::Redis {
        what: "cannot start the near cache".into(),
        source,
    };
    let key_prefix = format!("{prefix}a:");
    let timeout = target.timeout;
    let urls = target.url_list();
    let first = urls.first().cloned().unwrap_or_default();
    match target.mode {
        RedisMode::Standalone | RedisMode::Sentinel => {
            let dial = match target.mode {
                RedisMode::Sentinel => {
                    let master = target.sentinel_master.clone().unwrap_or_default();
                    Dial::Sentinel(tokio::sync::Mutex::new(super::sentinel::sentinel_client(
                        &urls, master, true,
                    )?))
                }
                _ => {
                    let info = redis::IntoConnectionInfo::into_connection_info(first.as_str())
                        .map_err(invalid)?;
                    Dial::Node {
                        client: redis::Client::open(resp3(info)).map_err(invalid)?,
                        cluster: false,
                    }
                }
            };
            let source = Arc::new(Source::default());
            let cache = Arc::new(NearCache::new(
                max_entries,
                key_prefix,
                Routes::One(source.clone()),
            ));
            tokio::spawn(keep_tracking(cache.clone(), source, dial, timeout));
            Ok(cache)
        }
        RedisMode::Cluster => {
            let template =
                redis::IntoConnectionInfo::into_connection_info(first.as_str()).map_err(invalid)?;
            let cache = Arc::new(NearCache::new(
                max_entries,
                key_prefix,
                Routes::Slots(vec![None; SLOTS]),
            ));
            tokio::spawn(follow_cluster(
                cache.clone(),
                conn.clone(),
                resp3(template),
                timeout,
            ));
            Ok(cache)
        }
    }
}

/// How often a cluster's slot map is read (and at once after a misread).
const SLOT_MAP_EVERY: Duration = Duration::from_secs(1);

/// Keeps a tracking connection to every master of the slot map, and the slot table that
/// routes each miss to its master's connection.
async fn follow_cluster(
    cache: Arc<NearCache>,
    mut conn: RedisConn,
    template: redis::ConnectionInfo,
    timeout: Duration,
) {
    let mut tracking: HashMap<(String, u16), (Arc<Source>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut last = Vec::new();
    loop {
        let slots = tokio::time::timeout(
            timeout * 2,
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut conn),
        )
        .await;
        if let Ok(Ok(slots)) = slots {
            let mut ranges = slot_ranges(slots);
            ranges.sort();
            if !ranges.is_empty() && ranges != last {
                let masters: HashSet<(String, u16)> =
                    ranges.iter().map(|r| r.master.clone()).collect();
                tracking.retain(|addr, (source, task)| {
                    let keep = masters.contains(addr);
                    if !keep {
                        task.abort();
                        source.set(None);
                    }
                    keep
                });
                for addr in masters {
                    if tracking.contains_key(&addr) {
                        continue;
                    }
                    let Ok(client) = redis::Client::open(node_info(&template, &addr.0, addr.1))
                    else {
                        continue;
                    };
                    let source = Arc::new(Source::default());
                    let task = tokio::spawn(keep_tracking(
                        cache.clone(),
                        source.clone(),
                        Dial::Node {
                            client,
                            cluster: true,
                        },
                        timeout,
                    ));
                    tracking.insert(addr, (source, task));
                }
                let mut table = vec![None; SLOTS];
                for range in &ranges {
                    if let Some((source, _)) = tracking.get(&range.master) {
                        for slot in range.first..=range.last.min(SLOTS as u16 - 1) {
                            table[usize::from(slot)] = Some(source.clone());
                        }
                    }
                }
                *cache.routes.write().unwrap_or_else(|e| e.into_inner()) = Routes::Slots(table);
                cache.flush();
                last = ranges;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SLOT_MAP_EVERY) => {}
            _ = cache.moved.notified() => {
                // Several misreads at once read the map once.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Keeps one master's tracking connection on, reconnecting as needed.
async fn keep_tracking(cache: Arc<NearCache>, source: Arc<Source>, dial: Dial, timeout: Duration) {
    // After a tracking connection that never got going, wait longer each time (up to
    // 1 s); after one that worked, try again at once.
    let mut pause = Duration::from_millis(100);
    loop {
        let worked = track(&dial, &cache, &source, timeout).await;
        source.set(None);
        if worked {
            // What was read on it may have changed unseen since it was lost.
            cache.flush();
        }
        pause = if worked {
            Duration::from_millis(100)
        } else {
            (pause * 2).min(Duration::from_secs(1))
        };
        tokio::time::sleep(pause).await;
    }
}

/// Whether the node behind `conn` is a master that serves (on a cluster: with the
/// cluster's state ok).
async fn serving(conn: &mut MultiplexedConnection, cluster: bool) -> bool {
    let mut pipe = redis::pipe();
    pipe.cmd("ROLE");
    if cluster {
        pipe.cmd("CLUSTER").arg("INFO");
    }
    let Ok(values) = pipe.query_async::<Vec<Value>>(conn).await else {
        return false;
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
            _ => None,
        }
    };
    let master = match values.first() {
        Some(Value::Array(role)) => text(role.first()).as_deref() == Some("master"),
        _ => false,
    };
    master
        && (!cluster
            || text(values.get(1))
                .is_some_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok")))
}

/// One tracking connection, until it is lost or in doubt; whether tracking was on.
async fn track(dial: &Dial, cache: &NearCache, source: &Source, timeout: Duration) -> bool {
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(tx);
    let Ok(Ok(mut conn)) = tokio::time::timeout(timeout * 2, dial.connect(&config)).await else {
        return false;
    };
    let on: RedisResult<()> = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&cache.key_prefix)
        .query_async(&mut conn)
        .await;
    if let Err(e) = on {
        tracing::warn!(error = %e, "near cache: CLIENT TRACKING refused; the cache stays off");
        return false;
    }
    let _: RedisResult<()> = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("tokencache-near-cache")
        .query_async(&mut conn)
        .await;
    // Only a master that serves is read from: checked before any read, then every
    // `PING_EVERY`.
    if !serving(&mut conn, dial.cluster()).await {
        return false;
    }
    source.set(Some(conn.clone()));
    // The health checks run beside the pushes, never in their way: a check that Redis is
    // slow to answer (a fork, a slow command) must not hold back an invalidation already
    // received.
    let cluster = dial.cluster();
    let (lost, in_doubt) = tokio::sync::oneshot::channel::<()>();
    let health = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            ping.tick().await;
            let ok = tokio::time::timeout(PING_DOUBT, serving(&mut conn, cluster)).await;
            if !matches!(ok, Ok(true)) {
                let _ = lost.send(());
                return;
            }
        }
    });
    serve_pushes(cache, &mut rx, in_doubt).await;
    health.abort();
    true
}

/// How often a tracking connection is checked, and how long its check may take before
/// the connection is in doubt (the cache is then emptied, and its master's keys not kept,
/// until tracking is back).
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
        let cache = NearCache::new(100, "t:a:".into(), Routes::One(Default::default()));
        let hash = TokenHash::of("token");
        let future = unix_now() + 3600;

        let ticket = cache.ticket(&hash);
        cache.invalidate_key(format!("t:a:{}", hash.encode()).as_bytes());
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), None, "a push after the ticket");

        let ticket = cache.ticket(&hash);
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), Some(record(future)));

        // A push after the insert removes it.
        cache.invalidate_key(format!("t:a:{}", hash.encode()).as_bytes());
        assert_eq!(cache.get(&hash), None);

        // A flush between ticket and insert too; and nothing is served while off.
        let ticket = cache.ticket(&hash);
        cache.flush();
        cache.insert(ticket, hash, &record(future));
        assert_eq!(cache.get(&hash), None);
        // A master without a tracking connection has no reader.
        assert!(cache.reader(&hash, "t:a:x").is_none());
    }

    /// The health check of the tracking connection may take its time (Redis slow to
    /// answer a PING): an invalidation that arrived meanwhile is applied at once.
    #[tokio::test]
    async fn an_invalidation_is_applied_while_a_health_check_hangs() {
        let cache = Arc::new(NearCache::new(
            100,
            "t:a:".into(),
            Routes::One(Default::default()),
        ));
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash);
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
        let cache = NearCache::new(100, "t:a:".into(), Routes::One(Default::default()));
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash);
        cache.entries.insert(hash, record(unix_now() - 1));
        assert_eq!(cache.get(&hash), None);
        cache.insert(ticket, hash, &record(unix_now()));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn an_unreadable_key_or_an_empty_push_flushes_everything() {
        let cache = NearCache::new(100, "t:a:".into(), Routes::One(Default::default()));
        let hash = TokenHash::of("token");
        let ticket = cache.ticket(&hash);
        cache.insert(ticket, hash, &record(unix_now() + 60));
        cache.invalidate_key(b"t:a:not-a-hash");
        assert_eq!(cache.get(&hash), None);
        let ticket = cache.ticket(&hash);
        cache.insert(ticket, hash, &record(unix_now() + 60));
        assert!(cache.handle(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        }));
        assert_eq!(cache.get(&hash), None);
    }
}
