//! Abuse protection, shared by every instance through counters in the token store:
//! attempts per account (a login lockout), requests per client network, and the budgets
//! of verification codes. Counters are INCR + EXPIRE NX on one key: fixed windows that
//! start at the first hit. Every limit counts an attempt *before* the work it guards, so
//! concurrent requests can never pass more than the limit between them.
use std::net::IpAddr;

use super::{DomainError, Engine};
use crate::store::tokens::keys;
use crate::store::{Counter, Counters};

/// The limits (settings). A limit of 0 turns that check off.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Seconds a verification code lives.
    pub code_ttl: u64,
    /// Seconds before the same client network may have another code sent to the same
    /// name (1013 until then).
    pub code_resend: u64,
    /// Wrong guesses after which a code is void.
    pub code_attempts: u64,
    /// Guesses at a name's codes one client network may make in an hour, whatever the
    /// number of codes (a new code does not reset it).
    pub code_guesses_per_hour: u64,
    /// Codes sent to one name in an hour, whoever asks (1013 past it).
    pub code_sends_per_hour: u64,
    /// Codes sent to names that have no account (sign-ups) per client network per hour.
    pub code_sends_new_per_ip: u64,
    /// Codes sent to names that have no account, all clients together, per hour.
    pub code_sends_new_total: u64,
    /// Password checks per account within `login_window` after which authorize for that
    /// account is refused (405 / 429) for the rest of the window.
    pub login_failures: u64,
    pub login_window: u64,
    /// The window of the per-network limits, in seconds.
    pub ip_window: u64,
    /// authorize requests per client network per window.
    pub ip_authorize: u64,
    /// get_verify requests per client network per window.
    pub ip_get_verify: u64,
    /// check_user requests per client network per window.
    pub ip_check_user: u64,
    /// doaction requests (sign-ups, password changes) per client network per window.
    pub ip_doaction: u64,
    /// Lookups of app keys that do not exist, per client network per window: each costs
    /// the database a query.
    pub ip_unknown_clients: u64,
    /// The prefix length an IPv6 client is counted by (one /64 is one subscriber's).
    pub ipv6_prefix: u8,
}

/// An hour, the window of the code budgets.
const HOUR: u64 = 3600;

