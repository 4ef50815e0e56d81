//! What lands in Redis: TTLs from the client's token_expire_time, keys derived from the
//! token's hash, never the raw token.
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn redis_keys_carry_the_client_lifetimes_and_never_the_raw_token() {
    let app = TestApp::spawn(Backend::Real).await;
    let (access, refresh) = app.login().await;
    let mut conn = redis_conn().await.unwrap();
    let prefix = &app.settings.redis_prefix;
    let keys = redis_keys(&mut conn, prefix).await;
    let access_keys: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}a:")))
        .collect();
    let refresh_keys: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}r:")))
        .collect();
    assert_eq!(access_keys.len(), 1, "{keys:?}");
    assert_eq!(refresh_keys.len(), 1, "{keys:?}");

    let ttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("TTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    let access_ttl = ttl(access_keys[0].clone()).await;
    let refresh_ttl = ttl(refresh_keys[0].clone()).await;
    assert!(
        (3595..=3600).contains(&access_ttl),
        "access TTL {access_ttl}"
    );
    assert!(
        (7195..=7200).contains(&refresh_ttl),
        "refresh TTL {refresh_ttl}"
    );
    let index_ttl = ttl(format!("{prefix}u:alice")).await;
    assert!((7195..=7200).contains(&index_ttl), "index TTL {index_ttl}");

    // No key and no value holds a raw token; the index holds one 39-byte member for
    // the pair: "p", the access and refresh keys' hashes and the family.
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for key in &keys {
        assert!(!key.contains(&access) && !key.contains(&refresh), "{key}");
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let dump: Vec<Vec<u8>> = if kind == "string" {
            vec![redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap()]
        } else {
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap()
        };
        if kind == "zset" {
            let access_hash = access_keys[0].rsplit(':').next().unwrap();
            let refresh_hash = refresh_keys[0].rsplit(':').next().unwrap();
            assert_eq!(dump.len(), 1, "{key}");
            assert_eq!(dump[0].len(), 39, "{key}");
            assert_eq!(dump[0][0], b'p', "{key}");
            assert_eq!(b64(&dump[0][1..17]), access_hash, "{key}");
            assert_eq!(b64(&dump[0][17..33]), refresh_hash, "{key}");
        }
        for value in dump {
            assert!(
                !contains(&value, &access) && !contains(&value, &refresh),
                "{key} = {value:?}"
            );
        }
    }

    // A refresh rotates: the old refresh key now holds a "used" mark (to recognise a
    // replay) with the TTL it had.
    let (status, _) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK);
    let used: Vec<u8> = redis::cmd("GET")
        .arg(refresh_keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(used.first(), Some(&2), "used mark {used:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(refresh_keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((7190..=7200).contains(&ttl), "used mark TTL {ttl}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn a_short_lived_client_gets_short_redis_ttls() {
    let app = TestApp::spawn(Backend::Real).await;
    app.create_client("brief", "brief-secret", 90, false, None)
        .await;
    let t = now_ms().to_string();
    let body = serde_json::json!({
        "appid": "brief", "username": "alice", "password": PASSWORD, "time": t,
        "token": sign(&["brief", "alice", PASSWORD, &t], "brief-secret"),
    });
    assert_eq!(app.post("/api/v1/authorize", &body).await.0, StatusCode::OK);
    let mut conn = redis_conn().await.unwrap();
    let prefix = &app.settings.redis_prefix;
    let (mut access, mut refresh) = (0, 0);
    for key in redis_keys(&mut conn, prefix).await {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if key.starts_with(&format!("{prefix}a:")) {
            assert!((85..=90).contains(&ttl), "{key}: {ttl}");
            access += 1;
        } else if key.starts_with(&format!("{prefix}r:")) {
            assert!((175..=180).contains(&ttl), "{key}: {ttl}");
            refresh += 1;
        }
    }
    assert_eq!((access, refresh), (1, 1), "one access and one refresh key");
    app.cleanup().await;
}

/// Any evicted key breaks a promise (a revoked token left valid, a lockout reset, a
/// replay allowed): the server says at start when its Redis may evict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the redis-server program: cargo test -- --include-ignored"]
async fn the_server_warns_when_redis_may_evict_keys() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let port = free_port();
    let evicting = ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"];
    let _redis = OwnRedis::start_with(port, &evicting).await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let target = tokencache::store::tokens::redis::RedisTarget {
        mode: tokencache::store::tokens::redis::RedisMode::Standalone,
        urls: url.clone(),
        sentinel_master: None,
        timeout: Duration::from_secs(1),
    };
    let tokens = tokencache::store::tokens::redis::RedisTokens::open(&target, "t:")
        .await
        .unwrap();
    assert_eq!(
        tokens.eviction_policy().await.as_deref(),
        Some("allkeys-lru")
    );

    // The server's own words, at start.
    let dir = std::env::temp_dir().join(format!("tc-evict-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .env("REDIS_URL", &url)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/t.db?mode=rwc", dir.display()),
        )
        .env("RUST_LOG", "warn")
        .env("TOKENCACHE_LOG_FORMAT", "text")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let warned = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("maxmemory-policy noeviction") && line.contains("allkeys-lru") {
                return true;
            }
        }
        false
    })
    .await;
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(warned, Ok(true), "no eviction warning from the server");

    // No warning where Redis cannot evict: noeviction, or no maxmemory at all.
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let set = |name: &'static str, value: &'static str| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async::<()>(&mut conn)
                .await
                .unwrap()
        }
    };
    set("maxmemory-policy", "noeviction").await;
    assert_eq!(tokens.eviction_policy().await, None);
    set("maxmemory-policy", "volatile-lru").await;
    assert_eq!(
        tokens.eviction_policy().await.as_deref(),
        Some("volatile-lru")
    );
    set("maxmemory", "0").await;
    assert_eq!(tokens.eviction_policy().await, None);
}
