//! authorize and authorize_nopwd: a signed login request from an app, checked in the
//! seed's order, answered with a new token pair.

use std::net::IpAddr;

use super::account::{unknown_name_key, Found};
use super::password::Verdict;
use super::{required, sign, DomainError, Engine, Grant, Issued, Refresh};
use crate::store::{ClientRecords, Counters, Revocation, TokenStore, User, UserRecords};

/// A login request as it arrived (every field still text).
#[derive(Debug)]
pub struct Login<'a> {
    /// Where it came from (its network's limits).
    pub client_ip: IpAddr,
    pub appid: Option<&'a str>,
    pub token_type: Option<&'a str>,
    pub username: Option<&'a str>,
    /// `None` for authorize_nopwd.
    pub password: Option<&'a str>,
    pub time: Option<&'a str>,
    /// The request signature (the seed calls it `token`).
    pub signature: Option<&'a str>,
}

/// Seconds a used signature is remembered past its last acceptable second: the clocks of
/// the instances may differ by that much (keep them within it, with NTP).
pub const CLOCK_MARGIN: u64 = 5;

/// Times at or above this are milliseconds (1e11 seconds is the year 5138).
const MILLIS_THRESHOLD: u64 = 100_000_000_000;

/// Parses `time` as unix seconds, or milliseconds when it is that large.
fn parse_time(text: &str) -> Result<i64, DomainError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::InvalidParam("time"));
    }
    let value: u64 = text
        .parse()
        .map_err(|_| DomainError::InvalidParam("time"))?;
    let seconds = if value >= MILLIS_THRESHOLD {
        value / 1000
    } else {
        value
    };
    i64::try_from(seconds).map_err(|_| DomainError::InvalidParam("time"))
}

impl<T: TokenStore + Revocation + Counters, R: ClientRecords + UserRecords> Engine<T, R> {
    /// authorize (with a password) or authorize_nopwd (`with_password == false`).
    pub async fn authorize(
        &self,
        login: &Login<'_>,
        with_password: bool,
    ) -> Result<Issued, DomainError> {
        let result = self.login(login, with_password).await;
        if let Err(e) = &result {
            crate::telemetry::login_failure(e.reason());
        }
        result
    }

    async fn login(&self, login: &Login<'_>, with_password: bool) -> Result<Issued, DomainError> {
        // 1. parameters (1001)
        let appid = required(login.appid, "appid")?;
        let username = required(login.username, "username")?;
        let password = if with_password {
            Some(required(login.password, "password")?)
        } else {
            None
        };
        let time_text = required(login.time, "time")?;
        let signature = required(login.signature, "token")?;
        let time = parse_time(time_text)?;
        let token_type = login.token_type.unwrap_or("");

        // 2. client exists (1002), 3. not expired (3)
        let client = self.client(appid, login.client_ip).await?;
        if !with_password && !client.allow_nopwd {
            return Err(DomainError::NopwdNotAllowed);
        }
        if client
            .expire_time
            .is_some_and(|t| t <= crate::clock::utc_now())
        {
            return Err(DomainError::ClientExpired);
        }

        // 4. signature, 5. freshness, 6. replay (1003)
        let signed_ok = match password {
            Some(pw) => sign::verify(
                &[appid, username, pw, time_text],
                &client.app_secret,
                signature,
            ),
            None => sign::verify(&[appid, username, time_text], &client.app_secret, signature),
        };
        if !signed_ok {
            return Err(DomainError::BadSignature);
        }
        self.check_fresh(appid, time, signature).await?;

        // 7. user and password (1004), 8. not disabled (2)
        let user = match password {
            Some(pw) => self.check_password(username, pw).await?,
            None => {
                let user = self
                    .find_user(username)
                    .await?
                    .same()
                    .ok_or(DomainError::BadCredentials)?;
                if user.disabled {
                    return Err(DomainError::UserDisabled);
                }
                user
            }
        };

        let lifetime = u32::try_from(client.token_expire_time).unwrap_or(1);
        let route = if with_password {
            "authorize"
        } else {
            "authorize_nopwd"
        };
        let grant = Grant {
            username: &user.account,
            app_key: &client.app_key,
            token_type,
            lifetime,
        };
        self.issue(route, grant, None, Refresh::Open).await
    }

    /// The user with this password (1004 otherwise), not disabled (2). Each attempt is
    /// counted against the account (its stored spelling; an unknown name under its own)
    /// before the password is checked: past the lockout it is refused (405) unchecked,
    /// right password or not, so no number of concurrent guesses checks more than the
    /// limit. A name that only collates like an account is not that account: it is
    /// checked against nothing (1004). A legacy plain password or an outdated hash is
    /// re-hashed on the way.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<User, DomainError> {
        // Longer than the account column allows: no such user can exist, and such a
        // name must not reach a counter key (1001).
        super::verify::username_ok(username)?;
        let user = match self.find_user(username).await? {
            Found::Same(user) => Some(user),
            Found::None | Found::LookAlike(_) => None,
        };
        let counted = match &user {
            Some(user) => user.account.clone(),
            None => unknown_name_key(username),
        };
        let attempts = self.count_login_attempt(&counted).await?;
        let verdict = self
            .passwords
            .verify(user.as_ref().map(|u| &u.password), password)
            .await?;
        if verdict == Verdict::Mismatch {
            return Err(DomainError::BadCredentials);
        }
        let user = user.ok_or(DomainError::BadCredentials)?;
        if attempts.count > 0 {
            self.clear_login_failures(&user.account).await?;
        }
        if verdict == Verdict::MatchRehash {
            let hash = self.passwords.hash(password).await?;
            self.records.set_password(&user.account, &hash).await?;
            tracing::info!(username = user.account, "password re-hashed with argon2id");
        }
        if user.disabled {
            return Err(DomainError::UserDisabled);
        }
        Ok(user)
    }

    /// Refuses a `time` outside the freshness window and a signature seen inside it.
    pub(crate) async fn check_fresh(
        &self,
        appid: &str,
        time: i64,
        signature: &str,
    ) -> Result<(), DomainError> {
        let window = self.rules.freshness_window;
        if window == 0 {
            return Ok(());
        }
        let skew = (crate::clock::unix_now() - time).unsigned_abs();
        if skew > window {
            return Err(DomainError::StaleTime);
        }
        // A signature stays acceptable while `now` (whole seconds) is at most
        // `time + window`, that is until `time + window + 1`; it is remembered that long,
        // and a margin more for the clocks of other instances.
        let left = time.saturating_add(i64::try_from(window).unwrap_or(i64::MAX))
            - crate::clock::unix_now();
        let ttl = u64::try_from(left).unwrap_or(0) + 1 + CLOCK_MARGIN;
        let once = crate::store::tokens::keys::login_signature(appid, signature);
        if !self.tokens.claim_once(&once, ttl).await? {
            return Err(DomainError::Replay);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_seconds_or_milliseconds() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("1700000000123").unwrap(), 1_700_000_000);
        assert!(parse_time("17e8").is_err());
        assert!(parse_time("-5").is_err());
        assert!(parse_time("99999999999999999999999").is_err());
    }
}