impl Limits {
    /// The defaults: the `Default` impl and the command line's defaults both read these.
    pub const DEFAULT: Limits = Limits {
        code_ttl: 600,
        code_resend: 60,
        code_attempts: 5,
        code_guesses_per_hour: 10,
        code_sends_per_hour: 6,
        code_sends_new_per_ip: 10,
        code_sends_new_total: 10_000,
        login_failures: 5,
        login_window: 900,
        ip_window: 60,
        // Per minute: far above what one user makes, and enough headroom for an app
        // backend that relays its users' logins from one address (20 a second).
        ip_authorize: 1200,
        ip_get_verify: 120,
        ip_check_user: 600,
        ip_doaction: 120,
        ip_unknown_clients: 60,
        ipv6_prefix: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The routes with a per-network limit.
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

/// The network a client address is counted under: an IPv4 address is its own, an IPv6
/// address counts by its first `v6_prefix` bits (a subscriber gets a /64 and picks any
/// address in it at will).
pub fn network(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// A client network as a key's part: the address, `/prefix` after an IPv6 network.
pub fn network_name(ip: IpAddr, v6_prefix: u8) -> String {
    match network(ip, v6_prefix) {
        IpAddr::V6(net) if v6_prefix < 128 => format!("{net}/{v6_prefix}"),
        net => net.to_string(),
    }
}

impl<T: Counters, R> Engine<T, R> {
    /// The key part of a client address's network.
    pub(crate) fn net(&self, ip: IpAddr) -> String {
        network_name(ip, self.rules.limits.ipv6_prefix)
    }

    /// Counts a request from `ip` on `route`; refuses it past the route's limit.
    pub async fn limit_ip(&self, route: IpLimited, ip: IpAddr) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let limit = match route {
            IpLimited::Authorize => limits.ip_authorize,
            IpLimited::GetVerify => limits.ip_get_verify,
            IpLimited::CheckUser => limits.ip_check_user,
            IpLimited::DoAction => limits.ip_doaction,
        };
        let counter = keys::ip_requests(route.as_str(), &self.net(ip));
        self.within(&counter, limit, limits.ip_window, |retry_after| {
            DomainError::RateLimited { retry_after }
        })
        .await
    }

    /// Counts one more under `counter` (a window of `window` seconds from its first hit);
    /// past `limit`, the error `refused` makes of the seconds left. A limit of 0 counts
    /// nothing.
    pub(crate) async fn within(
        &self,
        counter: &str,
        limit: u64,
        window: u64,
        refused: impl FnOnce(u64) -> DomainError,
    ) -> Result<(), DomainError> {
        if limit == 0 {
            return Ok(());
        }
        let seen = self.tokens.hit(counter, window).await?;
        if seen.count > limit {
            return Err(refused(seen.ttl.max(1)));
        }
        Ok(())
    }

    /// Counts a password check of an account (its stored spelling, or an unknown name's
    /// key) *before* the check, and refuses it past the lockout: of any number of
    /// concurrent guesses, at most `login_failures` are checked in a window.
    pub(crate) async fn count_login_attempt(&self, name: &str) -> Result<Counter, DomainError> {
        let limits = &self.rules.limits;
        if limits.login_failures == 0 {
            return Ok(Counter::default());
        }
        let seen = self
            .tokens
            .hit(&keys::login_failures(name), limits.login_window)
            .await?;
        if seen.count > limits.login_failures {
            if seen.count == limits.login_failures + 1 {
                tracing::warn!(
                    username = name,
                    seconds = seen.ttl,
                    "too many failed logins: username locked"
                );
            }
            return Err(DomainError::LockedOut {
                retry_after: seen.ttl.max(1),
            });
        }
        Ok(seen)
    }

    /// Forgets an account's counted logins (after a good login or a new password).
    pub(crate) async fn clear_login_failures(&self, name: &str) -> Result<(), DomainError> {
        Ok(self.tokens.clear(&keys::login_failures(name)).await?)
    }

    /// Counts a lookup of an app key that turned out not to exist, from `ip`'s network;
    /// refuses further ones past the limit (each costs the database a query).
    pub(crate) async fn count_unknown_client(&self, ip: IpAddr) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let counter = keys::unknown_clients(&self.net(ip));
        self.within(
            &counter,
            limits.ip_unknown_clients,
            limits.ip_window,
            |retry_after| DomainError::RateLimited { retry_after },
        )
        .await
    }

    /// Whether `ip`'s network is past its limit of unknown app keys (a peek: nothing
    /// counted), so that a lookup of one more costs the database nothing.
    pub(crate) async fn unknown_clients_exhausted(&self, ip: IpAddr) -> Result<(), DomainError> {
        let limit = self.rules.limits.ip_unknown_clients;
        if limit == 0 {
            return Ok(());
        }
        let seen = self
            .tokens
            .peek(&keys::unknown_clients(&self.net(ip)))
            .await?;
        if seen.count >= limit {
            return Err(DomainError::RateLimited {
                retry_after: seen.ttl.max(1),
            });
        }
        Ok(())
    }

    /// Counts a code sent to `name` (its stored spelling, or the name of a sign-up), from
    /// `net`: per name per hour, and for a name without an account per network and in
    /// total. Refused past any of them (1013).
    pub(crate) async fn count_code_send(
        &self,
        name: &str,
        net: &str,
        has_account: bool,
    ) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let too_soon = |retry_after| DomainError::CodeTooSoon { retry_after };
        if !has_account {
            self.within(
                &keys::code_sends_new_from(net),
                limits.code_sends_new_per_ip,
                HOUR,
                too_soon,
            )
            .await?;
            self.within(
                &keys::code_sends_new_total(),
                limits.code_sends_new_total,
                HOUR,
                too_soon,
            )
            .await?;
        }
        self.within(
            &keys::code_sends(name),
            limits.code_sends_per_hour,
            HOUR,
            too_soon,
        )
        .await
    }

    /// Counts a guess at `name`'s codes from `net` before it is checked; refused past the
    /// hourly budget (405 / 429), which no new code resets.
    pub(crate) async fn count_code_guess(&self, name: &str, net: &str) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        self.within(
            &keys::code_guesses(name, net),
            limits.code_guesses_per_hour,
            HOUR,
            |retry_after| DomainError::RateLimited { retry_after },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_prefix_and_ipv4_by_their_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a, 64), network(b, 64));
        assert_ne!(network(a, 64), network(c, 64));
        assert_eq!(network_name(a, 64), "2001:db8:1:2::/64");
        assert_eq!(network_name(a, 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(network_name(a, 0), "::/0");
        assert_eq!(network_name(c, 48), "2001:db8:1::/48");
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(network_name(v4, 64), "203.0.113.9");
        // A mapped IPv4 address is that IPv4 client.
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(network_name(mapped, 64), "203.0.113.9");
    }
}
