//! The abuse suite: each attack on accounts, limits and tokens as a test named for it,
//! every one of which failed before its fix (see the security model in the book).
//!
//! - `spelling`: names the database matches to an account spelt otherwise;
//! - `guessing`: passwords and verification codes guessed, concurrently or over time;
//! - `addresses`: forged forwarding headers and IPv6 clients;
//! - `clients`: app keys and tokens of clients (unknown app keys, OAuth refresh tokens,
//!   replayed login signatures);
//! - `redis_version`: a Redis too old for the store's commands.
mod addresses;
mod clients;
mod guessing;
mod redis_version;
mod spelling;
