//! get_verify and verification codes: six digits from a CSPRNG, kept in the token store
//! per username and purpose for `code_ttl` seconds, sent at most once per
//! `code_resend` seconds to a username, void after `code_attempts` wrong guesses, used
//! up by the action they allow.
use rand::Rng;

use super::account;
use super::delivery::{Channel, CodeMessage, Purpose};
use super::{required, DomainError, Engine};
use crate::secret::Secret;
use crate::store::tokens::keys;
use crate::store::{Codes, Counters, RecordStore};

/// A get_verify request as it arrived (every field still text).
#[derive(Debug, Default)]
pub struct VerifyRequest<'a> {
    /// The language of the message to the user (`cn`, `en`…), passed to the delivery.
    pub lg: Option<&'a str>,
    pub username: Option<&'a str>,
    /// 1: register, 2: change password.
    pub flag: Option<&'a str>,
    /// 1 (or absent): SMS, 2: voice; ignored for a mail address.
    pub smsflag: Option<&'a str>,
    pub appid: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The longest username the account table holds.
pub(crate) const MAX_USERNAME: usize = 191;

/// `flag` 1 or 2 (1001 otherwise).
pub(crate) fn purpose(flag: &str) -> Result<Purpose, DomainError> {
    match flag {
        "1" => Ok(Purpose::Register),
        "2" => Ok(Purpose::ResetPassword),
        _ => Err(DomainError::InvalidParam("flag")),
    }
}

pub(crate) fn username_ok(username: &str) -> Result<(), DomainError> {
    if username.chars().count() > MAX_USERNAME {
        return Err(DomainError::InvalidParam("username"));
    }
    Ok(())
}

/// Where a code for `username` goes: a mail address gets mail; anything else must be a
/// phone number (1016), reached by SMS or, with `smsflag` 2, by voice.
fn channel(username: &str, smsflag: &str) -> Result<Channel, DomainError> {
    if account::is_mail(username) {
        return Ok(Channel::Mail);
    }
    if !account::is_phone(username) {
        return Err(DomainError::PhoneMalformed);
    }
    Ok(if smsflag == "2" {
        Channel::Voice
    } else {
        Channel::Sms
    })
}

/// A new code: six decimal digits, uniform, from `rand::rng()` (a CSPRNG seeded by the OS).
fn new_code() -> Secret {
    Secret::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)))
}

fn code_name(purpose: Purpose, username: &str) -> String {
    keys::code(purpose.as_str(), username)
}

fn attempts_counter(purpose: Purpose, username: &str) -> String {
    keys::code_attempts(purpose.as_str(), username)
}

fn resend_lock(username: &str) -> String {
    keys::resend_lock(username)
}

impl<T: Counters + Codes, R: RecordStore> Engine<T, R> {
    /// get_verify: checks the request and sends a code (or, for a sign-up through a
    /// client that ignores codes, nothing). The code is never returned.
    pub async fn get_verify(&self, req: &VerifyRequest<'_>) -> Result<(), DomainError> {
        // Parameters (1001). An absent smsflag signs as "0", as the original server's
        // integer field did.
        let lg = required(req.lg, "lg")?;
        let username = required(req.username, "username")?;
        let flag = required(req.flag, "flag")?;
        let appid = required(req.appid, "appid")?;
        let signature = required(req.signature, "signature")?;
        let smsflag = req.smsflag.unwrap_or("0");
        let purpose = purpose(flag)?;
        if !matches!(smsflag, "0" | "1" | "2") {
            return Err(DomainError::InvalidParam("smsflag"));
        }
        if lg.chars().count() > 16 {
            return Err(DomainError::InvalidParam("lg"));
        }
        username_ok(username)?;

        // Client (1002), expiry (3), signature (1003).
        let client = self
            .signed_client(appid, &[lg, username, flag, smsflag, appid], signature)
            .await?;

        // Sign-up of an existing user (1012), password change of a missing one (1004).
        let exists = self.records.user(username).await?.is_some();
        match purpose {
            Purpose::Register if exists => return Err(DomainError::AlreadyExists),
            Purpose::ResetPassword if !exists => return Err(DomainError::BadCredentials),
            _ => {}
        }
        // A client that ignores codes signs users up without one.
        if purpose == Purpose::Register && client.strict_verify == 2 {
            return Ok(());
        }

        let channel = channel(username, smsflag)?;
        self.send_code(channel, purpose, username, lg, appid).await
    }

