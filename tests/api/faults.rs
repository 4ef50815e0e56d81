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
    target: &'static str,
    tasks: JoinSet<()>,
}

impl CuttableProxy {
    async fn to(target: &'static str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(Self::relay(listener, target));
        CuttableProxy {
            addr,
            target,
            tasks,
        }
    }

    async fn relay(listener: TcpListener, target: &'static str) {
        let mut conns = JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    /// Drops the listener and every proxied connection.
    fn cut(&mut self) {
        self.tasks.abort_all();
    }

    /// Listens again on the same address: the database is back.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("the proxy's port again");
        self.tasks.spawn(Self::relay(listener, self.target));
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
        tokencache::store::ClientRecords::disable_client(&app.state.engine.records, APP_KEY)
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

/// What a run of traffic saw: answers by (HTTP status, envelope code), and when.
#[derive(Default)]
struct Seen {
    answers: std::collections::BTreeMap<(u16, i64), u64>,
    /// (when, ok) of every answer, in order.
    timeline: Vec<(std::time::Instant, bool)>,
}

/// `tasks` loops of check_token over `tokens` until `stop`, all answers recorded.
fn check_token_traffic(
    app: &std::sync::Arc<TestApp>,
    tokens: &std::sync::Arc<Vec<String>>,
    tasks: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..tasks)
        .map(|t| {
            let (app, tokens, stop) = (app.clone(), tokens.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut i = t;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, v) = app.check_token(&tokens[i % tokens.len()]).await;
                    let code = v["code"].as_i64().unwrap_or(-1);
                    *seen.answers.entry((status.as_u16(), code)).or_default() += 1;
                    seen.timeline
                        .push((std::time::Instant::now(), status == StatusCode::OK));
                    i += 1;
                }
                seen
            })
        })
        .collect()
}

async fn gather(handles: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for h in handles {
        let seen = h.await.unwrap();
        for (k, n) in seen.answers {
            *all.answers.entry(k).or_default() += n;
        }
        all.timeline.extend(seen.timeline);
    }
    all.timeline.sort_by_key(|(at, _)| *at);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and the redis-server program: cargo test -- --include-ignored"]
async fn under_check_token_load_a_redis_restart_with_its_append_only_file_loses_no_token() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let port = free_port();
    let dir = std::env::temp_dir().join(unique("tc_aof"));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    let aof = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir_arg.as_str(),
    ];
    let redis = OwnRedis::start_with(port, &aof).await;
    let (mut settings, db, _) = TestApp::fresh_settings(Backend::Real).await;
    settings.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
    settings.redis_timeout = Duration::from_millis(300);
    let app = TestApp::start(Backend::Real, settings, db, None).await;
    app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    app.create_user("alice", PASSWORD).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(app.login().await.0);
    }
    let (app, tokens) = (Arc::new(app), Arc::new(tokens));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = check_token_traffic(&app, &tokens, 4, &stop);

    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.kill().await;
    let killed = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _redis = OwnRedis::start_with(port, &aof).await;
    let back = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = gather(traffic).await;

    let first_ok_after = seen
        .timeline
        .iter()
        .find(|(at, ok)| *at > back && *ok)
        .map(|(at, _)| at.duration_since(back));
    let total: u64 = seen.answers.values().sum();
    eprintln!(
        "check_token under load, Redis killed and restarted with its AOF: {total} answers \
         by (HTTP, code) {:?}; down {:?}; first 200 {first_ok_after:?} after Redis accepted \
         connections",
        seen.answers,
        back.duration_since(killed)
    );
    // Only 200 (live) and 503 / code 1 (Redis down): never 102 for a live token.
    for (status, code) in seen.answers.keys() {
        assert!(
            matches!((status, code), (200, 0) | (503, 1)),
            "answered {status} / {code}: {:?}",
            seen.answers
        );
    }
    assert!(
        seen.answers.get(&(503, 1)).copied().unwrap_or(0) > 0,
        "Redis was never seen down"
    );
    assert!(total > 1000, "thousands of requests: {total}");
    let recovery = first_ok_after.expect("200 again after Redis came back");
    assert!(
        recovery < Duration::from_secs(1),
        "recovered after {recovery:?}"
    );
    // Every token issued before the restart is still valid.
    for token in tokens.iter() {
        assert_eq!(app.check_token(token).await.0, StatusCode::OK);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn under_login_and_check_token_load_a_database_cut_stops_only_the_logins() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (app, mut proxy) = spawn_behind_cuttable_mysql(|_| {}).await;
    // The logins of the load are bob's: alice's session cap must not revoke the tokens
    // checked meanwhile.
    app.create_user("bob", PASSWORD).await;
    let mut pairs = Vec::new();
    for _ in 0..10 {
        pairs.push(app.login().await);
    }
    let tokens: Vec<String> = pairs.iter().map(|(a, _)| a.clone()).collect();
    let (app, tokens) = (Arc::new(app), Arc::new(tokens));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = check_token_traffic(&app, &tokens, 3, &stop);
    // Logins alongside, recorded by status.
    let logins = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut by_status = std::collections::BTreeMap::<u16, u64>::new();
            let mut timeline = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = app.authorize("bob", PASSWORD).await;
                *by_status.entry(status.as_u16()).or_default() += 1;
                timeline.push((std::time::Instant::now(), status == StatusCode::OK));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (by_status, timeline)
        })
    };

    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.cut();
    let cut = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Refresh keeps working while the database is away.
    let (status, v) = app.refresh(&pairs[0].1).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // So does forward-auth.
    let r = app.forward_auth(Some(&pairs[1].0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore().await;
    let back = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = gather(traffic).await;
    let (login_statuses, login_timeline) = logins.await.unwrap();

    let login_back = login_timeline
        .iter()
        .find(|(at, ok)| *at > back && *ok)
        .map(|(at, _)| at.duration_since(back));
    eprintln!(
        "database cut for {:?} under load: check_token answers {:?}; logins by HTTP status \
         {login_statuses:?}; first login 200 {login_back:?} after the database came back",
        back.duration_since(cut),
        seen.answers
    );
    // check_token never noticed.
    assert_eq!(
        seen.answers.keys().collect::<Vec<_>>(),
        vec![&(200, 0)],
        "{:?}",
        seen.answers
    );
    // Logins: 200, or 503 while the database was away; nothing else.
    for status in login_statuses.keys() {
        assert!(matches!(status, 200 | 503), "{login_statuses:?}");
    }
    assert!(
        login_statuses.contains_key(&503),
        "logins never saw the cut"
    );
    login_back.expect("logins recovered by themselves");
}
