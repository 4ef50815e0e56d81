//! Envoy's gRPC external authorization (`envoy.service.auth.v3.Authorization/Check`),
//! asked by a client generated from Envoy's own published protos (`tests/grpc/check.py`,
//! on the `xds-protos` and `grpcio` packages): a live token is allowed with its identity
//! set (overwriting the client's own), a dead or missing one denied with 401 and
//! `WWW-Authenticate`, a token store that is down answered with gRPC `UNAVAILABLE`.
//! Its own test binary: it needs python3 with those packages (installed with pip when
//! missing; a failure to install fails the tests).
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The client script, beside this file.
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/check.py");

/// python3 with grpcio and xds-protos: checked once, installed with pip when missing.
fn require_client() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = || {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import grpc; from envoy.service.auth.v3 import external_auth_pb2_grpc",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = FOUND.get_or_init(|| {
        if probe() {
            return Ok(());
        }
        let pip = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "-q", "grpcio", "xds-protos"])
            .output()
            .map_err(|e| format!("python3 -m pip: {e}"))?;
        if probe() {
            Ok(())
        } else {
            Err(format!(
                "pip install grpcio xds-protos failed: {}",
                String::from_utf8_lossy(&pip.stderr)
            ))
        }
    });
    if let Err(e) = found {
        missing("python3 with grpcio and xds-protos (Envoy's protos)", e);
    }
}

/// Asks the gRPC service at `addr` about each case (the checked request's headers).
async fn check(addr: SocketAddr, cases: Value) -> Vec<Value> {
    require_client();
    let mut child = tokio::process::Command::new("python3")
        .arg(CLIENT)
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(cases.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client answered in time")
        .unwrap();
    assert!(
        out.status.success(),
        "check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON answers")
}

/// The gRPC service of `app`'s state on a port of its own, stopped when the sender drops.
async fn serve_grpc(app: &TestApp) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(tokencache::grpc::serve(
        listener,
        app.state.clone(),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// The value of header `key` in a list of `{key, value, action}`.
fn header<'a>(headers: &'a Value, key: &str) -> Option<&'a Value> {
    headers.as_array()?.iter().find(|h| h["key"] == key)
}

/// Asserts an UNAUTHENTICATED answer with Envoy's denied response: 401, WWW-Authenticate.
#[track_caller]
fn assert_denied(answer: &Value) {
    assert_eq!(answer["rpc"], "OK", "{answer}");
    assert_eq!(answer["status"], "UNAUTHENTICATED", "{answer}");
    assert_eq!(answer["denied"]["status"], 401, "{answer}");
    let www = header(&answer["denied"]["headers"], "www-authenticate").expect("WWW-Authenticate");
    assert_eq!(www["value"], "Bearer error=\"invalid_token\"", "{answer}");
    assert!(answer.get("ok").is_none(), "{answer}");
}

on_both_stores! {
    async fn envoy_s_client_sees_live_dead_missing_and_spoofed_tokens(app) {
        let (addr, _stop) = serve_grpc(app).await;
        let (access, _) = app.login().await;
        let answers = check(addr, json!([
            {"authorization": format!("Bearer {access}")},
            {"authorization": "Bearer 0123456789abcdefghijklmnopqrstuv"},
            {},
            {"authorization": format!("Basic {access}")},
        ])).await;

        let live = &answers[0];
        assert_eq!((&live["rpc"], &live["status"]), (&json!("OK"), &json!("OK")), "{live}");
        let set = &live["ok"]["headers"];
        for (key, value) in [
            ("x-auth-username", json!("alice")),
            ("x-auth-app-key", json!(APP_KEY)),
            ("x-auth-token-type", json!("web")),
        ] {
            let h = header(set, key).unwrap_or_else(|| panic!("{key} in {live}"));
            assert_eq!(h["value"], value, "{live}");
            // Overwrites the client's own header of that name (here `mallory`).
            assert_eq!(h["action"], "OVERWRITE_IF_EXISTS_OR_ADD", "{live}");
        }
        let left: u64 = header(set, "x-auth-expires-in").unwrap()["value"]
            .as_str().unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&left), "{live}");

        for dead in &answers[1..] {
            assert_denied(dead);
        }

        // A request that carries an identity of its own, in any spelling a framework reads
        // as X-Auth-Username & co, is refused: 403, never checked, never passed on.
        let spoofs = ["x-auth-username", "x_auth_username", "X_Auth_App_Key", "x-auth_expires-in"];
        let cases: Vec<Value> = spoofs
            .iter()
            .map(|name| json!({"authorization": format!("Bearer {access}"), *name: "mallory"}))
            .collect();
        let answers = check(addr, json!(cases)).await;
        for (name, answer) in spoofs.iter().zip(&answers) {
            assert_eq!(answer["status"], "PERMISSION_DENIED", "{name}: {answer}");
            assert_eq!(answer["denied"]["status"], 403, "{name}: {answer}");
            assert!(answer["denied"]["body"].as_str().unwrap().contains(name), "{answer}");
            assert!(answer.get("ok").is_none(), "{answer}");
        }

        // A revoked token is denied at once.
        let (status, _) = app.post("/api/v1/logout", &json!({"token": access})).await;
        assert_eq!(status, StatusCode::OK);
        let answers = check(addr, json!([{"authorization": format!("Bearer {access}")}])).await;
        assert_denied(&answers[0]);
    }
}

