//! RFC 8414 discovery, read by a standard client library: the npm `openid-client` (run by
//! `tests/discovery/run.mjs`) discovers the server from its base URL alone (at OpenID
//! Connect's path and at RFC 8414's), then takes every endpoint and the client
//! authentication from the metadata: the password, client_credentials and refresh_token
//! grants, introspection (RFC 7662) and revocation (RFC 7009). Also, without the library,
//! that both well-known paths serve the same document. Its own test binary: it needs node
//! and npm (`openid-client` is installed into `tests/discovery/node_modules` when missing;
//! a failure to install fails the test).
mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The client script and the directory its `node_modules` goes in.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/discovery");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/discovery/run.mjs");

/// How to get what the test needs, in the failure that finds it missing.
const HOW: &str = "install node and npm (apt-get install nodejs npm); the test runs \
                   `npm install --prefix tests/discovery openid-client` itself";

/// node with `openid-client` beside the script: checked once, installed with npm when
/// missing.
fn require_client() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = || {
        Path::new(DIR)
            .join("node_modules/openid-client/package.json")
            .is_file()
    };
    let found = FOUND.get_or_init(|| {
        let node = std::process::Command::new("node")
            .arg("--version")
            .output()
            .map_err(|e| format!("node: {e}"))?;
        if !node.status.success() {
            return Err(format!("node --version failed ({})", node.status));
        }
        if installed() {
            return Ok(());
        }
        let npm = std::process::Command::new("npm")
            .args([
                "install",
                "--prefix",
                DIR,
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "openid-client",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("npm: {e}"))?;
        if installed() {
            Ok(())
        } else {
            Err(format!(
                "npm install openid-client failed ({}): {}{}",
                npm.status,
                String::from_utf8_lossy(&npm.stdout),
                String::from_utf8_lossy(&npm.stderr)
            ))
        }
    });
    if let Err(e) = found {
        missing(&format!("node with openid-client ({HOW})"), e);
    }
}

/// The script's summary of everything the library did against `app`.
async fn run_library(app: &TestApp) -> Value {
    require_client();
    let child = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .args([app.base.as_str(), APP_KEY, APP_SECRET, "alice", PASSWORD])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the script finished in time")
        .unwrap();
    assert!(
        out.status.success(),
        "run.mjs ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "run.mjs printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The step `name` of the summary, which must have succeeded.
#[track_caller]
fn succeeded<'a>(summary: &'a Value, name: &str) -> &'a Value {
    let step = &summary[name];
    assert_eq!(
        step["ok"],
        json!(true),
        "{name} failed: {step}\nsummary: {summary}"
    );
    step
}

/// A non-empty string field of a step.
#[track_caller]
fn token<'a>(step: &'a Value, field: &str) -> &'a str {
    step[field]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no {field} in {step}"))
}

/// GET `path`: its status, content type and JSON body.
async fn get_json(app: &TestApp, path: &str) -> (StatusCode, String, Value) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, content_type, body)
}

#[tokio::test]
async fn both_well_known_paths_serve_the_same_metadata() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, content_type, rfc8414) =
        get_json(&app, "/.well-known/oauth-authorization-server").await;
    assert_eq!(status, StatusCode::OK, "{rfc8414}");
    assert_eq!(content_type, "application/json");
    let (status, _, oidc) = get_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(status, StatusCode::OK, "{oidc}");
    assert_eq!(rfc8414, oidc);

    let base = &app.base;
    assert_eq!(rfc8414["issuer"], json!(base));
    assert_eq!(
        rfc8414["token_endpoint"],
        json!(format!("{base}/oauth2/token"))
    );
    assert_eq!(
        rfc8414["introspection_endpoint"],
        json!(format!("{base}/oauth2/introspect"))
    );
    assert_eq!(
        rfc8414["revocation_endpoint"],
        json!(format!("{base}/oauth2/revoke"))
    );
    assert_eq!(
        rfc8414["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials"])
    );
    assert_eq!(rfc8414["response_types_supported"], json!([]));
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert_eq!(
            rfc8414[field],
            json!(["client_secret_basic", "client_secret_post"]),
            "{field}"
        );
    }
    // Upstream JWTs are off: no keys to name, no browser flow, not an OpenID Provider.
    for absent in [
        "jwks_uri",
        "introspection_signing_alg_values_supported",
        "authorization_endpoint",
        "userinfo_endpoint",
    ] {
        assert!(rfc8414.get(absent).is_none(), "{absent} in {rfc8414}");
    }
    app.cleanup().await;
}

