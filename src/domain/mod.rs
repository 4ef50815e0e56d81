//! The rules of the token server, free of HTTP and of any store's types: signatures,
//! password checks, issuing, checking, refreshing and revoking tokens; accounts
//! (verification codes, sign-up, password change, profiles) and abuse limits. `Engine`
//! is generic over the two store traits.
pub mod account;
pub mod admin;
pub mod authorize;
pub mod check_token;
pub mod password;
pub mod refresh;
pub mod sign;
pub mod token;

pub mod delivery;
pub mod limits;
pub mod profile;
pub mod register;
mod signed;
pub mod verify;

use std::sync::Arc;

use crate::secret::Secret;
use crate::store::{IssuedPair, RecordStore, StoreError, TokenHash, TokenStore};
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
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            freshness_window: 300,
            argon2: Argon2Settings::default(),
            limits: Limits::default(),
        }
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
    #[error("already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
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

/// A freshly issued token pair, as returned to the client.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    pub refresh_token: Secret,
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
    /// Sends verification codes; the server log unless `with_delivery` says otherwise.
    pub delivery: Arc<dyn CodeDelivery>,
}

impl<T: TokenStore, R: RecordStore> Engine<T, R> {
    pub fn new(tokens: T, records: R, rules: Rules) -> Result<Self, PasswordError> {
        let passwords = Passwords::new(rules.argon2)?;
        Ok(Self {
            tokens,
            records,
            rules,
            passwords,
            delivery: Arc::new(crate::delivery::log::LogDelivery),
        })
    }

    /// The same engine sending verification codes through `delivery`.
    pub fn with_delivery(mut self, delivery: Arc<dyn CodeDelivery>) -> Self {
        self.delivery = delivery;
        self
    }

    /// Creates and stores a new access + refresh pair for a user of a client.
    async fn issue(
        &self,
        username: &str,
        app_key: &str,
        token_type: &str,
        lifetime: u32,
    ) -> Result<Issued, DomainError> {
        let lifetime = lifetime.max(1);
        let now = crate::store::tokens::unix_now();
        let access_token = token::generate();
        let refresh_token = token::generate();
        let access = crate::store::AccessRecord {
            username: username.to_owned(),
            app_key: app_key.to_owned(),
            token_type: token_type.to_owned(),
            expires: now + i64::from(lifetime),
            lifetime,
        };
        let access_hash = TokenHash::of(&access_token);
        let refresh = crate::store::RefreshRecord {
            grant: crate::store::AccessRecord {
                expires: now + 2 * i64::from(lifetime),
                ..access.clone()
            },
            access: access_hash,
        };
        let pair = IssuedPair {
            access_hash,
            access,
            refresh_hash: TokenHash::of(&refresh_token),
            refresh,
        };
        self.tokens.issue(&pair).await?;
        Ok(Issued {
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(refresh_token),
            expire_time: lifetime,
            username: username.to_owned(),
        })
    }
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
