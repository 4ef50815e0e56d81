//! Every name the token stores keep a value under, in one place. In Redis a key is the
//! prefix, a kind (the letters below) and a name: the layout README "How tokens are
//! kept" shows. The domain names its counters, locks, codes and one-time values with the
//! functions below, never with literals of its own.
use std::net::IpAddr;

/// The kinds of Redis keys: the letters after the prefix.
pub(super) mod kind {
    /// An access token's record, by token hash.
    pub const ACCESS: &str = "a:";
    /// A refresh token's record, by token hash.
    pub const REFRESH: &str = "r:";
    /// A user's index of live pairs, by username.
    pub const INDEX: &str = "u:";
    /// A one-time value (a login signature already used).
    pub const ONCE: &str = "s:";
    /// A counter (failed logins, requests per IP, wrong codes).
    pub const COUNTER: &str = "n:";
    /// A lock (the resend lock of codes).
    pub const LOCK: &str = "l:";
    /// A verification code.
    pub const CODE: &str = "v:";
    /// The resume mark of `import-legacy-tokens`.
    pub const IMPORT_MARK: &str = "m:";
}

// Usernames are folded to lower case in every name below: MariaDB's default collation
// finds "Alice" as "alice", so case must not buy a second counter, lock or code.

/// The counter of a username's failed logins.
pub fn login_failures(username: &str) -> String {
    format!("login:{}", username.to_lowercase())
}

/// The counter of requests from `ip` on a route with a per-IP limit.
pub fn ip_requests(route: &str, ip: IpAddr) -> String {
    format!("ip:{route}:{ip}")
}

/// A verification code of a username for a purpose (`register`, `reset_password`).
pub fn code(purpose: &str, username: &str) -> String {
    format!("{purpose}:{}", username.to_lowercase())
}

/// The counter of wrong guesses of that code.
pub fn code_attempts(purpose: &str, username: &str) -> String {
    format!("code:{}", code(purpose, username))
}

/// The lock that keeps a username from getting codes too often (whatever the purpose).
pub fn resend_lock(username: &str) -> String {
    format!("resend:{}", username.to_lowercase())
}

/// A login signature of a client, recorded once to refuse a replay.
pub fn login_signature(appid: &str, signature: &str) -> String {
    format!("{appid}:{}", signature.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_usernames_and_keep_the_layout() {
        assert_eq!(login_failures("Alice"), "login:alice");
        assert_eq!(
            ip_requests("authorize", [10, 0, 0, 1].into()),
            "ip:authorize:10.0.0.1"
        );
        assert_eq!(code("register", "Bob@X.com"), "register:bob@x.com");
        assert_eq!(code_attempts("register", "Bob"), "code:register:bob");
        assert_eq!(resend_lock("Bob"), "resend:bob");
        assert_eq!(login_signature("app", "ABCD"), "app:abcd");
    }
}
