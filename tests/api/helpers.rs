//! `TestApp`: the real server started in-process on port 0, on either the real services
//! (MariaDB + Redis, a fresh database and key prefix per test) or the embedded stores
//! (a fresh SQLite file, the in-process token store), with one helper per endpoint.
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use tokencache::app::{self, AppState, Settings};
use tokencache::domain::admin::ClientSpec;
use tokencache::domain::password::Argon2Settings;
use tokencache::domain::Rules;
use tokencache::secret::Secret;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub const MYSQL_BASE: &str = "mysql://root@127.0.0.1:3306";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/0";
pub const APP_KEY: &str = "testapp";
pub const APP_SECRET: &str = "test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB + Redis, as in production.
    Real,
    /// SQLite file + in-process token store, the embedded default.
    Embedded,
}

/// Fails the test under CI (where the services must be up), skips it elsewhere.
pub fn service_missing(what: &str, error: &dyn std::fmt::Display) -> Option<TestApp> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is unreachable ({error}); CI=true, so this test fails instead of skipping");
    }
    eprintln!("SKIPPED: {what} is unreachable ({error}); set CI=true to make this a failure");
    None
}

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
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
    /// Settings for a fresh, isolated set of stores on `backend`; `None` when skipped.
    pub async fn fresh_settings(
        backend: Backend,
    ) -> Option<(Settings, Option<String>, Option<String>)> {
        let mut settings = Settings {
            rules: test_rules(),
            // Hang guards for a loaded CI machine, not behaviour under test (the fault
            // tests set their own short bounds).
            redis_timeout: Duration::from_millis(2000),
            database_timeout: Duration::from_millis(10000),
            ..Settings::default()
        };
        match backend {
            Backend::Real => {
                let admin = match Database::connect(format!("{MYSQL_BASE}/test")).await {
                    Ok(db) => db,
                    Err(e) => {
                        service_missing("MariaDB at 127.0.0.1:3306", &e);
                        return None;
                    }
                };
                let name = unique("tc_test");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
                    .await
                    .expect("create test database");
                if let Err(e) = redis_conn().await {
                    service_missing("Redis at 127.0.0.1:6379", &e);
                    return None;
                }
                settings.database_url = Some(format!("{MYSQL_BASE}/{name}"));
                settings.redis_url = Some(REDIS_URL.into());
                settings.redis_prefix = format!("{}:", unique("tctest"));
                Some((settings, Some(name), None))
            }
            Backend::Embedded => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("tc_test")));
                let path = path.to_string_lossy().into_owned();
                settings.database_url = Some(format!("sqlite://{path}?mode=rwc"));
                Some((settings, None, Some(path)))
            }
        }
    }

    /// A server on fresh stores with the test client and user `alice` created.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// As `spawn`, with the settings adjusted first.
    pub async fn spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let (mut settings, db_name, sqlite_path) = Self::fresh_settings(backend).await?;
        adjust(&mut settings);
        let app = Self::start(backend, settings, db_name, sqlite_path).await;
        app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
            .await;
        app.create_user("alice", PASSWORD).await;
        Some(app)
    }

    /// A server on MariaDB and a redis-server of the test's own (to kill and restart),
    /// with short Redis timeouts, the test client and `alice`; also its Redis and port.
    pub async fn spawn_on_own_redis() -> Option<(TestApp, OwnRedis, u16)> {
        let port = free_port();
        let redis = OwnRedis::start(port).await?;
        let (mut settings, db, _) = Self::fresh_settings(Backend::Real).await?;
        settings.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
        settings.redis_timeout = Duration::from_millis(300);
        let app = Self::start(Backend::Real, settings, db, None).await;
        app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
            .await;
        app.create_user("alice", PASSWORD).await;
        Some((app, redis, port))
    }

    /// Starts the server on port 0 with exactly these settings.
    pub async fn start(
        backend: Backend,
        settings: Settings,
        db_name: Option<String>,
        sqlite_path: Option<String>,
    ) -> TestApp {
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

    /// POSTs a JSON body; returns the status and the parsed envelope.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        (status, value)
    }

    /// POSTs a form body.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// A correctly signed authorize body for `username`/`password` at `time`.
    pub fn authorize_body(&self, username: &str, password: &str, time: &str) -> Value {
        json!({
            "appid": APP_KEY,
            "token_type": "web",
            "username": username,
            "password": password,
            "time": time,
            "token": sign(&[APP_KEY, username, password, time], APP_SECRET),
        })
    }

    pub async fn authorize(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let body = self.authorize_body(username, password, &now_ms().to_string());
        self.post("/api/v1/authorize", &body).await
    }

    /// Logs `alice` in; returns (access token, refresh token).
    pub async fn login(&self) -> (String, String) {
        let (status, v) = self.authorize("alice", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (
            v["data"]["access_token"].as_str().unwrap().to_owned(),
            v["data"]["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn check_token(&self, token: &str) -> (StatusCode, Value) {
        self.post("/api/v1/check_token", &json!({ "token": token }))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/refresh_token",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// GET /readyz: the status and the parsed answer.
    pub async fn readyz(&self) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("request sent");
        (r.status(), r.json().await.expect("JSON body"))
    }

    /// Stops the server and removes the test's database or file and Redis keys.
    pub async fn cleanup(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = &self.db_name {
            if let Ok(admin) = Database::connect(format!("{MYSQL_BASE}/test")).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await;
            }
        }
        if let Some(path) = &self.sqlite_path {
            let _ = std::fs::remove_file(path);
        }
        if self.backend == Backend::Real {
            if let Ok(mut conn) = redis_conn().await {
                // Tolerant: cleanup never fails a test.
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.settings.redis_prefix))
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                for key in keys {
                    let _: Result<(), _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
                }
            }
        }
    }
}

