//! The real Caddy (Debian's, 2.6) in front of an upstream, configured with
//! `deploy/caddy/Caddyfile` (the file docs/gateways.md documents), checking every request
//! with the real server's forward-auth route: a live token passes with its identity (never
//! a client's own), a dead or missing one gets 401, and "cannot tell" (tokencache's Redis
//! down, tokencache itself down) gets the documented 503 page, never a pass. Its own test
//! binary: it needs the `caddy` program, and installs it (`apt-get install caddy`) when
//! missing. Caddy runs as a child of the test, never as the system's service.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::gateway::*;
use common::*;
use http_body_util::Full;
use reqwest::StatusCode;
use serde_json::json;

/// The documented configuration, with its `@SITE@`, `@TOKENCACHE@` and `@UPSTREAM@`
/// placeholders.
const CADDYFILE: &str = include_str!("../deploy/caddy/Caddyfile");

/// The page that documents it, which must show the file whole.
const DOC: &str = include_str!("../docs/gateways.md");

/// How to get the program, in the failure that finds it missing.
const HOW: &str = "apt-get install caddy (Debian's Caddy 2.6, the `caddy` program; \
                   bash .ci/run installs it)";

/// The `caddy` program, installed with apt-get first when missing (with a fresh package
/// list if the first try fails).
fn caddy_program() -> PathBuf {
    find_or_install(
        "caddy",
        || vec![PathBuf::from("/usr/bin")],
        || {
            let install = || run_step("apt-get", &["install", "-y", "-qq", "caddy"]);
            install().or_else(|_| {
                run_step("apt-get", &["update", "-qq"])?;
                install()
            })
        },
        HOW,
    )
}

/// Caddy with the documented site block, as a child of the test: its own HOME and XDG
/// directories in a directory of its own, no admin endpoint, on 127.0.0.1 only.
struct Caddy {
    gateway: Gateway,
}

impl Caddy {
    /// Fails the test, saying what to install, when Caddy is missing and cannot be
    /// installed.
    async fn start(tokencache: &str, upstream: SocketAddr) -> Caddy {
        let program = caddy_program();
        let port = free_port();
        let dir = temp_dir("tc_caddy");
        let site = fill(
            CADDYFILE,
            "deploy/caddy/Caddyfile",
            &[
                ("@SITE@", &format!("http://127.0.0.1:{port}")),
                ("@TOKENCACHE@", tokencache),
                ("@UPSTREAM@", &upstream.to_string()),
            ],
        );
        // What a system's Caddyfile may put around the site block, made to run as a child
        // of the test: no admin endpoint (a system Caddy has :2019), loopback only.
        let config = dir.join("Caddyfile");
        std::fs::write(
            &config,
            format!("{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}}\n\n{site}"),
        )
        .unwrap();

        let mut command = tokio::process::Command::new(program);
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"));
        let gateway = Gateway::spawn("caddy", command, dir, port).await;
        Caddy { gateway }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base)
    }

    fn log(&self) -> String {
        self.gateway.log()
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}

