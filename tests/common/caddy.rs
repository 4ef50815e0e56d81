//! The real Caddy (Debian's, 2.6), run as a child of the test (never as the system's
//! service) with the documented site block (`deploy/caddy/Caddyfile`, or that file with a
//! change a test makes): finding it (or installing it, `apt-get install caddy`) and the
//! global options around the site block. tests/caddy.rs runs every gateway scenario
//! through it; tests/phantom.rs the phantom-token one.
use std::net::SocketAddr;
use std::path::PathBuf;

use super::gateway::*;
use super::services::free_port;

/// The documented configuration, with its `@SITE@`, `@TOKENCACHE@` and `@UPSTREAM@`
/// placeholders.
pub const CADDYFILE: &str = include_str!("../../deploy/caddy/Caddyfile");

/// How to get the program, in the failure that finds it missing.
pub const HOW: &str = "apt-get install caddy (Debian's Caddy 2.6, the `caddy` program; \
                       bash .ci/run installs it)";

/// The `caddy` program, installed with apt-get first when missing (with a fresh package
/// list if the first try fails).
pub fn caddy_program() -> PathBuf {
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
pub struct Caddy {
    pub gateway: Gateway,
}

impl Caddy {
    /// Caddy with `caddyfile` (the text of deploy/caddy/Caddyfile, or that text changed)
    /// in front of `upstream`, checking with tokencache at `tokencache` (host:port).
    pub async fn start_with(tokencache: &str, upstream: SocketAddr, caddyfile: &str) -> Caddy {
        let program = caddy_program();
        let port = free_port();
        let dir = temp_dir("tc_caddy");
        let site = fill(
            caddyfile,
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
}
