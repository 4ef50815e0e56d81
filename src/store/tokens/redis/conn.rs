//! The connection to Redis in each of the three modes, behind one `ConnectionLike`:
//!
//! - **standalone**: one multiplexed connection (`ConnectionManager`) that reconnects by
//!   itself;
//! - **cluster**: the redis crate's cluster client (one multiplexed connection per node,
//!   routed by slot, the slot map rebuilt on `MOVED` and on lost nodes);
//! - **sentinel**: a multiplexed connection to the master the sentinels name, dropped on
//!   any sign that it is no longer the master and found again on the next command.
//!
//! ## Retries, and why none can run a command twice
//!
//! A command whose connection drops after it was written may or may not have run. Four of
//! the store's commands must not run twice: `INCR` (a failed login counted twice), the
//! take-refresh script (a first refresh turned into a replay, which revokes the family),
//! `SET NX` (a first use of a signature or lock seen as a second) and the `DEL` that takes
//! a verification code (a right code refused). So no layer here resends a command that
//! may have reached Redis:
//!
//! - the `ConnectionManager` of standalone mode reconnects after an error but never
//!   resends the command that failed;
//! - the cluster client is built with `retries(0)`, so it resends nothing itself;
//! - on a cluster this module resends only a single command the server refused with
//!   `MOVED`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING` or `READONLY`
//!   (`refused_unrun`), never a pipeline (the client answers a whole pipeline with such an
//!   error also when commands of it ran) and never after a connection error (the client
//!   may answer a request it already sent with one);
//! - with Sentinel, a command is also resent when its connection to the master could not
//!   be made (`not_run`): it was never written.
//!
//! A command lost to a dropped connection or a timeout is answered as an error (HTTP 503,
//! code 1) and left to the caller, who knows whether it may repeat it.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};

/// Which kind of Redis deployment `--redis-url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RedisMode {
    /// One Redis server (one URL).
    #[default]
    Standalone,
    /// A Redis Cluster (one or more seed nodes).
    Cluster,
    /// A master and replicas watched by Redis Sentinel (the sentinels' URLs).
    Sentinel,
}

impl RedisMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        }
    }
}

/// Where Redis is and how to reach it.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub mode: RedisMode,
    /// One URL (standalone), or comma-separated seed nodes (cluster) or sentinels.
    pub urls: String,
    /// The master's name the sentinels monitor (sentinel mode only).
    pub sentinel_master: Option<String>,
    /// Bound on one command and on one connection attempt.
    pub timeout: Duration,
}

impl RedisTarget {
    fn url_list(&self) -> Vec<String> {
        self.urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Why Redis could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Redis {
        what: String,
        #[source]
        source: RedisError,
    },
}

fn config(msg: impl Into<String>) -> OpenError {
    OpenError::Config(msg.into())
}

/// One connection to Redis in whichever mode; cheap to clone (every clone shares it).
#[derive(Clone)]
pub enum RedisConn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl RedisConn {
    /// Opens Redis as `target` says. Standalone connects lazily (the server starts while
    /// Redis is down and answers 503 until it is back); cluster and sentinel modes reach
    /// the cluster or the master at start, so that a wrong mode, a wrong master name or no
    /// reachable node is an error at once rather than a server that never works.
    pub async fn open(target: &RedisTarget) -> Result<Self, OpenError> {
        let urls = target.url_list();
        if urls.is_empty() {
            return Err(config("--redis-url names no Redis"));
        }
        let timeout = target.timeout;
        // An empty name (an environment variable set to "") is no name.
        let sentinel_master = target
            .sentinel_master
            .clone()
            .filter(|name| !name.trim().is_empty());
        match target.mode {
            RedisMode::Standalone => {
                let [url] = urls.as_slice() else {
                    return Err(config(
                        "--redis-url has several URLs: standalone mode takes one \
                         (--redis-mode cluster or sentinel takes a list)",
                    ));
                };
                if sentinel_master.is_some() {
                    return Err(config(
                        "--redis-sentinel-master is for --redis-mode sentinel",
                    ));
                }
                let client =
                    redis::Client::open(url.as_str()).map_err(|source| OpenError::Redis {
                        what: "invalid --redis-url".into(),
                        source,
                    })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                let conn =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(|source| {
                        OpenError::Redis {
                            what: "invalid --redis-url".into(),
                            source,
                        }
                    })?;
                Ok(Self::Standalone(conn))
            }
            RedisMode::Cluster => {
                if sentinel_master.is_some() {
                    return Err(config(
                        "--redis-sentinel-master is for --redis-mode sentinel",
                    ));
                }
                let client = redis::cluster::ClusterClientBuilder::new(urls)
                    // Resend nothing: see the module's text.
                    .retries(0)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()
                    .map_err(|source| OpenError::Redis {
                        what: "invalid --redis-url for a cluster".into(),
                        source,
                    })?;
                let conn = tokio::time::timeout(timeout * 3, client.get_async_connection())
                    .await
                    .map_err(|_| config("no Redis Cluster node of --redis-url answered in time"))?
                    .map_err(|source| OpenError::Redis {
                        what: if source.to_string().contains("cluster support disabled") {
                            "--redis-url names a Redis that is not a cluster (--redis-mode \
                             standalone is for one server)"
                        } else {
                            "cannot reach the Redis Cluster of --redis-url"
                        }
                        .into(),
                        source,
                    })?;
                let mut conn = Self::Cluster(conn);
                conn.check_cluster()
                    .await
                    .map_err(|source| OpenError::Redis {
                        what: "the Redis Cluster of --redis-url cannot serve".into(),
                        source,
                    })?;
                Ok(conn)
            }
            RedisMode::Sentinel => {
                let Some(master) = sentinel_master else {
                    return Err(config(
                        "--redis-mode sentinel needs --redis-sentinel-master (the name the \
                         sentinels monitor)",
                    ));
                };
                let conn = SentinelConn::new(urls, master, timeout)?;
                conn.shared
                    .connect()
                    .await
                    .map_err(|source| OpenError::Redis {
                        what: "cannot reach the master through the sentinels of --redis-url".into(),
                        source,
                    })?;
                Ok(Self::Sentinel(conn))
            }
        }
    }

