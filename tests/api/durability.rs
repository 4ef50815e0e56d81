//! Acknowledged revocations survive a failover: a revocation answers success only once a
//! replica has it (`WAIT`), and 503 when none confirms in time, so that a master lost
//! right after the answer never undoes it. Tried as an operator lives it, on a Sentinel
//! setup and on a Cluster of their own: the replica stalled (`DEBUG SLEEP`) and its link
//! cut by the master (`CLIENT KILL TYPE replica`), a logout, the master killed, the
//! replica promoted. Logins likewise: a login is answered once a replica has its entry in
//! the user's index, or a token could outlive its entry and escape a logout-all.
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

/// `call` again every 100 ms while it answers 503, for at most 10 s, as a client retries:
/// a failover not yet seen through, or a replica that has just rejoined and does not yet
/// confirm within `--redis-wait-timeout-ms` on a loaded machine (seen once in a full
/// parallel run). Its last answer.
pub(crate) async fn past_503<F>(mut call: impl FnMut() -> F) -> (StatusCode, serde_json::Value)
where
    F: std::future::Future<Output = (StatusCode, serde_json::Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call().await;
        if answer.0 != StatusCode::SERVICE_UNAVAILABLE || Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs `token` out, again while it answers 503 (`past_503`). A retry that answered 503
/// may have run (its revoked value written, not confirmed in time by a replica that has
/// just rejoined): the next one then finds the token revoked (401, 102), which is the
/// retry's purpose too.
pub(crate) async fn logout_past_503(app: &TestApp, token: &str) {
    let (status, v) = past_503(|| logout(app, token)).await;
    assert!(
        status == StatusCode::OK || (status == StatusCode::UNAUTHORIZED && v["code"] == json!(102)),
        "the logout answered {status} {v}"
    );
}

/// The retry of a logout that answered 503: 200 when it revoked the token, or 401 (102)
/// when an earlier try had written the revoked value (a try answered 503 after its
/// writes, the replica having just rejoined), which it answers only once a replica has
/// that value. Either way the token is refused, and the caller's next failover must not
/// bring it back.
async fn retry_holds(app: &TestApp, access: &str) {
    let (status, v) = past_503(|| logout(app, access)).await;
    assert!(
        status == StatusCode::OK || (status == StatusCode::UNAUTHORIZED && v["code"] == json!(102)),
        "the retry: {status} {v}"
    );
    println!("the retried logout answered {status}");
    assert_fails(&app.check_token(access).await, 401, 102);
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
    let after = past_503(|| app.check_token(&access)).await;
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
    retry_holds(&app, &access).await;
    setup.replica.kill();
    until(
        "the old master promoted again",
        Duration::from_secs(30),
        || setup.master_port() == Some(master),
    )
    .await;
    let again = past_503(|| app.check_token(&access)).await;
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
    let (replica, r) = replica_of(&cluster, master);
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
    let after = past_503(|| app.check_token(&access)).await;
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
    retry_holds(&app, &access).await;
    cluster.nodes[r].kill();
    until(
        "the old master promoted again",
        Duration::from_secs(30),
        || cluster.promoted(&key, replica),
    )
    .await;
    let again = past_503(|| app.check_token(&access)).await;
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

/// The port of `master`'s first replica, and that replica's place in `cluster.nodes`.
fn replica_of(cluster: &LocalCluster, master: u16) -> (u16, usize) {
    let replica = cluster.replica_of(master);
    let r = cluster
        .nodes
        .iter()
        .position(|n| n.port == replica)
        .unwrap();
    (replica, r)
}

/// A login's index entry and its tokens on different masters: the index's master loses
/// its replica, logins are made, the master dies, its replica is promoted, and the user
/// logs out everywhere (with a token filed before). Returns what each login during the
/// cut answered, and for each one answered success whose access key is on another
/// master, what its token answers after the logout-all.
async fn cluster_index_story(wait: Option<u32>) -> (Vec<StatusCode>, Vec<StatusCode>) {
    let mut cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |s| {
        s.redis_wait_replicas = wait
    })
    .await;
    let (filed, _) = app.login().await;
    let index = format!("{}u:alice", app.settings.redis_prefix);
    let access_key = |token: &str| {
        format!(
            "{}a:{}",
            app.settings.redis_prefix,
            TokenHash::of(token).encode()
        )
    };
    let m = cluster.master_of(&index);
    let master = cluster.nodes[m].port;
    let (replica, _) = replica_of(&cluster, master);
    wait_replicated(master, replica);

    let sleeper = cut_replica(master, replica, "4");
    let mut answers = Vec::new();
    let mut elsewhere = Vec::new();
    // Logins until one is answered whose access key is not on the index's master (with
    // no wait, two in three are), at most six.
    for _ in 0..6 {
        let (status, v) = app.authorize("alice", PASSWORD).await;
        answers.push(status);
        if status == StatusCode::OK {
            let token = v["data"]["access_token"].as_str().unwrap().to_owned();
            if cluster.master_of(&access_key(&token)) != m {
                elsewhere.push(token);
                break;
            }
        } else {
            assert_eq!(v["code"], json!(1), "{status} {v}");
        }
    }
    cluster.nodes[m].kill();
    sleeper.join().unwrap();
    until("the replica promoted", Duration::from_secs(30), || {
        cluster.promoted(&index, master)
    })
    .await;
    // A revocation waits for a replica of the promoted master: the old one, restarted.
    cluster.nodes[m].restart();
    until(
        "the old master replicates the new one",
        Duration::from_secs(30),
        || cluster.cli(master, &["role"]).contains("connected"),
    )
    .await;
    let all = json!({ "token": filed, "all": true });
    // A try that answered 503 may have run whole but for its replica's confirmation:
    // the next then finds its own token revoked (401, 102). Either way the tokens below
    // must be refused.
    let (status, v) = past_503(|| app.post("/api/v1/logout", &all)).await;
    assert!(
        status == StatusCode::OK || (status == StatusCode::UNAUTHORIZED && v["code"] == json!(102)),
        "logout-all: {status} {v}"
    );
    let mut after = Vec::new();
    for token in &elsewhere {
        after.push(app.check_token(token).await.0);
    }
    println!(
        "cluster, wait {wait:?}: logins while the index's replica was cut answered \
         {answers:?}; after the failover and a logout-all, the tokens filed elsewhere \
         answer {after:?}"
    );
    app.cleanup().await;
    (answers, after)
}

/// A login is answered only once a replica has its index entry: while none can confirm,
/// logins answer 503 (to be retried), so no token handed out can outlive its entry and
/// escape a later logout-all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_a_login_no_replica_filed_answers_503() {
    let (answers, after) = cluster_index_story(None).await;
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    assert!(after.is_empty());
}

