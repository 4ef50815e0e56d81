//! Envoy's gRPC external authorization (`envoy.service.auth.v3.Authorization/Check`),
//! asked by a client generated from Envoy's own published protos (`tests/grpc/check.py`,
//! on the `xds-protos` and `grpcio` packages): a live token is allowed with its identity
//! set (overwriting the client's own), a dead or missing one denied with 401 and
//! `WWW-Authenticate`, a token store that is down answered with gRPC `UNAVAILABLE`; with
//! upstream JWTs on (phantom tokens), a live token's answer overwrites the upstream
//! request's `authorization` with `Bearer <JWT>`, which PyJWT (`tests/phantom/verify.py`)
//! verifies, and a dead token's sets none.
//! Its own test binary: it needs python3 with those packages and PyJWT (installed with pip
//! when missing; a failure to install fails the tests).
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::installs::{require_pyjwt, require_python};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The client script, beside this file.
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/check.py");

/// The PyJWT verifier of tests/phantom.rs.
const PYJWT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/phantom/verify.py");

/// The issuer and audience of the upstream JWTs.
const ISSUER: &str = "https://auth.test.example";
const AUDIENCE: &str = "orders-api";

/// python3 with grpcio and xds-protos: checked once, installed with pip when missing.
fn require_client() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    require_python(
        &FOUND,
        "python3 with grpcio and xds-protos (Envoy's protos)",
        "import grpc; from envoy.service.auth.v3 import external_auth_pb2_grpc",
        &["grpcio", "xds-protos"],
    );
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

/// What PyJWT (`tests/phantom/verify.py`) says of `jwt`, with the keys of `app`'s JWKS:
/// `{"claims": …}` or `{"error": …, "message": …}`.
async fn pyjwt_verify(app: &TestApp, jwt: &str) -> Value {
    require_pyjwt();
    let jwks = format!("{}/.well-known/jwks.json", app.base);
    let child = tokio::process::Command::new("python3")
        .args([PYJWT, &jwks, ISSUER, AUDIENCE, jwt])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the verifier answered in time")
        .unwrap();
    assert!(
        out.status.success(),
        "verify.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verify.py printed JSON")
}

/// The `authorization` headers (any case) in a list of `{key, value, action}`.
fn authorizations(headers: &Value) -> Vec<&Value> {
    headers
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|h| {
                    h["key"]
                        .as_str()
                        .is_some_and(|k| k.eq_ignore_ascii_case("authorization"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Phantom tokens over gRPC: with upstream JWTs on, a live token's OK answer overwrites
/// the upstream request's `authorization` (the opaque token) with `Bearer <JWT>`, which
/// PyJWT verifies against the JWKS as alice; a dead token's denied answer sets no
/// `authorization` (nor does the answer once the token is revoked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 (grpcio, xds-protos, PyJWT): cargo test -- --include-ignored"]
async fn with_upstream_jwts_a_live_token_s_answer_sets_a_verifiable_jwt() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.upstream = Some(tokencache::upstream::UpstreamSettings {
            issuer: ISSUER.into(),
            audience: Some(AUDIENCE.into()),
            ttl_secs: 300,
            jwks_max_age_secs: 60,
            reload: Duration::from_secs(10),
            cache_entries: 1000,
        })
    })
    .await;
    let (addr, _stop) = serve_grpc(&app).await;
    let (access, _) = app.login().await;
    let answers = check(
        addr,
        json!([
            {"authorization": format!("Bearer {access}")},
            {"authorization": "Bearer 0123456789abcdefghijklmnopqrstuv"},
            {},
        ]),
    )
    .await;

    let live = &answers[0];
    assert_eq!(
        (&live["rpc"], &live["status"]),
        (&json!("OK"), &json!("OK")),
        "{live}"
    );
    let set = &live["ok"]["headers"];
    let set_auth = authorizations(set);
    assert_eq!(set_auth.len(), 1, "{live}");
    let auth = set_auth[0];
    // Overwrites the client's own header (the opaque token): never appended to it.
    assert_eq!(auth["action"], "OVERWRITE_IF_EXISTS_OR_ADD", "{live}");
    let value = auth["value"].as_str().unwrap();
    let jwt = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer value: {value}"));
    assert!(
        !jwt.contains(&access),
        "the opaque token is passed on: {live}"
    );
    assert_eq!(jwt.split('.').count(), 3, "not a JWS: {jwt}");
    assert!(
        !live["ok"]["remove"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().eq_ignore_ascii_case("authorization")),
        "the JWT set is removed again: {live}"
    );
    assert_eq!(
        header(set, "x-auth-username").expect("the identity too")["value"],
        "alice",
        "{live}"
    );
    let verified = pyjwt_verify(&app, jwt).await;
    let claims = verified
        .get("claims")
        .unwrap_or_else(|| panic!("PyJWT refused the JWT: {verified}"));
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["client_id"], APP_KEY, "{claims}");
    assert_eq!(claims["iss"], ISSUER, "{claims}");
    assert_eq!(claims["aud"], AUDIENCE, "{claims}");

    // An unknown token and none at all: denied, no JWT anywhere in the answer.
    for dead in &answers[1..] {
        assert_denied(dead);
        assert!(
            authorizations(&dead["denied"]["headers"]).is_empty(),
            "{dead}"
        );
    }
    // Revoked after a JWT was minted for it: denied, no JWT.
    let (status, _) = app.post("/api/v1/logout", &json!({"token": access})).await;
    assert_eq!(status, StatusCode::OK);
    let answers = check(addr, json!([{"authorization": format!("Bearer {access}")}])).await;
    assert_denied(&answers[0]);
    assert!(
        authorizations(&answers[0]["denied"]["headers"]).is_empty(),
        "{}",
        answers[0]
    );
}