    /// Takes the resend lock, delivers a fresh code and stores it. A failed delivery
    /// gives the lock back, so the user may ask again at once.
    async fn send_code(
        &self,
        channel: Channel,
        purpose: Purpose,
        username: &str,
        lang: &str,
        app_key: &str,
    ) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let lock = resend_lock(username);
        if let Some(retry_after) = self.tokens.lock(&lock, limits.code_resend).await? {
            return Err(DomainError::CodeTooSoon { retry_after });
        }
        let code = new_code();
        let message = CodeMessage {
            channel,
            to: username,
            code: &code,
            purpose,
            lang,
            app_key,
        };
        if let Err(source) = self.delivery.deliver(&message).await {
            if let Err(e) = self.tokens.unlock(&lock).await {
                tracing::warn!(error = %e, username, "could not release the resend lock");
            }
            return Err(DomainError::Delivery { channel, source });
        }
        // A new code starts with a clean count of wrong guesses.
        self.tokens
            .clear(&attempts_counter(purpose, username))
            .await?;
        self.tokens
            .put_code(&code_name(purpose, username), &code, limits.code_ttl)
            .await?;
        tracing::info!(username, %channel, purpose = purpose.as_str(), app_key, "verification code sent");
        Ok(())
    }

    /// Checks a code without using it up (1017 when missing, wrong, expired or void).
    /// Every guess counts, before the comparison, so that concurrent guesses cannot
    /// exceed the limit; the guess that reaches it voids the code.
    pub(crate) async fn check_code(
        &self,
        purpose: Purpose,
        username: &str,
        given: &str,
    ) -> Result<(), DomainError> {
        if given.is_empty() {
            return Err(DomainError::WrongCode);
        }
        let limits = &self.rules.limits;
        let name = code_name(purpose, username);
        let attempts = self
            .tokens
            .hit(&attempts_counter(purpose, username), limits.code_ttl)
            .await?;
        if attempts.count > limits.code_attempts {
            self.tokens.take_code(&name).await?;
            return Err(DomainError::WrongCode);
        }
        let Some(stored) = self.tokens.code(&name).await? else {
            return Err(DomainError::WrongCode);
        };
        if !stored.ct_eq(given) {
            if attempts.count >= limits.code_attempts {
                self.tokens.take_code(&name).await?;
                tracing::info!(
                    username,
                    "verification code void after too many wrong guesses"
                );
            }
            return Err(DomainError::WrongCode);
        }
        Ok(())
    }

    /// Uses up a code after the action it allowed has succeeded.
    pub(crate) async fn consume_code(
        &self,
        purpose: Purpose,
        username: &str,
    ) -> Result<(), DomainError> {
        self.tokens.take_code(&code_name(purpose, username)).await?;
        self.tokens
            .clear(&attempts_counter(purpose, username))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.expose().len(), 6);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn mail_goes_by_mail_and_phones_by_sms_or_voice() {
        assert_eq!(channel("a@b.com", "0").unwrap(), Channel::Mail);
        assert_eq!(channel("a@b.com", "2").unwrap(), Channel::Mail);
        assert_eq!(channel("18020119796", "1").unwrap(), Channel::Sms);
        assert_eq!(channel("18020119796", "0").unwrap(), Channel::Sms);
        assert_eq!(channel("+8618020119796", "2").unwrap(), Channel::Voice);
        assert!(matches!(
            channel("alice", "1"),
            Err(DomainError::PhoneMalformed)
        ));
        assert!(matches!(
            channel("123", "2"),
            Err(DomainError::PhoneMalformed)
        ));
    }

    #[test]
    fn flag_is_one_or_two() {
        assert_eq!(purpose("1").unwrap(), Purpose::Register);
        assert_eq!(purpose("2").unwrap(), Purpose::ResetPassword);
        assert!(purpose("3").is_err());
        assert!(purpose("01").is_err());
    }
}
