//! Account names: what kind of account a username is (seed's `account_type`).

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
}
