//! Integration tests: the real server in-process on port 0, spoken to over HTTP, on
//! MariaDB + Redis and on the embedded stores.
#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod accounts;
mod authorize;
mod check_and_refresh;
mod cli;
mod durability;
mod faults;
mod gateways;
mod legacy;
mod limits;
mod near_cache;
mod ops;
mod profile;
mod redis_layout;
mod resharding;
mod scale;
mod transport;
mod upstream_jwt;
