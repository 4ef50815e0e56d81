//! Request signatures: `MD5(fields… + app_secret)` as hex, compared case-insensitively
//! in constant time.
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The lowercase hex MD5 of the parts followed by the secret.
pub fn sign(parts: &[&str], secret: &Secret) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part.as_bytes());
    }
    md5.update(secret.expose().as_bytes());
    hex::encode(md5.finalize())
}

/// Whether `given` is the signature of the parts, in either hex case.
pub fn verify(parts: &[&str], secret: &Secret, given: &str) -> bool {
    let expected = sign(parts, secret);
    if given.len() != expected.len() {
        return false;
    }
    let given = given.to_ascii_lowercase();
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_md5_of_the_concatenation_then_the_secret() {
        // printf 'app1alicepw1700000000s3cret' | md5sum
        let secret = Secret::new("s3cret");
        let sig = sign(&["app1", "alice", "pw", "1700000000"], &secret);
        assert_eq!(sig, "d232531115c5008f6736a75576fb0cc4");
        assert!(verify(
            &["app1", "alice", "pw", "1700000000"],
            &secret,
            &sig
        ));
        assert!(verify(
            &["app1", "alice", "pw", "1700000000"],
            &secret,
            &sig.to_ascii_uppercase()
        ));
        assert!(!verify(
            &["app1", "alice", "pw", "1700000001"],
            &secret,
            &sig
        ));
        assert!(!verify(
            &["app1", "alice", "pw", "1700000000"],
            &secret,
            "abc"
        ));
    }
}
