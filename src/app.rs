//! Start-up: open the stores the settings name, run migrations, build the shared state,
//! serve. What `tokencache serve` does, and what the tests do in-process.
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::delivery::{self, DeliverySettings};
use crate::domain::password::PasswordError;
use crate::domain::{Engine, Rules};
use crate::http::{self, HttpSettings};
use crate::store::records::migrate::MigrateError;
use crate::store::records::sea::SeaRecords;
use crate::store::records::zone::DbZone;
use crate::store::tokens::backend::Tokens;
use crate::store::tokens::memory::MemoryTokens;
use crate::store::tokens::redis::{
    Durability, OpenError, RedisMode, RedisTarget, RedisTokens, Replication,
};
use crate::store::{KeyRecords, RecordStore, StoreError, StoredKey};
use crate::upstream::{self, UpstreamSettings};

/// The record store used when no `DATABASE_URL` is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tokencache.db?mode=rwc";
/// The defaults of `Settings` that the command line shows as its own.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9094";
pub const DEFAULT_REDIS_PREFIX: &str = "tc:";
/// The near cache's default bound on entries.
pub const DEFAULT_NEAR_CACHE_MAX_ENTRIES: usize = 100_000;
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a write waits for its replicas before it is answered 503.
pub const DEFAULT_REDIS_WAIT_TIMEOUT: Duration = Duration::from_millis(500);
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_millis(3000);
/// The bound on one webhook call of the code delivery.
pub const DEFAULT_CODE_WEBHOOK_TIMEOUT: Duration = Duration::from_millis(5000);

