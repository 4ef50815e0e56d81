//! The token store family: the records of tokens and the short-lived keys beside them,
//! and the traits a backend implements (one per concern: `TokenStore`, `Revocation`,
//! `Counters`, `Codes`). Below them: the Redis backend and the in-process one, and
//! `backend::Tokens`, the one the server picked at start. `keys` names everything they
//! keep. This file defines; it imports none of its implementations.
pub mod backend;
pub mod keys;
pub mod memory;
pub mod redis;
mod value;

use std::future::Future;

use sha2::{Digest, Sha256};

use super::StoreError;
use crate::secret::Secret;

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
    /// Issued to a client at `/oauth2/token`: redeemed only there, with the client's
    /// credentials (RFC 6749 section 6), never at the legacy `refresh_token`.
    pub client_only: bool,
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

/// The pair a refreshed pair descends from, as the user's index names it: the new pair
/// is filed only while this one is still there (not revoked meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentPair {
    pub access: TokenHash,
    pub refresh: TokenHash,
    pub family: FamilyId,
}

/// What `issue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issue {
    /// The pair is stored and filed: it is live.
    Issued,
    /// Its parent was revoked before the pair could be filed: nothing of it is live.
    ParentRevoked,
}

/// A short-lived counter (failed logins, requests per IP, wrong codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub count: u64,
    /// Seconds until the counter resets (0 when it does not exist).
    pub ttl: u64,
}

/// Tokens: the records of access and refresh tokens. Every operation is one round trip
/// (or a pipeline of single-key commands).
pub trait TokenStore: Send + Sync + 'static {
    /// What kind of store this is (`redis`, `in-process`), for logs and readiness.
    fn name(&self) -> &'static str;

    /// The live access token with this hash, if any: exactly one GET.
    fn access(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<AccessRecord>, StoreError>> + Send;

    /// Stores a pair with its TTLs (access: `lifetime`, refresh: 2 × `lifetime`) and files
    /// it in the user's index, atomically with two checks: a refreshed pair only while
    /// its `parent` is still filed (a revocation that removed the parent first wins, and
    /// the pair is dropped: `ParentRevoked`); and past `cap` pairs (0: none) the index
    /// drops its oldest, whose tokens are revoked. A pair without a refresh token (a
    /// client's own, client_credentials) is stored alone: no user's index, no cap.
    fn issue(
        &self,
        pair: &IssuedPair,
        parent: Option<&ParentPair>,
        cap: usize,
    ) -> impl Future<Output = Result<Issue, StoreError>> + Send;

    /// The refresh token with this hash, without using it (introspection).
    fn refresh(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<RefreshState>, StoreError>> + Send;

    /// Uses a refresh token atomically: of concurrent callers with the same hash, exactly
    /// one gets `Live`; it is marked used, and later callers get `Used`. A `client_only`
    /// token is used only by a caller that authenticated its client (`by_client`); any
    /// other gets it `Live` and unused, to refuse.
    fn take_refresh(
        &self,
        hash: &TokenHash,
        by_client: bool,
    ) -> impl Future<Output = Result<Option<RefreshState>, StoreError>> + Send;

    /// Checks that the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Revocation through a user's index of live pairs: a user everywhere, one pair, one
/// login's family. Each takes the pairs out of the index in one atomic step (so that an
/// `issue` after it cannot file a pair refreshed from them) and then revokes their tokens;
/// it answers once every token is revoked. Each returns how many live tokens it revoked.
pub trait Revocation: Send + Sync + 'static {
    /// Revokes every pair of a user.
    fn revoke_user(&self, username: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Revokes the pair an access token belongs to (both tokens), or the access token
    /// alone when it has no pair (a client's own).
    fn revoke_pair(
        &self,
        username: &str,
        access: &TokenHash,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Revokes every pair descended from one login.
    fn revoke_family(
        &self,
        username: &str,
        family: &FamilyId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// For a token found not live: when the store holds it as revoked, makes sure the
    /// revocation is on as many replicas as any revocation's before the caller answers
    /// (an earlier try that wrote it may have answered 503, not confirmed); `true` when
    /// it was held revoked. Nothing is written for a token the store does not hold.
    fn confirm_revoked(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Short-lived counters, locks and one-time values: login lockouts, per-IP limits, the
/// resend lock of codes, replayed signatures. Shared by every instance on one store.
pub trait Counters: Send + Sync + 'static {
    /// Records a one-time value (a request signature) for `ttl_secs`; `false` when it
    /// was already recorded (a replay).
    fn claim_once(
        &self,
        value: &str,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

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
}

/// Verification codes, one per name, for a limited time.
pub trait Codes: Send + Sync + 'static {
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

/// Everything the domain asks of a token store: one backend implementing each concern.
pub trait TokenBackend: TokenStore + Revocation + Counters + Codes {}

impl<T: TokenStore + Revocation + Counters + Codes> TokenBackend for T {}
