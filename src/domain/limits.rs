//! Abuse protection, shared by every instance through counters in the token store:
//! failed logins per username (a lockout), requests per client IP, and the limits of
//! verification codes. Counters are INCR + EXPIRE NX on one key: fixed windows that
//! start at the first hit.
use std::net::IpAddr;

use super::{DomainError, Engine};
use crate::store::tokens::keys;
use crate::store::{Counter, Counters, RecordStore};

/// The limits (settings). A limit of 0 turns that check off.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Seconds a verification code lives.
    pub code_ttl: u64,
    /// Seconds before a new code may be sent to the same username (1013 until then).
    pub code_resend: u64,
    /// Wrong guesses after which a code is void.
    pub code_attempts: u64,
    /// Failed password checks per username within `login_window` after which authorize
    /// for that username is refused (405 / 429) for the rest of the window.
    pub login_failures: u64,
    pub login_window: u64,
    /// The window of the per-IP limits, in seconds.
    pub ip_window: u64,
    /// authorize requests per client IP per window.
    pub ip_authorize: u64,
    /// get_verify requests per client IP per window.
    pub ip_get_verify: u64,
    /// check_user requests per client IP per window.
    pub ip_check_user: u64,
    /// doaction requests (sign-ups, password changes) per client IP per window.
    pub ip_doaction: u64,
}

impl Limits {
    /// The defaults: the `Default` impl and the command line's defaults both read these.
    pub const DEFAULT: Limits = Limits {
        code_ttl: 600,
        code_resend: 60,
        code_attempts: 5,
        login_failures: 5,
        login_window: 900,
        ip_window: 60,
        // Per minute: far above what one user makes, and enough headroom for an app
        // backend that relays its users' logins from one address (20 a second).
        ip_authorize: 1200,
        ip_get_verify: 120,
        ip_check_user: 600,
        ip_doaction: 120,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The routes with a per-IP limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpLimited {
    Authorize,
    GetVerify,
    CheckUser,
    DoAction,
}

impl IpLimited {
    fn as_str(self) -> &'static str {
        match self {
            IpLimited::Authorize => "authorize",
            IpLimited::GetVerify => "get_verify",
            IpLimited::CheckUser => "check_user",
            IpLimited::DoAction => "doaction",
        }
    }
}

fn login_counter(username: &str) -> String {
    keys::login_failures(username)
}

impl<T: Counters, R: RecordStore> Engine<T, R> {
    /// Counts a request from `ip` on `route`; refuses it past the route's limit.
    pub async fn limit_ip(&self, route: IpLimited, ip: IpAddr) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let limit = match route {
            IpLimited::Authorize => limits.ip_authorize,
            IpLimited::GetVerify => limits.ip_get_verify,
            IpLimited::CheckUser => limits.ip_check_user,
            IpLimited::DoAction => limits.ip_doaction,
        };
        if limit == 0 {
            return Ok(());
        }
        let counter = keys::ip_requests(route.as_str(), ip);
        let seen = self.tokens.hit(&counter, limits.ip_window).await?;
        if seen.count > limit {
            return Err(DomainError::RateLimited {
                retry_after: seen.ttl.max(1),
            });
        }
        Ok(())
    }

    /// Refuses a username with too many recent failed logins; returns its counter.
    pub(crate) async fn check_login_lock(&self, username: &str) -> Result<Counter, DomainError> {
        let max = self.rules.limits.login_failures;
        if max == 0 {
            return Ok(Counter::default());
        }
        let seen = self.tokens.peek(&login_counter(username)).await?;
        if seen.count >= max {
            return Err(DomainError::LockedOut {
                retry_after: seen.ttl.max(1),
            });
        }
        Ok(seen)
    }

    /// Counts a failed password check for a username.
    pub(crate) async fn login_failed(&self, username: &str) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        if limits.login_failures == 0 {
            return Ok(());
        }
        let seen = self
            .tokens
            .hit(&login_counter(username), limits.login_window)
            .await?;
        if seen.count == limits.login_failures {
            tracing::warn!(
                username,
                seconds = seen.ttl,
                "too many failed logins: username locked"
            );
        }
        Ok(())
    }

    /// Forgets a username's failed logins (after a good login or a new password).
    pub(crate) async fn clear_login_failures(&self, username: &str) -> Result<(), DomainError> {
        Ok(self.tokens.clear(&login_counter(username)).await?)
    }
}
