//! The rules of the token server, free of HTTP and of any store's types: signatures,
//! password checks, issuing, checking, refreshing and revoking tokens; accounts
//! (verification codes, sign-up, password change, profiles) and abuse limits. `Engine`
//! is generic over the two stores; each rule asks only the store traits it uses.
pub mod account;
pub mod admin;
pub mod authorize;
pub mod check_token;
pub mod clients;
pub mod oauth;
pub mod password;
pub mod refresh;
pub mod revoke;
pub mod sign;
pub mod token;

pub mod delivery;
pub mod import;
pub mod limits;
pub mod profile;
pub mod register;
mod signed;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::secret::Secret;
use crate::store::{
    AccessRecord, FamilyId, Issue, IssuedPair, ParentPair, RefreshRecord, Revocation, StoreError,
    TokenHash, TokenStore,
};
use delivery::{Channel, CodeDelivery, DeliveryError};
use limits::Limits;
use password::{Argon2Settings, PasswordError, Passwords};

/// The rule settings.
#[derive(Debug, Clone)]
pub struct Rules {
    /// How far (seconds) a request's `time` may be from now; 0 turns the freshness and
    /// replay checks off for old clients.
    pub freshness_window: u64,
    pub argon2: Argon2Settings,
    /// Login lockout, per-IP limits, verification codes.
    pub limits: Limits,
    /// How long the OAuth endpoints use a client read from the records before reading
    /// it again (0: every call reads it).
    pub client_cache: Duration,
    /// Pairs a user's index keeps: past it the oldest are revoked, each login or refresh
    /// trimming to exactly the cap (0: no cap). Bounds what one account can make Redis
    /// hold and what revoking it reads. A client's own tokens are not counted.
    pub max_sessions_per_user: usize,
}

impl Rules {
    /// The defaults: the `Default` impl and the command line's defaults both read these.
    pub const DEFAULT: Rules = Rules {
        freshness_window: 300,
        argon2: Argon2Settings::DEFAULT,
        limits: Limits::DEFAULT,
        client_cache: Duration::from_secs(2),
        max_sessions_per_user: 100,
    };
}

impl Default for Rules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Every way a request can fail in the domain. Expected failures are named variants;
/// the HTTP layer maps each to one message id.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("invalid parameter `{0}`")]
    InvalidParam(&'static str),
    #[error("unknown or disabled app_key")]
    UnknownClient,
    #[error("client not allowed to log in without a password")]
    NopwdNotAllowed,
    #[error("client expired")]
    ClientExpired,
    #[error("signature mismatch")]
    BadSignature,
    #[error("request time outside the freshness window")]
    StaleTime,
    #[error("signature already used (replay)")]
    Replay,
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("account disabled")]
    UserDisabled,
    #[error("token invalid, expired or revoked")]
    InvalidToken,
    #[error("client authentication failed")]
    InvalidClient,
    #[error("already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
    /// A name the database matches to an account spelt otherwise (beyond ASCII case):
    /// refused rather than taken as that account (the CLI names it).
    #[error("no account is spelt so; the database matches it to the account `{stored}`: give that spelling")]
    OtherSpelling { stored: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("verification code requested too often (retry in {retry_after} s)")]
    CodeTooSoon { retry_after: u64 },
    #[error("{channel} delivery failed: {source}")]
    Delivery {
        channel: Channel,
        #[source]
        source: DeliveryError,
    },
    #[error("not a plausible phone number")]
    PhoneMalformed,
    #[error("verification code missing, wrong, expired or void")]
    WrongCode,
    #[error("user does not exist")]
    UserMissing,
    #[error("too many requests from this address (retry in {retry_after} s)")]
    RateLimited { retry_after: u64 },
    #[error("too many failed logins for this username (retry in {retry_after} s)")]
    LockedOut { retry_after: u64 },
}

impl DomainError {
    /// Seconds for a `Retry-After` header: rate limits, lockouts, the code resend lock.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            DomainError::RateLimited { retry_after }
            | DomainError::LockedOut { retry_after }
            | DomainError::CodeTooSoon { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short, fixed name for the failure (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            DomainError::InvalidParam(_) => "invalid_param",
            DomainError::UnknownClient => "unknown_client",
            DomainError::NopwdNotAllowed => "nopwd_not_allowed",
            DomainError::ClientExpired => "client_expired",
            DomainError::BadSignature => "bad_signature",
            DomainError::StaleTime => "stale_time",
            DomainError::Replay => "replay",
            DomainError::BadCredentials => "bad_credentials",
            DomainError::UserDisabled => "user_disabled",
            DomainError::InvalidToken => "invalid_token",
            DomainError::InvalidClient => "invalid_client",
            DomainError::AlreadyExists => "already_exists",
            DomainError::NotFound => "not_found",
            DomainError::OtherSpelling { .. } => "other_spelling",
            DomainError::Store(_) => "store_error",
            DomainError::Password(_) => "internal",
            DomainError::CodeTooSoon { .. } => "code_too_soon",
            DomainError::Delivery { .. } => "delivery_failed",
            DomainError::PhoneMalformed => "phone_malformed",
            DomainError::WrongCode => "wrong_code",
            DomainError::UserMissing => "user_missing",
            DomainError::RateLimited { .. } => "rate_limited",
            DomainError::LockedOut { .. } => "locked_out",
        }
    }
}

