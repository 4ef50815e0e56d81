//! Token generation: 32 characters `[A-Za-z0-9]` from a CSPRNG (about 190 bits).
use rand::distr::{Alphanumeric, SampleString};

/// The length of every access and refresh token, as in the original server.
pub const TOKEN_LEN: usize = 32;

/// A new random token. `rand::rng()` is a ChaCha-based CSPRNG seeded from the OS.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), TOKEN_LEN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_32_alphanumerics_and_differ() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
