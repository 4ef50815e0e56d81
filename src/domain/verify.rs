//! get_verify and verification codes: six digits from a CSPRNG, for an account's stored
//! spelling (or a new name), kept in the token store for `code_ttl` seconds.
//!
//! A code belongs to the client network that asked for it: only guesses from that network
//! are checked against it, so a stranger's wrong guesses can never void the owner's code
//! nor spend the owner's budget. Each network may have a name's code sent once per
//! `code_resend` seconds and guess `code_guesses_per_hour` times an hour (a new code does
//! not reset it); a code is void after `code_attempts` wrong guesses; a name gets at
//! most `code_sends_per_hour` codes an hour from everyone together, and names without an
//! account (sign-ups) at most `code_sends_new_per_ip` per network and
//! `code_sends_new_total` in all. A code is used up by the action it allows.
use std::net::IpAddr;

use rand::Rng;

use super::account::{self, new_name_ok, unknown_name_key, Found};
use super::delivery::{Channel, CodeMessage, Purpose};
use super::{required, DomainError, Engine};
use crate::secret::Secret;
use crate::store::tokens::keys;
use crate::store::{ClientRecords, Codes, Counters, UserRecords};

/// A get_verify request as it arrived (every field still text).
#[derive(Debug)]
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
    /// Where it came from: the network the code belongs to.
    pub client_ip: IpAddr,
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

/// Whom a code is for: the account's stored spelling, or the name of a sign-up, and the
/// client network that asked.
#[derive(Debug, Clone)]
pub(crate) struct CodeOwner {
    /// The name the code is delivered to and kept under.
    pub name: String,
    /// Whether an account holds the name (a password change) or not (a sign-up).
    pub has_account: bool,
    /// The client network that asked for the code, or guesses it.
    pub net: String,
}

impl CodeOwner {
    /// The owner of a sign-up code: the name as typed, its ASCII case folded.
    pub fn new_name(typed: &str, net: String) -> Self {
        Self {
            name: unknown_name_key(typed),
            has_account: false,
            net,
        }
    }

    /// The owner of an account's code: its stored spelling.
    pub fn account(stored: &str, net: String) -> Self {
        Self {
            name: stored.to_owned(),
            has_account: true,
            net,
        }
    }

    fn code(&self, purpose: Purpose) -> String {
        keys::code(purpose.as_str(), &self.name, &self.net)
    }

    fn attempts(&self, purpose: Purpose) -> String {
        keys::code_attempts(purpose.as_str(), &self.name, &self.net)
    }
}

impl<T: Counters + Codes, R: ClientRecords + UserRecords> Engine<T, R> {
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
            .signed_client(
                appid,
                req.client_ip,
                &[lg, username, flag, smsflag, appid],
                signature,
            )
            .await?;

        // Sign-up of a taken name (1012: a look-alike of an account too), password change
        // of a name that is no account's own spelling (1004).
        let net = self.net(req.client_ip);
        let owner = match (purpose, self.find_user(username).await?) {
            (Purpose::Register, found) if found.taken() => return Err(DomainError::AlreadyExists),
            (Purpose::Register, _) => {
                new_name_ok(username)?;
                CodeOwner::new_name(username, net)
            }
            (Purpose::ResetPassword, Found::Same(user)) => CodeOwner::account(&user.account, net),
            (Purpose::ResetPassword, _) => return Err(DomainError::BadCredentials),
        };
        // A client that ignores codes signs users up without one.
        if purpose == Purpose::Register && client.strict_verify == 2 {
            return Ok(());
        }

        // Delivered to the account's own spelling, never to the name as typed.
        let to = match owner.has_account {
            true => owner.name.clone(),
            false => username.to_owned(),
        };
        let channel = channel(&to, smsflag)?;
        self.send_code(channel, purpose, &owner, &to, lg, appid)
            .await
    }

    /// Takes the resend lock of the asking network and a send of the hourly budgets,
    /// delivers a fresh code to `to` and stores it for its owner. A failed delivery gives
    /// the lock back, so the user may ask again at once (the send stays counted).
    async fn send_code(
        &self,
        channel: Channel,
        purpose: Purpose,
        owner: &CodeOwner,
        to: &str,
        lang: &str,
        app_key: &str,
    ) -> Result<(), DomainError> {
        let limits = &self.rules.limits;
        let lock = keys::resend_lock(&owner.name, &owner.net);
        if limits.code_resend > 0 {
            if let Some(retry_after) = self.tokens.lock(&lock, limits.code_resend).await? {
                return Err(DomainError::CodeTooSoon { retry_after });
            }
        }
        let counted = self
            .count_code_send(&owner.name, &owner.net, owner.has_account)
            .await;
        if let Err(e) = counted {
            self.release(&lock, &owner.name).await;
            return Err(e);
        }
        let code = new_code();
        let message = CodeMessage {
            channel,
            to,
            code: &code,
            purpose,
            lang,
            app_key,
        };
        if let Err(source) = self.delivery.deliver(&message).await {
            self.release(&lock, &owner.name).await;
            return Err(DomainError::Delivery { channel, source });
        }
        // A new code starts with a clean count of wrong guesses (the hourly budget of the
        // network stays).
        self.tokens.clear(&owner.attempts(purpose)).await?;
        self.tokens
            .put_code(&owner.code(purpose), &code, limits.code_ttl)
            .await?;
        tracing::info!(username = owner.name, %channel, purpose = purpose.as_str(), app_key, "verification code sent");
        Ok(())
    }

    async fn release(&self, lock: &str, name: &str) {
        if let Err(e) = self.tokens.unlock(lock).await {
            tracing::warn!(error = %e, username = name, "could not release the resend lock");
        }
    }

    /// Checks a code of `owner`'s network without using it up (1017 when missing, wrong,
    /// expired or void; 405 past the network's hourly budget). Every guess counts, before
    /// the comparison, so that concurrent guesses cannot exceed either limit; the guess
    /// that reaches the code's limit voids it.
    pub(crate) async fn check_code(
        &self,
        purpose: Purpose,
        owner: &CodeOwner,
        given: &str,
    ) -> Result<(), DomainError> {
        if given.is_empty() {
            return Err(DomainError::WrongCode);
        }
        self.count_code_guess(&owner.name, &owner.net).await?;
        let limits = &self.rules.limits;
        let name = owner.code(purpose);
        let attempts = self
            .tokens
            .hit(&owner.attempts(purpose), limits.code_ttl)
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
                    username = owner.name,
                    "verification code void after too many wrong guesses"
                );
            }
            return Err(DomainError::WrongCode);
        }
        Ok(())
    }

    /// Uses up a code after the action it allowed has succeeded; the network's guesses
    /// at the name are forgotten.
    pub(crate) async fn consume_code(
        &self,
        purpose: Purpose,
        owner: &CodeOwner,
    ) -> Result<(), DomainError> {
        self.tokens.take_code(&owner.code(purpose)).await?;
        self.tokens.clear(&owner.attempts(purpose)).await?;
        self.tokens
            .clear(&keys::code_guesses(&owner.name, &owner.net))
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
