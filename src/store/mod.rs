//! The two store families behind the domain: `tokens` (Redis, or in-process) for tokens
//! and short-lived keys, and `records` (sea-orm: MySQL/MariaDB or SQLite) for clients,
//! users and profiles, each with one trait per concern; `import` reads the original's
//! token tables. The domain is generic over their traits and never sees redis or sea-orm
//! types. Each family's `mod.rs` defines its types and traits and imports none of its
//! implementations, which sit below it.
pub mod import;
pub mod records;
pub mod tokens;

pub use records::{
    Client, ClientRecords, KeyRecords, NewClient, NewUser, Profile, ProfileRecords, RecordBackend,
    RecordStore, StoredKey, User, UserRecords,
};
pub use tokens::{
    AccessRecord, Codes, Counter, Counters, FamilyId, Issue, IssuedPair, ParentPair, RefreshRecord,
    RefreshState, Revocation, TokenBackend, TokenHash, TokenStore,
};

/// A failure of a store: the service is unreachable, too slow, or answered nonsense.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time: the request is worth
    /// retrying later (code 1, HTTP 503).
    #[error("{store} unavailable: {source}")]
    Unavailable {
        store: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A unique key already holds this value.
    #[error("already exists")]
    Conflict,
    /// The store answered with something this version cannot read.
    #[error("corrupt {what} in {store}: {detail}")]
    Corrupt {
        store: &'static str,
        what: &'static str,
        detail: String,
    },
}