/// What filing without a wait risks, shown: the login answers success, its index entry
/// dies with the master, and the user's logout-all, answered success, leaves the token
/// valid (the history checker's violation under a replica cut then a master kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_and_no_wait_a_failover_lets_a_token_escape_logout_all() {
    let (answers, after) = cluster_index_story(Some(0)).await;
    assert_eq!(answers.last(), Some(&StatusCode::OK), "{answers:?}");
    assert_eq!(after, [StatusCode::OK]);
}

/// `--redis-wait-on-issue` on one node: a login is one transaction whose `WAIT` follows
/// it in the same pipeline. While the replica is cut, logins answer 503 (code 1), and
/// without the setting they answer 200 (no wait: the keys and the index entry survive a
/// failover together or not at all); once the replica is back, 200 with it too.
async fn sentinel_login_story(on_issue: bool) -> (StatusCode, StatusCode) {
    let setup = LocalSentinels::start();
    let app = serve_on_with(
        RedisMode::Sentinel,
        setup.urls(),
        Some(setup.name.clone()),
        |s| s.redis_wait_on_issue = on_issue,
    )
    .await;
    let (master, replica) = (setup.master.port, setup.replica.port);
    app.login().await;
    wait_replicated(master, replica);
    let sleeper = cut_replica(master, replica, "2");
    let (during, v) = app.authorize("alice", PASSWORD).await;
    assert!(
        during == StatusCode::OK || v["code"] == json!(1),
        "{during} {v}"
    );
    sleeper.join().unwrap();
    wait_replicated(master, replica);
    let (after, v) = app.authorize("alice", PASSWORD).await;
    assert_eq!(after, StatusCode::OK, "{v}");
    let token = v["data"]["access_token"].as_str().unwrap();
    assert_eq!(app.check_token(token).await.0, StatusCode::OK);
    app.cleanup().await;
    (during, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn with_sentinel_and_wait_on_issue_a_login_no_replica_confirmed_answers_503() {
    let (during, _) = sentinel_login_story(true).await;
    assert_eq!(during, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn with_sentinel_a_login_does_not_wait_for_a_replica() {
    let (during, _) = sentinel_login_story(false).await;
    assert_eq!(during, StatusCode::OK);
}

/// A logout answered 503 has written its revoked value on the master; while no replica
/// has it, every retry answers 503 too (logout and logout-all alike), never 401 ("token
/// invalid", which the client would take as done): a failover now would bring the token
/// back. Once the replica has caught up, the retry answers 401 and the token stays
/// refused through the master's loss.
async fn retried_logout_story(setup: &mut LocalSentinels, app: &TestApp) {
    let (access, refresh) = app.login().await;
    let (master, replica) = (setup.master.port, setup.replica.port);
    wait_replicated(master, replica);
    let sleeper = cut_replica(master, replica, "4");
    let (status, v) = logout(app, &access).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(1)),
        "{v}"
    );
    for body in [
        json!({ "token": access }),
        json!({ "token": access, "all": true }),
        json!({ "token": refresh }),
    ] {
        let (status, v) = app.post("/api/v1/logout", &body).await;
        assert_eq!(
            (status, &v["code"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!(1)),
            "a retry while no replica has the revocation, {body}: {v}"
        );
    }
    // RFC 7009 likewise: its 200 would say the token is revoked.
    let (status, _, _) = app
        .oauth("/oauth2/revoke", &[("token", access.as_str())], APP_SECRET)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "RFC 7009 retry");
    sleeper.join().unwrap();
    wait_replicated(master, replica);
    let (status, v) = past_503(|| logout(app, &access)).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::UNAUTHORIZED, &json!(102)),
        "{v}"
    );
    setup.master.kill();
    until("the replica promoted", Duration::from_secs(30), || {
        setup.master_port() == Some(replica)
    })
    .await;
    for token in [&access, &refresh] {
        let again = past_503(|| app.check_token(token)).await;
        assert_fails(&again, 401, 102);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn with_sentinel_a_retried_logout_answers_401_only_once_a_replica_has_the_revocation() {
    let mut setup = LocalSentinels::start();
    let app = serve_on_with(
        RedisMode::Sentinel,
        setup.urls(),
        Some(setup.name.clone()),
        |_| {},
    )
    .await;
    retried_logout_story(&mut setup, &app).await;
    app.cleanup().await;
}

/// The same on a cluster, for the master of the access token's slot: while its replica
/// is cut, a retry by the access token answers 503 (logout and logout-all), and once the
/// replica has caught up, 401, which holds through that master's loss. (A retry by the
/// refresh token confirms the refresh token's master only: docs/scaling-out.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_a_retried_logout_answers_401_only_once_a_replica_has_the_revocation() {
    let mut cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |_| {}).await;
    let (access, _) = app.login().await;
    let key = format!(
        "{}a:{}",
        app.settings.redis_prefix,
        TokenHash::of(&access).encode()
    );
    let m = cluster.master_of(&key);
    let master = cluster.nodes[m].port;
    let (replica, _) = replica_of(&cluster, master);
    wait_replicated(master, replica);
    let sleeper = cut_replica(master, replica, "4");
    for body in [
        json!({ "token": access }),
        json!({ "token": access }),
        json!({ "token": access, "all": true }),
    ] {
        let (status, v) = app.post("/api/v1/logout", &body).await;
        assert_eq!(
            (status, &v["code"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!(1)),
            "while no replica has the revocation, {body}: {v}"
        );
    }
    sleeper.join().unwrap();
    wait_replicated(master, replica);
    let (status, v) = past_503(|| logout(&app, &access)).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::UNAUTHORIZED, &json!(102)),
        "{v}"
    );
    cluster.nodes[m].kill();
    until("the replica promoted", Duration::from_secs(30), || {
        cluster.promoted(&key, master)
    })
    .await;
    let again = past_503(|| app.check_token(&access)).await;
    assert_fails(&again, 401, 102);
    app.cleanup().await;
}

