//! The connection to Redis in each of the three modes, behind one `ConnectionLike`:
//!
//! - **standalone**: one multiplexed connection (`ConnectionManager`) that reconnects by
//!   itself;
//! - **cluster**: the redis crate's cluster client (one multiplexed connection per node,
//!   routed by slot, the slot map rebuilt on `MOVED` and on lost nodes), with the
//!   redirections of a slot being moved followed here (`ASK`);
//! - **sentinel**: a multiplexed connection to the master the sentinels name
//!   (`sentinel.rs`).
//!
//! ## Retries, and why none can run a command twice
//!
//! A command whose connection drops after it was written may or may not have run. Four of
//! the store's commands must not run twice: `INCR` (a failed login counted twice), the
//! take-refresh script (a first refresh turned into a replay, which revokes the family),
//! `SET NX` (a first use of a signature or lock seen as a second) and the `DEL` that takes
//! a verification code (a right code refused). So no layer here resends a command that
//! may have reached Redis; only one that Redis provably refused to run:
//!
//! - the `ConnectionManager` of standalone mode reconnects after an error but never
//!   resends the command that failed;
//! - the cluster client is built with `retries(0)`, so it resends nothing itself; this
//!   module resends a single command, or a pipeline **every** command of which, that the
//!   server refused with `MOVED`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING` or
//!   `READONLY` (after a pause; the client rebuilt its slot map on `MOVED`), and follows
//!   `ASK` at once: the slot is being moved and the key is not on its old owner, so the
//!   command goes to the new owner after `ASKING`. (A pipeline whose commands were refused
//!   in part is an error: some of it ran.) A `WAIT` at the end of a pipeline is not counted:
//!   it writes nothing and is never refused as a command on a key is (after a failover the
//!   demoted master refuses the write with `MOVED` and answers the `WAIT` with an error of
//!   its own), so a replicated write, one command and its `WAIT` (ops.rs), is refused
//!   whole or runs;
//! - with Sentinel, a command is also resent when its connection to the master could not
//!   be made (it was never written), or when the node refused it as no master.
//!
//! A command lost to a dropped connection or a timeout is answered as an error (HTTP 503,
//! code 1) and left to the caller, who knows whether it may repeat it.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use super::sentinel::SentinelConn;

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
    pub(super) fn url_list(&self) -> Vec<String> {
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

pub(super) fn config(msg: impl Into<String>) -> OpenError {
    OpenError::Config(msg.into())
}

/// One connection to Redis in whichever mode; cheap to clone (every clone shares it).
#[derive(Clone)]
pub enum RedisConn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection, Arc<AskTargets>),
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
                let seed = urls[0].clone();
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
                let targets =
                    AskTargets::new(&seed, timeout).map_err(|source| OpenError::Redis {
                        what: "invalid --redis-url for a cluster".into(),
                        source,
                    })?;
                let mut conn = Self::Cluster(conn, Arc::new(targets));
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
                conn.connect().await.map_err(|source| OpenError::Redis {
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
            Self::Cluster(..) => RedisMode::Cluster,
            Self::Sentinel(_) => RedisMode::Sentinel,
        }
    }

    /// Whether every slot is served: the cluster says its state is `ok`, and every master
    /// that `CLUSTER SLOTS` names answers PING on its own connection. (A PING sent to
    /// "all masters" would skip a master the client has no connection to.)
    async fn check_cluster(&mut self) -> RedisResult<()> {
        let Self::Cluster(conn, _) = self else {
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
        for range in slot_ranges(slots) {
            if !masters.contains(&range.master) {
                masters.push(range.master);
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

    /// On a cluster, one slot of each master `CLUSTER SLOTS` names (its first); empty in
    /// the other modes.
    pub async fn a_slot_of_each_master(&mut self) -> RedisResult<Vec<u16>> {
        let Self::Cluster(conn, _) = self else {
            return Ok(Vec::new());
        };
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
        let mut seen: Vec<(String, u16)> = Vec::new();
        let mut out = Vec::new();
        for range in slot_ranges(slots) {
            if !seen.contains(&range.master) {
                seen.push(range.master);
                out.push(range.first);
            }
        }
        Ok(out)
    }

    /// Readiness: Redis answers; on a cluster, every slot is served; with sentinels, the
    /// master is known and answers.
    pub async fn ready(&mut self) -> RedisResult<()> {
        match self {
            Self::Cluster(..) => self.check_cluster().await,
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

/// One range of slots of `CLUSTER SLOTS` and the master that serves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SlotRange {
    pub first: u16,
    pub last: u16,
    pub master: (String, u16),
}

/// The ranges of a `CLUSTER SLOTS` answer (anything unreadable left out).
pub(super) fn slot_ranges(slots: Value) -> Vec<SlotRange> {
    let mut out = Vec::new();
    let Value::Array(ranges) = slots else {
        return out;
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
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
        let (Ok(first), Ok(last), Ok(port)) = (
            u16::try_from(*first),
            u16::try_from(*last),
            u16::try_from(*port),
        ) else {
            continue;
        };
        out.push(SlotRange {
            first,
            last,
            master: (host, port),
        });
    }
    out
}

/// The connection settings of the node at `host:port`, taken from a seed's (password,
/// TLS): every node of a cluster shares them.
pub(super) fn node_info(
    template: &redis::ConnectionInfo,
    host: &str,
    port: u16,
) -> redis::ConnectionInfo {
    let addr = match template.addr() {
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
    };
    template.clone().set_addr(addr)
}

/// What a server's refusal says: nothing of the request ran, and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// The slot is being moved and the key is on the new owner: send it there, after
    /// `ASKING`, at once.
    Ask { host: String, port: u16 },
    /// Moved, or not served for a moment: send it again after a pause.
    Later,
}

/// A refusal of one command, by its error's kind and detail.
fn refusal(kind: Option<ServerErrorKind>, detail: Option<&str>) -> Option<Refused> {
    match kind? {
        ServerErrorKind::Ask => {
            // "ASK <slot> <host:port>"
            let addr = detail?.split_ascii_whitespace().nth(1)?;
            let (host, port) = addr.rsplit_once(':')?;
            Some(Refused::Ask {
                host: host.to_owned(),
                port: port.parse().ok()?,
            })
        }
        ServerErrorKind::Moved
        | ServerErrorKind::TryAgain
        | ServerErrorKind::ClusterDown
        | ServerErrorKind::MasterDown
        | ServerErrorKind::BusyLoading
        | ServerErrorKind::ReadOnly => Some(Refused::Later),
        _ => None,
    }
}

/// Whether the server refused every one of the `count` commands this error answers (one
/// command's error, or a pipeline's), all the same way: then none of them ran.
fn refused(e: &RedisError, count: usize) -> Option<Refused> {
    let errors = e.clone().into_server_errors()?;
    if errors.len() != count {
        return None;
    }
    let mut all = errors
        .iter()
        .map(|(_, se)| refusal(se.kind(), se.details()));
    let first = all.next()??;
    all.all(|r| r.as_ref() == Some(&first)).then_some(first)
}

/// Whether Redis provably did not run the command that got this error, so that sending it
/// again cannot run it twice (on one connection of our own: a refused connection never
/// carried it).
pub(super) fn not_run(e: &RedisError) -> bool {
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
/// slot or elects a master, a few short waits, then the error (HTTP 503). After a planned
/// failover the cluster client's new slot map took ~210 ms to arrive on this machine
/// (three `MOVED` before the command went through); the last pause leaves room for a
/// slower one.
pub(super) const RESEND_PAUSES: [Duration; 4] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(300),
];

/// Connections of our own to the nodes an `ASK` names that the cluster client has none
/// to: a master that joined the cluster owns no slot until its first one is moved to
/// it, so the client's slot map does not name it while that slot is being moved.
pub struct AskTargets {
    /// The seed's connection settings (password, TLS): every node shares them.
    template: redis::ConnectionInfo,
    config: redis::AsyncConnectionConfig,
    conns: tokio::sync::Mutex<HashMap<(String, u16), MultiplexedConnection>>,
}

impl AskTargets {
    fn new(seed: &str, timeout: Duration) -> RedisResult<Self> {
        Ok(Self {
            template: redis::IntoConnectionInfo::into_connection_info(seed)?,
            config: redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            conns: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The connection to `host:port`, made when there is none yet.
    async fn to(&self, host: &str, port: u16) -> RedisResult<MultiplexedConnection> {
        let mut conns = self.conns.lock().await;
        if let Some(conn) = conns.get(&(host.to_owned(), port)) {
            return Ok(conn.clone());
        }
        let info = node_info(&self.template, host, port);
        let conn = redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        conns.insert((host.to_owned(), port), conn.clone());
        Ok(conn)
    }

    /// Forgets the connection to `host:port` (after an error on it).
    async fn forget(&self, host: &str, port: u16) {
        self.conns.lock().await.remove(&(host.to_owned(), port));
    }
}

/// Sends `commands` to the node at `host:port` after `ASKING`, as one pipeline: the
/// answers of the commands. Always on one of `side`'s connections, never the cluster
/// client's: asked for a node it has no connection to (a new master that owns no slot
/// yet, the usual target of a move), the client first rebuilt its connections to the
/// seed nodes, which cost the first write into a half-moved slot 400-700 ms here (and a
/// 503 under load); a connection of our own costs one connect, once per node.
async fn asking(
    side: &AskTargets,
    host: &str,
    port: u16,
    commands: Vec<Cmd>,
) -> RedisResult<Vec<Value>> {
    // `ASKING` lets only the next command in: one before each.
    let mut pipe = redis::pipe();
    let count = commands.len();
    for cmd in commands {
        pipe.add_command(redis::cmd("ASKING"));
        pipe.add_command(cmd);
    }
    let answers =
        |values: Vec<Value>| -> Vec<Value> { values.into_iter().skip(1).step_by(2).collect() };
    let mut own = side.to(host, port).await?;
    let answer = own
        .req_packed_commands(&pipe, 0, 2 * count)
        .await
        .map(answers);
    if answer.as_ref().is_err_and(|e| e.is_io_error()) {
        side.forget(host, port).await;
    }
    // A server's error comes back as a value on this connection: as the cluster client
    // does, an error.
    let values = answer?;
    match values.iter().find_map(|v| match v {
        Value::ServerError(e) => Some(e.clone()),
        _ => None,
    }) {
        Some(e) => Err(e.into()),
        None => Ok(values),
    }
}

/// Whether `cmd` is a `WAIT` (ops.rs ends a replicated pipeline with one).
fn is_wait(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"WAIT"))
}

/// What goes to a cluster: one command, or a pipeline (with the offset and count of the
/// answers wanted).
#[derive(Clone, Copy)]
enum Sent<'a> {
    One(&'a Cmd),
    Many(&'a Pipeline, usize, usize),
}

impl Sent<'_> {
    fn commands(self) -> Vec<Cmd> {
        match self {
            Sent::One(cmd) => vec![cmd.clone()],
            Sent::Many(pipeline, ..) => pipeline.cmd_iter().cloned().collect(),
        }
    }
}

/// Sends one command or one pipeline on a cluster, again while the server refuses it
/// whole (see the module's text); the answers wanted (one for a command).
async fn on_cluster(
    conn: &mut ClusterConnection,
    side: &AskTargets,
    sent: Sent<'_>,
) -> RedisResult<Vec<Value>> {
    // The commands that could run twice: a `WAIT` writes nothing, and is never refused as
    // a command on a key is (it has none), so a refusal is of the others.
    let count = match sent {
        Sent::One(_) => 1,
        Sent::Many(pipeline, ..) => pipeline.cmd_iter().filter(|c| !is_wait(c)).count(),
    };
    let mut pauses = RESEND_PAUSES.iter();
    let mut redirected: Option<(String, u16)> = None;
    loop {
        let answer = match (&redirected, sent) {
            (None, Sent::One(cmd)) => conn.req_packed_command(cmd).await.map(|v| vec![v]),
            (None, Sent::Many(pipeline, offset, count)) => {
                conn.req_packed_commands(pipeline, offset, count).await
            }
            (Some((host, port)), _) => {
                let values = asking(side, host, *port, sent.commands()).await?;
                Ok(match sent {
                    Sent::One(_) => values,
                    Sent::Many(_, offset, count) => {
                        values.into_iter().skip(offset).take(count).collect()
                    }
                })
            }
        };
        let e = match answer {
            Err(e) => e,
            ok => return ok,
        };
        match refused(&e, count) {
            // Once: a second ASK means the slot moved on meanwhile; start over.
            Some(Refused::Ask { host, port }) if redirected.is_none() => {
                redirected = Some((host, port));
            }
            Some(_) => match pauses.next() {
                Some(pause) => {
                    tracing::debug!(error = %e, ?pause, "cluster: refused, sent again after a pause");
                    redirected = None;
                    tokio::time::sleep(*pause).await;
                }
                None => return Err(e),
            },
            None => return Err(e),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            // The hot path: no wrapper of our own around the manager's future.
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn, side) => Box::pin(async move {
                let mut values = on_cluster(conn, side, Sent::One(cmd)).await?;
                Ok(values.pop().unwrap_or(Value::Nil))
            }),
            Self::Sentinel(conn) => Box::pin(conn.command(cmd)),
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
            Self::Cluster(conn, side) => {
                Box::pin(on_cluster(conn, side, Sent::Many(pipeline, offset, count)))
            }
            Self::Sentinel(conn) => Box::pin(conn.pipeline(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn, _) => conn.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}
