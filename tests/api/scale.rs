//! Scale-out: many instances on one token store, and failovers of a real Redis Cluster and
//! a real Sentinel setup under steady check_token traffic.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokencache::store::tokens::redis::RedisMode;
use tokencache::store::tokens::TokenHash;

use crate::common::topology::{wait_replicated, Guard, LocalCluster, LocalSentinels, Tls};
use crate::common::*;
use crate::on_both_stores;

/// A second server on the same stores as `app` (same database, same Redis, same prefix).
async fn second_instance(app: &TestApp) -> TestApp {
    // No database or file of its own to remove: the first instance owns them.
    TestApp::start(app.backend, app.settings.clone(), None, None).await
}

on_both_stores! {
    async fn two_instances_share_every_token_and_every_revocation(backend: Backend) {
        if backend == Backend::Embedded {
            // The in-process store is one instance's own: nothing to share.
            return;
        }
        let a = TestApp::spawn(backend).await;
        let b = second_instance(&a).await;

        // Issued on A, valid on B; refreshed on B, the refresh token spent on A too.
        let (access, refresh) = a.login().await;
        assert_eq!(b.check_token(&access).await.0, StatusCode::OK);
        let (status, v) = b.refresh(&refresh).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let access2 = v["data"]["access_token"].as_str().unwrap().to_owned();
        let refresh2 = v["data"]["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(a.check_token(&access2).await.0, StatusCode::OK);
        assert_eq!(a.refresh(&refresh2).await.0, StatusCode::OK);
        // A replay of the spent token on A revokes the login B refreshed.
        assert_fails(&a.refresh(&refresh).await, 401, 102);
        assert_fails(&b.check_token(&access2).await, 401, 102);
        let (access2, _) = a.login().await;

        // Logout on B is seen by A at its next check.
        let (status, _) = b.post("/api/v1/logout", &json!({"token": access2})).await;
        assert_eq!(status, StatusCode::OK);
        assert_fails(&a.check_token(&access2).await, 401, 102);

        // A refresh token raced on both instances: one winner at most, and the replays
        // revoke the whole login, the winner's new pair too.
        let (access, refresh) = a.login().await;
        let attempts = (0..24).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.refresh(&refresh)
        });
        let results = futures::future::join_all(attempts).await;
        let wins: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::OK).collect();
        assert!(wins.len() <= 1, "{results:?}");
        for (status, v) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!((*status, &v["code"]), (StatusCode::UNAUTHORIZED, &json!(102)), "{v}");
        }
        assert_fails(&b.check_token(&access).await, 401, 102);
        for (_, v) in wins {
            let new = v["data"]["access_token"].as_str().unwrap();
            assert_fails(&a.check_token(new).await, 401, 102);
        }

        // A password change on A revokes what B issued; the lockout counts on both.
        let (from_b, _) = b.login().await;
        a.state.engine.set_password("alice", "another password").await.unwrap();
        assert_fails(&b.check_token(&from_b).await, 401, 102);
        for n in 0..5 {
            let app = if n % 2 == 0 { &a } else { &b };
            assert_fails(&app.authorize("alice", "wrong").await, 401, 1004);
        }
        assert_fails(&a.authorize("alice", "another password").await, 429, 405);
        assert_fails(&b.authorize("alice", "another password").await, 429, 405);
        drop(b);
    }
}

/// What steady check_token traffic saw: each answer's time, status and code.
#[derive(Default)]
struct Seen(Vec<(Instant, StatusCode, i64)>);

/// check_token for `token` from `clients` concurrent loops until `stop`.
async fn steady_checks(app: &TestApp, token: &str, clients: usize, stop: Arc<AtomicBool>) -> Seen {
    let loops = (0..clients).map(|_| {
        let http = app.http.clone();
        let url = format!("{}/api/v1/check_token", app.base);
        let body = json!({ "token": token });
        let stop = stop.clone();
        async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // The client's 10 s timeout: a hang fails the test.
                let r = http.post(&url).json(&body).send().await;
                let r = r.expect("an answer, never a hang");
                let status = r.status();
                let v: serde_json::Value = r.json().await.unwrap();
                seen.push((Instant::now(), status, v["code"].as_i64().unwrap_or(-1)));
            }
            seen
        }
    });
    let mut all = Seen::default();
    for seen in futures::future::join_all(loops).await {
        all.0.extend(seen);
    }
    all.0.sort_by_key(|(t, _, _)| *t);
    all
}

