//! Acknowledged revocations survive a failover: a revocation answers success only once a
//! replica has it (`WAIT`), and 503 when none confirms in time, so that a master lost
//! right after the answer never undoes it. Tried as an operator lives it, on a Sentinel
//! setup and on a Cluster of their own: the replica stalled (`DEBUG SLEEP`) and its link
//! cut by the master (`CLIENT KILL TYPE replica`), a logout, the master killed, the
//! replica promoted.
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokencache::store::tokens::redis::RedisMode;
use tokencache::store::TokenHash;

use super::scale::serve_on_with;
use crate::common::topology::{cli, wait_replicated, LocalCluster, LocalSentinels};
use crate::common::*;

/// Stalls `replica` for `seconds` (in the background) and has `master` drop its link.
fn cut_replica(master: u16, replica: u16, seconds: &str) -> std::thread::JoinHandle<()> {
    let seconds = seconds.to_owned();
    let sleeper = std::thread::spawn(move || {
        cli(replica, &["debug", "sleep", &seconds]);
    });
    std::thread::sleep(Duration::from_millis(100));
    cli(master, &["client", "kill", "type", "replica"]);
    sleeper
}

async fn logout(app: &TestApp, token: &str) -> (StatusCode, serde_json::Value) {
    app.post("/api/v1/logout", &json!({ "token": token })).await
}

/// Until `ok` holds (polled every 100 ms), at most `timeout`.
async fn until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Sentinel story, with `wait`: the settings' replicas to wait for (None: the default).
/// Returns what the logout answered and what the token was after the failover.
async fn sentinel_story(wait: Option<u32>) -> (StatusCode, StatusCode) {
    let mut setup = LocalSentinels::start();
    let app = serve_on_with(
        RedisMode::Sentinel,
        setup.urls(),
        Some(setup.name.clone()),
        |s| s.redis_wait_replicas = wait,
    )
    .await;
    let (access, _) = app.login().await;
    let (master, replica) = (setup.master.port, setup.replica.port);
    wait_replicated(master, replica);

    let sleeper = cut_replica(master, replica, "3");
    let (answered, v) = logout(&app, &access).await;
    assert!(
        answered == StatusCode::OK || v["code"] == json!(1),
        "the logout answered {answered} {v}"
    );
    setup.master.kill();
    sleeper.join().unwrap();
    until("the replica promoted", Duration::from_secs(30), || {
        setup.master_port() == Some(replica)
    })
    .await;
    // The first answer of the new master about the token.
    let mut after = app.check_token(&access).await;
    for _ in 0..100 {
        if after.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = app.check_token(&access).await;
    }
    println!(
        "sentinel, wait {wait:?}: the logout answered {answered}; after the failover the token \
         answers {}",
        after.0
    );
    if answered == StatusCode::OK {
        return (answered, after.0);
    }
    // Not confirmed, so not answered success. Once a replica is back (the old master,
    // restarted, follows the new one), a retry succeeds and holds through one more
    // failover.
    setup.master.restart();
    until(
        "the old master replicates the new one",
        Duration::from_secs(30),
        || cli(master, &["role"]).contains("connected"),
    )
    .await;
    let (status, v) = logout(&app, &access).await;
    assert_eq!(status, StatusCode::OK, "the retry: {v}");
    assert_fails(&app.check_token(&access).await, 401, 102);
    setup.replica.kill();
    until(
        "the old master promoted again",
        Duration::from_secs(30),
        || setup.master_port() == Some(master),
    )
    .await;
    let mut again = app.check_token(&access).await;
    for _ in 0..100 {
        if again.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = app.check_token(&access).await;
    }
    assert_fails(&again, 401, 102);
    app.cleanup().await;
    (answered, after.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn with_sentinel_a_logout_no_replica_confirmed_answers_503_and_a_retry_holds() {
    let (answered, _) = sentinel_story(None).await;
    assert_eq!(answered, StatusCode::SERVICE_UNAVAILABLE);
}

/// What `--redis-wait-replicas 0` risks, shown: the logout answers success and the
/// failover undoes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn with_sentinel_and_no_wait_a_failover_undoes_an_answered_logout() {
    let (answered, after) = sentinel_story(Some(0)).await;
    assert_eq!((answered, after), (StatusCode::OK, StatusCode::OK));
}

/// The Cluster story, for the master of the access token's slot.
async fn cluster_story(wait: Option<u32>) -> (StatusCode, StatusCode) {
    let mut cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.redis_wait_replicas = wait
    })
    .await;
    let (access, _) = app.login().await;
    let key = format!(
        "{}a:{}",
        app.settings.redis_prefix,
        TokenHash::of(&access).encode()
    );
    let m = cluster.master_of(&key);
    let master = cluster.nodes[m].port;
    let replica = cluster
        .cli(master, &["info", "replication"])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("slave0:")?
                .split(',')
                .find_map(|f| f.strip_prefix("port=")?.parse::<u16>().ok())
        })
        .expect("the master has a replica");
    let r = cluster
        .nodes
        .iter()
        .position(|n| n.port == replica)
        .unwrap();
    wait_replicated(master, replica);

    let sleeper = cut_replica(master, replica, "3");
    let (answered, v) = logout(&app, &access).await;
    assert!(
        answered == StatusCode::OK || v["code"] == json!(1),
        "the logout answered {answered} {v}"
    );
    cluster.nodes[m].kill();
    sleeper.join().unwrap();
    until("the replica promoted", Duration::from_secs(30), || {
        cluster.promoted(&key, master)
    })
    .await;
    let mut after = app.check_token(&access).await;
    for _ in 0..100 {
        if after.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = app.check_token(&access).await;
    }
    println!(
        "cluster, wait {wait:?}: the logout answered {answered}; after the failover the token \
         answers {}",
        after.0
    );
    if answered == StatusCode::OK {
        return (answered, after.0);
    }
    cluster.nodes[m].restart();
    until(
        "the old master replicates the new one",
        Duration::from_secs(30),
        || cluster.cli(master, &["role"]).contains("connected"),
    )
    .await;
    let (status, v) = logout(&app, &access).await;
    assert_eq!(status, StatusCode::OK, "the retry: {v}");
    assert_fails(&app.check_token(&access).await, 401, 102);
    cluster.nodes[r].kill();
    until(
        "the old master promoted again",
        Duration::from_secs(30),
        || cluster.promoted(&key, replica),
    )
    .await;
    let mut again = app.check_token(&access).await;
    for _ in 0..100 {
        if again.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = app.check_token(&access).await;
    }
    assert_fails(&again, 401, 102);
    app.cleanup().await;
    (answered, after.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_a_logout_no_replica_confirmed_answers_503_and_a_retry_holds() {
    let (answered, _) = cluster_story(None).await;
    assert_eq!(answered, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_and_no_wait_a_failover_undoes_an_answered_logout() {
    let (answered, after) = cluster_story(Some(0)).await;
    assert_eq!((answered, after), (StatusCode::OK, StatusCode::OK));
}
