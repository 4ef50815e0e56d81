//! The history test: many concurrent clients against two tokencache instances issue
//! logins, refreshes (replays among them, when two clients spend one token), logouts,
//! logouts everywhere, password changes, client_credentials grants and checks, with
//! random timing; every operation's start, end and answer is recorded, and `checker`
//! proves over the whole history what the server promises (see its module's text). It
//! prints its figures and fails on any violation.
//!
//! Runs on MariaDB + standalone Redis (two instances on one key prefix, near cache off,
//! and near cache on) and on the embedded stores (two listeners on one in-process store).
//! `HISTORY_OPS` sets the operations per run (10,000 by default).
mod checker;
#[path = "../common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokencache::app::{self, Settings};

use checker::{Event, History, Op, Pair, PairId};
use common::*;

const USERS: usize = 4;
const WORKERS: usize = 16;
/// The session cap of the run: small, so that trims happen all along.
const CAP: usize = 5;
const PASSWORD: &str = "history-pw";
/// A client whose codes are ignored: a password change needs no code.
const LOOSE: &str = "history-loose";
const LOOSE_SECRET: &str = "history-loose-secret";

fn user(n: usize) -> String {
    format!("user{n}@example.com")
}

/// The tokens handed out so far.
#[derive(Default)]
struct Known {
    /// Per pair: its access and refresh tokens.
    tokens: Vec<(String, String)>,
    /// client_credentials tokens.
    client_tokens: Vec<String>,
}

struct Run {
    started: Instant,
    history: Mutex<History>,
    known: Mutex<Known>,
    bases: Vec<String>,
    http: reqwest::Client,
    /// Answers that were neither success nor a refusal (a 503, say): counted, not checked.
    unknown: Mutex<Vec<String>>,
}

