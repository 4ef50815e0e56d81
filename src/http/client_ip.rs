//! The client's address: the TCP peer, or the first `X-Forwarded-For` hop when the
//! server sits behind a proxy it trusts (`--trust-forwarded-for`). Used for per-IP
//! limits, `reg_ip` and log lines.
use std::net::{IpAddr, SocketAddr};

use hyper::header::HeaderMap;

use super::Request;
use crate::domain::limits::IpLimited;
use crate::domain::DomainError;
use crate::store::{RecordStore, TokenBackend};

impl<T: TokenBackend, R: RecordStore> Request<'_, T, R> {
    /// Counts this request against the per-IP limit of `route` (refused past it);
    /// returns the client IP it counted.
    pub async fn limit_ip(&self, route: IpLimited) -> Result<IpAddr, DomainError> {
        let ip = self.client_ip();
        self.engine().limit_ip(route, ip).await?;
        Ok(ip)
    }

    /// Where the request came from.
    pub fn client_ip(&self) -> IpAddr {
        client_ip(
            &self.parts.headers,
            self.peer,
            self.state.http.trust_forwarded_for,
        )
    }
}

fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    let ip = trust_forwarded_for
        .then(|| first_forwarded(headers))
        .flatten()
        .unwrap_or_else(|| peer.ip());
    // An IPv4 client on a dual-stack socket is one client, not two.
    ip.to_canonical()
}

/// The first hop of the first `X-Forwarded-For` header, if it is an address (a port,
/// as some proxies add, is dropped); `None` when absent or unreadable.
fn first_forwarded(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let h = headers("203.0.113.7, 10.0.0.1");
        assert_eq!(client_ip(&h, peer, false).to_string(), "10.0.0.1");
        assert_eq!(client_ip(&h, peer, true).to_string(), "203.0.113.7");
        assert_eq!(
            client_ip(&headers("203.0.113.7:4711"), peer, true).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(&headers("2001:db8::1"), peer, true).to_string(),
            "2001:db8::1"
        );
        // Garbage or no header: the peer.
        assert_eq!(
            client_ip(&headers("unknown"), peer, true).to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            client_ip(&HeaderMap::new(), peer, true).to_string(),
            "10.0.0.1"
        );
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(&HeaderMap::new(), mapped, false).to_string(),
            "192.0.2.1"
        );
    }
}
