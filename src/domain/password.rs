//! Password hashing: argon2id PHC strings, computed off the async workers. A stored value
//! that is not a PHC string is a legacy plain password from an old database: it is
//! accepted once and the caller re-hashes it.
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::secret::Secret;

/// The argon2id cost parameters (settings).
#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Settings {
    /// OWASP's first recommended argon2id setting: 19 MiB, 2 iterations, 1 lane. The
    /// `Default` impl and the command line's defaults both read it.
    pub const DEFAULT: Argon2Settings = Argon2Settings {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The outcome of checking a password against what is stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Match,
    /// It matches, but the stored value is a legacy plain password or uses other
    /// parameters: store a fresh hash.
    MatchRehash,
    Mismatch,
}

/// Hashes and verifies passwords with fixed parameters.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// Bounds the hashes computed at once to the number of cores: each one holds
    /// `memory_kib` of RAM, so a burst of logins queues instead of growing the process
    /// by 19 MiB per concurrent login.
    slots: Arc<Semaphore>,
    /// A hash of a random value, verified against when a user does not exist so that an
    /// unknown username costs as much time as a wrong password.
    decoy: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task failed: {0}")]
    Join(String),
}

impl Passwords {
    pub fn new(settings: Argon2Settings) -> Result<Self, PasswordError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut passwords = Self {
            params,
            slots: Arc::new(Semaphore::new(cores)),
            decoy: Secret::default(),
        };
        passwords.decoy = passwords.hash_now(&crate::domain::token::generate())?;
        Ok(passwords)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &str) -> Result<Secret, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| Secret::new(h.to_string()))
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    fn verify_now(&self, stored: &Secret, given: &str) -> Verdict {
        let Ok(parsed) = PasswordHash::new(stored.expose()) else {
            // Not a PHC string: a legacy plain value, as the client sent it at sign-up
            // (often an MD5 hex the client computed). xxjwxc/oauth2 compared it in SQL
            // under a case-insensitive collation, so `E10ADC…` matched `e10adc…`: ASCII
            // case is ignored here too, or such users could not log in after the move.
            let folded = Secret::new(stored.expose().to_ascii_lowercase());
            return if folded.ct_eq(&given.to_ascii_lowercase()) {
                Verdict::MatchRehash
            } else {
                Verdict::Mismatch
            };
        };
        // The parameters inside the PHC string are used, so older hashes keep working.
        if Argon2::default()
            .verify_password(given.as_bytes(), &parsed)
            .is_err()
        {
            return Verdict::Mismatch;
        }
        let current = Params::try_from(&parsed).ok();
        let same = parsed.algorithm == argon2::ARGON2ID_IDENT
            && current.is_some_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            });
        if same {
            Verdict::Match
        } else {
            Verdict::MatchRehash
        }
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PasswordError> {
        self.slots
            .acquire()
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))
    }

    /// A fresh argon2id PHC string for `password`, computed on the blocking pool.
    pub async fn hash(&self, password: &str) -> Result<Secret, PasswordError> {
        let _slot = self.slot().await?;
        let this = self.clone();
        let password = Secret::new(password);
        tokio::task::spawn_blocking(move || this.hash_now(password.expose()))
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))?
    }

    /// Checks `given` against the stored value (or the decoy when there is none), on the
    /// blocking pool.
    pub async fn verify(
        &self,
        stored: Option<&Secret>,
        given: &str,
    ) -> Result<Verdict, PasswordError> {
        let this = self.clone();
        let (stored, known) = match stored {
            Some(s) => (s.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let given = Secret::new(given);
        let _slot = self.slot().await?;
        let verdict = tokio::task::spawn_blocking(move || this.verify_now(&stored, given.expose()))
            .await
            .map_err(|e| PasswordError::Join(e.to_string()))?;
        Ok(if known { verdict } else { Verdict::Mismatch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("valid parameters")
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let p = cheap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.expose().starts_with("$argon2id$"));
        assert_eq!(
            p.verify(Some(&h), "correct horse").await.unwrap(),
            Verdict::Match
        );
        assert_eq!(
            p.verify(Some(&h), "wrong").await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn a_legacy_plain_value_matches_once_and_asks_for_a_rehash() {
        let p = cheap();
        let legacy = Secret::new("plain-pw");
        assert_eq!(
            p.verify(Some(&legacy), "plain-pw").await.unwrap(),
            Verdict::MatchRehash
        );
        // The original compared under a case-insensitive collation (MD5 hex either case).
        let md5 = Secret::new("E10ADC3949BA59ABBE56E057F20F883E");
        assert_eq!(
            p.verify(Some(&md5), "e10adc3949ba59abbe56e057f20f883e")
                .await
                .unwrap(),
            Verdict::MatchRehash
        );
        assert_eq!(
            p.verify(Some(&legacy), "other").await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn a_hash_with_other_parameters_still_verifies_and_asks_for_a_rehash() {
        let old = cheap();
        let h = old.hash("pw").await.unwrap();
        let new = Passwords::new(Argon2Settings {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            new.verify(Some(&h), "pw").await.unwrap(),
            Verdict::MatchRehash
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches() {
        let p = cheap();
        assert_eq!(p.verify(None, "").await.unwrap(), Verdict::Mismatch);
    }
}
