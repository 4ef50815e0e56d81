//! Account names: what kind of account a username is (seed's `account_type`), and which
//! account a typed name stands for.
//!
//! The database finds an account under its collation: MariaDB's `utf8mb4_general_ci`
//! finds `alice@gmail.com` for `alice@gmäil.com`, `alıce` or `alice ` (trailing spaces
//! are padding), and `utf8mb4_unicode_ci` also for full-width letters, `ß`/`ss` and
//! combining marks. A name that reaches the row only through such a rule is not the
//! account's name: `find_user` says so (`Found::LookAlike`), and everything after a lookup
//! (delivery of codes, their keys, counters, revocation) uses the stored spelling.
//! Only ASCII case is forgiven, as the original's logins always were.
use super::{DomainError, Engine};
use crate::store::{User, UserRecords};

/// What a typed name stands for.
#[derive(Debug)]
pub enum Found {
    /// No account collates equal to it.
    None,
    /// The account, spelt as typed but for ASCII case.
    Same(User),
    /// An account the database matches to the name, spelt otherwise beyond ASCII case:
    /// not this name's account (refused as if absent; a sign-up of it is a conflict).
    LookAlike(User),
}

impl Found {
    /// The account when the name is its spelling.
    pub fn same(self) -> Option<User> {
        match self {
            Found::Same(user) => Some(user),
            _ => None,
        }
    }

    /// Whether any account holds the name or a look-alike of it (a sign-up would clash).
    pub fn taken(&self) -> bool {
        !matches!(self, Found::None)
    }
}

/// Whether `typed` is the stored account's own spelling (ASCII case aside).
pub fn same_spelling(typed: &str, stored: &str) -> bool {
    typed.eq_ignore_ascii_case(stored)
}

/// The name a counter or lock of an unknown name is kept under: ASCII case folded, as a
/// stored spelling would be found.
pub fn unknown_name_key(typed: &str) -> String {
    typed.to_ascii_lowercase()
}

/// Whether a new account may take this name: no leading or trailing white space and no
/// control character (each makes a name that reads like another).
pub fn new_name_ok(name: &str) -> Result<(), DomainError> {
    let trimmed = name.trim();
    if trimmed.len() != name.len() || name.chars().any(char::is_control) {
        return Err(DomainError::InvalidParam("username"));
    }
    Ok(())
}

impl<T, R: UserRecords> Engine<T, R> {
    /// The account a typed name stands for (see the module's text).
    pub(crate) async fn find_user(&self, typed: &str) -> Result<Found, DomainError> {
        Ok(match self.records.user(typed).await? {
            None => Found::None,
            Some(user) if same_spelling(typed, &user.account) => Found::Same(user),
            Some(user) => Found::LookAlike(user),
        })
    }
}

/// `account_type` of the seed: 1 phone number, 2 mail address, 3 anything else.
pub fn account_type(username: &str) -> i32 {
    if is_mail(username) {
        2
    } else if is_phone(username) {
        1
    } else {
        3
    }
}

/// A plausible mail address: one `@`, a non-empty local part, a dotted domain.
pub fn is_mail(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// A plausible phone number: an optional `+`, then 6 to 15 digits (E.164 allows 15).
pub fn is_phone(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_classified_as_the_seed_says() {
        assert_eq!(account_type("a@b.com"), 2);
        assert_eq!(account_type("18020119796"), 1);
        assert_eq!(account_type("+8618020119796"), 1);
        assert_eq!(account_type("alice"), 3);
        assert_eq!(account_type("a@b"), 3);
        assert_eq!(account_type("12345"), 3);
    }

    #[test]
    fn only_ascii_case_is_the_same_spelling() {
        assert!(same_spelling("ALICE@Gmail.com", "alice@gmail.com"));
        assert!(!same_spelling("alice@gmäil.com", "alice@gmail.com"));
        assert!(!same_spelling("alice ", "alice"));
        assert!(!same_spelling("alıce", "alice"));
        assert!(!same_spelling("ａｌｉｃｅ", "alice"));
        assert!(!same_spelling("straße", "strasse"));
        assert!(!same_spelling("ÄLICE", "älice"));
    }

    #[test]
    fn new_names_have_no_outer_space_or_control_characters() {
        assert!(new_name_ok("alice@example.com").is_ok());
        assert!(new_name_ok(" alice").is_err());
        assert!(new_name_ok("alice ").is_err());
        assert!(new_name_ok("al\u{0}ice").is_err());
        assert!(new_name_ok("ali\tce").is_err());
    }
}
