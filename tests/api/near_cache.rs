//! The near cache (`--near-cache`) with two instances on one Redis of the test's own: a
//! token checked on B is then answered from B's memory (no Redis GET), and every change
//! made on A (logout, logout-all, a new password, a replayed refresh token), an expiry, a
//! Redis restart or a lost tracking connection stops B from accepting it.
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::topology::cli;
use crate::common::*;

/// A (no near cache) and B (near cache) on MariaDB and a redis-server of their own.
async fn pair() -> (TestApp, TestApp, OwnRedis, u16) {
    let port = free_port();
    // DEBUG allowed, to stop Redis's active expiry where a test needs it.
    let redis = OwnRedis::start_with(port, &["--enable-debug-command", "local"]).await;
    let (mut settings, db, _) = TestApp::fresh_settings(Backend::Real).await;
    settings.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
    settings.redis_timeout = Duration::from_millis(500);
    let a = TestApp::start(Backend::Real, settings.clone(), db, None).await;
    a.create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    a.create_user("alice", PASSWORD).await;
    settings.near_cache = Some(1000);
    let b = TestApp::start(Backend::Real, settings, None, None).await;
    wait_tracking(port).await;
    (a, b, redis, port)
}

/// Until B's tracking connection is on.
async fn wait_tracking(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli(port, &["client", "list"]).contains("name=tokencache-near-cache") {
        assert!(Instant::now() < deadline, "no tracking connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Tracking is turned on right before the name is set: one more beat.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// GET calls Redis has served so far.
fn gets(port: u16) -> u64 {
    cli(port, &["info", "commandstats"])
        .lines()
        .find_map(|l| {
            l.strip_prefix("cmdstat_get:calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Polls B until it refuses `token` (401, code 102); the time it took.
async fn refused_within(b: &TestApp, token: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, v) = b.check_token(token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(v["code"], json!(102), "{v}");
            return started.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(
            started.elapsed() < bound,
            "B still accepts a dead token after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Checks `token` on B until it is answered from memory (no GET reaches Redis).
async fn cached_on(b: &TestApp, port: u16, token: &str) {
    assert_eq!(b.check_token(token).await.0, StatusCode::OK);
    let before = gets(port);
    for _ in 0..20 {
        assert_eq!(b.check_token(token).await.0, StatusCode::OK);
    }
    assert_eq!(gets(port) - before, 0, "B asked Redis for a cached token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn every_change_on_one_instance_stops_the_other_s_near_cache_at_once() {
    let (a, b, _redis, port) = pair().await;

    // Logout of one pair on A.
    let (t1, _) = a.login().await;
    cached_on(&b, port, &t1).await;
    let (status, _) = a.post("/api/v1/logout", &json!({"token": t1})).await;
    assert_eq!(status, StatusCode::OK);
    let took = refused_within(&b, &t1, Duration::from_millis(100)).await;
    println!("near cache: logout seen by the other instance after {took:?}");

    // Logout-all and a new password, from the command line's engine (A's).
    let (t2, _) = a.login().await;
    let (t3, _) = a.login().await;
    cached_on(&b, port, &t2).await;
    cached_on(&b, port, &t3).await;
    a.state.engine.logout_user("alice").await.unwrap();
    refused_within(&b, &t2, Duration::from_millis(100)).await;
    refused_within(&b, &t3, Duration::from_millis(100)).await;
    let (t4, _) = a.login().await;
    cached_on(&b, port, &t4).await;
    a.state
        .engine
        .set_password("alice", "another one")
        .await
        .unwrap();
    refused_within(&b, &t4, Duration::from_millis(100)).await;

    // A replayed refresh token revokes its login: B sees the access token die.
    let (t5, r5) = a.authorize("alice", "another one").await.1["data"]
        .as_object()
        .map(|d| {
            (
                d["access_token"].as_str().unwrap().to_owned(),
                d["refresh_token"].as_str().unwrap().to_owned(),
            )
        })
        .unwrap();
    cached_on(&b, port, &t5).await;
    assert_eq!(a.refresh(&r5).await.0, StatusCode::OK);
    // The refresh leaves the old access token live (as without the cache) ...
    assert_eq!(b.check_token(&t5).await.0, StatusCode::OK);
    // ... and its replay revokes the login.
    assert_fails(&a.refresh(&r5).await, 401, 102);
    refused_within(&b, &t5, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn an_expired_token_is_never_answered_from_the_near_cache() {
    let (a, b, _redis, port) = pair().await;
    a.create_client("short", "short-secret", 2, false, None)
        .await;
    let t = now_ms().to_string();
    let body = json!({
        "appid": "short", "token_type": "web", "username": "alice", "password": PASSWORD,
        "time": t, "token": sign(&["short", "alice", PASSWORD, &t], "short-secret"),
    });
    let (status, v) = a.post("/api/v1/authorize", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let token = v["data"]["access_token"].as_str().unwrap().to_owned();
    // Without Redis's active expiry (which pushes an invalidation when the key expires)
    // only the expiry in the record can keep B from answering it.
    assert_eq!(cli(port, &["debug", "set-active-expire", "0"]).trim(), "OK");
    cached_on(&b, port, &token).await;
    // Its lifetime (2 s, whole seconds) is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_fails(&b.check_token(&token).await, 401, 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_lost_tracking_connection_or_a_redis_restart_empties_the_near_cache() {
    let (a, b, redis, port) = pair().await;

    // The tracking connection killed, and a logout made right then: B must not answer
    // from what it cached before (it empties itself and asks Redis until tracking is on).
    let (t1, _) = a.login().await;
    cached_on(&b, port, &t1).await;
    let tracker = cli(port, &["client", "list"])
        .lines()
        .find(|l| l.contains("name=tokencache-near-cache"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .expect("the tracking connection");
    assert_eq!(cli(port, &["client", "kill", "id", &tracker]).trim(), "1");
    let (status, _) = a.post("/api/v1/logout", &json!({"token": t1})).await;
    assert_eq!(status, StatusCode::OK, "A reconnects by itself");
    refused_within(&b, &t1, Duration::from_millis(100)).await;

    // Redis restarted without its data: B's cached token is gone with it.
    wait_tracking(port).await;
    let (t2, _) = a.login().await;
    cached_on(&b, port, &t2).await;
    redis.kill().await;
    let _redis = OwnRedis::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = b.check_token(&t2).await;
        match status {
            StatusCode::UNAUTHORIZED => break,
            // While B reconnects: 503 (code 1), never the cached 200.
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(v["code"], json!(1)),
            other => panic!("a token of a Redis that lost it answered {other}: {v}"),
        }
        assert!(Instant::now() < deadline, "B never refused the lost token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And B caches again once tracking is back.
    wait_tracking(port).await;
    let (t3, _) = loop {
        let (status, v) = a.authorize("alice", PASSWORD).await;
        if status == StatusCode::OK {
            break (v["data"]["access_token"].as_str().unwrap().to_owned(), ());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cached_on(&b, port, &t3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn the_near_cache_is_refused_on_a_cluster_at_start() {
    require_services();
    let settings = tokencache::app::Settings {
        redis_mode: tokencache::store::tokens::redis::RedisMode::Cluster,
        redis_url: Some(crate::common::topology::shared_cluster().urls()),
        near_cache: Some(10),
        database_url: Some("sqlite::memory:".into()),
        ..Default::default()
    };
    let e = tokencache::app::engine(&settings)
        .await
        .err()
        .expect("refused");
    let text = tokencache::http::error::chain(&e);
    assert!(
        text.contains("--near-cache works with --redis-mode standalone only"),
        "{text}"
    );
}

/// Redis held slow right after a revocation (`DEBUG SLEEP`, as a fork or a slow command
/// would): the invalidation B received is applied at once, whatever its health check is
/// waiting for, and B's first check after the logout answered refuses the token (a miss
/// then waits for Redis like any check). Twenty times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn an_invalidation_is_applied_while_redis_is_slow_to_answer() {
    let (a, b, _redis, port) = pair().await;
    for trial in 0..20 {
        let (token, _) = a.login().await;
        cached_on(&b, port, &token).await;
        let (status, _) = a.post("/api/v1/logout", &json!({"token": token})).await;
        assert_eq!(status, StatusCode::OK);
        let sleeper = tokio::task::spawn_blocking(move || {
            cli(port, &["debug", "sleep", "0.3"]);
        });
        let (status, v) = b.check_token(&token).await;
        assert_eq!(
            (status, &v["code"]),
            (StatusCode::UNAUTHORIZED, &json!(102)),
            "trial {trial}: B's first check after the logout answered: {v}"
        );
        sleeper.await.unwrap();
    }
}
