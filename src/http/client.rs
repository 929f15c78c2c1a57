//! Who the client is: the peer address, or, when the peer is a trusted reverse proxy, the
//! address its `X-Forwarded-For` names. Only `trusted_proxies` are believed; anyone else's
//! header is ignored, so a client cannot pick its own rate-limit bucket.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address as the rate limits and login throttling see it (a request
/// extension set by `http::guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Parses one `trusted_proxies` entry: an address or a CIDR.
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("trusted_proxies: {t:?} is neither an address (10.0.0.1) nor a CIDR (10.0.0.0/8)"))
}

/// The trusted reverse proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From the validated configuration (entries that do not parse are skipped; validation
    /// refused them already).
    pub fn new(entries: &[String]) -> TrustedProxies {
        TrustedProxies(entries.iter().filter_map(|e| parse_proxy(e).ok()).collect())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: walking `X-Forwarded-For` from the right (each proxy appends
    /// the address it got the request from), the first address that is not a trusted proxy.
    /// An entry that is not an address stops the walk at the last trusted hop.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// IPv4 addresses seen through an IPv6 socket (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into(), "192.168.1.5".into()]);
        let xff = headers(&["203.0.113.7"]);
        assert_eq!(proxies.client(ip("10.1.2.3"), &xff), ip("203.0.113.7"));
        assert_eq!(proxies.client(ip("198.51.100.1"), &xff), ip("198.51.100.1"), "a stranger's header is ignored");
        assert_eq!(proxies.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"), "no header: the proxy itself");
        assert_eq!(proxies.client(ip("::ffff:10.1.2.3"), &xff), ip("203.0.113.7"), "IPv4 through an IPv6 socket");
    }

    #[test]
    fn a_client_cannot_forge_the_hops_before_the_proxies() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into(), "192.168.1.5".into()]);
        // The client wrote "1.1.1.1" itself; the load balancer appended the real address,
        // then an inner proxy appended the load balancer's.
        let xff = headers(&["1.1.1.1, 203.0.113.7", "192.168.1.5"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &xff), ip("203.0.113.7"));
        let garbage = headers(&["203.0.113.7, not-an-address"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &garbage), ip("10.0.0.2"), "garbage stops at the last trusted hop");
        assert!(parse_proxy("10.0.0.0/33").unwrap_err().contains("\"10.0.0.0/33\""));
        assert!(parse_proxy("proxy.example").is_err());
    }
}
