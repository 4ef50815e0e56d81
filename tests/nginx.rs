//! The real nginx in front of an upstream, configured with `deploy/nginx/tokencache.conf`
//! (the file docs/gateways.md documents), checking every request with the real server's
//! forward-auth route: a live token passes with its identity, a dead or missing one gets
//! 401, and a token store that is down gives the documented 503 page (never a pass, never
//! a login redirect). Its own test binary: it needs the `nginx` program.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::gateway::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The documented configuration, with its `@LISTEN@`, `@TOKENCACHE@` and `@UPSTREAM@`
/// placeholders.
const CONF: &str = include_str!("../deploy/nginx/tokencache.conf");

/// The page that documents it, which must show the file whole.
const DOC: &str = include_str!("../docs/gateways.md");

/// The `nginx` program: on the PATH, or in /usr/sbin (Debian's place, not on every PATH).
fn nginx_program() -> Option<PathBuf> {
    find_program("nginx", &[PathBuf::from("/usr/sbin")])
}

/// nginx with the documented configuration, in the foreground as a child of the test, its
/// pid file, temp files and logs in a directory of its own.
struct Nginx {
    gateway: Gateway,
    base: String,
}

impl Nginx {
    /// Fails the test, saying what to install, when nginx is not installed.
    async fn start(tokencache: &str, upstream: SocketAddr) -> Nginx {
        let program = nginx_program().unwrap_or_else(|| {
            missing(
                "the nginx program",
                &"not on the PATH nor in /usr/sbin (apt-get install nginx-light)",
            )
        });
        let port = free_port();
        let dir = temp_dir("tc_nginx");

        let rendered = fill(
            CONF,
            "deploy/nginx/tokencache.conf",
            &[
                ("@LISTEN@", &format!("127.0.0.1:{port}")),
                ("@TOKENCACHE@", tokencache),
                ("@UPSTREAM@", &upstream.to_string()),
            ],
        );
        let include = dir.join("tokencache.conf");
        std::fs::write(&include, rendered).unwrap();
        // What a distribution's nginx.conf provides around a conf.d file, made to run as
        // a child of the test: foreground, one process, everything inside `dir`.
        let d = dir.display();
        let main = format!(
            "daemon off;\n\
             master_process off;\n\
             error_log stderr notice;\n\
             pid \"{d}/nginx.pid\";\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   client_body_temp_path \"{d}/client_body\";\n\
             \x20   proxy_temp_path \"{d}/proxy\";\n\
             \x20   fastcgi_temp_path \"{d}/fastcgi\";\n\
             \x20   uwsgi_temp_path \"{d}/uwsgi\";\n\
             \x20   scgi_temp_path \"{d}/scgi\";\n\
             \x20   access_log \"{d}/access.log\";\n\
             \x20   include \"{}\";\n\
             }}\n",
            include.display()
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).unwrap();

        let args = |extra: &[&str]| {
            let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            a.extend([
                "-e".into(),
                "stderr".into(),
                "-p".into(),
                format!("{d}/"),
                "-c".into(),
                conf.display().to_string(),
            ]);
            a
        };
        // `nginx -t` first: a configuration error shows as nginx's own message.
        let check = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new(&program)
                .args(args(&["-t", "-q"]))
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("nginx -t finished in time")
        .expect("nginx -t ran");
        assert!(
            check.status.success(),
            "nginx -t refused the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );

        let mut command = tokio::process::Command::new(&program);
        command.args(args(&[]));
        let gateway = Gateway::spawn("nginx", command, dir, port).await;
        let base = gateway.base.clone();
        Nginx { gateway, base }
    }

    /// nginx's error log so far (for failure messages).
    fn log(&self) -> String {
        self.gateway.log()
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}

/// Asserts the documented answer for "tokencache cannot decide": 503, the error page,
/// `Retry-After`, and no redirect.
async fn assert_unavailable_page(response: reqwest::Response, nginx: &Nginx) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        nginx.log()
    );
    assert_eq!(header(&response, "retry-after"), Some("5"));
    assert_eq!(header(&response, "location"), None, "not a login redirect");
    assert!(header(&response, "content-type").is_some_and(|t| t.starts_with("text/html")));
    let body = response.text().await.unwrap();
    assert!(body.contains(UNAVAILABLE_PAGE), "{body}");
}

