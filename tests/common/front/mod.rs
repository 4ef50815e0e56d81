//! One scenario set for every gateway: `Front` is a gateway (nginx, Traefik, Caddy) run
//! with the project's own files from deploy/, and `scenarios` are written once against
//! it; `on_every_front!` (macros.rs) makes each scenario a test through one gateway. Where
//! the gateways genuinely differ (Traefik's 500 page where nginx and Caddy answer 503, what
//! reaches the application of an empty header), the difference is data on the `Front`
//! impl, which the shared scenario asserts.
pub mod scenarios;

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::json;

use super::gateway::*;
use super::{now_ms, TestApp, PASSWORD};

/// A file of deploy/ that a gateway runs, which docs/gateways.md must show whole.
pub struct DeployFile {
    /// Its path in the repository.
    pub path: &'static str,
    /// Its text (`include_str!` of `path`).
    pub text: &'static str,
    /// The language of the doc's code block that shows it.
    pub block: &'static str,
    /// Its placeholders, sorted: the ones the doc's `sed` command (and `Front::start`) fill.
    pub placeholders: &'static [&'static str],
}

/// A gateway in front of the application, checking every request with tokencache's
/// forward-auth route, configured with its files from deploy/ and run as a child of the
/// test.
pub trait Front: Sized {
    /// The program, in failure messages.
    const NAME: &'static str;

    /// The files of deploy/ it runs.
    const FILES: &'static [DeployFile];

    /// Its status for "cannot tell" when tokencache itself is unreachable (stopped): 503
    /// with the page from nginx and Caddy; Traefik keeps its own 500 and shows 500.html.
    const WHEN_TOKENCACHE_IS_UNREACHABLE: StatusCode;

    /// What its log says when tokencache is unreachable.
    const LOGS_WHEN_TOKENCACHE_IS_UNREACHABLE: &'static [&'static str];

    /// What its log says when tokencache answers 503 (its token store is down).
    const LOGS_WHEN_TOKENCACHE_ANSWERS_503: &'static [&'static str];

    /// The `Cache-Control` of tokencache's 401 as the client gets it: Traefik and Caddy
    /// return that answer as it is; nginx's `auth_request` copies only `WWW-Authenticate`.
    const REFUSAL_CACHE_CONTROL: Option<&'static str>;

    /// The `X-Auth-Token-Type` values the application gets for a token whose type is empty
    /// (tokencache sends the header empty), whatever the client sent itself.
    const EMPTY_TOKEN_TYPE_REACHES_THE_APP_AS: &'static [&'static str];

    /// The forged identity headers (of `scenarios::FORGED`) that reach tokencache's check
    /// through this gateway, which then refuses the request (403); the others the
    /// gateway deletes before (or drops), and the request passes with tokencache's
    /// identity. Either way none reaches the application.
    const FORGED_REFUSED: &'static [&'static str];

    /// The application's own statuses that it answers with the "cannot tell" page (the
    /// status kept); the others pass as the application sent them.
    const PAGES_THE_APPLICATIONS_OWN: &'static [u16];

    /// Starts it in front of `upstream`, checking with tokencache at `tokencache`
    /// (host:port), and waits until it serves. Installs the program first when it is
    /// missing; fails the test, naming the program and how to get it, when it cannot.
    async fn start(tokencache: &str, upstream: SocketAddr) -> Self;

    /// Its process.
    fn gateway(&self) -> &Gateway;

    /// Stops it and waits for its process to end.
    async fn stop(self);

    /// The server of its "cannot tell" pages, when they are not its own (Traefik's
    /// `error-pages` service).
    fn error_pages(&self) -> Option<&Upstream> {
        None
    }

    /// The URL of `path` through it.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway().base)
    }

    /// Its output so far (for failure messages).
    fn log(&self) -> String {
        self.gateway().log()
    }

    /// Asserts `response`'s status, with its log in the failure.
    fn assert_status(&self, response: &reqwest::Response, status: StatusCode) {
        assert_eq!(
            response.status(),
            status,
            "{} answered {} where {status} was expected:\n{}",
            Self::NAME,
            response.status(),
            self.log()
        );
    }

    /// Asserts its log says each of `lines`.
    fn assert_logged(&self, lines: &[&str]) {
        let log = self.log();
        for line in lines {
            assert!(
                log.contains(line),
                "{}'s log does not say {line:?}:\n{log}",
                Self::NAME
            );
        }
    }
}

/// A tokencache, the recording application and the gateway `F` between them, with a
/// client that goes through the gateway.
pub struct Scene<F> {
    pub app: TestApp,
    pub upstream: Upstream,
    pub front: F,
    pub http: reqwest::Client,
}

impl<F: Front> Scene<F> {
    /// `F` in front of the application that answers "user=<X-Auth-Username>".
    pub async fn start(app: TestApp) -> Self {
        Self::start_before(app, Upstream::start().await).await
    }

    /// `F` in front of `upstream`.
    pub async fn start_before(app: TestApp, upstream: Upstream) -> Self {
        let front = F::start(&address(&app), upstream.addr).await;
        Scene {
            app,
            upstream,
            front,
            http: client(),
        }
    }

    /// A GET of `path` through the gateway.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.front.url(path))
    }

    /// Sends `access` through the gateway and asserts it passes as alice; returns how many
    /// requests have reached the application.
    pub async fn pass(&self, access: &str) -> usize {
        let response = self
            .get("/orders/42")
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        self.front.assert_status(&response, StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "user=alice");
        self.upstream.requests()
    }

    /// Asserts no more than `passed` requests reached the application, and that the
    /// gateway asked for no page (a 401 is not "cannot tell").
    pub fn assert_nothing_more_reached(&self, passed: usize) {
        assert_eq!(
            self.upstream.requests(),
            passed,
            "a refused request reached the application"
        );
        if let Some(pages) = self.front.error_pages() {
            assert_eq!(pages.requests(), 0, "a 401 is not an error page");
        }
    }

    /// Stops the gateway, then tokencache.
    pub async fn stop(self) {
        self.front.stop().await;
        self.app.cleanup().await;
    }
}

/// tokencache's host:port, as a gateway's configuration names it.
pub fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Logs `alice` in with `token_type` (which forward-auth sends back as
/// `X-Auth-Token-Type`); returns the access token.
pub async fn login_with_token_type(app: &TestApp, token_type: &str) -> String {
    let mut body = app.authorize_body("alice", PASSWORD, &now_ms().to_string());
    body["token_type"] = json!(token_type);
    let (status, v) = app.post("/api/v1/authorize", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["data"]["access_token"].as_str().unwrap().to_owned()
}

/// Asserts the documented answer for "tokencache cannot tell": `status` with the page
/// (text/html, `Retry-After: 5`, `Cache-Control: no-store`), never a login redirect; from
/// the gateway's page server, when it has one, as `<status>.html`.
pub async fn assert_unavailable_page<F: Front>(
    response: reqwest::Response,
    status: StatusCode,
    front: &F,
) {
    front.assert_status(&response, status);
    assert_eq!(header(&response, "retry-after"), Some("5"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    assert_eq!(header(&response, "location"), None, "not a login redirect");
    assert!(header(&response, "content-type").is_some_and(|t| t.starts_with("text/html")));
    let body = response.text().await.unwrap();
    assert!(body.contains(UNAVAILABLE_PAGE), "{body}");
    if let Some(pages) = front.error_pages() {
        assert_eq!(pages.last().path, format!("/{}.html", status.as_u16()));
    }
}

/// docs/gateways.md, read when a test asks (every test binary has this module: none is
/// rebuilt for a change to the doc).
pub fn gateways_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gateways.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
