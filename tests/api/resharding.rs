//! A growing cluster never answers 503: while a slot is half-moved to a new master (its
//! old owner answering `ASK` for the keys it no longer has), and while `redis-cli
//! --cluster reshard` moves thousands of slots to a new master and `rebalance` moves them
//! back, every check, refresh, login and logout answers as it would on a still cluster
//! (removing the emptied master afterwards answers a few 503s: see that test). On a
//! Cluster of the test's own (3 masters, 3 replicas, then a fourth master and its
//! replica).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokencache::store::tokens::redis::RedisMode;
use tokencache::store::TokenHash;

use super::scale::serve_on_with;
use crate::common::topology::LocalCluster;
use crate::common::*;

/// The slot of `key`, as the cluster says.
pub(crate) fn slot(cluster: &LocalCluster, key: &str) -> String {
    cluster
        .cli(cluster.nodes[0].port, &["cluster", "keyslot", key])
        .trim()
        .to_owned()
}

/// Starts moving `slot` from the master at `from` to the one at `to` (as `redis-cli
/// --cluster reshard` does: the target importing, the owner migrating).
pub(crate) fn begin_move(cluster: &LocalCluster, slot: &str, from: u16, to: u16) {
    let (from_id, to_id) = (cluster.id(from), cluster.id(to));
    assert!(cluster
        .cli(to, &["cluster", "setslot", slot, "importing", &from_id])
        .contains("OK"));
    assert!(cluster
        .cli(from, &["cluster", "setslot", slot, "migrating", &to_id])
        .contains("OK"));
}

/// Moves one key of a migrating slot to its new owner.
pub(crate) fn move_key(cluster: &LocalCluster, key: &str, from: u16, to: u16) {
    let out = cluster.cli(
        from,
        &[
            "migrate",
            "127.0.0.1",
            &to.to_string(),
            "",
            "0",
            "5000",
            "KEYS",
            key,
        ],
    );
    assert!(out.contains("OK"), "MIGRATE {key}: {out}");
}

