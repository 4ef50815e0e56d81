//! The real Caddy (Debian's, 2.6) in front of an upstream, configured with
//! `deploy/caddy/Caddyfile` (the file docs/gateways.md documents), checking every request
//! with the real server's forward-auth route: every scenario of `common::front::scenarios`,
//! through Caddy. What is Caddy's own is here: finding it (or installing it, `apt-get
//! install caddy`), the global options around the documented site block, and where it
//! differs from the other gateways (the data of `impl Front for Caddy`). Its own test
//! binary: it needs the `caddy` program. Caddy runs as a child of the test, never as the
//! system's service.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::front::{DeployFile, Front};
use common::gateway::*;
use common::*;
use reqwest::StatusCode;

on_every_front!(Caddy, through_caddy);

/// The documented configuration, with its `@SITE@`, `@TOKENCACHE@` and `@UPSTREAM@`
/// placeholders.
const CADDYFILE: &str = include_str!("../deploy/caddy/Caddyfile");

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

impl Front for Caddy {
    const NAME: &'static str = "caddy";

    const FILES: &'static [DeployFile] = &[DeployFile {
        path: "deploy/caddy/Caddyfile",
        text: CADDYFILE,
        block: "caddy",
        placeholders: &["@SITE@", "@TOKENCACHE@", "@UPSTREAM@"],
    }];

    /// Caddy's own 502 for the check, which `handle_errors` answers with the 503 page.
    const WHEN_TOKENCACHE_IS_UNREACHABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

    /// Nothing to look for: without a `log` directive Caddy logs no request's error (its
    /// log shows only its start, as observed with 2.6).
    const LOGS_WHEN_TOKENCACHE_IS_UNREACHABLE: &'static [&'static str] = &[];

    /// Nothing either, for the same reason.
    const LOGS_WHEN_TOKENCACHE_ANSWERS_503: &'static [&'static str] = &[];

    /// `forward_auth` returns tokencache's 401 as it is.
    const REFUSAL_CACHE_CONTROL: Option<&'static str> = Some("no-store");

    /// The client's own header is deleted first, and `copy_headers` sets the empty value.
    const EMPTY_TOKEN_TYPE_REACHES_THE_APP_AS: &'static [&'static str] = &[""];
    // `request_header` deletes the hyphenated ones before the check; the ones with
    // underscores go to it and are refused.
    const FORGED_REFUSED: &'static [&'static str] = &["X_Auth_Username", "x_auth_app_key"];

    /// `handle_errors` answers only errors of the check (its upstream is tokencache's).
    const PAGES_THE_APPLICATIONS_OWN: &'static [u16] = &[];

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

    fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}
