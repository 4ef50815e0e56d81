//! Redis Sentinel: a multiplexed connection to the master the sentinels name, dropped on
//! any sign that it is no longer the master (an I/O error, a timeout, or a refusal:
//! `READONLY` from a demoted master, `MASTERDOWN`, `LOADING`) and found again on the next
//! command, which is sent again when the refusal proves it did not run.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use super::conn::{not_run, OpenError, RESEND_PAUSES};

/// The master that the sentinels name, followed across failovers.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<SentinelShared>,
}

impl SentinelConn {
    /// Reaches the master now (at start: a wrong name or no sentinel is an error at once).
    pub(super) async fn connect(&self) -> RedisResult<()> {
        self.shared.connect().await.map(|_| ())
    }

    pub(super) async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.shared.command(cmd).await
    }

    pub(super) async fn pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.shared.pipeline(pipeline, offset, count).await
    }
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
    pub(super) fn new(
        urls: Vec<String>,
        master: String,
        timeout: Duration,
    ) -> Result<Self, OpenError> {
        let client = sentinel_client(&urls, master, false)?;
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

/// A client of the sentinels that connects to the master they name (in RESP3 when asked:
/// the near cache's tracking connection).
pub(super) fn sentinel_client(
    urls: &[String],
    master: String,
    resp3: bool,
) -> Result<SentinelClient, OpenError> {
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
    let node = redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(
        match resp3 {
            true => first
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3),
            false => first.redis_settings().clone(),
        },
    );
    let node = match first.addr() {
        redis::ConnectionAddr::TcpTls { insecure, .. } => node.set_tls_mode(if *insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        }),
        _ => node,
    };
    SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master).map_err(
        |source| OpenError::Redis {
            what: "invalid --redis-url for sentinels".into(),
            source,
        },
    )
}

/// A refusal that says the node is not (or not yet) a master that serves: the command did
/// not run there.
fn refusal(kind: Option<ServerErrorKind>) -> bool {
    matches!(
        kind,
        Some(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    )
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
        self.on_master(|mut conn| async move {
            // The multiplexed connection answers a server's refusal as a value; it is an
            // error here, so that a demoted master is left at once.
            match conn.req_packed_command(cmd).await? {
                Value::ServerError(e) if refusal(e.kind()) => Err(e.into()),
                value => Ok(value),
            }
        })
        .await
    }

    async fn pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.on_master(|mut conn| async move {
            let values = conn.req_packed_commands(pipeline, offset, count).await?;
            // A node that refuses one write as a replica (READONLY) refused every write of
            // the pipeline: its reads ran, which is harmless to repeat.
            match values.iter().find_map(|v| match v {
                Value::ServerError(e) if refusal(e.kind()) => Some(e.clone()),
                _ => None,
            }) {
                Some(e) => Err(e.into()),
                None => Ok(values),
            }
        })
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
