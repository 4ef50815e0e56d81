//! The client's address: the TCP peer, or, when the peer is a proxy the operator trusts
//! (`--trusted-proxies`), the rightmost `X-Forwarded-For` hop that is not one of those
//! proxies (nginx's `real_ip_recursive` rule). The leftmost hops are whatever the client
//! wrote: nginx's `$proxy_add_x_forwarded_for`, HAProxy and cloud load balancers append
//! to the header they received, so only the hops that trusted proxies added are believed.
//! Used for per-network limits, `reg_ip`, the network a verification code belongs to and
//! log lines.
use std::net::{IpAddr, SocketAddr};

use hyper::header::HeaderMap;
use ipnet::IpNet;

use super::Request;
use crate::domain::limits::IpLimited;
use crate::domain::DomainError;
use crate::store::{RecordBackend, TokenBackend};

impl<T: TokenBackend, R: RecordBackend> Request<'_, T, R> {
    /// Counts this request against the per-network limit of `route` (refused past it);
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
            &self.state.http.trusted_proxies,
        )
    }
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

/// The client address of a request from `peer` (see the module's text).
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, proxies: &[IpNet]) -> IpAddr {
    // An IPv4 client on a dual-stack socket is one client, not two.
    let mut client = peer.ip().to_canonical();
    if !trusted(client, proxies) {
        return client;
    }
    // Every X-Forwarded-For header, in order, as one list; walked from the right: each
    // hop a trusted proxy vouches for (it appended it) is believed until the first one
    // that is no trusted proxy, the client.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Unreadable: nothing further left can be believed; the last address read is
            // the client (as nginx does).
            break;
        };
        client = ip;
        if !trusted(ip, proxies) {
            break;
        }
    }
    client
}

/// One hop: an address, with a port as some proxies add (`203.0.113.7:4711`,
/// `[2001:db8::1]:80`); `None` for anything else (`unknown`, garbage).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(h: &HeaderMap, peer: &str, proxies: &[&str]) -> String {
        client_ip(h, peer.parse().unwrap(), &nets(proxies)).to_string()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let h = headers(&["203.0.113.7, 10.0.0.1"]);
        // No trusted proxies, or a peer that is none: the peer.
        assert_eq!(ip(&h, "10.0.0.1:5000", &[]), "10.0.0.1");
        assert_eq!(ip(&h, "198.51.100.1:5000", &["10.0.0.0/8"]), "198.51.100.1");
        // Behind a trusted proxy: the rightmost hop it does not trust.
        assert_eq!(ip(&h, "10.0.0.2:5000", &["10.0.0.0/8"]), "203.0.113.7");
    }

    #[test]
    fn a_forged_leftmost_hop_never_becomes_the_client() {
        // The client wrote "1.2.3.4"; nginx appended its real address.
        let h = headers(&["1.2.3.4, 203.0.113.7"]);
        assert_eq!(ip(&h, "127.0.0.1:5000", &["127.0.0.1/32"]), "203.0.113.7");
        // Two proxies, both trusted: still the client's real address.
        let h = headers(&["1.2.3.4, 203.0.113.7, 10.0.0.5"]);
        assert_eq!(
            ip(&h, "127.0.0.1:5000", &["127.0.0.1/32", "10.0.0.0/8"]),
            "203.0.113.7"
        );
        // A forged hop in a header of its own, before the proxy's.
        let h = headers(&["1.2.3.4", "203.0.113.7"]);
        assert_eq!(ip(&h, "127.0.0.1:5000", &["127.0.0.1/32"]), "203.0.113.7");
    }

    #[test]
    fn hops_are_read_with_ports_and_garbage_stops_the_walk() {
        let proxy = ["10.0.0.0/8"];
        assert_eq!(
            ip(&headers(&["203.0.113.7:4711"]), "10.0.0.1:1", &proxy),
            "203.0.113.7"
        );
        assert_eq!(
            ip(&headers(&["[2001:db8::1]:80"]), "10.0.0.1:1", &proxy),
            "2001:db8::1"
        );
        assert_eq!(
            ip(&headers(&["2001:db8::1"]), "10.0.0.1:1", &proxy),
            "2001:db8::1"
        );
        // Garbage, or no header: the last address believed (here the peer).
        assert_eq!(ip(&headers(&["unknown"]), "10.0.0.1:1", &proxy), "10.0.0.1");
        assert_eq!(ip(&HeaderMap::new(), "10.0.0.1:1", &proxy), "10.0.0.1");
        // Garbage left of the client's hop changes nothing.
        assert_eq!(
            ip(&headers(&["junk, 203.0.113.7"]), "10.0.0.1:1", &proxy),
            "203.0.113.7"
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            ip(&headers(&["10.9.9.9, 10.0.0.3"]), "10.0.0.1:1", &proxy),
            "10.9.9.9"
        );
    }

    #[test]
    fn a_mapped_ipv4_peer_is_that_ipv4_client() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(&HeaderMap::new(), mapped, &[]).to_string(),
            "192.0.2.1"
        );
        // And it is trusted as the IPv4 address it is.
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(&h, mapped, &nets(&["192.0.2.0/24"])).to_string(),
            "203.0.113.7"
        );
    }
}