/// Moves the rest of `slot`'s keys and gives it to `to`, on every master.
pub(crate) fn end_move(cluster: &LocalCluster, slot: &str, from: u16, to: u16) {
    loop {
        let keys = cluster.cli(from, &["cluster", "getkeysinslot", slot, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        for key in keys {
            move_key(cluster, key, from, to);
        }
    }
    let to_id = cluster.id(to);
    for node in &cluster.nodes {
        let role = cluster.cli(node.port, &["role"]);
        if role.starts_with("master") {
            cluster.cli(node.port, &["cluster", "setslot", slot, "node", &to_id]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_slot_half_moved_to_a_new_master_serves_every_token_in_it() {
    let mut cluster = LocalCluster::start();
    // A cap above the pairs the loop makes: its trims are not under test here. The
    // first write into the moved index took 400-700 ms (and answered 503 in loaded runs)
    // while `ASK` went through the cluster client, which rebuilt its connections before
    // it found it had none to the new master; on a connection of tokencache's own it
    // takes ~3 ms (conn.rs, `asking`). Under the full suite's load it still timed out
    // once at the 2 s bound: the loop allows two such "try again" answers.
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.rules.max_sessions_per_user = 10_000;
    })
    .await;
    let (new_master, _) = cluster.add_master_with_replica();
    let to = cluster.nodes[new_master].port;
    let prefix = app.settings.redis_prefix.clone();
    let key = |kind: &str, token: &str| format!("{prefix}{kind}:{}", TokenHash::of(token).encode());

    // Two pairs of alice: of the first, the access key and alice's index move to the
    // new master before the slot does; of the second, the access key stays behind.
    let (moved, moved_refresh) = app.login().await;
    let (stays, _) = app.login().await;
    let index = format!("{prefix}u:alice");
    let mut slots = Vec::new();
    for (k, move_it) in [
        (key("a", &moved), true),
        (index.clone(), true),
        (key("a", &stays), false),
    ] {
        let s = slot(&cluster, &k);
        let from = cluster.nodes[cluster.master_of(&k)].port;
        if !slots.iter().any(|(t, _): &(String, u16)| *t == s) {
            begin_move(&cluster, &s, from, to);
            slots.push((s.clone(), from));
        }
        if move_it {
            move_key(&cluster, &k, from, to);
        }
    }

    // The slots held half-moved for 2 s, the tokens in them used all along.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut answers = 0;
    let mut refresh = moved_refresh;
    let mut retried = 0;
    while Instant::now() < deadline {
        for token in [&moved, &stays] {
            let (status, v) = app.check_token(token).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            assert_eq!(v["data"]["username"], json!("alice"));
            answers += 1;
        }
        // A refresh files into the half-moved index and its new pair is live; a new
        // login too, and a logout of it revokes it at once.
        let (status, v) = app.refresh(&refresh).await;
        if status == StatusCode::SERVICE_UNAVAILABLE && v["code"] == json!(1) {
            // "Try again", never a wrong answer: seen once a full run under the suite's
            // load (the filing timed out at the 2 s bound; its log says `issue: timed
            // out`), not in 6 runs of three copies at once. A refresh so answered has
            // spent its token (docs/scaling-out.md): log in again.
            retried += 1;
            refresh = app.login().await.1;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "refresh: {v}");
        refresh = v["data"]["refresh_token"].as_str().unwrap().to_owned();
        let new = v["data"]["access_token"].as_str().unwrap().to_owned();
        assert_eq!(app.check_token(&new).await.0, StatusCode::OK);
        let (login, _) = app.login().await;
        let (status, v) = app.post("/api/v1/logout", &json!({ "token": login })).await;
        assert_eq!(status, StatusCode::OK, "logout: {v}");
        assert_fails(&app.check_token(&login).await, 401, 102);
        answers += 6;
    }
    // A revocation of the moved token: its revoked value goes to the new owner after
    // `ASK`, and the `WAIT` with it (for a replica of the new owner).
    let (status, v) = app.post("/api/v1/logout", &json!({ "token": moved })).await;
    assert_eq!(status, StatusCode::OK, "logout of a moved token: {v}");
    assert_fails(&app.check_token(&moved).await, 401, 102);
    for (s, from) in &slots {
        end_move(&cluster, s, *from, to);
    }
    assert_fails(&app.check_token(&moved).await, 401, 102);
    assert_eq!(app.check_token(&stays).await.0, StatusCode::OK);
    assert!(retried <= 2, "{retried} refreshes answered 503");
    println!(
        "half-moved slots: {answers} answers, every one as on a still cluster but \
         {retried} refresh(es) answered 503 (try again)"
    );
    app.cleanup().await;
}

/// Traffic until `stop`: four clients checking tokens that must be live, refreshing
/// their own chain, logging in, logging out one of their own; every answer that is not
/// what a still cluster gives is returned, with what it was.
async fn traffic(
    app: &TestApp,
    live: &[String],
    stop: Arc<AtomicBool>,
) -> (usize, Vec<(Instant, String)>) {
    let clients = (0..4).map(|n| {
        let stop = stop.clone();
        async move {
            let mut seen = 0;
            let mut wrong = Vec::new();
            let (_, mut refresh) = app.login().await;
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let token = &live[i % live.len()];
                let (status, v) = app.check_token(token).await;
                if status != StatusCode::OK {
                    wrong.push((Instant::now(), format!("check: {status} {v}")));
                }
                if i % 5 == 0 {
                    let (status, v) = app.refresh(&refresh).await;
                    match v["data"]["refresh_token"].as_str() {
                        Some(next) if status == StatusCode::OK => refresh = next.to_owned(),
                        _ => {
                            wrong.push((Instant::now(), format!("refresh: {status} {v}")));
                            refresh = app.login().await.1;
                        }
                    }
                }
                if i % 17 == 0 {
                    let (status, v) = app.authorize("alice", PASSWORD).await;
                    if status != StatusCode::OK {
                        wrong.push((Instant::now(), format!("login: {status} {v}")));
                        continue;
                    }
                    let token = v["data"]["access_token"].as_str().unwrap().to_owned();
                    let (status, v) = app.post("/api/v1/logout", &json!({ "token": token })).await;
                    if status != StatusCode::OK {
                        wrong.push((Instant::now(), format!("logout: {status} {v}")));
                    }
                    seen += 2;
                }
                seen += 2;
            }
            (seen, wrong)
        }
    });
    let mut total = 0;
    let mut all = Vec::new();
    for (seen, wrong) in futures::future::join_all(clients).await {
        total += seen;
        all.extend(wrong);
    }
    (total, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_reshard_to_a_new_master_and_a_rebalance_back_answer_every_request_its_removal_a_few_503s(
) {
    let mut cluster = LocalCluster::start();
    // A cap above what the traffic makes: its trims are not under test here.
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.rules.max_sessions_per_user = 10_000;
        s.rules.limits.ip_authorize = 0;
        // The default bound (serve_on_with's 300 ms cuts the resends of a command a
        // node refuses while the slot map catches up).
        s.redis_timeout = tokencache::app::DEFAULT_REDIS_TIMEOUT;
    })
    .await;
    let mut live = Vec::new();
    for _ in 0..200 {
        live.push(app.login().await.0);
    }
    let (new_master, new_replica) = cluster.add_master_with_replica();
    let new_id = cluster.id(cluster.nodes[new_master].port);
    let new_replica_id = cluster.id(cluster.nodes[new_replica].port);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // The moves on a blocking thread of their own; the traffic meanwhile.
    let mover = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            cluster.manage(&[
                "reshard",
                "--cluster-from",
                "all",
                "--cluster-to",
                &new_id,
                "--cluster-slots",
                "4096",
                "--cluster-yes",
            ]);
            let resharded = started.elapsed();
            // Until every node agrees on the new owners (as an operator waits between
            // the two).
            let deadline = Instant::now() + Duration::from_secs(30);
            while !std::process::Command::new("redis-cli")
                .args([
                    "--cluster",
                    "check",
                    &format!("127.0.0.1:{}", cluster.nodes[0].port),
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("All nodes agree"))
            {
                assert!(Instant::now() < deadline, "the nodes did not agree");
                std::thread::sleep(Duration::from_millis(200));
            }
            cluster.manage(&["rebalance", "--cluster-weight", &format!("{new_id}=0")]);
            let rebalanced = started.elapsed();
            // The emptied master and its replica leave the cluster, and are stopped at
            // once: `del-node` leaves a node running, reset, answering every key with
            // `CLUSTERDOWN Hash slot not served`, and redis-rs's cluster client rebuilds
            // its slot map from one node, which may be that one (see the bound below).
            for (id, node) in [(&new_replica_id, new_replica), (&new_id, new_master)] {
                cluster.manage(&["del-node", id]);
                cluster.cli(cluster.nodes[node].port, &["shutdown", "nosave"]);
            }
            std::thread::sleep(Duration::from_secs(1));
            stop.store(true, Ordering::Relaxed);
            (cluster, resharded, rebalanced, started.elapsed())
        })
    };
    let (total, wrong) = traffic(&app, &live, stop).await;
    let (cluster, resharded, rebalanced, removed) = mover.await.unwrap();
    println!(
        "reshard of 4096 slots to a new master in {resharded:?}, rebalanced back by \
         {rebalanced:?}, the master and its replica removed by {removed:?}: {total} answers, \
         {} not as on a still cluster (at {:?})",
        wrong.len(),
        wrong
            .iter()
            .map(|(at, _)| *at - started)
            .collect::<Vec<_>>()
    );
    // The reshard and the rebalance: every answer as on a still cluster.
    let (moving, removing): (Vec<_>, Vec<_>) =
        wrong.iter().partition(|(at, _)| *at - started < rebalanced);
    assert!(moving.is_empty(), "{:?}", &moving[..moving.len().min(10)]);
    // The removal: a few 503s (code 1, "try again"; never a wrong answer), none later
    // than 2 s after the removed nodes were stopped (seen in 8 runs: 0 to 8 answers,
    // from 0.2 s to 1.5 s after the rebalance ended).
    for (at, what) in &removing {
        assert!(
            what.contains(" 503 ") && what.contains("\"code\":1"),
            "{what}"
        );
        assert!(*at - started < removed + Duration::from_secs(1), "{what}");
    }
    assert!(removing.len() <= 20, "{} answers 503", removing.len());
    assert!(total > 100, "only {total} answers");
    for token in &live {
        assert_eq!(app.check_token(token).await.0, StatusCode::OK);
    }
    app.cleanup().await;
    drop(cluster);
}

/// Runs `traffic` while `switch` (a planned failover) runs on a blocking thread and for
/// 2 s after it; the answers seen and the ones not as on a still setup.
async fn traffic_through<S: Send + 'static>(
    app: &TestApp,
    live: &[String],
    switch: impl FnOnce() -> S + Send + 'static,
) -> (usize, Vec<(Instant, String)>, S) {
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(500));
            let done = switch();
            std::thread::sleep(Duration::from_secs(2));
            stop.store(true, Ordering::Relaxed);
            done
        })
    };
    let (total, wrong) = traffic(app, live, stop).await;
    (total, wrong, mover.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_planned_cluster_failover_answers_every_request() {
    let cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.rules.max_sessions_per_user = 10_000;
        s.rules.limits.ip_authorize = 0;
        s.redis_timeout = tokencache::app::DEFAULT_REDIS_TIMEOUT;
    })
    .await;
    let mut live = Vec::new();
    for _ in 0..100 {
        live.push(app.login().await.0);
    }
    // The master of alice's index (every login and logout goes through it).
    let index = format!("{}u:alice", app.settings.redis_prefix);
    let master = cluster.nodes[cluster.master_of(&index)].port;
    let replica = cluster.replica_of(master);
    let (total, wrong, (cluster, took)) = traffic_through(&app, &live, move || {
        let started = Instant::now();
        assert!(cluster
            .cli(replica, &["cluster", "failover"])
            .contains("OK"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.promoted(&index, master) {
            assert!(Instant::now() < deadline, "the replica was not promoted");
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = started.elapsed();
        (cluster, took)
    })
    .await;
    println!(
        "CLUSTER FAILOVER: promotion {took:?} after the command; {total} answers, {} not as \
         on a still cluster: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // Never a wrong answer. A few "try again" (503, code 1) at one instant were seen once
    // in a loaded full run (4 answers within 2 ms: most likely a write the failover
    // paused on the old master, which holds every later command of the one multiplexed
    // connection to it past the 1 s bound); none in the runs before.
    let (retry, other): (Vec<_>, Vec<_>) = wrong
        .iter()
        .partition(|(_, what)| what.contains(" 503 ") && what.contains("\"code\":1"));
    assert!(other.is_empty(), "{:?}", &other[..other.len().min(10)]);
    assert!(retry.len() <= 20, "{} answers 503", retry.len());
    for token in &live {
        assert_eq!(app.check_token(token).await.0, StatusCode::OK);
    }
    app.cleanup().await;
    drop(cluster);
}

/// The first revocation after a planned failover, before anything told tokencache of it:
/// its write reaches the demoted master, which refuses it with `MOVED` (and its `WAIT` with
/// an error of its own); it is sent again to the new master, and waits for its replica
/// there. The master failed over holds the refresh key only: the logout reads the access
/// key and runs the index's script first, and a `MOVED` of either would have told
/// tokencache of the new master before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_logout_right_after_a_planned_failover_of_its_tokens_master_answers_and_holds() {
    let cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.rules.max_sessions_per_user = 10_000;
    })
    .await;
    let prefix = app.settings.redis_prefix.clone();
    let index = format!("{prefix}u:alice");
    let key = |kind: &str, token: &str| format!("{prefix}{kind}:{}", TokenHash::of(token).encode());
    let (token, refresh, master) = loop {
        let (token, refresh) = app.login().await;
        let of_refresh = cluster.master_of(&key("r", &refresh));
        if of_refresh != cluster.master_of(&key("a", &token))
            && of_refresh != cluster.master_of(&index)
        {
            break (token, refresh, cluster.nodes[of_refresh].port);
        }
    };
    let moved = key("r", &refresh);
    let replica = cluster.replica_of(master);
    assert!(cluster
        .cli(replica, &["cluster", "failover"])
        .contains("OK"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.promoted(&moved, master) {
        assert!(Instant::now() < deadline, "the replica was not promoted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The demoted master follows the new one (so that a replica can confirm).
    crate::common::topology::wait_replicated(replica, master);
    let (status, v) = app.post("/api/v1/logout", &json!({ "token": token })).await;
    assert_eq!(status, StatusCode::OK, "logout: {v}");
    assert_fails(&app.check_token(&token).await, 401, 102);
    assert_fails(&app.refresh(&refresh).await, 401, 102);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn a_planned_sentinel_failover_answers_every_request() {
    let setup = crate::common::topology::LocalSentinels::start();
    let app = serve_on_with(
        RedisMode::Sentinel,
        setup.urls(),
        Some(setup.name.clone()),
        |s| {
            s.rules.max_sessions_per_user = 10_000;
            s.rules.limits.ip_authorize = 0;
            s.redis_timeout = tokencache::app::DEFAULT_REDIS_TIMEOUT;
        },
    )
    .await;
    let mut live = Vec::new();
    for _ in 0..100 {
        live.push(app.login().await.0);
    }
    let (total, wrong, (setup, started, took, synced)) = traffic_through(&app, &live, move || {
        let old = setup.master_port();
        let started = Instant::now();
        let sentinel = setup.sentinels[0].port;
        assert!(setup
            .guard
            .cli(sentinel, false, &["sentinel", "failover", &setup.name])
            .contains("OK"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while setup.master_port() == old {
            assert!(Instant::now() < deadline, "the sentinels did not switch");
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = started.elapsed();
        // Until the demoted master follows the new one: revocations wait for a replica.
        let old = old.expect("a master before");
        while !setup.guard.cli(old, true, &["role"]).contains("connected") {
            assert!(Instant::now() < deadline, "the old master did not follow");
            std::thread::sleep(Duration::from_millis(20));
        }
        let synced = started.elapsed();
        (setup, started, took, synced)
    })
    .await;
    // Sentinel demotes the old master without pausing its clients first: what it was
    // given in the switch is lost. A revocation that reached it answers 503 (no replica
    // confirmed it), and so does one made before the old master follows the new one (a
    // revocation waits for a replica); a command caught in the switch times out (503); a
    // refresh or a login it answered can be lost (the next use of its token is refused,
    // 102: a refresh, or the logout of that login, seen once in a loaded full run),
    // unless --redis-wait-on-issue. All of it before the new master has its replica, none
    // after.
    let window = |w: &[(Instant, String)]| {
        w.iter()
            .map(|(t, _)| t.saturating_duration_since(started))
            .max()
            .unwrap_or_default()
    };
    let unexpected: Vec<_> = wrong
        .iter()
        .filter(|(_, w)| {
            !(w.contains(" 503 ") && w.contains("\"code\":1")
                || w.starts_with("refresh: 401")
                || w.starts_with("logout: 401"))
        })
        .collect();
    println!(
        "SENTINEL FAILOVER: the sentinels named the new master {took:?} after the command, \
         the old one followed it after {synced:?}; {total} answers, {} not as on a still \
         setup ({} 503, {} refresh 102), the last {:?} after the command",
        wrong.len(),
        wrong.iter().filter(|(_, w)| w.contains(" 503 ")).count(),
        wrong
            .iter()
            .filter(|(_, w)| w.starts_with("refresh: 401"))
            .count(),
        window(&wrong)
    );
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(
        window(&wrong) <= synced + Duration::from_millis(500),
        "answers not as on a still setup {:?} after the command",
        window(&wrong)
    );
    for token in &live {
        assert_eq!(app.check_token(token).await.0, StatusCode::OK);
    }
    app.cleanup().await;
    drop(setup);
}
