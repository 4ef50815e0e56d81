//! tokencache: a stateless token server for API gateways, a drop-in replacement for the
//! Go account system xxjwxc/oauth2 (same routes, MD5-signed requests and envelope).
//!
//! Map of the crate, three layers in one direction:
//!
//! - [`http`]: bytes ⇄ request structs, the router, statuses and the
//!   `{state, code, error, data}` envelope. Imports neither redis nor sea-orm.
//! - [`domain`]: the rules (signatures, passwords, issuing, checking, refreshing,
//!   revoking), generic over the store traits.
//! - [`store`]: the token traits (`TokenStore`, `Revocation`, `Counters`, `Codes`: Redis in
//!   `store::tokens::redis`, or in-process) and the record traits (`RecordStore`,
//!   `ClientRecords`, `UserRecords`, `ProfileRecords`: sea-orm over MySQL/MariaDB or
//!   SQLite in `store::records::sea`).
//!
//! - [`delivery`]: how verification codes reach users (the server log, or a webhook),
//!   behind `domain::delivery::CodeDelivery`.
//!
//! [`app`] wires them from [`app::Settings`] and serves; [`cli`] is the command line;
//! [`clock`] is the one "now" of the domain and the stores; [`telemetry`] names every
//! metric and renders them for `/metrics`.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod delivery;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod upstream;
