//! authorize and authorize_nopwd: a signed login request from an app, checked in the
//! seed's order, answered with a new token pair.

use super::password::Verdict;
use super::{required, sign, DomainError, Engine, Grant, Issued};
use crate::store::{Client, Counters, RecordStore, Revocation, TokenStore, User};

/// A login request as it arrived (every field still text).
#[derive(Debug, Default)]
pub struct Login<'a> {
    pub appid: Option<&'a str>,
    pub token_type: Option<&'a str>,
    pub username: Option<&'a str>,
    /// `None` for authorize_nopwd.
    pub password: Option<&'a str>,
    pub time: Option<&'a str>,
    /// The request signature (the seed calls it `token`).
    pub signature: Option<&'a str>,
}

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

impl<T: TokenStore + Revocation + Counters, R: RecordStore> Engine<T, R> {
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
        let client = self.client(appid).await?;
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
                    .records
                    .user(username)
                    .await?
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
        self.issue(route, grant, None, true).await
    }

    /// The user with this password (1004 otherwise), not disabled (2). A username with
    /// too many recent failures is locked (405) before any check, right password or not:
    /// no oracle for the guesser. A legacy plain password or an outdated hash is
    /// re-hashed on the way.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<User, DomainError> {
        // Longer than the account column allows: no such user can exist, and such a
        // name must not reach a counter key (1001).
        super::verify::username_ok(username)?;
        let failures = self.check_login_lock(username).await?.count;
        let user = self.records.user(username).await?;
        let verdict = self
            .passwords
            .verify(user.as_ref().map(|u| &u.password), password)
            .await?;
        if verdict == Verdict::Mismatch {
            self.login_failed(username).await?;
            return Err(DomainError::BadCredentials);
        }
        if failures > 0 {
            self.clear_login_failures(username).await?;
        }
        let user = user.ok_or(DomainError::BadCredentials)?;
        if verdict == Verdict::MatchRehash {
            let hash = self.passwords.hash(password).await?;
            self.records.set_password(username, &hash).await?;
            tracing::info!(username, "password re-hashed with argon2id");
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
        // A signature stays acceptable for at most 2 × window (from time - window to
        // time + window), so it is remembered that long.
        let once = crate::store::tokens::keys::login_signature(appid, signature);
        if !self.tokens.claim_once(&once, 2 * window).await? {
            return Err(DomainError::Replay);
        }
        Ok(())
    }
}

impl<T, R: RecordStore> Engine<T, R> {
    /// The enabled client with this app_key (1002 otherwise): the records alone.
    pub(crate) async fn client(&self, appid: &str) -> Result<Client, DomainError> {
        match self.records.client(appid).await? {
            Some(c) if !c.disabled => Ok(c),
            _ => Err(DomainError::UnknownClient),
        }
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
