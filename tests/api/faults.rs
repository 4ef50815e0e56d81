//! Stores going down: Redis (an instance this test starts and kills) and MySQL (cut off
//! behind a TCP proxy this test owns). The shared services are never touched.
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::common::*;
use crate::on_both_stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and the redis-server program: cargo test -- --include-ignored"]
async fn check_token_answers_503_when_redis_is_down_and_recovers_when_it_is_back() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let (access, refresh) = app.login().await;
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);

    redis.kill().await;
    let (status, ready) = app.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["failed"], json!(["redis"]), "{ready}");
    // The client's 10 s timeout turns a hang into a failure.
    assert_fails(&app.check_token(&access).await, 503, 1);
    assert_fails(&app.check_token(&access).await, 503, 1);
    // Forward-auth says "the validator is down", not "deny".
    let r = app
        .http
        .get(format!("{}/api/v1/auth", app.base))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_fails(&app.refresh(&refresh).await, 503, 1);
    assert_fails(&app.authorize("alice", PASSWORD).await, 503, 1);

    // Back on the same port (empty: nothing persisted), the server recovers by itself.
    let _redis = OwnRedis::start(port).await;
    let mut answered = None;
    for _ in 0..50 {
        let got = app.check_token(&access).await;
        if got.0 != StatusCode::SERVICE_UNAVAILABLE {
            answered = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = answered.expect("check_token recovered after Redis came back");
    assert_fails(&got, 401, 102);
    let (access, _) = app.login().await;
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    app.cleanup().await;
}

/// A TCP proxy to MariaDB that the test can cut: every connection through it dies and
/// new ones are refused, as when the database host goes away.
struct CuttableProxy {
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl CuttableProxy {
    async fn to(target: &'static str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CuttableProxy { addr, tasks }
    }

    /// Drops the listener and every proxied connection.
    fn cut(&mut self) {
        self.tasks.abort_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn check_token_and_refresh_keep_working_while_mysql_is_down() {
    let (app, mut proxy) = spawn_behind_cuttable_mysql(|_| {}).await;
    let (access, refresh) = app.login().await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (status, v) = app.check_token(&access).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["username"], json!("alice"));
    let (status, v) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = app
        .check_token(v["data"]["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_fails(&app.authorize("alice", PASSWORD).await, 503, 1);
    assert_fails(&app.authorize("alice", PASSWORD).await, 503, 1);
    let (status, ready) = app.readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["failed"], json!(["mysql"]), "{ready}");
    app.cleanup().await;
}

/// POST /oauth2/introspect of `token` with the test client's credentials (HTTP Basic).
async fn introspect(app: &TestApp, token: &str) -> (StatusCode, serde_json::Value) {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{APP_KEY}:{APP_SECRET}"));
    let r = app
        .http
        .post(format!("{}/oauth2/introspect", app.base))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (
        r.status(),
        r.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn introspection_keeps_answering_while_mysql_is_down() {
    let (app, mut proxy) =
        spawn_behind_cuttable_mysql(|s| s.rules.client_cache = Duration::from_millis(500)).await;
    let (access, _) = app.login().await;
    let (status, v) = introspect(&app, &access).await;
    assert_eq!(
        (status, &v["active"]),
        (StatusCode::OK, &json!(true)),
        "{v}"
    );

    proxy.cut();
    // Past the client cache's time too: the last copy read serves while the records
    // cannot be read.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..3 {
        let (status, v) = introspect(&app, &access).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["active"], json!(true), "{v}");
        assert_eq!(v["username"], json!("alice"), "{v}");
    }
    // Logins still need the database.
    assert_fails(&app.authorize("alice", PASSWORD).await, 503, 1);
}

on_both_stores! {
    async fn introspection_sees_a_client_disabled_with_the_cli_within_the_cache_time(backend: Backend) {
        let app = TestApp::spawn_with(backend, |s| s.rules.client_cache = Duration::from_secs(1)).await;
        let (access, _) = app.login().await;
        assert_eq!(introspect(&app, &access).await.0, StatusCode::OK);
        // As `tokencache client disable` does it: in the records, from another process.
        tokencache::store::RecordStore::disable_client(&app.state.engine.records, APP_KEY)
            .await
            .unwrap();
        let disabled = std::time::Instant::now();
        let mut refused = None;
        while disabled.elapsed() < Duration::from_secs(5) {
            let (status, v) = introspect(&app, &access).await;
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(v["error"], json!("invalid_client"), "{v}");
                refused = Some(disabled.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after = refused.expect("the disabled client was still accepted after 5 s");
        eprintln!("client disabled: refused by introspection after {after:?} (cache 1 s)");
    }
}

/// A server on MariaDB reached through a proxy the test can cut, with short database
/// bounds, the test client and `alice`.
async fn spawn_behind_cuttable_mysql(
    adjust: impl FnOnce(&mut tokencache::app::Settings),
) -> (TestApp, CuttableProxy) {
    let (mut settings, db, _) = TestApp::fresh_settings(Backend::Real).await;
    let proxy = CuttableProxy::to("127.0.0.1:3306").await;
    let db_name = db.clone().unwrap();
    settings.database_url = Some(format!("mysql://root@{}/{db_name}", proxy.addr));
    settings.database_timeout = Duration::from_millis(1000);
    adjust(&mut settings);
    let app = TestApp::start(Backend::Real, settings, db, None).await;
    app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    app.create_user("alice", PASSWORD).await;
    (app, proxy)
}
