//! What every integration test binary shares: `services` (MariaDB and Redis, found once
//! per process), `app` (`TestApp`, the server in-process on port 0), `clients` (one
//! helper per endpoint, signatures, assertions), `topology` (a local Redis Cluster and
//! Sentinel setup), `webhook` (a code-delivery receiver and the account endpoints),
//! `gateway` (a real gateway in front of a recording application), `traefik` and `caddy`
//! (those gateways run with their documented configuration), `installs` (programs and
//! packages found or installed once), `front` (the gateway
//! scenarios, written once for nginx, Traefik and Caddy) and `macros` (one scenario on each
//! backend, or through each gateway). Not every binary uses every helper.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod app;
pub mod caddy;
pub mod clients;
pub mod front;
pub mod gateway;
pub mod installs;
#[macro_use]
pub mod macros;
pub mod services;
pub mod topology;
pub mod traefik;
pub mod webhook;

pub use app::*;
pub use clients::*;
pub use services::*;
pub use webhook::*;