/// Asserts what a failover may show: only 200 and 503/code 1 for a live token, 200 again
/// within 5 s of the promotion and from then on; prints the figures.
fn judge(what: &str, seen: &Seen, killed: Instant, promoted: Instant) {
    let wrong: Vec<_> = seen
        .0
        .iter()
        .filter(|(_, s, c)| {
            !(*s == StatusCode::OK || (*s == StatusCode::SERVICE_UNAVAILABLE && *c == 1))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: a live token answered {:?}",
        &wrong[..wrong.len().min(5)]
    );
    let failed: Vec<_> = seen
        .0
        .iter()
        .filter(|(_, s, _)| *s != StatusCode::OK)
        .collect();
    let last_failure = failed.last().map(|(t, _, _)| *t);
    let after = seen.0.iter().filter(|(t, _, _)| *t > promoted).count();
    assert!(after > 0, "{what}: no answer after the promotion");
    if let Some(last) = last_failure {
        assert!(
            last <= promoted + Duration::from_secs(5),
            "{what}: a 503 {:?} after the promotion",
            last.saturating_duration_since(promoted)
        );
    }
    let outage = seen
        .0
        .iter()
        .filter(|(t, _, _)| *t > killed && *t <= promoted)
        .count();
    let longest_gap = seen
        .0
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    println!(
        "{what}: {} answers, {} of them 503 (code 1), none else; promotion {:?} after the kill, \
         {outage} answers between; last 503 {:?} after the promotion; longest time without an \
         answer {longest_gap:?}",
        seen.0.len(),
        failed.len(),
        promoted - killed,
        last_failure.map(|t| t.saturating_duration_since(promoted)),
    );
    // Answers all along: a wait for the election is not an answer.
    assert!(
        longest_gap < Duration::from_secs(2),
        "{what}: no answer for {longest_gap:?}"
    );
}

/// A server on MariaDB and the Redis `url` names in `mode`, with short Redis bounds.
async fn serve_on(mode: RedisMode, urls: String, master: Option<String>) -> TestApp {
    serve_on_with(mode, urls, master, |_| {}).await
}

/// The same, with the settings adjusted.
pub(crate) async fn serve_on_with(
    mode: RedisMode,
    urls: String,
    master: Option<String>,
    adjust: impl FnOnce(&mut tokencache::app::Settings),
) -> TestApp {
    let (mut settings, db, _) = TestApp::fresh_settings(Backend::Real).await;
    settings.redis_mode = mode;
    settings.redis_url = Some(urls);
    settings.redis_sentinel_master = master;
    settings.redis_timeout = Duration::from_millis(300);
    adjust(&mut settings);
    let app = TestApp::start(Backend::Real, settings, db, None).await;
    app.create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    app.create_user("alice", PASSWORD).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_cluster_failover_gives_only_503_then_200_and_keeps_replicated_tokens() {
    let mut cluster = LocalCluster::start();
    let app = serve_on(RedisMode::Cluster, cluster.urls(), None).await;
    let (access, refresh) = app.login().await;
    let key = format!(
        "{}a:{}",
        app.settings.redis_prefix,
        TokenHash::of(&access).encode()
    );
    let master = cluster.master_of(&key);
    let master_port = cluster.nodes[master].port;
    let replica_port = cluster.replica_of(master_port);
    wait_replicated(master_port, replica_port);

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let access = access.clone();
        let app = &app;
        async move { steady_checks(app, &access, 4, stop).await }
    };
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed = Instant::now();
        // Polled between awaits: a blocking wait here would stall the traffic beside it.
        cluster.nodes[master].kill();
        // Not ready while a master is gone (its slots unserved).
        assert_eq!(app.readyz().await.0, StatusCode::SERVICE_UNAVAILABLE);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.promoted(&key, master_port) {
            assert!(Instant::now() < deadline, "no replica was promoted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let promoted = Instant::now();
        tokio::time::sleep(Duration::from_secs(6)).await;
        stop.store(true, Ordering::Relaxed);
        (killed, promoted)
    };
    let (seen, (killed, promoted)) = tokio::join!(traffic, chaos);
    judge("cluster failover", &seen, killed, promoted);

    // The tokens written before the kill survive: the refresh token too, on the new master.
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    // Ready again once every slot is served.
    assert_eq!(app.readyz().await.0, StatusCode::OK);
    // A refresh files its new pair in the user's index and waits for a replica of the
    // index's master: if that is the promoted one, it has none until the old master
    // follows it, and the refresh answers 503 (its refresh token spent: the client logs
    // in again); once the old master follows, 200.
    let index = format!("{}u:alice", app.settings.redis_prefix);
    let index_on_promoted = cluster.master_of(&index) == cluster.master_of(&key);
    let (status, v) = app.refresh(&refresh).await;
    let refresh = if index_on_promoted {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        cluster.nodes[master].restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.cli(master_port, &["role"]).contains("connected") {
            assert!(Instant::now() < deadline, "the old master did not follow");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A login, retried while the rejoined replica is not yet confirming.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = app.authorize("alice", PASSWORD).await;
            if status == StatusCode::OK {
                break v["data"]["refresh_token"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "{status} {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        assert_eq!(status, StatusCode::OK, "{v}");
        v["data"]["refresh_token"].as_str().unwrap().to_owned()
    };
    let (status, v) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_sentinel_failover_is_followed_without_a_restart() {
    let mut setup = LocalSentinels::start();
    let app = serve_on(RedisMode::Sentinel, setup.urls(), Some(setup.name.clone())).await;
    let (access, refresh) = app.login().await;
    let (old, new) = (setup.master.port, setup.replica.port);
    wait_replicated(old, new);

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let access = access.clone();
        let app = &app;
        async move { steady_checks(app, &access, 4, stop).await }
    };
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed = Instant::now();
        setup.master.kill();
        // Not ready while the master the sentinels name is gone.
        assert_eq!(app.readyz().await.0, StatusCode::SERVICE_UNAVAILABLE);
        let deadline = Instant::now() + Duration::from_secs(30);
        while setup.master_port() != Some(new) {
            assert!(
                Instant::now() < deadline,
                "the sentinels did not promote the replica"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let promoted = Instant::now();
        tokio::time::sleep(Duration::from_secs(6)).await;
        stop.store(true, Ordering::Relaxed);
        (killed, promoted)
    };
    let (seen, (killed, promoted)) = tokio::join!(traffic, chaos);
    judge("sentinel failover", &seen, killed, promoted);

    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    let (status, v) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // New writes land on the new master.
    let (access2, _) = app.login().await;
    assert_eq!(app.check_token(&access2).await.0, StatusCode::OK);
    assert_eq!(app.readyz().await.0, StatusCode::OK);
}

/// The error `serve` would stop with for these Redis settings, within a bound.
async fn start_error(mode: RedisMode, urls: &str, master: Option<&str>) -> String {
    let settings = tokencache::app::Settings {
        redis_mode: mode,
        redis_url: Some(urls.into()),
        redis_sentinel_master: master.map(str::to_owned),
        redis_timeout: Duration::from_millis(500),
        database_url: Some("sqlite::memory:".into()),
        ..Default::default()
    };
    let started = Instant::now();
    let result = tokencache::app::engine(&settings).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a hang, not an error"
    );
    match result {
        Ok(_) => panic!("{mode:?} on {urls} started"),
        Err(e) => {
            let text = tokencache::http::error::chain(&e);
            println!("{mode:?} {urls} {master:?}: {text}");
            text
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis and redis-server: cargo test -- --include-ignored"]
async fn a_wrong_redis_mode_or_name_is_an_error_at_start_not_a_hang() {
    require_services();
    // Cluster mode on a server that is not a cluster.
    let e = start_error(RedisMode::Cluster, "redis://127.0.0.1:6379", None).await;
    assert!(e.contains("cluster"), "{e}");
    // No reachable seed (a closed port).
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let e = start_error(RedisMode::Cluster, &closed, None).await;
    assert!(e.contains("Redis Cluster"), "{e}");
    let e = start_error(RedisMode::Sentinel, &closed, Some("mymaster")).await;
    assert!(e.contains("sentinels"), "{e}");
    // Sentinel mode without the master's name, or with a name the sentinels do not know.
    let sentinels = crate::common::topology::shared_sentinels();
    let e = start_error(RedisMode::Sentinel, &sentinels.urls(), None).await;
    assert!(e.contains("--redis-sentinel-master"), "{e}");
    let e = start_error(RedisMode::Sentinel, &sentinels.urls(), Some("nosuchmaster")).await;
    assert!(e.contains("sentinels"), "{e}");
    // Several URLs in standalone mode; a master name outside sentinel mode.
    let e = start_error(
        RedisMode::Standalone,
        "redis://127.0.0.1:6379,redis://127.0.0.1:6380",
        None,
    )
    .await;
    assert!(e.contains("standalone mode takes one"), "{e}");
    let e = start_error(
        RedisMode::Standalone,
        "redis://127.0.0.1:6379",
        Some("mymaster"),
    )
    .await;
    assert!(e.contains("--redis-mode sentinel"), "{e}");
}

/// Login, check, refresh and logout-all on a password-protected topology.
async fn works_with_a_password(mode: RedisMode, urls: String, master: Option<String>) {
    let app = serve_on(mode, urls, master).await;
    let (access, refresh) = app.login().await;
    assert_eq!(app.check_token(&access).await.0, StatusCode::OK);
    let (status, v) = app.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        app.state.engine.logout_user("alice").await.unwrap(),
        4,
        "two pairs"
    );
    assert_fails(&app.check_token(&access).await, 401, 102);
    assert_eq!(app.readyz().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_password_protected_cluster_and_sentinel_master_work() {
    let secret = "s3cret-pass";
    let guard = Guard {
        password: Some(secret.into()),
        tls: None,
    };
    let cluster = LocalCluster::start_with(guard.clone());
    works_with_a_password(RedisMode::Cluster, cluster.urls(), None).await;
    // Without the password: refused at start.
    let bare = cluster.urls().replace(&format!(":{secret}@"), "");
    let e = start_error(RedisMode::Cluster, &bare, None).await;
    assert!(e.to_lowercase().contains("auth"), "{e}");
    drop(cluster);

    let setup = LocalSentinels::start_with(guard);
    works_with_a_password(RedisMode::Sentinel, setup.urls(), Some(setup.name.clone())).await;
    let bare = setup.urls().replace(&format!(":{secret}@"), "");
    let e = start_error(RedisMode::Sentinel, &bare, Some("mymaster")).await;
    assert!(e.to_lowercase().contains("auth"), "{e}");
}

/// A `tokencache serve` process on the Redis `urls` name in `mode`, on an SQLite file with
/// the test client and `alice`; `ca`: the CA file it trusts (`SSL_CERT_FILE`), else the
/// system's roots. Returns the process and its base URL once it answers /healthz, or
/// the process's exit and its error output when it stopped at start.
async fn serve_process(
    mode: RedisMode,
    urls: &str,
    master: Option<&str>,
    ca: Option<&std::path::Path>,
    dir: &std::path::Path,
) -> Result<(tokio::process::Child, String), String> {
    let db = format!("sqlite://{}/{}.db?mode=rwc", dir.display(), unique("tc"));
    cli_client_and_alice(&db);
    let port = free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokencache"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db)
        .env("REDIS_URL", urls)
        .env("TOKENCACHE_REDIS_MODE", mode.name())
        .env("TOKENCACHE_REDIS_PREFIX", format!("{}:", unique("tctls")))
        .env("TOKENCACHE_REDIS_TIMEOUT_MS", "1000")
        .env("RUST_LOG", "warn")
        .env_remove("TOKENCACHE_REDIS_SENTINEL_MASTER")
        .env_remove("SSL_CERT_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(name) = master {
        command.env("TOKENCACHE_REDIS_SENTINEL_MASTER", name);
    }
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca);
    }
    let mut server = command.spawn().expect("tokencache runs");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = server.try_wait() {
            let mut err = String::new();
            use tokio::io::AsyncReadExt;
            server
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            return Err(err);
        }
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return Ok((server, base));
        }
        assert!(
            Instant::now() < deadline,
            "tokencache neither served nor stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs `alice` in through `base` and checks the token: (login status, check status).
async fn login_and_check(base: &str) -> (StatusCode, StatusCode) {
    let (status, v) = login_at(base).await;
    let Some(access) = v["data"]["access_token"].as_str() else {
        return (status, StatusCode::NOT_FOUND);
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/check_token"))
        .json(&json!({ "token": access }))
        .send()
        .await
        .unwrap();
    (status, r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and openssl: cargo test -- --include-ignored"]
async fn tls_with_a_password_works_in_every_mode_and_checks_the_certificate() {
    let tls = Tls::make();
    let guard = Guard {
        password: Some("tls-s3cret".into()),
        tls: Some(tls.clone()),
    };
    let port = crate::common::topology::free_cluster_port();
    let mut args = vec![
        "--bind".to_string(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
    ];
    args.extend(guard.server_args(port, false));
    let single = crate::common::topology::Node::start(port, args);
    let cluster = LocalCluster::start_with(guard.clone());
    let sentinels = LocalSentinels::start_with(guard.clone());
    let cases = [
        (RedisMode::Standalone, guard.url(single.port), None),
        (RedisMode::Cluster, cluster.urls(), None),
        (
            RedisMode::Sentinel,
            sentinels.urls(),
            Some(sentinels.name.as_str()),
        ),
    ];
    for (mode, urls, master) in &cases {
        assert!(urls.starts_with("rediss://"), "{urls}");
        let dir = std::env::temp_dir().join(unique("tc_tls_serve"));
        std::fs::create_dir_all(&dir).unwrap();
        // Trusting the test's CA: everything works over TLS.
        let (server, base) = serve_process(*mode, urls, *master, Some(&tls.ca), &dir)
            .await
            .unwrap_or_else(|e| panic!("{mode:?} over TLS did not start: {e}"));
        assert_eq!(
            login_and_check(&base).await,
            (StatusCode::OK, StatusCode::OK),
            "{mode:?}"
        );
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status();
        assert_eq!(ready, StatusCode::OK, "{mode:?}");
        drop(server);
        // Not trusting it (the system's roots): no connection. Cluster and sentinel
        // modes stop at start; standalone starts and answers 503.
        let refused = serve_process(*mode, urls, *master, None, &dir).await;
        match (mode, refused) {
            (RedisMode::Standalone, Ok((_server, base))) => {
                let (login, _) = login_and_check(&base).await;
                assert_eq!(login, StatusCode::SERVICE_UNAVAILABLE);
            }
            (RedisMode::Standalone, Err(e)) => panic!("standalone stopped at start: {e}"),
            (_, Ok(_)) => panic!("{mode:?} started with an untrusted certificate"),
            (_, Err(e)) => {
                println!("{mode:?}, untrusted certificate: {e}");
                assert!(e.to_lowercase().contains("certificate"), "{mode:?}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored"]
async fn key_slots_are_the_cluster_s_own_and_every_master_s_eviction_policy_is_read() {
    let cluster = crate::common::topology::shared_cluster();
    // slot_of (which groups an operation's commands) agrees with the cluster itself.
    let port = cluster.nodes[0].port;
    for key in [
        "tc:a:AAAAAAAAAAAAAAAAAAAAAA",
        "tc:u:alice@example.com",
        "foo",
        "{user1}.x",
        "a{}b",
        "x{y}z{w}",
    ] {
        let theirs: u16 = cluster
            .cli(port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            tokencache::store::tokens::redis::slot_of(key.as_bytes()),
            theirs,
            "{key}"
        );
    }
    // One master that may evict is enough for the warning.
    let target = tokencache::store::tokens::redis::RedisTarget {
        mode: RedisMode::Cluster,
        urls: cluster.urls(),
        sentinel_master: None,
        timeout: Duration::from_secs(2),
    };
    let tokens = tokencache::store::tokens::redis::RedisTokens::open(&target, "t:")
        .await
        .unwrap();
    assert_eq!(tokens.eviction_policy().await, None);
    let master = cluster.master_of("tc:evict-probe");
    let port = cluster.nodes[master].port;
    cluster.cli(port, &["config", "set", "maxmemory", "1gb"]);
    cluster.cli(port, &["config", "set", "maxmemory-policy", "allkeys-lru"]);
    let seen = tokens.eviction_policy().await;
    cluster.cli(port, &["config", "set", "maxmemory", "0"]);
    cluster.cli(port, &["config", "set", "maxmemory-policy", "noeviction"]);
    assert_eq!(seen.as_deref(), Some("allkeys-lru"));
}