    pub fn mode(&self) -> RedisMode {
        match self {
            Self::Standalone(_) => RedisMode::Standalone,
            Self::Cluster(_) => RedisMode::Cluster,
            Self::Sentinel(_) => RedisMode::Sentinel,
        }
    }

    /// Whether every slot is served: the cluster says its state is `ok`, and every master
    /// that `CLUSTER SLOTS` names answers PING on its own connection. (A PING sent to
    /// "all masters" would skip a master the client has no connection to.)
    async fn check_cluster(&mut self) -> RedisResult<()> {
        let Self::Cluster(conn) = self else {
            return Ok(());
        };
        let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(conn).await?;
        if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "cluster_state is not ok",
            )));
        }
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(fields) = range else {
                    continue;
                };
                let Some(Value::Array(master)) = fields.get(2) else {
                    continue;
                };
                let host = match master.first() {
                    Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                    Some(Value::SimpleString(h)) => h.clone(),
                    _ => continue,
                };
                let Some(Value::Int(port)) = master.get(1) else {
                    continue;
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                if !masters.contains(&(host.clone(), port)) {
                    masters.push((host, port));
                }
            }
        }
        if masters.is_empty() {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "CLUSTER SLOTS names no master",
            )));
        }
        for (host, port) in masters {
            use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
            conn.route_command(
                redis::cmd("PING"),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
            )
            .await?;
        }
        Ok(())
    }

    /// Readiness: Redis answers; on a cluster, every slot is served; with sentinels, the
    /// master is known and answers.
    pub async fn ready(&mut self) -> RedisResult<()> {
        match self {
            Self::Cluster(_) => self.check_cluster().await,
            _ => redis::cmd("PING").query_async::<()>(self).await,
        }
    }

    /// `INFO <section>` of every master (one on standalone and sentinel, each master of a
    /// cluster).
    pub async fn masters_info(&mut self, section: &str) -> RedisResult<Vec<String>> {
        let value: Value = redis::cmd("INFO").arg(section).query_async(self).await?;
        let mut infos = Vec::new();
        collect_strings(value, &mut infos);
        Ok(infos)
    }
}

/// Every text in a value: one for a single node's answer, one per node for a cluster's
/// fan-out (a map of node to answer).
fn collect_strings(value: Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(&b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => out.push(s),
        Value::Map(pairs) => pairs.into_iter().for_each(|(_, v)| collect_strings(v, out)),
        Value::Array(items) | Value::Set(items) => {
            items.into_iter().for_each(|v| collect_strings(v, out))
        }
        _ => {}
    }
}

/// Whether Redis provably refused to run the command that got this error (a single
/// command: a pipeline's error may follow commands of it that ran), so that sending it
/// again cannot run it twice.
fn refused_unrun(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
        )
    )
}

/// Whether Redis provably did not run the command that got this error, so that sending it
/// again cannot run it twice (on one connection of our own: a refused connection never
/// carried it).
fn not_run(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::Moved
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly,
        ) => true,
        ErrorKind::ClusterConnectionNotFound => true,
        _ => e.is_connection_refusal(),
    }
}

