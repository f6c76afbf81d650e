//! Fuzz targets (proptest, stable toolchain) for the enrichment parsers of outside data: User-Agent strings,
//! `X-Forwarded-For` chains and trusted-proxy lists, and the whole `Enricher`. None may panic.

use proptest::prelude::*;
use std::net::IpAddr;
use std::sync::LazyLock;
use waymark_domain::web_event::ClientHints;
use waymark_enrich::{Enricher, GeoProvider, TrustedProxies, UserAgentParser, client_ip};

static ENRICHER: LazyLock<Enricher> = LazyLock::new(|| Enricher::new(UserAgentParser::builtin(), GeoProvider::none()));
static PARSER: LazyLock<UserAgentParser> = LazyLock::new(UserAgentParser::builtin);

fn user_agent() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "Mozilla/5\\.0 \\([ -~]{0,60}\\) [ -~]{0,80}",
        "[ -~]{0,300}",
        Just("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1".to_string()),
        Just("(".repeat(2_000)),
        Just("Chrome/".repeat(500)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn user_agents_never_panic(ua in user_agent()) {
        let p = PARSER.parse(&ua);
        let _ = format!("{p:?}");
    }

    #[test]
    fn forwarded_chains_never_panic(
        peer in any::<IpAddr>(),
        xff in prop::option::of(prop_oneof![any::<String>(), "([0-9a-f.:]{0,40}, ?){0,6}[0-9a-f.:]{0,40}"]),
        trust_all in any::<bool>(),
    ) {
        let trusted = if trust_all {
            TrustedProxies::parse(["0.0.0.0/0", "::/0"]).expect("cidrs")
        } else {
            TrustedProxies::none()
        };
        let ip = client_ip(peer, xff.as_deref(), &trusted);
        if !trust_all {
            prop_assert_eq!(ip, peer.to_canonical(), "an untrusted peer's X-Forwarded-For is ignored");
        }
    }

    #[test]
    fn trusted_proxy_lists_never_panic(entries in prop::collection::vec(any::<String>(), 0..5)) {
        let _ = TrustedProxies::parse(entries.iter());
    }

    #[test]
    fn enrichment_never_panics(
        ua in prop::option::of(user_agent()),
        family in prop::option::of(any::<String>()),
        width in prop::option::of(any::<i64>()),
        ip in prop::option::of(any::<IpAddr>()),
    ) {
        let hints = ClientHints { browser_family: family, view_width: width, screen_width: width, ..Default::default() };
        let _ = ENRICHER.enrich(ua.as_deref(), &hints, ip);
    }
}