/// The pair's other token on another master: a logout by access token wrote the refresh
/// token's revoked value on a master whose replica is cut (503). A retry by the access
/// token finds its own key revoked on a master whose replica is fine; it answers 401 only
/// once the refresh token's master has a replica with that value too (each master gets a
/// write and its `WAIT`), and the refresh token stays refused when that master is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
async fn on_a_cluster_a_retried_logout_confirms_the_pair_s_other_token_on_its_master() {
    let mut cluster = LocalCluster::start();
    let app = serve_on_with(RedisMode::Cluster, cluster.urls(), None, |_| {}).await;
    let prefix = app.settings.redis_prefix.clone();
    let key = |kind: &str, token: &str| format!("{prefix}{kind}:{}", TokenHash::of(token).encode());
    // A pair whose two tokens sit on different masters (two in three do).
    let (access, refresh) = loop {
        let (a, r) = app.login().await;
        if cluster.master_of(&key("a", &a)) != cluster.master_of(&key("r", &r)) {
            break (a, r);
        }
    };
    let m = cluster.master_of(&key("r", &refresh));
    let master = cluster.nodes[m].port;
    let (replica, _) = replica_of(&cluster, master);
    wait_replicated(master, replica);
    let sleeper = cut_replica(master, replica, "4");
    let (status, v) = logout(&app, &access).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(1)),
        "{v}"
    );
    let (status, v) = logout(&app, &access).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(1)),
        "a retry while the refresh token's master has no replica with its revocation: {v}"
    );
    sleeper.join().unwrap();
    wait_replicated(master, replica);
    let (status, v) = past_503(|| logout(&app, &access)).await;
    assert_eq!(
        (status, &v["code"]),
        (StatusCode::UNAUTHORIZED, &json!(102)),
        "{v}"
    );
    cluster.nodes[m].kill();
    until("the replica promoted", Duration::from_secs(30), || {
        cluster.promoted(&key("r", &refresh), master)
    })
    .await;
    let again = past_503(|| app.refresh(&refresh)).await;
    assert_fails(&again, 401, 102);
    app.cleanup().await;
}
