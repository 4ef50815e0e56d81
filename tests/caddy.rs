//! The real Caddy (Debian's, 2.6) in front of an upstream, configured with
//! `deploy/caddy/Caddyfile` (the file docs/gateways.md documents), checking every request
//! with the real server's forward-auth route: every scenario of `common::front::scenarios`,
//! through Caddy. Running it (finding or installing it, `apt-get install caddy`, the
//! global options around the documented site block) is `common::caddy`'s; here is where
//! it differs from the other gateways (the data of `impl Front for Caddy`). Its own test
//! binary: it needs the `caddy` program. Caddy runs as a child of the test, never as the
//! system's service.
mod common;

use std::net::SocketAddr;

use common::caddy::{Caddy, CADDYFILE};
use common::front::{DeployFile, Front};
use common::gateway::*;
use reqwest::StatusCode;

on_every_front!(Caddy, through_caddy);

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
        Caddy::start_with(tokencache, upstream, CADDYFILE).await
    }

    fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}