impl Run {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn base(&self) -> &str {
        &self.bases[rand::rng().random_range(0..self.bases.len())]
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base()))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn record(&self, start: Duration, op: Op) {
        let end = self.now();
        self.history
            .lock()
            .unwrap()
            .events
            .push(Event { start, end, op });
    }

    fn add_pair(
        &self,
        user: usize,
        parent: Option<PairId>,
        issued: (Duration, Duration),
        tokens: (String, String),
    ) -> PairId {
        let mut history = self.history.lock().unwrap();
        let id = history.pairs.len();
        let family = parent.map_or(id, |p| history.pairs[p].family);
        history.pairs.push(Pair {
            user,
            parent,
            family,
            issued,
        });
        let mut known = self.known.lock().unwrap();
        known.tokens.push(tokens);
        assert_eq!(known.tokens.len(), id + 1);
        id
    }

    fn odd(&self, what: &str, status: StatusCode, v: &Value) {
        self.unknown
            .lock()
            .unwrap()
            .push(format!("{what}: {status} {v}"));
    }

    fn random_pair(&self) -> Option<(PairId, (String, String))> {
        let known = self.known.lock().unwrap();
        if known.tokens.is_empty() {
            return None;
        }
        // Mostly recent pairs: those are the ones clients hold.
        let n = known.tokens.len();
        let from = n.saturating_sub(40);
        let id = rand::rng().random_range(from..n);
        Some((id, known.tokens[id].clone()))
    }

    async fn login(&self, u: usize) {
        let time = now_ms().to_string();
        let name = user(u);
        let body = json!({
            "appid": APP_KEY, "token_type": "web", "username": name, "password": PASSWORD,
            "time": time, "token": sign(&[APP_KEY, &name, PASSWORD, &time], APP_SECRET),
        });
        let start = self.now();
        let (status, v) = self.post("/api/v1/authorize", &body).await;
        let end = self.now();
        if status != StatusCode::OK {
            return self.odd("login", status, &v);
        }
        let d = &v["data"];
        let tokens = (
            d["access_token"].as_str().unwrap().to_owned(),
            d["refresh_token"].as_str().unwrap().to_owned(),
        );
        let pair = self.add_pair(u, None, (start, end), tokens);
        self.history.lock().unwrap().events.push(Event {
            start,
            end,
            op: Op::Login { pair },
        });
    }

    async fn refresh(&self) {
        let Some((from, (_, refresh))) = self.random_pair() else {
            return;
        };
        let start = self.now();
        let (status, v) = self
            .post(
                "/api/v1/refresh_token",
                &json!({ "refresh_token": refresh }),
            )
            .await;
        let end = self.now();
        match (status, v["code"].as_i64()) {
            (StatusCode::OK, _) => {
                let d = &v["data"];
                let tokens = (
                    d["access_token"].as_str().unwrap().to_owned(),
                    d["refresh_token"].as_str().unwrap().to_owned(),
                );
                let u = self.history.lock().unwrap().pairs[from].user;
                let pair = self.add_pair(u, Some(from), (start, end), tokens);
                self.history.lock().unwrap().events.push(Event {
                    start,
                    end,
                    op: Op::Refresh {
                        from,
                        answer: Ok(pair),
                    },
                });
            }
            (StatusCode::UNAUTHORIZED, Some(102)) => self.record(
                start,
                Op::Refresh {
                    from,
                    answer: Err(()),
                },
            ),
            _ => {
                if unavailable(status, &v) {
                    self.record(start, Op::MaybeRefreshed { from });
                }
                self.odd("refresh", status, &v)
            }
        }
    }

    async fn check(&self) {
        let Some((pair, (access, _))) = self.random_pair() else {
            return;
        };
        self.check_pair(pair, &access).await;
    }

    async fn check_pair(&self, pair: PairId, access: &str) -> Option<bool> {
        let start = self.now();
        let (status, v) = self
            .post("/api/v1/check_token", &json!({ "token": access }))
            .await;
        let valid = match (status, v["code"].as_i64()) {
            (StatusCode::OK, _) => true,
            (StatusCode::UNAUTHORIZED, Some(102)) => false,
            _ => {
                self.odd("check", status, &v);
                return None;
            }
        };
        self.record(start, Op::Check { pair, valid });
        Some(valid)
    }

    async fn logout(&self, all: bool) {
        let Some((pair, (access, refresh))) = self.random_pair() else {
            return;
        };
        let token = if rand::rng().random_bool(0.5) {
            access
        } else {
            refresh
        };
        let start = self.now();
        let (status, v) = self
            .post("/api/v1/logout", &json!({ "token": token, "all": all }))
            .await;
        match (status, v["code"].as_i64()) {
            (StatusCode::OK, _) => {
                let op = if all {
                    Op::RevokeUser {
                        user: self.history.lock().unwrap().pairs[pair].user,
                    }
                } else {
                    Op::Logout { pair }
                };
                self.record(start, op);
            }
            // Already dead: nothing revoked, nothing promised.
            (StatusCode::UNAUTHORIZED, Some(102)) => {}
            _ => {
                if unavailable(status, &v) {
                    let user = self.history.lock().unwrap().pairs[pair].user;
                    let op = if all {
                        Op::MaybeRevoked {
                            pair: None,
                            user: Some(user),
                        }
                    } else {
                        Op::MaybeRevoked {
                            pair: Some(pair),
                            user: None,
                        }
                    };
                    self.record(start, op);
                }
                self.odd("logout", status, &v)
            }
        }
    }

    async fn change_password(&self, u: usize) {
        let name = user(u);
        let bundle = "history";
        // The same password again: every token is revoked all the same, and concurrent
        // logins keep working.
        let body = json!({
            "username": name, "password": PASSWORD, "verify": "", "flag": "2",
            "bundleid": bundle, "appid": LOOSE,
            "signature": sign(&[&name, PASSWORD, "", "2", bundle, LOOSE], LOOSE_SECRET),
        });
        let start = self.now();
        let (status, v) = self.post("/api/v1/doaction", &body).await;
        if status == StatusCode::OK {
            self.record(start, Op::RevokeUser { user: u });
        } else {
            if unavailable(status, &v) {
                self.record(
                    start,
                    Op::MaybeRevoked {
                        pair: None,
                        user: Some(u),
                    },
                );
            }
            self.odd("password change", status, &v);
        }
    }

    async fn client_token(&self) {
        let r = self
            .http
            .post(format!("{}/oauth2/token", self.base()))
            .basic_auth(APP_KEY, Some(APP_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match v["access_token"].as_str() {
            Some(token) if status == StatusCode::OK => {
                self.known.lock().unwrap().client_tokens.push(token.into())
            }
            _ => self.odd("client_credentials", status, &v),
        }
    }

    async fn client_check(&self) {
        let (token, id) = {
            let known = self.known.lock().unwrap();
            if known.client_tokens.is_empty() {
                return;
            }
            let id = rand::rng().random_range(0..known.client_tokens.len());
            (known.client_tokens[id].clone(), id)
        };
        let start = self.now();
        let (status, v) = self
            .post("/api/v1/check_token", &json!({ "token": token }))
            .await;
        match (status, v["code"].as_i64()) {
            (StatusCode::OK, _) => self.record(
                start,
                Op::ClientCheck {
                    token: id,
                    valid: true,
                },
            ),
            (StatusCode::UNAUTHORIZED, Some(102)) => self.record(
                start,
                Op::ClientCheck {
                    token: id,
                    valid: false,
                },
            ),
            _ => self.odd("client check", status, &v),
        }
    }

    /// One worker: random operations with random pauses until `ops` operations are in
    /// the history (an answer 503 is not: under a fault the workload runs until enough
    /// were answered) and `hold` is down, or `DEADLINE` has passed.
    async fn worker(self: Arc<Self>, ops: usize, hold: Arc<std::sync::atomic::AtomicBool>) {
        use std::sync::atomic::Ordering;
        const DEADLINE: Duration = Duration::from_secs(120);
        while (self.history.lock().unwrap().events.len() < ops || hold.load(Ordering::Relaxed))
            && self.now() < DEADLINE
        {
            let roll = rand::rng().random_range(0..1000);
            let u = rand::rng().random_range(0..USERS);
            match roll {
                0..=99 => self.login(u).await,
                100..=299 => self.refresh().await,
                300..=339 => self.logout(false).await,
                340..=354 => self.logout(true).await,
                355..=364 => self.change_password(u).await,
                365..=384 => self.client_token().await,
                385..=424 => self.client_check().await,
                _ => self.check().await,
            }
            let pause = rand::rng().random_range(0..300);
            if pause > 0 {
                tokio::time::sleep(Duration::from_micros(pause)).await;
            }
        }
    }
}

/// A 503 with code 1: the store could not tell (a fault); the operation may have run.
fn unavailable(status: StatusCode, v: &Value) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE && v["code"] == json!(1)
}

