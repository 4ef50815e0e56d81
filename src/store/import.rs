//! Carrying xxjwxc/oauth2's live tokens over: `LegacySource` reads its two token tables,
//! `TokenImport` writes what is still live into the token store the way tokencache keeps
//! its own. Two narrow traits of their own: only `tokencache import-legacy-tokens` uses
//! them, and only the stores that can take part implement them.
use std::collections::HashMap;
use std::future::Future;

use chrono::NaiveDateTime;

use super::{AccessRecord, RefreshRecord, StoreError, TokenHash};
use crate::secret::Secret;

/// One of the original's two token tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyTable {
    Access,
    Refresh,
}

impl LegacyTable {
    pub fn name(self) -> &'static str {
        match self {
            LegacyTable::Access => "oauth2_access_token",
            LegacyTable::Refresh => "oauth2_refresh_token",
        }
    }
}

/// A row of a legacy token table.
#[derive(Debug, Clone)]
pub struct LegacyRow {
    pub id: i64,
    pub token: Secret,
    pub token_type: String,
    pub app_key: String,
    pub username: String,
    /// When the token dies, in UTC; `None` when the row holds no readable date (a zero
    /// date, which the original treated as expired).
    pub expires: Option<NaiveDateTime>,
    /// The access-token lifetime of the pairs a refresh token makes (refresh rows only).
    pub token_expire_time: Option<i32>,
}

/// The database that holds the original's token tables.
pub trait LegacySource: Send + Sync {
    /// Where the rows come from: its name for the summary (the database's, never a
    /// password), and its identity for the resume mark (the name and the token tables'
    /// creation times: a copy restored under the same name elsewhere is another source).
    fn source_name(&self) -> impl Future<Output = Result<(String, String), StoreError>> + Send;

    /// How many rows of `table` have an id above `after_id`.
    fn legacy_count(
        &self,
        table: LegacyTable,
        after_id: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` rows of `table` with an id above `after_id`, by id.
    fn legacy_rows(
        &self,
        table: LegacyTable,
        after_id: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<LegacyRow>, StoreError>> + Send;

    /// Every client's `token_expire_time` (the lifetime an access row was issued with).
    fn client_lifetimes(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, i32>, StoreError>> + Send;
}

/// A live legacy token, as the token store will keep it.
#[derive(Debug, Clone)]
pub enum ImportedToken {
    Access {
        hash: TokenHash,
        record: AccessRecord,
    },
    Refresh {
        hash: TokenHash,
        record: RefreshRecord,
    },
}

/// A token store that can take imported tokens.
pub trait TokenImport: Send + Sync {
    /// Stores each token unless its key exists (`SET NX`), with its index entry and a
    /// TTL of the time it has left, and then, once all of that succeeded, the resume
    /// mark: every row of `table` of `source` up to `last_id` is done. `true` for each
    /// token stored now, `false` for each one that was there already.
    fn import_batch(
        &self,
        source: &str,
        table: LegacyTable,
        last_id: i64,
        tokens: &[ImportedToken],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// The last row id imported from `table` of `source` (0: none yet).
    fn import_mark(
        &self,
        source: &str,
        table: LegacyTable,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
}