/// An issuer taken from the request's Host (no `--issuer`) is the client's word: a forged
/// Host is echoed to that client only, never kept by a shared cache; a configured issuer
/// ignores the Host and may be cached.
#[tokio::test]
async fn a_forged_host_is_never_served_from_a_shared_cache() {
    let ask = |app: &TestApp, host: &'static str| {
        let request = app
            .http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                app.base
            ))
            .header("host", host);
        async move {
            let r = request.send().await.unwrap();
            let control = r.headers()["cache-control"].to_str().unwrap().to_owned();
            let body: Value = r.json().await.unwrap();
            (control, body["issuer"].as_str().unwrap().to_owned())
        }
    };
    let app = TestApp::spawn(Backend::Embedded).await;
    assert_eq!(
        ask(&app, "evil.example").await,
        ("no-store".to_owned(), "http://evil.example".to_owned())
    );
    app.cleanup().await;
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.issuer = "https://auth.example".into()
    })
    .await;
    assert_eq!(
        ask(&app, "evil.example").await,
        (
            "public, max-age=300".to_owned(),
            "https://auth.example".to_owned()
        )
    );
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs node (openid-client): cargo test -- --include-ignored"]
async fn openid_client_discovers_the_server_and_uses_every_endpoint() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let summary = run_library(&app).await;
    eprintln!(
        "openid-client {} ({} API)",
        summary["version"], summary["api"]
    );

    // Discovery from the base URL alone, at both paths; the issuer is the base URL.
    for name in ["discovery_oidc", "discovery_oauth2", "discovery_basic"] {
        let step = succeeded(&summary, name);
        assert_eq!(step["issuer"], json!(app.base), "{name}: {step}");
    }
    assert_eq!(
        summary["discovery_oidc"]["metadata"],
        summary["discovery_oauth2"]["metadata"]
    );

    // The grants, at the discovered token endpoint.
    let password = succeeded(&summary, "password");
    let first_access = token(password, "access_token");
    token(password, "refresh_token");
    // v6 lowercases the type, v5 keeps the server's `Bearer`.
    assert!(
        password["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{password}"
    );
    let machine = succeeded(&summary, "client_credentials");
    token(machine, "access_token");
    assert!(machine["refresh_token"].is_null(), "{machine}");
    let refresh = succeeded(&summary, "refresh");
    let access = token(refresh, "access_token");
    assert_ne!(access, first_access);
    token(refresh, "refresh_token");

    // Introspection of the live token, with the client in the body and with HTTP Basic.
    for name in ["introspect_live", "introspect_basic"] {
        let answer = &succeeded(&summary, name)["answer"];
        assert_eq!(answer["active"], json!(true), "{name}: {answer}");
        assert_eq!(answer["sub"], json!("alice"), "{name}: {answer}");
        assert_eq!(answer["client_id"], json!(APP_KEY), "{name}: {answer}");
    }
    // Revoked, then inactive.
    succeeded(&summary, "revoke");
    let answer = &succeeded(&summary, "introspect_revoked")["answer"];
    assert_eq!(answer["active"], json!(false), "{answer}");
    // The server's own check agrees: the token is gone.
    assert_fails(&app.check_token(access).await, 401, 102);
    app.cleanup().await;
}
