//! Deployments: the websites that may send tracking data, and what each one allows.

use crate::ids::{DeploymentId, OrgId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Tracking configuration of one website or app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: DeploymentId,
    pub org_id: OrgId,
    pub name: String,
    /// When true every origin may send (then `allowed_domains` is ignored).
    #[serde(default)]
    pub allow_all_domains: bool,
    /// Hostnames allowed to send; `example.com` also admits `www.example.com` and other subdomains when written
    /// as `*.example.com`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Query parameters that carry a site search (default `q`, `query`, `search`, `s`).
    #[serde(default = "default_search_params")]
    pub search_query_params: Vec<String>,
    /// Query parameters removed from stored URLs (e.g. tokens).
    #[serde(default)]
    pub excluded_query_params: Vec<String>,
    /// Keep `#fragment`s of page URLs (single-page apps with hash routing need them).
    #[serde(default)]
    pub keep_url_fragment: bool,
    /// Store the visitor's IP address (geolocation still runs when off, the address is just not kept).
    #[serde(default = "yes")]
    pub ip_collection: bool,
    /// Visitors from these ranges (CIDR) are not tracked (e.g. the company's own offices).
    #[serde(default)]
    pub excluded_ip_ranges: Vec<String>,
    /// Divisions the sessions of this deployment belong to (only callers of those divisions see them);
    /// empty = the whole organisation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
}

fn yes() -> bool {
    true
}

pub fn default_search_params() -> Vec<String> {
    ["q", "query", "search", "s"].iter().map(|s| s.to_string()).collect()
}

impl Deployment {
    pub fn new(org_id: OrgId, id: DeploymentId, name: impl Into<String>) -> Self {
        Deployment {
            id,
            org_id,
            name: name.into(),
            allow_all_domains: false,
            allowed_domains: Vec::new(),
            search_query_params: default_search_params(),
            excluded_query_params: Vec::new(),
            keep_url_fragment: false,
            ip_collection: true,
            excluded_ip_ranges: Vec::new(),
            division_ids: Vec::new(),
        }
    }

    /// Whether a request `Origin` (scheme://host[:port]) may send for this deployment.
    /// Requests without an `Origin` (server-to-server, `sendBeacon` from some browsers) are judged by the
    /// page URL's host instead, by the caller.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self.allow_all_domains {
            return true;
        }
        let Ok(url) = url::Url::parse(origin) else { return false };
        match url.host_str() {
            Some(host) => self.allows_host(host),
            None => false,
        }
    }

    /// Whether a hostname is one of the allowed domains.
    pub fn allows_host(&self, host: &str) -> bool {
        if self.allow_all_domains {
            return true;
        }
        // Compared in place, ASCII case-insensitively (hosts are ASCII once the URL parser has made them
        // punycode): this runs for every tracking request, and lowercased copies cost an allocation per domain.
        let host = host.trim_end_matches('.').as_bytes();
        self.allowed_domains.iter().any(|d| {
            let d = d.trim().trim_end_matches('.');
            match d.strip_prefix("*.") {
                Some(base) => {
                    let base = base.as_bytes();
                    host.eq_ignore_ascii_case(base)
                        || (host.len() > base.len()
                            && host[host.len() - base.len() - 1] == b'.'
                            && host[host.len() - base.len()..].eq_ignore_ascii_case(base))
                }
                None => host.eq_ignore_ascii_case(d.as_bytes()),
            }
        })
    }

    /// Whether an address is in an excluded range.
    pub fn ip_excluded(&self, ip: IpAddr) -> bool {
        self.excluded_ip_ranges.iter().any(|r| cidr_contains(r, ip))
    }
}

/// `a.b.c.d/n` or `x::/n` (or a bare address) contains `ip`.
fn cidr_contains(range: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match range.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (range, None),
    };
    let Ok(net) = addr.trim().parse::<IpAddr>() else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(domains: &[&str]) -> Deployment {
        let mut d = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t");
        d.allowed_domains = domains.iter().map(|s| s.to_string()).collect();
        d
    }

    #[test]
    fn origins_match_exact_hosts_and_wildcards() {
        let d = dep(&["shop.example", "*.example.org"]);
        assert!(d.allows_origin("https://shop.example"));
        assert!(d.allows_origin("http://SHOP.example:8080"));
        assert!(!d.allows_origin("https://evil.shop.example"));
        assert!(!d.allows_origin("https://shop.example.evil"));
        assert!(d.allows_origin("https://www.example.org"));
        assert!(d.allows_origin("https://example.org"));
        assert!(!d.allows_origin("https://badexample.org"));
        assert!(!d.allows_origin("null"));
    }

    /// `allows_host` as it was written first, with lowercased copies: the reference for the in-place form.
    fn allows_host_by_copies(d: &Deployment, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        d.allowed_domains.iter().any(|d| {
            let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(base) = d.strip_prefix("*.") {
                host == base || host.ends_with(&format!(".{base}"))
            } else {
                host == d
            }
        })
    }

    proptest::proptest! {
        #[test]
        fn hosts_are_judged_as_with_lowercased_copies(
            domains in proptest::collection::vec("(\\*\\.)?[a-zA-Z.é-]{0,8}\\.?", 0..4),
            host in "[a-zA-Z.é-]{0,12}\\.?",
            pick in proptest::option::of(0usize..4),
            sub in "[a-zA-Z-]{0,4}",
        ) {
            let d = dep(&domains.iter().map(String::as_str).collect::<Vec<_>>());
            proptest::prop_assert_eq!(d.allows_host(&host), allows_host_by_copies(&d, &host));
            // A host built from one of the domains (itself, or under it, in another case) hits the matching paths.
            if let Some(base) = pick.and_then(|i| domains.get(i)) {
                let base = base.trim_start_matches("*.");
                let near = format!("{sub}.{}", base.to_uppercase());
                proptest::prop_assert_eq!(d.allows_host(&near), allows_host_by_copies(&d, &near));
                proptest::prop_assert_eq!(d.allows_host(base), allows_host_by_copies(&d, base));
            }
        }
    }

    #[test]
    fn excluded_ranges() {
        let mut d = dep(&[]);
        d.excluded_ip_ranges = vec!["10.0.0.0/8".into(), "2001:db8::/32".into(), "192.0.2.7".into()];
        assert!(d.ip_excluded("10.1.2.3".parse().unwrap()));
        assert!(!d.ip_excluded("11.1.2.3".parse().unwrap()));
        assert!(d.ip_excluded("2001:db8::1".parse().unwrap()));
        assert!(d.ip_excluded("192.0.2.7".parse().unwrap()));
        assert!(!d.ip_excluded("192.0.2.8".parse().unwrap()));
    }
}