/// Logs `alice` in with `token_type` (which forward-auth sends back as
/// `X-Auth-Token-Type`); returns the access token.
async fn login_as(app: &TestApp, token_type: &str) -> String {
    let mut body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
    body["token_type"] = json!(token_type);
    let (status, v) = app.post("/api/v1/authorize", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["data"]["access_token"].as_str().unwrap().to_owned()
}

/// Asserts the documented answer for "tokencache cannot tell": 503, the page,
/// `Retry-After`, `Cache-Control: no-store`, and no redirect.
async fn assert_unavailable_page(response: reqwest::Response, caddy: &Caddy) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        caddy.log()
    );
    assert_eq!(header(&response, "retry-after"), Some("5"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(header(&response, "location"), None, "not a login redirect");
    assert!(header(&response, "content-type").is_some_and(|t| t.starts_with("text/html")));
    let body = response.text().await.unwrap();
    assert!(body.contains(UNAVAILABLE_PAGE), "{body}");
}

#[test]
fn the_gateway_doc_shows_the_tested_caddyfile_whole() {
    assert!(
        DOC.contains(&format!("```caddy\n{CADDYFILE}```\n")),
        "docs/gateways.md must show deploy/caddy/Caddyfile exactly as it is, in a caddy \
         code block: copy the file into it"
    );
    // The placeholders the file has are the ones the doc's `sed` command (and the test)
    // fill in.
    let found = distinct_placeholders(CADDYFILE);
    assert_eq!(found, ["@SITE@", "@TOKENCACHE@", "@UPSTREAM@"]);
    for placeholder in found {
        assert!(
            doc_fills(DOC, placeholder),
            "the doc's sed command fills {placeholder}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and caddy: cargo test -- --include-ignored"]
async fn caddy_passes_live_tokens_with_their_identity_and_refuses_dead_or_missing_ones() {
    let app = TestApp::spawn(Backend::Real).await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let caddy = Caddy::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;

    // (a) A live token: the application gets the request with the token's identity; the
    // X-Auth-* headers the client sent itself are replaced, not passed along (d).
    let response = http
        .get(caddy.url("/orders/42?page=1"))
        .bearer_auth(&access)
        .header("X-Auth-Username", "mallory")
        .header("X-Auth-App-Key", "forged")
        .header("X-Auth-Token-Type", "admin")
        .header("X-Auth-Expires-In", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", caddy.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let seen = upstream.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/orders/42?page=1");
    assert_eq!(seen.all("x-auth-username"), ["alice"]);
    assert_eq!(seen.all("x-auth-app-key"), [APP_KEY]);
    assert_eq!(seen.all("x-auth-token-type"), ["web"]);
    let expires_in: i64 = seen.all("x-auth-expires-in")[0].parse().unwrap();
    assert!((1..=3600).contains(&expires_in), "{expires_in}");
    let bearer = format!("Bearer {access}");
    assert_eq!(seen.all("authorization"), [bearer.as_str()]);

    // A token whose type is empty: tokencache sends X-Auth-Token-Type empty; the client's
    // own value never reaches the application.
    let untyped = login_as(&app, "").await;
    let response = http
        .get(caddy.url("/orders/42"))
        .bearer_auth(&untyped)
        .header("X-Auth-Token-Type", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", caddy.log());
    assert_eq!(upstream.last().all("x-auth-token-type"), [""]);

    // A request with a body: the application gets it all.
    let response = http
        .post(caddy.url("/orders"))
        .bearer_auth(&access)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", caddy.log());
    let received = upstream.last();
    assert_eq!(received.method, "POST");
    assert_eq!(received.body_len, 64 * 1024);

    // (b) Dead tokens, unknown and logged out, even with an identity of the client's own
    // (d): tokencache's 401 and WWW-Authenticate, nothing reaches the application.
    let passed = upstream.requests();
    let unknown = "0123456789abcdefghijABCDEFGHIJ01";
    let (status, v) = app
        .post("/api/v1/logout", &json!({ "token": access }))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for token in [unknown, access.as_str()] {
        let response = http
            .get(caddy.url("/orders/42"))
            .bearer_auth(token)
            .header("X-Auth-Username", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            caddy.log()
        );
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert_eq!(header(&response, "cache-control"), Some("no-store"));
        assert_eq!(header(&response, "location"), None);
    }

    // No token, or another scheme, with or without a forged identity.
    for request in [
        http.get(caddy.url("/orders/42")),
        http.get(caddy.url("/orders/42"))
            .header("X-Auth-Username", "alice"),
        http.get(caddy.url("/orders/42"))
            .basic_auth("alice", Some(PASSWORD)),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            caddy.log()
        );
    }
    assert_eq!(
        upstream.requests(),
        passed,
        "a refused request reached the app"
    );

    // (c) tokencache itself unreachable (stopped): Caddy's own 502 becomes the 503 page;
    // not a pass, not a 401.
    let live = login_as(&app, "web").await;
    app.cleanup().await;
    let response = first_refusal(|| http.get(caddy.url("/orders/42")).bearer_auth(&live)).await;
    assert_unavailable_page(response, &caddy).await;
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");
    caddy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, redis-server and caddy: cargo test -- --include-ignored"]
async fn caddy_serves_the_503_page_while_the_token_store_is_down_and_recovers_after() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let caddy = Caddy::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;
    let through_caddy = |token: String| {
        let request = http.get(caddy.url("/orders/42")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let response = through_caddy(access.clone()).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", caddy.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let passed = upstream.requests();

    redis.kill().await;
    // tokencache itself says 503 (not 401: it does not know whether the token is live).
    let direct = app.forward_auth(Some(&access)).await;
    assert_eq!(direct.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Caddy fails closed with the documented page, request after request.
    for _ in 0..2 {
        assert_unavailable_page(through_caddy(access.clone()).await, &caddy).await;
    }
    // No token needs no lookup: still a plain 401.
    let response = http.get(caddy.url("/orders/42")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        caddy.log()
    );
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");

    // Redis back on the same port (empty: the old token is gone): the check recovers by
    // itself, and a new login passes again.
    let _redis = OwnRedis::start(port).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = through_caddy(access.clone()).await;
        if response.status() != StatusCode::SERVICE_UNAVAILABLE
            || tokio::time::Instant::now() >= deadline
        {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        caddy.log()
    );
    let (access, _) = app.login().await;
    let response = through_caddy(access).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", caddy.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");

    caddy.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs caddy: cargo test -- --include-ignored"]
async fn caddy_answers_the_applications_own_failures_as_they_are_not_with_the_sign_in_page() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let http = client();
    let (access, _) = app.login().await;

    // The application's own 503 passes through as it is.
    let busy = Upstream::start_with(|_| {
        hyper::Response::builder()
            .status(503)
            .body(Full::new(Bytes::from("the app is busy")))
            .unwrap()
    })
    .await;
    let caddy = Caddy::start(&tokencache, busy.addr).await;
    let response = http
        .get(caddy.url("/orders/42"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), None);
    assert_eq!(response.text().await.unwrap(), "the app is busy");
    assert_eq!(busy.requests(), 1);
    caddy.stop().await;

    // The application unreachable: Caddy's plain 502, not the sign-in page.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let caddy = Caddy::start(&tokencache, nobody).await;
    let response = http
        .get(caddy.url("/orders/42"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_GATEWAY,
        "{}",
        caddy.log()
    );
    let body = response.text().await.unwrap();
    assert!(!body.contains(UNAVAILABLE_PAGE), "{body}");
    caddy.stop().await;
    app.cleanup().await;
}
