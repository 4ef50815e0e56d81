//! `TestApp`: the real server started in-process on port 0, on either the real services
//! (MariaDB + Redis, a fresh database and key prefix per test) or the embedded stores
//! (a fresh SQLite file, the in-process token store). Dropping it stops the server and
//! removes its database or file and its Redis keys, also when the test failed.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use tokencache::app::{self, AppState, Settings};
use tokencache::domain::admin::ClientSpec;
use tokencache::domain::password::Argon2Settings;
use tokencache::domain::Rules;
use tokencache::secret::Secret;
use tokencache::store::tokens::redis::{RedisConn, RedisMode};
use tokio::sync::oneshot;

use super::services::*;

pub const APP_KEY: &str = "testapp";
pub const APP_SECRET: &str = "test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB + one Redis server, as in production.
    Real,
    /// MariaDB + a local Redis Cluster (3 masters, 3 replicas) shared by the process.
    Cluster,
    /// MariaDB + a local Sentinel setup (master, replica, 3 sentinels) shared by the process.
    Sentinel,
    /// SQLite file + in-process token store, the embedded default.
    Embedded,
}

impl Backend {
    /// Whether tokens live in Redis (in any mode).
    pub fn redis(self) -> bool {
        self != Self::Embedded
    }
}

/// Cheap argon2 so the suite stays fast; the parameters are settings, the code is the same.
pub fn test_rules() -> Rules {
    Rules {
        freshness_window: 300,
        argon2: Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        ..Rules::default()
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub http: reqwest::Client,
    pub state: Arc<AppState>,
    pub settings: Settings,
    /// The MariaDB database of this test (Real only).
    pub db_name: Option<String>,
    /// The SQLite file of this test (Embedded only).
    pub sqlite_path: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// Settings for a fresh, isolated set of stores on `backend`, with the name of its
    /// MariaDB database (Real) or the path of its SQLite file (Embedded).
    pub async fn fresh_settings(backend: Backend) -> (Settings, Option<String>, Option<String>) {
        match backend {
            Backend::Real | Backend::Cluster | Backend::Sentinel => {
                let name = create_database("tc_test").await;
                let mut settings = Self::real_settings(&format!("{MYSQL_BASE}/{name}"));
                match backend {
                    Backend::Cluster => {
                        super::topology::point_at(&mut settings, RedisMode::Cluster)
                    }
                    Backend::Sentinel => {
                        super::topology::point_at(&mut settings, RedisMode::Sentinel)
                    }
                    _ => {}
                }
                if matches!(backend, Backend::Cluster | Backend::Sentinel) {
                    // The shared topologies' replicas confirm writes (logins on a cluster,
                    // every revocation) within milliseconds, but a full parallel run has
                    // starved one past the default 500 ms `WAIT` (a login answered 503 in
                    // an abuse test): a loaded machine's guard, as `redis_timeout` is, and
                    // above it so that the `WAIT` answers first.
                    settings.redis_wait_timeout = Duration::from_secs(2);
                    settings.redis_timeout = Duration::from_secs(3);
                }
                (settings, Some(name), None)
            }
            Backend::Embedded => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("tc_test")));
                let path = path.to_string_lossy().into_owned();
                let settings = Settings {
                    database_url: Some(format!("sqlite://{path}?mode=rwc")),
                    ..Self::base_settings()
                };
                (settings, None, Some(path))
            }
        }
    }

    /// Settings for the database at `database_url` and the shared Redis, under a key
    /// prefix of their own (the database is the caller's to make and drop).
    pub fn real_settings(database_url: &str) -> Settings {
        Settings {
            database_url: Some(database_url.to_owned()),
            redis_url: Some(REDIS_URL.into()),
            redis_prefix: format!("{}:", unique("tctest")),
            ..Self::base_settings()
        }
    }

    /// What every test server's settings share.
    fn base_settings() -> Settings {
        Settings {
            rules: test_rules(),
            // Hang guards for a loaded CI machine, not behaviour under test (the fault
            // tests set their own short bounds).
            redis_timeout: Duration::from_millis(2000),
            database_timeout: Duration::from_millis(10000),
            ..Settings::default()
        }
    }

    /// A server on fresh stores with the test client and user `alice` created.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// As `spawn`, with the settings adjusted first.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let (mut settings, db_name, sqlite_path) = Self::fresh_settings(backend).await;
        adjust(&mut settings);
        let app = Self::start(backend, settings, db_name, sqlite_path).await;
        app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
            .await;
        app.create_user("alice", PASSWORD).await;
        app
    }

    /// A server on MariaDB and a redis-server of the test's own (to kill and restart),
    /// with short Redis timeouts, the test client and `alice`; also its Redis and port.
    pub async fn spawn_on_own_redis() -> (TestApp, OwnRedis, u16) {
        let port = free_port();
        let redis = OwnRedis::start(port).await;
        let (mut settings, db, _) = Self::fresh_settings(Backend::Real).await;
        settings.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
        settings.redis_timeout = Duration::from_millis(300);
        let app = Self::start(Backend::Real, settings, db, None).await;
        app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
            .await;
        app.create_user("alice", PASSWORD).await;
        (app, redis, port)
    }

    /// Starts the server on port 0 with exactly these settings.
    pub async fn start(
        backend: Backend,
        settings: Settings,
        db_name: Option<String>,
        sqlite_path: Option<String>,
    ) -> TestApp {
        // The servers' warnings go to the test's own output, which the harness shows only
        // for a test that failed: why a request answered 503 in a CI run is then in its
        // log. TEST_LOG (a filter, e.g. `tokencache=debug`) asks for more.
        let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "tokencache=warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
        let state = app::state(&settings).await.expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app::run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        TestApp {
            backend,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                // A hang is a failure, never a wait.
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            state,
            settings,
            db_name,
            sqlite_path,
            shutdown: Some(tx),
        }
    }

    pub async fn create_client(
        &self,
        app_key: &str,
        secret: &str,
        ttl: i32,
        allow_nopwd: bool,
        expires: Option<chrono::NaiveDateTime>,
    ) {
        self.state
            .engine
            .create_client(ClientSpec {
                app_key: app_key.into(),
                secret: Some(Secret::new(secret)),
                token_ttl: ttl,
                strict_verify: 1,
                expires,
                allow_nopwd,
            })
            .await
            .expect("create client");
    }

    pub async fn create_user(&self, username: &str, password: &str) {
        self.state
            .engine
            .create_user(username, password, APP_KEY)
            .await
            .expect("create user");
    }

    /// A connection to this test's Redis, in its mode (to look at keys).
    pub async fn redis(&self) -> RedisConn {
        super::topology::open(&self.settings).await
    }

    /// Stops the server and removes what the test made (the same as dropping it, said
    /// where a test ends).
    pub async fn cleanup(self) {
        drop(self);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = &self.db_name {
            drop_database(name);
        }
        if let Some(path) = &self.sqlite_path {
            let _ = std::fs::remove_file(path);
        }
        if self.settings.redis_url.is_some() {
            delete_keys(&self.settings);
        }
    }
}
