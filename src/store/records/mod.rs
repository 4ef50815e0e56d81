//! The record store family: clients and users, and the traits a backend implements (one
//! per concern: `RecordStore`, `ClientRecords`, `UserRecords`, `ProfileRecords`). Below
//! them: the one implementation, sea-orm over MySQL/MariaDB or SQLite (`sea`, its
//! migrations in `migrate`), and the original's token tables (`legacy`).
mod entities;
pub mod legacy;
pub mod migrate;
pub mod sea;
pub mod zone;

use std::future::Future;

use chrono::NaiveDateTime;

use super::StoreError;
use crate::secret::Secret;

/// An app allowed to log users in (`oauth2_client_tbl`).
#[derive(Debug, Clone)]
pub struct Client {
    pub app_key: String,
    pub app_secret: Secret,
    /// When the client stops being accepted (code 3); `None`: never.
    pub expire_time: Option<NaiveDateTime>,
    /// 1: verification codes forced, 2: ignored.
    pub strict_verify: i32,
    /// Access-token lifetime in seconds; refresh tokens live twice as long.
    pub token_expire_time: i32,
    /// Trusted to call authorize_nopwd.
    pub allow_nopwd: bool,
    pub disabled: bool,
}

/// A client to create.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub app_key: String,
    pub app_secret: Secret,
    pub expire_time: Option<NaiveDateTime>,
    pub strict_verify: i32,
    pub token_expire_time: i32,
    pub allow_nopwd: bool,
}

/// A user account (`user_account_tbl`).
#[derive(Debug, Clone)]
pub struct User {
    pub id: i32,
    pub account: String,
    /// An argon2id PHC string, or a legacy plain value imported from an old database.
    pub password: Secret,
    pub account_type: i32,
    pub app_key: String,
    pub disabled: bool,
}

/// A user to create; `password` is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub account: String,
    pub password_hash: Secret,
    pub account_type: i32,
    pub app_key: String,
    pub reg_ip: String,
    pub bundle_id: String,
}

/// What get_userinfo shows of an account.
#[derive(Debug, Clone)]
pub struct Profile {
    pub account: String,
    pub account_type: i32,
    pub app_key: String,
    pub nickname: String,
    pub headurl: String,
    /// UTC; `None` for a legacy row without one.
    pub reg_time: Option<NaiveDateTime>,
    pub reg_ip: String,
    pub bundle_id: String,
}

/// The record store itself: what kind it is, its pool, whether it answers (logs,
/// metrics, readiness).
pub trait RecordStore: Send + Sync + 'static {
    /// What kind of store this is (`mysql`, `sqlite`), for logs and readiness.
    fn name(&self) -> &'static str;

    /// Connections open and in use, for metrics (`None` when not pooled).
    fn pool_usage(&self) -> Option<(u32, u32)>;

    /// Checks that the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Clients: the apps allowed to log users in (`oauth2_client_tbl`).
pub trait ClientRecords: Send + Sync + 'static {
    /// The client with this app key, disabled or not.
    fn client(
        &self,
        app_key: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;

    /// Every client, by app key.
    fn clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;

    /// `StoreError::Conflict` when the app key is taken.
    fn create_client(
        &self,
        client: &NewClient,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `false` when no such client exists.
    fn disable_client(
        &self,
        app_key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// User accounts (`user_account_tbl`): finding one, creating one, its password, disabling.
pub trait UserRecords: Send + Sync + 'static {
    /// The account the database matches with `account` (under its collation).
    fn user(&self, account: &str) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Creates the account and its profile row; `StoreError::Conflict` when the name is
    /// taken.
    fn create_user(&self, user: &NewUser) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `false` when no such user exists.
    fn set_password(
        &self,
        account: &str,
        password_hash: &Secret,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `false` when no such user exists.
    fn disable_user(&self, account: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What get_userinfo shows and update_userinfo changes (`user_info_tbl`, with the account).
pub trait ProfileRecords: Send + Sync + 'static {
    /// A user's account row joined with its `user_info_tbl` row.
    fn profile(
        &self,
        account: &str,
    ) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send;

    /// Sets nickname and headurl (creating the `user_info_tbl` row of a legacy account
    /// that has none); `false` when no such user exists.
    fn update_profile(
        &self,
        account: &str,
        nickname: &str,
        headurl: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A key that signs the JWTs handed to upstreams (`tokencache_signing_key`).
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    /// The private key, base64: never logged, never answered.
    pub private_key: Secret,
    /// Unix seconds: published in the JWKS from then on.
    pub published_at: i64,
    /// Unix seconds: signs from then on, until a later key's `signs_from`.
    pub signs_from: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("published_at", &self.published_at)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// The upstream JWTs' signing keys, shared by every instance of a fleet.
pub trait KeyRecords: Send + Sync + 'static {
    /// Every stored key, oldest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    /// Stores a new key.
    fn add_signing_key(
        &self,
        key: &StoredKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the keys named; how many were.
    fn delete_signing_keys(
        &self,
        kids: &[String],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Everything the server asks of a record store: one backend implementing each concern.
pub trait RecordBackend:
    RecordStore + ClientRecords + UserRecords + ProfileRecords + KeyRecords
{
}

impl<R: RecordStore + ClientRecords + UserRecords + ProfileRecords + KeyRecords> RecordBackend
    for R
{
}