pub fn sign(parts: &[&str], secret: &str) -> String {
    let mut md5 = Md5::new();
    for p in parts {
        md5.update(p.as_bytes());
    }
    md5.update(secret.as_bytes());
    hex::encode(md5.finalize())
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Milliseconds: unique per login, so two quick logins never look like a replay.
pub fn now_ms() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    // Strictly increasing within the process.
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}

pub async fn redis_conn() -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(REDIS_URL)?;
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))?
}

pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .expect("KEYS")
}

/// Asserts the envelope of a failure: HTTP status, `state: false`, the code, no data.
#[track_caller]
pub fn assert_fails(got: &(StatusCode, Value), status: u16, code: i64) {
    let (s, v) = got;
    assert_eq!(s.as_u16(), status, "HTTP status of {v}");
    assert_eq!(v["state"], json!(false), "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(v.get("data").is_none(), "{v}");
}

/// Runs each scenario twice: on MariaDB + Redis and on the embedded stores.
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn scenario($app: &$crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_mariadb_and_redis() {
                if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Real).await {
                    scenario(&app).await;
                    app.cleanup().await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_stores() {
                if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Embedded).await {
                    scenario(&app).await;
                    app.cleanup().await;
                }
            }
        }
    )*};
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of this test's own on `port`, killed on drop.
pub struct OwnRedis(tokio::process::Child);

impl OwnRedis {
    pub async fn start(port: u16) -> Option<OwnRedis> {
        Self::start_with(port, &[]).await
    }

    /// The same with more `redis-server` arguments.
    pub async fn start_with(port: u16, extra: &[&str]) -> Option<OwnRedis> {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                service_missing("the redis-server program", &e);
                return None;
            }
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(OwnRedis(child));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    pub async fn kill(mut self) {
        self.0.kill().await.unwrap();
    }
}

/// The text of `tokencache serve --help`.
pub fn serve_help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--help"])
        .output()
        .expect("tokencache runs");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}