/// The pauses before each resend of a command that did not run: while a cluster moves a
/// slot or elects a master, a few short waits, then the error (HTTP 503).
const RESEND_PAUSES: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(150),
];

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            // The hot path: no wrapper of our own around the manager's future.
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            // Only a server's refusal of this one command is resent: the cluster client
            // may answer a request it already sent with a connection error of a refresh.
            Self::Cluster(conn) => Box::pin(async move {
                let mut pauses = RESEND_PAUSES.iter();
                loop {
                    match conn.req_packed_command(cmd).await {
                        Err(e) if refused_unrun(&e) => match pauses.next() {
                            Some(pause) => tokio::time::sleep(*pause).await,
                            None => return Err(e),
                        },
                        answer => return answer,
                    }
                }
            }),
            Self::Sentinel(conn) => Box::pin(conn.shared.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            // A pipeline is never resent: the cluster client answers it with an error
            // when any reply is MOVED or the like, also when earlier commands of it ran.
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(conn) => Box::pin(conn.shared.pipeline(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}

/// The master that the sentinels name, followed across failovers.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    /// Asks the sentinels; one lookup at a time.
    client: tokio::sync::Mutex<Lookup>,
    /// The master's connection and its generation (to drop only the one that failed).
    current: RwLock<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    config: AsyncConnectionConfig,
    timeout: Duration,
}

struct Lookup {
    client: SentinelClient,
    /// The last failed lookup: within `LOOKUP_PAUSE` of it, commands fail at once rather
    /// than send every request of an outage to the sentinels.
    failed: Option<(Instant, RedisError)>,
}

/// How long a failed lookup of the master is reused before the sentinels are asked again.
const LOOKUP_PAUSE: Duration = Duration::from_millis(100);

impl SentinelConn {
    fn new(urls: Vec<String>, master: String, timeout: Duration) -> Result<Self, OpenError> {
        // The URLs' password and database are the master's (the same URL form as
        // standalone, `redis://:password@sentinel:26379/0`); the sentinels are asked
        // without credentials (a sentinel without a password refuses an AUTH).
        let infos = urls
            .iter()
            .map(|u| redis::IntoConnectionInfo::into_connection_info(u.as_str()))
            .collect::<RedisResult<Vec<redis::ConnectionInfo>>>()
            .map_err(|source| OpenError::Redis {
                what: "invalid --redis-url".into(),
                source,
            })?;
        let first = infos[0].clone();
        let sentinels: Vec<redis::ConnectionInfo> = infos
            .into_iter()
            .map(|i| i.set_redis_settings(redis::RedisConnectionInfo::default()))
            .collect();
        let node = redis::sentinel::SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(first.redis_settings().clone());
        let node = match first.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => node.set_tls_mode(if *insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            }),
            _ => node,
        };
        let client =
            SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
                .map_err(|source| OpenError::Redis {
                    what: "invalid --redis-url for sentinels".into(),
                    source,
                })?;
        Ok(Self {
            shared: Arc::new(SentinelShared {
                client: tokio::sync::Mutex::new(Lookup {
                    client,
                    failed: None,
                }),
                current: RwLock::new(None),
                generation: AtomicU64::new(0),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout)),
                timeout,
            }),
        })
    }
}

impl SentinelShared {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The master's connection: the current one, or a new one to the master the sentinels
    /// name now.
    async fn connect(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut lookup = self.client.lock().await;
        // Another command may have connected while this one waited.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if let Some((when, e)) = &lookup.failed {
            if when.elapsed() < LOOKUP_PAUSE {
                return Err(e.clone());
            }
        }
        let attempt = tokio::time::timeout(
            self.timeout * 2,
            lookup.client.get_async_connection_with_config(&self.config),
        )
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "no answer from the sentinels or the master in time",
            )))
        });
        match attempt {
            Ok(conn) => {
                lookup.failed = None;
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(e) => {
                lookup.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// After an error on the connection of `generation`: forgets it when the error says
    /// the node may no longer be the master (or no longer there), so the next command asks
    /// the sentinels again.
    fn after_error(&self, generation: u64, e: &RedisError) {
        let lost = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
            || matches!(
                e.kind(),
                ErrorKind::Server(
                    ServerErrorKind::ReadOnly
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                )
            );
        if lost {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            if matches!(&*current, Some((g, _)) if *g == generation) {
                *current = None;
            }
        }
    }

    async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.on_master(|mut conn| async move { conn.req_packed_command(cmd).await })
            .await
    }

    async fn pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.on_master(
            |mut conn| async move { conn.req_packed_commands(pipeline, offset, count).await },
        )
        .await
    }

    /// Sends through the master's connection: an error that says it may be gone drops the
    /// connection; one that proves nothing ran is resent after a pause.
    async fn on_master<T, F, Fut>(&self, mut send: F) -> RedisResult<T>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut pauses = RESEND_PAUSES.iter();
        loop {
            let (generation, conn) = self.connect().await?;
            match send(conn).await {
                Err(e) => {
                    self.after_error(generation, &e);
                    match pauses.next() {
                        Some(pause) if not_run(&e) => tokio::time::sleep(*pause).await,
                        _ => return Err(e),
                    }
                }
                answer => return answer,
            }
        }
    }
}