#[test]
fn the_gateway_doc_shows_the_tested_nginx_configuration_whole() {
    assert!(
        DOC.contains(&format!("```nginx\n{CONF}```\n")),
        "docs/gateways.md must show deploy/nginx/tokencache.conf exactly as it is, in an \
         nginx code block: copy the file into it"
    );
    // The placeholders the file has are the ones the doc's `sed` command (and the test)
    // fill in.
    let mut found = placeholders(CONF);
    found.sort_unstable();
    found.dedup();
    assert_eq!(found, ["@LISTEN@", "@TOKENCACHE@", "@UPSTREAM@"]);
    for placeholder in found {
        assert!(
            DOC.contains(&format!("-e 's/{placeholder}/")),
            "the doc's sed command fills {placeholder}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the nginx program: cargo test -- --include-ignored"]
async fn nginx_passes_live_tokens_with_their_identity_and_refuses_dead_or_missing_ones() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;

    // (a) A live token: the application gets the request with the token's identity; the
    // X-Auth-* headers the client sent itself are replaced, not passed along.
    let response = http
        .get(format!("{}/orders/42?page=1", nginx.base))
        .bearer_auth(&access)
        .header("X-Auth-Username", "mallory")
        .header("X-Auth-App-Key", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let Received {
        method,
        headers: seen,
        ..
    } = upstream.last();
    assert_eq!(method, "GET");
    let all = |name: &str| -> Vec<&str> {
        seen.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-auth-username"), ["alice"]);
    assert_eq!(all("x-auth-app-key"), [APP_KEY]);
    assert_eq!(all("x-auth-token-type"), ["web"]);
    let expires_in: i64 = all("x-auth-expires-in")[0].parse().unwrap();
    assert!((1..=3600).contains(&expires_in), "{expires_in}");
    let bearer = format!("Bearer {access}");
    assert_eq!(all("authorization"), [bearer.as_str()]);

    // A request with a body: the check goes without it, the application gets it all.
    let response = http
        .post(format!("{}/orders", nginx.base))
        .bearer_auth(&access)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.log());
    let received = upstream.last();
    assert_eq!(received.method, "POST");
    assert_eq!(received.body_len, 64 * 1024);

    // (b) Dead tokens: unknown, and one that was live until its logout.
    let passed = upstream.requests();
    let unknown = "0123456789abcdefghijABCDEFGHIJ01";
    let (status, v) = app
        .post("/api/v1/logout", &json!({ "token": access }))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for token in [unknown, access.as_str()] {
        let response = http
            .get(format!("{}/orders/42", nginx.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            nginx.log()
        );
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert_eq!(header(&response, "location"), None);
    }

    // (c) No token, or another scheme.
    let response = http
        .get(format!("{}/orders/42", nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        nginx.log()
    );
    let response = http
        .get(format!("{}/orders/42", nginx.base))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        nginx.log()
    );
    assert_eq!(
        upstream.requests(),
        passed,
        "a refused request reached the app"
    );

    // tokencache itself unreachable (stopped): the same 503 page, not a pass, not a 401.
    let (live, _) = app.login().await;
    app.cleanup().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = http
            .get(format!("{}/orders/42", nginx.base))
            .bearer_auth(&live)
            .send()
            .await
            .unwrap();
        // Until the server has closed its listener it may still answer.
        if response.status() != StatusCode::OK || tokio::time::Instant::now() >= deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_unavailable_page(response, &nginx).await;
    nginx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB and the nginx and redis-server programs: cargo test -- --include-ignored"]
async fn nginx_serves_the_503_page_while_the_token_store_is_down_and_recovers_after() {
    let (app, redis, port) = TestApp::spawn_on_own_redis().await;
    let upstream = Upstream::start().await;
    let tokencache = app.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(&tokencache, upstream.addr).await;
    let http = client();
    let (access, _) = app.login().await;
    let through_nginx = |token: String| {
        let request = http
            .get(format!("{}/orders/42", nginx.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let response = through_nginx(access.clone()).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");
    let passed = upstream.requests();

    redis.kill().await;
    // tokencache itself says 503 (not 401: it does not know whether the token is live).
    let direct = http
        .get(format!("{}/api/v1/auth", app.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::SERVICE_UNAVAILABLE);
    // nginx fails closed with the documented page, request after request.
    for _ in 0..2 {
        assert_unavailable_page(through_nginx(access.clone()).await, &nginx).await;
    }
    // No token needs no lookup: still a plain 401.
    let response = http
        .get(format!("{}/orders/42", nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        nginx.log()
    );
    assert_eq!(upstream.requests(), passed, "a request passed unchecked");
    let log = nginx.log();
    assert!(
        log.contains("auth request unexpected status: 503"),
        "nginx's log names tokencache's 503:\n{log}"
    );

    // Redis back on the same port (empty: the old token is gone): the check recovers by
    // itself, and a new login passes again.
    let _redis = OwnRedis::start(port).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = through_nginx(access.clone()).await;
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
        nginx.log()
    );
    let (access, _) = app.login().await;
    let response = through_nginx(access).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.log());
    assert_eq!(response.text().await.unwrap(), "user=alice");

    nginx.stop().await;
    app.cleanup().await;
}