/// Settings of the run: the cap, and no limits or checks that would refuse its own
/// traffic (the same user logs in from many clients at once).
fn adjust(settings: &mut Settings) {
    settings.rules.max_sessions_per_user = CAP;
    settings.rules.freshness_window = 0;
    let limits = &mut settings.rules.limits;
    limits.login_failures = 0;
    limits.ip_authorize = 0;
    limits.ip_doaction = 0;
    limits.ip_get_verify = 0;
    limits.ip_unknown_clients = 0;
}

/// Runs the workload against `bases`, then the quiescent checks, and checks the history.
async fn run(what: &str, bases: Vec<String>) -> checker::Report {
    run_with(what, bases, false, async {}).await
}

/// The same, with `fault` running beside the workload (503s then allowed, and answered
/// logins and refreshes lost are counted rather than violations).
async fn run_with(
    what: &str,
    bases: Vec<String>,
    faulty: bool,
    fault: impl std::future::Future<Output = ()>,
) -> checker::Report {
    let ops: usize = std::env::var("HISTORY_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let run = Arc::new(Run {
        started: Instant::now(),
        history: Mutex::new(History {
            cap: CAP,
            ..History::default()
        }),
        known: Mutex::default(),
        bases,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(WORKERS)
            .build()
            .unwrap(),
        unknown: Mutex::default(),
    });
    // The workload goes on until the fault is over, whatever the budget.
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(run.clone().worker(ops, hold.clone())))
        .collect();
    fault.await;
    hold.store(false, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    // A burst at the end: 40 logins of one user at once (the cap must keep the newest).
    let burst: Vec<_> = (0..40).map(|_| run.login(0)).collect();
    futures::future::join_all(burst).await;
    let took = run.now();
    // Quiescence: every pair checked once more.
    let tokens = run.known.lock().unwrap().tokens.clone();
    let mut quiescent = Vec::new();
    for (pair, (access, _)) in tokens.iter().enumerate() {
        if let Some(live) = run.check_pair(pair, access).await {
            quiescent.push((pair, live));
        }
    }
    let mut history = std::mem::take(&mut *run.history.lock().unwrap());
    history.quiescent = quiescent;
    history.lost_allowed = faulty;
    let report = history.check();
    let unknown = run.unknown.lock().unwrap();
    println!(
        "history {what}: {} operations in {took:.1?} ({} logins, {} pairs); checks {} valid, {} refused; \
         refreshes {} ok, {} refused ({} replays); {} revocations; {} pairs live at the end; \
         {} answers neither success nor refusal; {} violations",
        report.ops,
        report.logins,
        history.pairs.len(),
        report.checks_valid,
        report.checks_refused,
        report.refreshes_ok,
        report.refreshes_refused,
        report.replays,
        report.revocations,
        report.live_at_end,
        unknown.len(),
        report.violations.len(),
    );
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for v in &report.violations {
        let kind = if v.contains("checked valid") {
            "checked valid after a revocation answered"
        } else if v.contains("spent at") {
            "refresh token spent after a revocation answered"
        } else if v.contains("times") {
            "refresh token spent twice"
        } else if v.contains("client_credentials") {
            "client_credentials token refused"
        } else if v.contains("over the cap") {
            "more live pairs than the cap"
        } else if v.contains("must live") {
            "fewer live pairs than the cap allows"
        } else if v.contains("dead at the end") {
            "a pair nothing revoked is dead"
        } else {
            "live at the end after a revocation"
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    for (kind, n) in &kinds {
        println!("  {n:>5} × {kind}");
    }
    for v in report.violations.iter().take(8) {
        println!("  e.g. {v}");
    }
    if std::env::var_os("HISTORY_DUMP").is_some() {
        // The user's events, to read a violation by.
        for v in report.violations.iter().take(2) {
            let Some(pair) = v
                .strip_prefix("pair ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let user = history.pairs[pair].user;
            println!("  pair {pair}: {:?}", history.pairs[pair]);
            for e in &history.events {
                let mine = match &e.op {
                    Op::Login { pair } | Op::Check { pair, .. } | Op::Logout { pair } => {
                        history.pairs[*pair].user == user
                    }
                    Op::Refresh { from, .. } => history.pairs[*from].user == user,
                    Op::RevokeUser { user: u } => *u == user,
                    Op::ClientCheck { .. } | Op::MaybeRevoked { .. } => false,
                    Op::MaybeRefreshed { from } => history.pairs[*from].user == user,
                };
                if mine && e.end + Duration::from_millis(30) > history.pairs[pair].issued.0 {
                    println!("    {:?}..{:?} {:?}", e.start, e.end, e.op);
                }
            }
        }
    }
    let unexpected: Vec<&String> = unknown
        .iter()
        .filter(|u| {
            !(faulty
                && u.contains(" 503 ")
                && (u.contains("\"code\":1") || u.contains("temporarily_unavailable")))
        })
        .collect();
    if faulty {
        // 503s by operation: "check: 503 {...}" counts under "check".
        let mut by_op = std::collections::BTreeMap::<&str, usize>::new();
        for u in unknown.iter() {
            *by_op.entry(u.split(':').next().unwrap_or("")).or_default() += 1;
        }
        println!(
            "  {} answers 503 ({by_op:?}); {} answers of logins and refreshes undone by the \
             fault (a pair or a client's token lost, a spent refresh token live again)",
            unknown.len() - unexpected.len(),
            report.lost
        );
    }
    assert!(
        unexpected.is_empty(),
        "unexpected answers: {:?}",
        &unexpected[..unexpected.len().min(10)]
    );
    assert!(
        report.ops >= ops,
        "only {} operations recorded before the deadline",
        report.ops
    );
    report
}

/// Two instances on the same stores, the test client, the loose client and the users;
/// `second` adjusts the second one's settings only.
async fn two_instances(
    backend: Backend,
    adjust_more: impl Fn(&mut Settings),
    second: impl Fn(&mut Settings),
) -> (TestApp, Vec<String>) {
    let (mut settings, db, sqlite) = TestApp::fresh_settings(backend).await;
    adjust(&mut settings);
    adjust_more(&mut settings);
    let first = TestApp::start(backend, settings.clone(), db, sqlite).await;
    first
        .create_client(APP_KEY, APP_SECRET, 3600, false, None)
        .await;
    first.create_loose_client(LOOSE, LOOSE_SECRET).await;
    for u in 0..USERS {
        first.create_user(&user(u), PASSWORD).await;
    }
    let state = if backend.redis() {
        // A second server's own state (its connections, its near cache) on the same
        // database and Redis.
        second(&mut settings);
        app::state(&settings).await.expect("second instance")
    } else {
        // The in-process store lives in one process: a second listener on its state.
        first.state.clone()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bases = vec![
        first.base.clone(),
        format!("http://{}", listener.local_addr().unwrap()),
    ];
    tokio::spawn(app::run(listener, state, std::future::pending()));
    (first, bases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn revocation_holds_over_a_concurrent_history_on_redis() {
    let (app, bases) = two_instances(Backend::Real, |_| {}, |_| {}).await;
    let report = run("on MariaDB + Redis, two instances", bases).await;
    assert!(
        report.violations.is_empty(),
        "{} violations",
        report.violations.len()
    );
    app.cleanup().await;
}

/// How late a check may still be answered valid from a near cache after a revocation
/// answered: the invalidation is pushed before the revoking write is answered, but the
/// instance that caches may not have read the push yet when a check arrives. Seen once in
/// a loaded full run: a check begun 0.46 ms after the logout-all's answer was answered
/// valid (docs/near-cache.md).
const NEAR_CACHE_WINDOW: Duration = Duration::from_millis(2);

/// The violations but the near cache's window: a check answered valid at most `window`
/// after the revocation answered is printed and let through.
fn beyond_window(violations: &[String], window: Duration) -> Vec<&String> {
    fn parse(text: &str) -> Option<Duration> {
        let (number, unit) = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|i| text.split_at(i))?;
        let value: f64 = number.parse().ok()?;
        let secs = match unit {
            "s" => value,
            "ms" => value / 1e3,
            "µs" => value / 1e6,
            "ns" => value / 1e9,
            _ => return None,
        };
        Some(Duration::from_secs_f64(secs))
    }
    violations
        .iter()
        .filter(|v| {
            let late = v
                .strip_prefix("pair ")
                .and_then(|rest| rest.split_once(" checked valid at "))
                .and_then(|(_, rest)| rest.split_once(", after the "))
                .and_then(|(checked, rest)| {
                    let answered = rest.rsplit_once(" answered at ")?.1;
                    Some((parse(checked)?, parse(answered)?))
                })
                .map(|(checked, answered)| checked.saturating_sub(answered));
            match late {
                Some(late) if late <= window => {
                    println!("within the near cache's window ({late:?}): {v}");
                    false
                }
                _ => true,
            }
        })
        .collect()
}

#[test]
fn only_checks_within_the_window_are_let_through() {
    let v = |checked: &str, answered: &str| {
        format!(
            "pair 7 checked valid at {checked}, after the logout of user 0 answered at {answered}"
        )
    };
    let violations = vec![
        v("6.128089198s", "6.127632926s"),
        v("6.2s", "6.1s"),
        v("900µs", "950µs"),
        "pair 3 spent at 1s".to_owned(),
    ];
    let left = beyond_window(&violations, NEAR_CACHE_WINDOW);
    assert_eq!(left, [&violations[1], &violations[3]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and Redis: cargo test -- --include-ignored"]
async fn revocation_holds_over_a_concurrent_history_on_redis_with_the_near_cache() {
    let (app, bases) = two_instances(Backend::Real, |s| s.near_cache = Some(10_000), |_| {}).await;
    let report = run(
        "on MariaDB + Redis, two instances with the near cache",
        bases,
    )
    .await;
    let beyond = beyond_window(&report.violations, NEAR_CACHE_WINDOW);
    assert!(
        beyond.is_empty(),
        "{} violations: {:?}",
        beyond.len(),
        &beyond[..beyond.len().min(3)]
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_holds_over_a_concurrent_history_on_the_embedded_stores() {
    let (app, bases) = two_instances(Backend::Embedded, |_| {}, |_| {}).await;
    let report = run("on the embedded stores, two listeners", bases).await;
    assert!(
        report.violations.is_empty(),
        "{} violations",
        report.violations.len()
    );
    app.cleanup().await;
}

/// The faults of a Redis fleet, each run beside a whole history on a Cluster (3+3) or a
/// Sentinel setup (1+1, 3 sentinels) of the test's own, two instances (the second with the
/// near cache, so that a stale hit is a violation too): what answered 503
/// is printed, and the checker proves that no answered revocation was undone and no
/// refresh token spent twice. Answered logins and refreshes lost to a fault (their writes
/// not yet replicated when a master died; issue does not wait for replicas unless
/// `--redis-wait-on-issue`) are counted and printed.
mod faults {
    use super::*;
    use crate::common::topology::{cli, wait_replicated, LocalCluster, LocalSentinels};
    use tokencache::store::tokens::redis::RedisMode;

    #[derive(Debug, Clone, Copy)]
    pub enum Fault {
        /// The master of user 0's index killed (SIGKILL), its replica promoted, the old
        /// master restarted (it follows the new one).
        Kill,
        /// The same, right after the master dropped its stalled replica's link: writes
        /// made meanwhile reach no replica.
        CutThenKill,
        /// A master joins (with a replica) and 1,000 slots are moved to it
        /// (`redis-cli --cluster reshard`).
        Reshard,
        /// A planned switch: `CLUSTER FAILOVER` on the replica, `SENTINEL FAILOVER`.
        Planned,
    }

    fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok() {
            assert!(Instant::now() < deadline, "{what}: not within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stalls `replica` (DEBUG SLEEP, in the background) and has `master` drop its link.
    fn cut(master: u16, replica: u16) -> std::thread::JoinHandle<()> {
        let sleeper = std::thread::spawn(move || {
            cli(replica, &["debug", "sleep", "2"]);
        });
        std::thread::sleep(Duration::from_millis(100));
        cli(master, &["client", "kill", "type", "replica"]);
        // Writes go on meanwhile, reaching no replica.
        std::thread::sleep(Duration::from_millis(300));
        sleeper
    }

    /// Two instances on a topology of their own; the topology is handed to `fault`.
    async fn on(mode: RedisMode, fault: Fault) -> checker::Report {
        let (mut cluster, mut sentinels) = (None, None);
        let (urls, master) = match mode {
            RedisMode::Cluster => {
                let c = LocalCluster::start();
                let urls = c.urls();
                cluster = Some(c);
                (urls, None)
            }
            _ => {
                let s = LocalSentinels::start();
                let urls = s.urls();
                let name = s.name.clone();
                sentinels = Some(s);
                (urls, Some(name))
            }
        };
        let (app, bases) = two_instances(
            Backend::Real,
            move |s| {
                s.redis_mode = mode;
                s.redis_url = Some(urls.clone());
                s.redis_sentinel_master = master.clone();
                s.redis_timeout = Duration::from_millis(500);
            },
            |s| s.near_cache = Some(10_000),
        )
        .await;
        let index = format!("{}u:{}", app.settings.redis_prefix, user(0));
        let what = format!("{mode:?} under {fault:?}");
        let injected = tokio::task::spawn_blocking(move || {
            // A second into the history.
            std::thread::sleep(Duration::from_secs(1));
            let started = Instant::now();
            match (cluster.as_mut(), sentinels.as_mut(), fault) {
                (Some(c), _, Fault::Kill | Fault::CutThenKill) => {
                    let m = c.master_of(&index);
                    let master = c.nodes[m].port;
                    let replica = c.replica_of(master);
                    wait_replicated(master, replica);
                    let sleeper = matches!(fault, Fault::CutThenKill).then(|| cut(master, replica));
                    c.nodes[m].kill();
                    if let Some(s) = sleeper {
                        s.join().unwrap();
                    }
                    until("the replica promoted", || c.promoted(&index, master));
                    c.nodes[m].restart();
                    until("the old master follows", || {
                        cli(master, &["role"]).contains("connected")
                    });
                }
                (Some(c), _, Fault::Reshard) => {
                    let (new_master, _) = c.add_master_with_replica();
                    let id = c.id(c.nodes[new_master].port);
                    c.manage(&[
                        "reshard",
                        "--cluster-from",
                        "all",
                        "--cluster-to",
                        &id,
                        "--cluster-slots",
                        "1000",
                        "--cluster-yes",
                    ]);
                }
                (Some(c), _, Fault::Planned) => {
                    let master = c.nodes[c.master_of(&index)].port;
                    let replica = c.replica_of(master);
                    assert!(cli(replica, &["cluster", "failover"]).contains("OK"));
                    until("the replica promoted", || c.promoted(&index, master));
                }
                (_, Some(s), Fault::Kill | Fault::CutThenKill) => {
                    let (master, replica) = (s.master.port, s.replica.port);
                    wait_replicated(master, replica);
                    let sleeper = matches!(fault, Fault::CutThenKill).then(|| cut(master, replica));
                    s.master.kill();
                    if let Some(sl) = sleeper {
                        sl.join().unwrap();
                    }
                    until("the replica promoted", || s.master_port() == Some(replica));
                    s.master.restart();
                    until("the old master follows", || {
                        cli(master, &["role"]).contains("connected")
                    });
                }
                (_, Some(s), Fault::Planned) => {
                    let old = s.master_port().expect("a master");
                    let sentinel = s.sentinels[0].port;
                    cli(sentinel, &["sentinel", "failover", &s.name]);
                    until("the sentinels switch", || s.master_port() != Some(old));
                    until("the old master follows", || {
                        cli(old, &["role"]).contains("connected")
                    });
                }
                (_, _, fault) => panic!("{fault:?} is not a fault of this topology"),
            }
            println!("  {fault:?} done in {:?}", started.elapsed());
            (cluster, sentinels)
        });
        let topology = Arc::new(Mutex::new(None));
        let kept = topology.clone();
        let report = run_with(&what, bases, true, async move {
            *kept.lock().unwrap() = Some(injected.await.unwrap());
        })
        .await;
        app.cleanup().await;
        drop(topology);
        report
    }

    macro_rules! fault_tests {
        ($($name:ident: $mode:ident, $fault:ident;)+) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB and redis-server: cargo test -- --include-ignored"]
            async fn $name() {
                let report = on(RedisMode::$mode, Fault::$fault).await;
                let beyond = beyond_window(&report.violations, NEAR_CACHE_WINDOW);
                assert!(beyond.is_empty(), "{} violations: {:?}", beyond.len(), &beyond[..beyond.len().min(3)]);
            }
        )+};
    }

    fault_tests! {
        no_answered_revocation_is_undone_when_a_cluster_master_is_killed: Cluster, Kill;
        no_answered_revocation_is_undone_when_a_cluster_master_loses_its_replica_then_dies: Cluster, CutThenKill;
        no_answered_revocation_is_undone_while_slots_move_to_a_new_cluster_master: Cluster, Reshard;
        no_answered_revocation_is_undone_through_a_planned_cluster_failover: Cluster, Planned;
        no_answered_revocation_is_undone_when_the_sentinel_master_is_killed: Sentinel, Kill;
        no_answered_revocation_is_undone_when_the_sentinel_master_loses_its_replica_then_dies: Sentinel, CutThenKill;
        no_answered_revocation_is_undone_through_a_planned_sentinel_failover: Sentinel, Planned;
    }
}
