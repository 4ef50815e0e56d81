//! The two stores behind the domain: `TokenStore` (Redis, or in-process) for tokens and
//! short-lived counters, `RecordStore` (sea-orm: MySQL/MariaDB or SQLite) for clients and
//! users. The domain is generic over both traits and never sees redis or sea-orm types.
pub mod import;
pub mod records;
pub mod tokens;

use std::future::Future;

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

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

/// URL-safe base64 without padding, the text form of hashes and ids in keys and values.
fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The `N` bytes `b64_encode` made, or `None` for any other text.
fn b64_decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    bytes.try_into().ok()
}

/// The first 128 bits of the SHA-256 of a token: what the token stores key on, so a dump
/// of Redis never holds a usable token. 128 bits keep keys short (memory per token) while
/// a collision or a preimage stays out of reach.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 16]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&digest[..16]);
        Self(prefix)
    }

    /// URL-safe base64 without padding: 22 characters.
    pub fn encode(&self) -> String {
        b64_encode(&self.0)
    }

    pub fn decode(text: &str) -> Option<Self> {
        b64_decode(text).map(Self)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", &self.encode()[..8])
    }
}

/// What an access token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub username: String,
    pub app_key: String,
    pub token_type: String,
    /// Unix seconds at which the token dies; kept in the value so check_token can say
    /// how long is left without a second command (TTL).
    pub expires: i64,
    /// The client's `token_expire_time` when the token was issued.
    pub lifetime: u32,
}

/// A login's lineage: every pair refreshed from one login shares it, so a replayed
/// refresh token can revoke all of them at once.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId(pub [u8; 6]);

impl FamilyId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// URL-safe base64: 8 characters.
    pub fn encode(&self) -> String {
        b64_encode(&self.0)
    }

    pub fn decode(text: &str) -> Option<Self> {
        b64_decode(text).map(Self)
    }
}

impl std::fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FamilyId({})", self.encode())
    }
}

/// What a refresh token stands for: the same fields, plus the access token issued with it
/// and the login it descends from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub grant: AccessRecord,
    /// The hash of the access token issued in the same pair (for revoking the pair).
    pub access: TokenHash,
    pub family: FamilyId,
}

/// A refresh token as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshState {
    /// Never used: good for one rotation.
    Live(RefreshRecord),
    /// Already rotated: presenting it again is a replay (its family gets revoked). Kept
    /// until the token would have expired.
    Used(RefreshRecord),
}

/// A freshly issued pair, as the token store keeps it. `refresh` is `None` for grants
/// that get no refresh token (client_credentials).
#[derive(Debug, Clone)]
pub struct IssuedPair {
    pub access_hash: TokenHash,
    pub access: AccessRecord,
    pub refresh: Option<(TokenHash, RefreshRecord)>,
    pub family: FamilyId,
}

/// Tokens and short-lived keys. Every operation is one Redis round trip (or a pipeline
/// of single-key commands), so each is safe on Redis Cluster.
pub trait TokenStore: Send + Sync + 'static {
    /// What kind of store this is (`redis`, `in-process`), for logs and readiness.
    fn name(&self) -> &'static str;

    /// The live access token with this hash, if any: exactly one GET.
    fn access(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<AccessRecord>, StoreError>> + Send;

    /// Stores a pair with its TTLs (access: `lifetime`, refresh: 2 × `lifetime`) and adds
    /// it to the user's index of live tokens.
    fn issue(&self, pair: &IssuedPair) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The refresh token with this hash, without using it (introspection).
    fn refresh(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<RefreshState>, StoreError>> + Send;

    /// Uses a refresh token atomically: of concurrent callers with the same hash, exactly
    /// one gets `Live`; it is marked used, and later callers get `Used`.
    fn take_refresh(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<RefreshState>, StoreError>> + Send;

    /// Records a one-time value (a request signature) for `ttl_secs`; `false` when it
    /// was already recorded (a replay).
    fn claim_once(
        &self,
        value: &str,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes every live token of a user; returns how many keys were removed.
    fn revoke_user(&self, username: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes the pair an access token belongs to (both tokens).
    fn revoke_pair(
        &self,
        username: &str,
        access: &TokenHash,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes every pair descended from one login.
    fn revoke_family(
        &self,
        username: &str,
        family: &FamilyId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Checks that the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds one to a named counter that lives `window_secs` from its first hit
    /// (INCR, then EXPIRE NX on the same key); returns the new count and the seconds
    /// until the counter resets.
    fn hit(
        &self,
        counter: &str,
        window_secs: u64,
    ) -> impl Future<Output = Result<Counter, StoreError>> + Send;

    /// The counter's value and seconds left, without counting (zero when absent).
    fn peek(&self, counter: &str) -> impl Future<Output = Result<Counter, StoreError>> + Send;

    /// Deletes a counter.
    fn clear(&self, counter: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a named lock for `ttl_secs` unless someone holds it (SET NX EX):
    /// `None` when taken now, `Some(seconds left)` when already held.
    fn lock(
        &self,
        name: &str,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Releases a named lock.
    fn unlock(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a verification code under a name for `ttl_secs`, replacing an earlier one.
    fn put_code(
        &self,
        name: &str,
        code: &Secret,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live code under a name, if any.
    fn code(&self, name: &str) -> impl Future<Output = Result<Option<Secret>, StoreError>> + Send;

    /// Deletes the code under a name; `true` for the one caller that removed it.
    fn take_code(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A short-lived counter (failed logins, requests per IP, wrong codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub count: u64,
    /// Seconds until the counter resets (0 when it does not exist).
    pub ttl: u64,
}

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

/// Clients and users.
pub trait RecordStore: Send + Sync + 'static {
    /// What kind of store this is (`mysql`, `sqlite`), for logs and readiness.
    fn name(&self) -> &'static str;

    /// Connections open and in use, for metrics (`None` when not pooled).
    fn pool_usage(&self) -> Option<(u32, u32)>;

    fn client(
        &self,
        app_key: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;
    fn clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;
    fn create_client(
        &self,
        client: &NewClient,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `false` when no such client exists.
    fn disable_client(
        &self,
        app_key: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn user(&self, account: &str) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
    fn create_user(&self, user: &NewUser) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `false` when no such user exists.
    fn set_password(
        &self,
        account: &str,
        password_hash: &Secret,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// `false` when no such user exists.
    fn disable_user(&self, account: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

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
