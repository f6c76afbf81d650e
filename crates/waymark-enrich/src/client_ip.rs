//! The visitor's address behind reverse proxies: `X-Forwarded-For` is believed only as far as it was written
//! by proxies the operator trusts.
//!
//! Anyone can send an `X-Forwarded-For` header, so [`client_ip`] starts from the TCP peer. If the peer is a
//! trusted proxy, the header's last entry is the address that proxy saw; walking from the right, each trusted
//! hop hands over to the entry on its left, and the first untrusted address is the client. An entry that is
//! not an address stops the walk (everything to its left is unverifiable). Addresses are returned in canonical
//! form (an IPv4-mapped IPv6 address such as `::ffff:192.0.2.1` as IPv4).

use crate::EnrichError;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The networks of the reverse proxies in front of Waymark (empty: trust no one, use the TCP peer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trust no proxy.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Trust these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies { networks }
    }

    /// Parse a configured list: each entry a CIDR network (`10.0.0.0/8`, `fd00::/8`) or a single address.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, EnrichError> {
        let networks = entries
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| EnrichError::TrustedProxy { value: entry.to_owned() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { networks })
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether `ip` (in any form, IPv4-mapped included) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }
}

/// The client's address. `x_forwarded_for` is the header's value; several headers must be joined with `,` in
/// the order received.
pub fn client_ip(peer: IpAddr, x_forwarded_for: Option<&str>, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    let Some(header) = x_forwarded_for else {
        return client;
    };
    if !trusted.contains(client) {
        return client;
    }
    for entry in header.rsplit(',') {
        let Some(hop) = parse_hop(entry) else {
            break;
        };
        client = hop;
        if !trusted.contains(hop) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry.parse::<IpAddr>().or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip())).ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(["10.0.0.0/8", "192.0.2.7", "fd00::/8"]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let peer = ip("203.0.113.9");
        assert_eq!(client_ip(peer, Some("1.2.3.4"), &proxies()), peer);
        assert_eq!(client_ip(peer, None, &proxies()), peer);
        assert_eq!(client_ip(ip("10.0.0.1"), Some("1.2.3.4"), &TrustedProxies::none()), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peer_hands_over_to_the_header() {
        let peer = ip("10.0.0.1");
        assert_eq!(client_ip(peer, Some("198.51.100.4"), &proxies()), ip("198.51.100.4"));
        assert_eq!(client_ip(peer, None, &proxies()), peer);
        // A spoofed entry on the left is ignored: the first untrusted hop from the right wins.
        assert_eq!(client_ip(peer, Some("6.6.6.6, 198.51.100.4, 10.1.1.1"), &proxies()), ip("198.51.100.4"));
        // A single trusted address and IPv6 networks.
        assert_eq!(client_ip(ip("fd00::2"), Some("198.51.100.4, 192.0.2.7"), &proxies()), ip("198.51.100.4"));
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        assert_eq!(client_ip(ip("10.0.0.1"), Some("10.0.0.3, 10.0.0.2"), &proxies()), ip("10.0.0.3"));
    }

    #[test]
    fn malformed_entries_stop_the_walk() {
        let peer = ip("10.0.0.1");
        assert_eq!(client_ip(peer, Some("198.51.100.4, garbage"), &proxies()), peer);
        assert_eq!(client_ip(peer, Some("198.51.100.4, unknown, 10.0.0.2"), &proxies()), ip("10.0.0.2"));
        assert_eq!(client_ip(peer, Some(""), &proxies()), peer);
        assert_eq!(client_ip(peer, Some("198.51.100.4,,10.0.0.2"), &proxies()), ip("10.0.0.2"));
    }

    #[test]
    fn ports_and_mapped_addresses() {
        let peer = ip("::ffff:10.0.0.1");
        assert_eq!(client_ip(peer, Some("198.51.100.4:4711"), &proxies()), ip("198.51.100.4"));
        assert_eq!(client_ip(peer, Some("[2001:db8::1]:443"), &proxies()), ip("2001:db8::1"));
        assert_eq!(client_ip(peer, Some(" ::ffff:198.51.100.4 "), &proxies()), ip("198.51.100.4"));
        assert_eq!(client_ip(ip("::ffff:203.0.113.9"), Some("1.2.3.4"), &proxies()), ip("203.0.113.9"));
    }

    #[test]
    fn configuration_errors_name_the_entry() {
        let e = TrustedProxies::parse(["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        assert_eq!(proxies().networks().len(), 3);
        assert!(proxies().contains(ip("::ffff:10.9.9.9")));
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            // Often inside the trusted networks.
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::from([10, a, b, c])),
        ]
    }

    fn any_header() -> impl Strategy<Value = String> {
        let entry = prop_oneof![
            any_ip().prop_map(|ip| ip.to_string()),
            (any_ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port).to_string()),
            ".{0,12}",
        ];
        prop::collection::vec(entry, 0..8).prop_map(|entries| entries.join(", "))
    }

    proptest! {
        #[test]
        fn never_panics_and_untrusted_peers_stand(peer in any_ip(), header in prop::option::of(any_header()), raw in ".{0,64}") {
            let trusted = proxies();
            let got = client_ip(peer, header.as_deref(), &trusted);
            let _ = client_ip(peer, Some(&raw), &trusted);
            if !trusted.contains(peer) {
                prop_assert_eq!(got, peer.to_canonical());
            }
            // The answer is the peer or an address from the header.
            let from_header = header.as_deref().unwrap_or("").split(',').filter_map(parse_hop).any(|h| h == got);
            prop_assert!(got == peer.to_canonical() || from_header);
        }
    }
}