// Envoy's raw header list (`header_map`, values as bytes) is read as the map is: the
// token from it, and an identity header in it refused.
on_both_stores! {
    async fn the_raw_header_list_is_read_as_the_header_map_is(app) {
        let (addr, _stop) = serve_grpc(app).await;
        let (access, _) = app.login().await;
        let answers = check(addr, json!([
            {"@raw": {"Authorization": format!("Bearer {access}")}},
            {"@raw": {"authorization": format!("Bearer {access}"), "X_Auth_Username": "mallory"}},
            {"@raw": {"authorization": "Bearer 0123456789abcdefghijklmnopqrstuv"}},
        ])).await;
        assert_eq!(answers[0]["status"], "OK", "{}", answers[0]);
        let user = header(&answers[0]["ok"]["headers"], "x-auth-username").unwrap();
        assert_eq!(user["value"], "alice");
        assert_eq!(answers[1]["status"], "PERMISSION_DENIED", "{}", answers[1]);
        assert_denied(&answers[2]);
    }
}

/// What the listener cannot read fails the call with the status a gRPC server gives, and
/// the listener goes on answering: a compressed message (no encoding is accepted), another
/// method, a message over 64 KiB, bytes that are no CheckRequest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (grpcio, xds-protos): cargo test -- --include-ignored"]
async fn what_the_listener_cannot_read_fails_the_call_and_nothing_else() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (addr, _stop) = serve_grpc(&app).await;
    let (access, _) = app.login().await;
    let live = json!({"authorization": format!("Bearer {access}")});
    let answers = check(
        addr,
        json!([
            {"authorization": format!("Bearer {access}"), "@gzip": true, "@pad": 4000},
            {"@method": "Nope", "@bytes": ""},
            {"authorization": format!("Bearer {access}"), "@pad": 70_000},
            {"@bytes": "ffffffff"},
            live,
        ]),
    )
    .await;
    assert_eq!(answers[0]["rpc"], "UNIMPLEMENTED", "{}", answers[0]);
    assert_eq!(answers[1]["rpc"], "UNIMPLEMENTED", "{}", answers[1]);
    assert_eq!(answers[2]["rpc"], "RESOURCE_EXHAUSTED", "{}", answers[2]);
    assert_eq!(answers[3]["rpc"], "INTERNAL", "{}", answers[3]);
    assert_eq!(answers[4]["status"], "OK", "{}", answers[4]);
    // An empty message is an empty CheckRequest: no token, denied.
    let empty = check(addr, json!([{"@bytes": ""}])).await;
    assert_eq!(empty[0]["rpc"], "OK", "{}", empty[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, redis-server and python3 (grpcio, xds-protos): cargo test -- --include-ignored"]
async fn a_token_store_that_is_down_is_unavailable_not_a_denial() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let (addr, _stop) = serve_grpc(&app).await;
    let (access, _) = app.login().await;
    let case = json!([{"authorization": format!("Bearer {access}")}]);
    assert_eq!(check(addr, case.clone()).await[0]["status"], "OK");
    redis.kill().await;
    let down = &check(addr, case.clone()).await[0];
    // The call fails: Envoy applies failure_mode_allow or status_on_error, never a 401.
    assert_eq!(down["rpc"], "UNAVAILABLE", "{down}");
    // Back: allowed again (nothing in Redis was kept: a new login).
    let _redis = OwnRedis::start(port).await;
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = check(addr, case.clone()).await[0].clone();
        if answer["rpc"] == "OK" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The token died with that Redis (no persistence): denied, no longer unavailable.
    assert_denied(&answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (grpcio, xds-protos): cargo test -- --include-ignored"]
async fn serve_with_grpc_listen_answers_envoy() {
    require_client();
    let dir = std::env::temp_dir().join(unique("tc_grpc"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/tc.db?mode=rwc", dir.display());
    cli_client_and_alice(&db);
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["serve", "--listen", &format!("127.0.0.1:{http_port}")])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .env("DATABASE_URL", &db)
        .env_remove("REDIS_URL")
        .env("TOKENCACHE_ARGON2_MEMORY_KIB", "256")
        .env("TOKENCACHE_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok()
            && tokio::net::TcpStream::connect(("127.0.0.1", grpc_port))
                .await
                .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = login_at(&base).await;
    let access = v["data"]["access_token"]
        .as_str()
        .expect("a login")
        .to_owned();
    let addr: SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    let answers = check(
        addr,
        json!([{"authorization": format!("Bearer {access}")}, {}]),
    )
    .await;
    assert_eq!(answers[0]["status"], "OK", "{}", answers[0]);
    assert_denied(&answers[1]);
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
