//! Every name the token stores keep a value under, in one place. In Redis a key is the
//! prefix, a kind (the letters below) and a name: the layout README "How tokens are
//! kept" shows. The domain names its counters, locks, codes and one-time values with the
//! functions below, never with literals of its own.

/// The kinds of Redis keys: the letters after the prefix.
pub(super) mod kind {
    /// An access token's record, by token hash.
    pub const ACCESS: &str = "a:";
    /// A refresh token's record, by token hash.
    pub const REFRESH: &str = "r:";
    /// A user's index of pairs, by username.
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
    /// A replication barrier of a cluster master (a retried revocation's), for a minute.
    pub const BARRIER: &str = "b:";
}

// A name below is an account's stored spelling (or, for a name without an account, the
// name with its ASCII case folded): the domain resolves typed names first (see
// `domain::account`), so no spelling buys a second counter, lock or code. A client
// network (`net`) contains no `|`: it comes first, so no name can make two keys meet.

/// The counter of an account's password checks (the login lockout).
pub fn login_failures(name: &str) -> String {
    format!("login:{name}")
}

/// The counter of requests from a client network on a route with a per-network limit.
pub fn ip_requests(route: &str, net: &str) -> String {
    format!("ip:{route}:{net}")
}

/// The counter of lookups of app keys that do not exist, from a client network.
pub fn unknown_clients(net: &str) -> String {
    format!("unknown-client:{net}")
}

/// A verification code of a name for a purpose (`register`, `reset_password`), asked
/// for from a client network: only guesses from that network are checked against it.
pub fn code(purpose: &str, name: &str, net: &str) -> String {
    format!("{purpose}:{net}|{name}")
}

/// The counter of wrong guesses of that code.
pub fn code_attempts(purpose: &str, name: &str, net: &str) -> String {
    format!("code:{}", code(purpose, name, net))
}

/// The counter of guesses at a name's codes from a client network (an hourly budget).
pub fn code_guesses(name: &str, net: &str) -> String {
    format!("guesses:{net}|{name}")
}

/// The counter of codes sent to a name (an hourly budget).
pub fn code_sends(name: &str) -> String {
    format!("sends:{name}")
}

/// The counter of codes sent to names without an account, asked for from a network.
pub fn code_sends_new_from(net: &str) -> String {
    format!("sends-new:{net}")
}

/// The counter of codes sent to names without an account, from anywhere.
pub fn code_sends_new_total() -> String {
    "sends-new".to_owned()
}

/// The lock that keeps a client network from getting codes for a name too often
/// (whatever the purpose).
pub fn resend_lock(name: &str, net: &str) -> String {
    format!("resend:{net}|{name}")
}

/// A login signature of a client, recorded once to refuse a replay.
pub fn login_signature(appid: &str, signature: &str) -> String {
    format!("{appid}:{}", signature.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_layout() {
        assert_eq!(login_failures("alice"), "login:alice");
        assert_eq!(
            ip_requests("authorize", "10.0.0.1"),
            "ip:authorize:10.0.0.1"
        );
        assert_eq!(
            code("register", "bob@x.com", "2001:db8::/64"),
            "register:2001:db8::/64|bob@x.com"
        );
        assert_eq!(
            code_attempts("register", "bob", "10.0.0.1"),
            "code:register:10.0.0.1|bob"
        );
        assert_eq!(resend_lock("bob", "10.0.0.1"), "resend:10.0.0.1|bob");
        assert_eq!(code_guesses("bob", "10.0.0.1"), "guesses:10.0.0.1|bob");
        assert_eq!(login_signature("app", "ABCD"), "app:abcd");
    }
}