/// The commands of one store operation, in stages: a stage's commands run only after every
/// command of the stages before it has answered (the index entry before the token, say).
///
/// On one node (standalone, sentinel) they go out as one pipeline: Redis runs a
/// connection's commands in order, so the stages cost no extra round trip. On a cluster,
/// where the keys of one operation sit on different slots (and nodes), each stage's
/// commands are grouped by slot, the groups of a stage sent at once, stage after stage.
#[derive(Default)]
pub struct Ops {
    ops: Vec<Op>,
    stage: usize,
}

struct Op {
    /// The slot of its key (every command of an `Ops` is on one key, or on keys of one
    /// slot).
    slot: u16,
    cmd: Cmd,
    keep: bool,
    stage: usize,
}

impl Ops {
    pub fn new() -> Self {
        Self::default()
    }

    /// A command on one key, its answer kept.
    pub fn keep(&mut self, key: &[u8], cmd: Cmd) -> &mut Self {
        self.push(slot_of(key), cmd, true)
    }

    /// A command on one key, its answer dropped (an error still fails the operation).
    pub fn ignore(&mut self, key: &[u8], cmd: Cmd) -> &mut Self {
        self.push(slot_of(key), cmd, false)
    }

    /// The commands added after this run after every command added before it answered.
    pub fn then(&mut self) -> &mut Self {
        if self.ops.last().is_some_and(|op| op.stage == self.stage) {
            self.stage += 1;
        }
        self
    }

    /// Adds `other`'s commands, its first stage joining the current one.
    pub fn append(&mut self, other: Ops) -> &mut Self {
        let base = self.stage;
        for mut op in other.ops {
            op.stage += base;
            self.stage = self.stage.max(op.stage);
            self.ops.push(op);
        }
        self
    }

    fn push(&mut self, slot: u16, cmd: Cmd, keep: bool) -> &mut Self {
        self.ops.push(Op {
            slot,
            cmd,
            keep,
            stage: self.stage,
        });
        self
    }

    /// Runs every command; the kept answers, in order, as `T` (a tuple or a vector).
    pub async fn run<T: FromRedisValue>(&self, conn: &RedisConn) -> RedisResult<T> {
        let kept = match conn {
            RedisConn::Cluster(_) => self.run_staged(conn).await?,
            _ => {
                let mut pipe = redis::pipe();
                for op in &self.ops {
                    pipe.add_command(op.cmd.clone());
                    if !op.keep {
                        pipe.ignore();
                    }
                }
                let mut conn = conn.clone();
                pipe.query_async::<Vec<Value>>(&mut conn).await?
            }
        };
        Ok(redis::from_redis_value(Value::Array(kept))?)
    }

    async fn run_staged(&self, conn: &RedisConn) -> RedisResult<Vec<Value>> {
        let mut answers: Vec<Option<Value>> = vec![None; self.ops.len()];
        for stage in 0..=self.stage {
            // The indexes of this stage's commands, one group per slot.
            let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
            for (i, op) in self.ops.iter().enumerate() {
                if op.stage != stage {
                    continue;
                }
                match groups.iter_mut().find(|(g, _)| *g == op.slot) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((op.slot, vec![i])),
                }
            }
            let sent = groups.into_iter().map(|(_, members)| {
                let mut conn = conn.clone();
                async move {
                    let values: Vec<Value> = if let [single] = members[..] {
                        // Alone, so that a refusal of it (MOVED) may be resent.
                        vec![self.ops[single].cmd.query_async(&mut conn).await?]
                    } else {
                        let mut pipe = redis::pipe();
                        for &i in &members {
                            pipe.add_command(self.ops[i].cmd.clone());
                        }
                        pipe.query_async(&mut conn).await?
                    };
                    Ok::<_, RedisError>(members.into_iter().zip(values).collect::<Vec<_>>())
                }
            });
            for group in futures_util::future::join_all(sent).await {
                for (i, value) in group? {
                    answers[i] = Some(value);
                }
            }
        }
        Ok(self
            .ops
            .iter()
            .zip(answers)
            .filter(|(op, _)| op.keep)
            .map(|(_, value)| value.unwrap_or(Value::Nil))
            .collect())
    }
}

/// The cluster slot of a key: CRC16 (XMODEM) of the key, or of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), modulo 16384.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn stages_only_split_where_commands_were_added() {
        let mut ops = Ops::new();
        ops.then();
        ops.ignore(b"a", redis::cmd("GET").arg("a").clone());
        ops.then().then();
        ops.keep(b"b", redis::cmd("GET").arg("b").clone());
        assert_eq!(ops.ops[0].stage, 0);
        assert_eq!(ops.ops[1].stage, 1);
    }
}