/// A freshly issued token pair, as returned to the client.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    /// `None` for client_credentials.
    pub refresh_token: Option<Secret>,
    /// The access token's lifetime in seconds.
    pub expire_time: u32,
    pub username: String,
}

/// The domain: the two stores and the rules.
pub struct Engine<T, R> {
    pub tokens: T,
    pub records: R,
    pub rules: Rules,
    pub passwords: Passwords,
    /// Sends verification codes (the caller picks how: the log, a webhook).
    pub delivery: Arc<dyn CodeDelivery>,
    /// The clients the OAuth endpoints read recently.
    pub clients: clients::ClientCache,
    /// Phantom tokens (`--upstream-jwt`): the keys and the minted JWTs.
    pub upstream: Option<Arc<crate::upstream::Upstream>>,
}

impl<T: TokenStore + Revocation, R> Engine<T, R> {
    pub fn new(
        tokens: T,
        records: R,
        rules: Rules,
        delivery: Arc<dyn CodeDelivery>,
    ) -> Result<Self, PasswordError> {
        let passwords = Passwords::new(rules.argon2)?;
        Ok(Self {
            tokens,
            records,
            clients: clients::ClientCache::new(rules.client_cache),
            rules,
            passwords,
            delivery,
            upstream: None,
        })
    }

    /// Creates and stores a new pair for a user of a client. `parent` is the pair it is
    /// refreshed from (`None`: a new login), which must still be live when the new pair
    /// is filed (102 otherwise: a revocation took it meanwhile); `refresh` says whether a
    /// refresh token is issued with it, and who may redeem it. Past the session cap the
    /// user's oldest pairs are revoked before this answers.
    pub(crate) async fn issue(
        &self,
        route: &'static str,
        grant: Grant<'_>,
        parent: Option<ParentPair>,
        refresh: Refresh,
    ) -> Result<Issued, DomainError> {
        let lifetime = grant.lifetime.max(1);
        let now = crate::clock::unix_now();
        let access_token = token::generate();
        let access = AccessRecord {
            username: grant.username.to_owned(),
            app_key: grant.app_key.to_owned(),
            token_type: grant.token_type.to_owned(),
            expires: now + i64::from(lifetime),
            lifetime,
        };
        let access_hash = TokenHash::of(&access_token);
        let family = parent.map_or_else(FamilyId::random, |p| p.family);
        let refresh_token = (refresh != Refresh::None).then(token::generate);
        let refresh = refresh_token.as_ref().map(|t| {
            let record = RefreshRecord {
                grant: AccessRecord {
                    expires: now + 2 * i64::from(lifetime),
                    ..access.clone()
                },
                access: access_hash,
                family,
                client_only: refresh == Refresh::ClientOnly,
            };
            (TokenHash::of(t), record)
        });
        let pair = IssuedPair {
            access_hash,
            access,
            refresh,
            family,
        };
        let cap = self.rules.max_sessions_per_user;
        match self.tokens.issue(&pair, parent.as_ref(), cap).await? {
            Issue::Issued => {}
            Issue::ParentRevoked => return Err(DomainError::InvalidToken),
        }
        crate::telemetry::tokens_issued(route);
        Ok(Issued {
            access_token: Secret::new(access_token),
            refresh_token: refresh_token.map(Secret::new),
            expire_time: lifetime,
            username: grant.username.to_owned(),
        })
    }
}

/// Whether a new pair has a refresh token, and who may redeem it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// An access token alone (client_credentials).
    None,
    /// Redeemed by whoever holds it (`refresh_token`, as the original).
    Open,
    /// Redeemed only at `/oauth2/token` with the client's credentials (RFC 6749 §6).
    ClientOnly,
}

impl Refresh {
    /// The kind of refresh token a pair refreshed from `record` gets: its own.
    pub(crate) fn of(record: &RefreshRecord) -> Self {
        if record.client_only {
            Refresh::ClientOnly
        } else {
            Refresh::Open
        }
    }
}

/// Who a new pair is for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant<'a> {
    pub username: &'a str,
    pub app_key: &'a str,
    pub token_type: &'a str,
    pub lifetime: u32,
}

/// A required field: present and not empty.
pub(crate) fn required<'a>(
    value: Option<&'a str>,
    name: &'static str,
) -> Result<&'a str, DomainError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(DomainError::InvalidParam(name)),
    }
}