/// The engine with the stores this build can use.
pub type AppEngine = Engine<Tokens, SeaRecords>;
/// The state every request handler shares.
pub type AppState = http::State<Tokens, SeaRecords>;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `mysql://…` or `sqlite://…`; `None`: the embedded SQLite file.
    pub database_url: Option<String>,
    /// `redis://…` (a comma-separated list of seed nodes or sentinels in cluster and
    /// sentinel modes); `None`: the in-process token store (single instance only).
    pub redis_url: Option<String>,
    pub redis_mode: RedisMode,
    /// The master's name the sentinels monitor (sentinel mode).
    pub redis_sentinel_master: Option<String>,
    /// The near cache's bound on entries, when it is on (`--near-cache`).
    pub near_cache: Option<usize>,
    /// Prefix of every Redis key (lets several deployments or tests share one Redis).
    pub redis_prefix: String,
    pub redis_timeout: Duration,
    /// Replicas a revocation waits for (`None`: 1 with a cluster or Sentinel, none with
    /// one server), how long, and whether logins and refreshes wait too.
    pub redis_wait_replicas: Option<u32>,
    pub redis_wait_timeout: Duration,
    pub redis_wait_on_issue: bool,
    pub database_timeout: Duration,
    /// The zone the database's DATETIME columns are written in.
    pub db_zone: DbZone,
    /// Run pending migrations at start.
    pub migrate: bool,
    pub rules: Rules,
    pub http: HttpSettings,
    /// How verification codes are delivered.
    pub delivery: DeliverySettings,
    /// Phantom tokens (`--upstream-jwt`); `None`: off.
    pub upstream: Option<UpstreamSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: None,
            redis_url: None,
            redis_mode: RedisMode::Standalone,
            redis_sentinel_master: None,
            near_cache: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.into(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            redis_wait_replicas: None,
            redis_wait_timeout: DEFAULT_REDIS_WAIT_TIMEOUT,
            redis_wait_on_issue: false,
            database_timeout: DEFAULT_DATABASE_TIMEOUT,
            db_zone: DbZone::Utc,
            migrate: true,
            rules: Rules::default(),
            http: HttpSettings::default(),
            delivery: DeliverySettings::default(),
            upstream: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the record store: {0}")]
    Records(#[source] StoreError),
    #[error("cannot run migrations: {0}")]
    Migrate(#[source] MigrateError),
    #[error("cannot open the token store: {0}")]
    Tokens(#[source] OpenError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Delivery(#[from] delivery::webhook::WebhookError),
}

/// Opens both stores (migrating when asked) and builds the engine.
pub async fn engine(settings: &Settings) -> Result<AppEngine, StartError> {
    let url = settings
        .database_url
        .as_deref()
        .unwrap_or(DEFAULT_DATABASE_URL);
    let records = SeaRecords::open(url, settings.database_timeout, settings.db_zone)
        .await
        .map_err(StartError::Records)?;
    if settings.migrate {
        records.migrate().await.map_err(StartError::Migrate)?;
    }
    let tokens = match &settings.redis_url {
        Some(url) => {
            let target = RedisTarget {
                mode: settings.redis_mode,
                urls: url.clone(),
                sentinel_master: settings.redis_sentinel_master.clone(),
                timeout: settings.redis_timeout,
            };
            let mut redis = RedisTokens::open(&target, &settings.redis_prefix)
                .await
                .map_err(StartError::Tokens)?
                .with_durability(durability(settings));
            if let Some(max_entries) = settings.near_cache {
                redis
                    .enable_near_cache(&target, max_entries)
                    .map_err(StartError::Tokens)?;
            }
            Tokens::Redis(redis)
        }
        None => Tokens::Memory(MemoryTokens::new()),
    };
    let delivery = delivery::build(&settings.delivery)?;
    Ok(Engine::new(
        tokens,
        records,
        settings.rules.clone(),
        delivery,
    )?)
}

/// How many replicas a write waits for: as set, else one where failovers happen (a cluster,
/// Sentinel) and none on one server.
pub fn durability(settings: &Settings) -> Durability {
    let replicas = settings
        .redis_wait_replicas
        .unwrap_or(match settings.redis_mode {
            RedisMode::Standalone => 0,
            RedisMode::Cluster | RedisMode::Sentinel => 1,
        });
    Durability {
        revocations: (replicas > 0).then_some(Replication {
            replicas,
            timeout: settings.redis_wait_timeout,
        }),
        on_issue: settings.redis_wait_on_issue,
    }
}

/// Builds the shared state and logs which stores are in use.
pub async fn state(settings: &Settings) -> Result<Arc<AppState>, StartError> {
    // Only a server records metrics (not the admin commands), and before the stores
    // open: they set gauges as they do.
    crate::telemetry::install();
    let engine = engine(settings).await?;
    delivery::announce(&settings.delivery);
    let records = engine.records.name();
    match engine.tokens {
        Tokens::Redis(ref redis) => {
            tracing::info!(
                records,
                tokens = "redis",
                redis_mode = redis.mode().name(),
                "stores ready"
            );
            // In the background: Redis may still be down at start.
            let redis = redis.clone();
            tokio::spawn(async move {
                if let Some(policy) = redis.eviction_policy().await {
                    tracing::warn!(
                        policy,
                        "Redis may evict keys (maxmemory is set, maxmemory-policy is not noeviction): \
                         an evicted key can leave a revoked token valid, reset a lockout or allow a \
                         replayed login; set maxmemory-policy noeviction"
                    );
                }
            });
        }
        Tokens::Memory(_) => tracing::warn!(
            records,
            tokens = "in-process",
            "stores ready; the in-process token store is for a single instance, not for production: set REDIS_URL"
        ),
    }
    let mut engine = engine;
    if let Some(upstream) = &settings.upstream {
        engine.upstream = Some(start_upstream(&engine.records, upstream.clone()).await);
    }
    Ok(Arc::new(AppState {
        engine,
        http: settings.http.clone(),
    }))
}

/// Adds a signing key that signs `lead_secs` after it is published, and deletes the keys
/// retired long enough ago; the key added and the kids deleted.
pub async fn rotate_keys<R: KeyRecords>(
    records: &R,
    lead_secs: i64,
) -> Result<(StoredKey, Vec<String>), StoreError> {
    let now = crate::clock::unix_now();
    let mut key = upstream::new_key(now, lead_secs);
    let mut stored = records.signing_keys().await?;
    // Later than every key before it: keys that begin in the same second are ordered by
    // kid, so a new key could otherwise lose to the one it replaces and never sign.
    if let Some(newest) = stored.iter().map(|k| k.signs_from).max() {
        key.signs_from = key.signs_from.max(newest + 1);
    }
    records.add_signing_key(&key).await?;
    stored.push(key.clone());
    let old = upstream::expired(&stored, now);
    records.delete_signing_keys(&old).await?;
    tracing::info!(kid = %key.kid, signs_from = key.signs_from, deleted = old.len(), "signing key added");
    Ok((key, old))
}

/// The keys in use from the record store, a first one made when there is none (signing
/// at once), and a task that reads them again every `reload`. While the database does
/// not answer, the last keys read stay in use (and the switch to a key already read
/// still happens on time).
async fn start_upstream<R: KeyRecords + Clone>(
    records: &R,
    settings: UpstreamSettings,
) -> Arc<upstream::Upstream> {
    let up = Arc::new(upstream::Upstream::new(settings));
    let mut stored = match records.signing_keys().await {
        Ok(keys) if keys.is_empty() => match rotate_keys(records, 0).await {
            Ok(_) => records.signing_keys().await.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "no signing key, and none could be made: upstream JWTs wait for one");
                Vec::new()
            }
        },
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "signing keys unreadable at start: upstream JWTs wait for them");
            Vec::new()
        }
    };
    let apply = |up: &upstream::Upstream, stored: &[StoredKey]| {
        let (set, problems) = upstream::KeySet::at(stored, crate::clock::unix_now());
        for p in problems {
            tracing::warn!(problem = %p, "signing key skipped");
        }
        up.replace(set);
    };
    apply(&up, &stored);
    let task = up.clone();
    let records = records.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(task.settings.reload);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match records.signing_keys().await {
                Ok(keys) => stored = keys,
                Err(e) => {
                    tracing::warn!(error = %e, "signing keys not read again; the last ones read stay in use")
                }
            }
            apply(&task, &stored);
        }
    });
    up
}

/// Serves on an already-bound listener until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    http::serve(listener, state, shutdown).await;
}

/// Why `serve` stopped before serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the server on `listen` (and Envoy's gRPC ext_authz on `grpc_listen`, when
/// given) and serves until Ctrl-C or SIGTERM.
pub async fn serve(
    settings: &Settings,
    listen: std::net::SocketAddr,
    grpc_listen: Option<std::net::SocketAddr>,
) -> Result<(), ServeError> {
    let state = state(settings).await?;
    let bind = |addr: std::net::SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })
    };
    let listener = bind(listen).await?;
    let grpc = match grpc_listen {
        Some(addr) => Some((addr, bind(addr).await?)),
        None => None,
    };
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc = grpc.map(|(addr, listener)| {
        tracing::info!(grpc_listen = %addr, "gRPC ext_authz serving");
        tokio::spawn(crate::grpc::serve(
            listener,
            state.clone(),
            until_stopped(stopped.clone()),
        ))
    });
    tracing::info!(%listen, "tokencache serving");
    run(listener, state, until_stopped(stopped)).await;
    if let Some(grpc) = grpc {
        let _ = grpc.await;
    }
    tracing::info!("stopped");
    Ok(())
}
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
