//! One event's enrichment: the Genesys `Browser`, `Device` and `Geolocation` from the User-Agent, the client's
//! hints and the IP address.
//!
//! Who decides what:
//! - **Browser family/version, OS family/version, device type, manufacturer** come from the User-Agent. The
//!   client's hints fill them only when no User-Agent was sent at all (a recognisable User-Agent is harder to
//!   fake consistently than a JSON field, and an unrecognised one stays `Other`).
//! - **Category** comes from the User-Agent, refined by the client's hint per
//!   [`crate::device::refine_with_hint`] (unknown → hint; desktop → tablet/mobile; never anything else).
//! - **Language, viewport, screen size and density** only the client knows: always from the hints.
//! - `type` is the device family (`iPhone`, `iPad`, `Mac`, `Samsung SM-S911B`, `Other`), or `Bot` for
//!   crawlers; `isMobile` is true for mobile phones and tablets. The `features*` flags are not detected: false.
//! - **Geolocation** from the [`GeoProvider`]; `ipOrganization` needs an ISP/ASN database and stays empty.
//!
//! User-Agent parses are cached (bounded; emptied when full), since most traffic repeats a few hundred strings.

use crate::device::{category_from_hint, refine_with_hint};
use crate::{GeoProvider, ParsedUserAgent, UserAgentParser};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use waymark_domain::journey::Enrichment;
use waymark_domain::web_event::ClientHints;
use waymark_domain::wire::{Browser, Device, DeviceCategory};

/// Parses cached at most; the cache is emptied when it is full.
const CACHE_ENTRIES: usize = 4096;
/// User-Agents longer than this are parsed every time (they are rare, and would make the cache costly).
const CACHE_MAX_KEY_BYTES: usize = 1024;

/// User-Agent rules and geolocation, shared by all requests (`&self` everywhere).
#[derive(Debug, Default)]
pub struct Enricher {
    ua: UserAgentParser,
    geo: GeoProvider,
    cache: Mutex<HashMap<Box<str>, ParsedUserAgent>>,
}

impl Enricher {
    pub fn new(ua: UserAgentParser, geo: GeoProvider) -> Self {
        Enricher { ua, geo, cache: Mutex::new(HashMap::new()) }
    }

    pub fn user_agent_parser(&self) -> &UserAgentParser {
        &self.ua
    }

    pub fn geo(&self) -> &GeoProvider {
        &self.geo
    }

    /// Parse a User-Agent, from the cache when it was seen recently.
    pub fn parse_user_agent(&self, user_agent: &str) -> ParsedUserAgent {
        if user_agent.len() > CACHE_MAX_KEY_BYTES {
            return self.ua.parse(user_agent);
        }
        if let Some(hit) = self.cache.lock().get(user_agent) {
            return hit.clone();
        }
        // Parse without holding the lock; two threads may both parse a new string, which is harmless.
        let parsed = self.ua.parse(user_agent);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(user_agent.into(), parsed.clone());
        parsed
    }

    /// The enrichment of one event (see the module documentation for the rules).
    pub fn enrich(&self, user_agent: Option<&str>, hints: &ClientHints, ip: Option<IpAddr>) -> Enrichment {
        let user_agent = user_agent.map(str::trim).filter(|ua| !ua.is_empty());
        let parsed = match user_agent {
            Some(ua) => self.parse_user_agent(ua),
            None => ParsedUserAgent::unknown(),
        };
        // Hints fill the User-Agent's fields only when there was no User-Agent.
        let from_hint = |parsed: String, hint: &Option<String>| match (user_agent, hint) {
            (None, Some(h)) if !h.trim().is_empty() => h.trim().to_owned(),
            _ => parsed,
        };

        let category = refine_with_hint(parsed.category, hints.device_category.as_deref().and_then(category_from_hint));
        let device_type = match category {
            DeviceCategory::Bot => "Bot".to_owned(),
            _ => from_hint(parsed.device_family, &hints.device_type),
        };
        let manufacturer = match (user_agent, parsed.device_brand) {
            (Some(_), brand) => brand,
            (None, _) => hints.manufacturer.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
        };

        Enrichment {
            browser: Arc::new(Browser {
                family: from_hint(parsed.browser_family, &hints.browser_family),
                version: from_hint(parsed.browser_version, &hints.browser_version),
                lang: hints.lang.clone(),
                view_height: hints.view_height,
                view_width: hints.view_width,
                features_flash: false,
                features_java: false,
                features_pdf: false,
                features_webrtc: false,
            }),
            device: Arc::new(Device {
                category,
                device_type,
                is_mobile: matches!(category, DeviceCategory::Mobile | DeviceCategory::Tablet),
                screen_height: hints.screen_height,
                screen_width: hints.screen_width,
                screen_density: hints.screen_density,
                os_family: from_hint(parsed.os_family, &hints.os_family),
                os_version: from_hint(parsed.os_version, &hints.os_version),
                manufacturer,
            }),
            geolocation: ip.and_then(|ip| self.geo.lookup(ip)).map(Arc::new),
            ip_organization: None,
        }
    }
}

/// The enrichments of one request's events. Events of a batch usually come from one browser: when an event has
/// the same User-Agent, client hints and address as the one before it, it gets that event's enrichment again,
/// sharing its `Browser`, `Device` and `Geolocation` (and the sessions and live messages built from them)
/// instead of building new ones.
#[derive(Debug, Default)]
pub struct RequestEnrichments {
    last: Option<(Option<String>, ClientHints, Option<IpAddr>, Enrichment)>,
}

impl RequestEnrichments {
    /// [`Enricher::enrich`], reusing the previous event's result when its inputs were the same.
    pub fn enrich(
        &mut self,
        enricher: &Enricher,
        user_agent: Option<&str>,
        hints: &ClientHints,
        ip: Option<IpAddr>,
    ) -> Enrichment {
        if let Some((ua, h, a, e)) = &self.last
            && ua.as_deref() == user_agent
            && h == hints
            && *a == ip
        {
            return e.clone();
        }
        let e = enricher.enrich(user_agent, hints, ip);
        self.last = Some((user_agent.map(str::to_owned), hints.clone(), ip, e.clone()));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_test_data::testdata_file;

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
    const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn hints() -> ClientHints {
        ClientHints {
            browser_family: Some("Firefox".into()),
            browser_version: Some("1.0".into()),
            lang: Some("en-GB".into()),
            view_height: Some(700),
            view_width: Some(390),
            device_category: Some("desktop".into()),
            device_type: Some("Gadget".into()),
            screen_height: Some(844),
            screen_width: Some(390),
            screen_density: Some(3),
            os_family: Some("Plan 9".into()),
            os_version: Some("4".into()),
            manufacturer: Some("Acme".into()),
        }
    }

    #[test]
    fn user_agent_wins_and_hints_add_what_only_the_client_knows() {
        let e = Enricher::default().enrich(Some(IPHONE), &hints(), None);
        let b = &e.browser;
        assert_eq!((b.family.as_str(), b.version.as_str()), ("Mobile Safari", "17.4"));
        assert_eq!((b.lang.as_deref(), b.view_height, b.view_width), (Some("en-GB"), Some(700), Some(390)));
        assert!(!(b.features_flash || b.features_java || b.features_pdf || b.features_webrtc));
        let d = &e.device;
        assert_eq!((d.category, d.device_type.as_str(), d.is_mobile), (DeviceCategory::Mobile, "iPhone", true));
        assert_eq!((d.os_family.as_str(), d.os_version.as_str()), ("iOS", "17.4"));
        assert_eq!(d.manufacturer.as_deref(), Some("Apple"));
        assert_eq!((d.screen_height, d.screen_width, d.screen_density), (Some(844), Some(390), Some(3)));
        assert_eq!((e.geolocation, e.ip_organization), (None, None));
    }

    #[test]
    fn events_of_one_browser_in_a_request_share_one_enrichment() {
        let enricher = Enricher::default();
        let mut request = RequestEnrichments::default();
        let ip = Some(IpAddr::from([81, 2, 69, 142]));
        let first = request.enrich(&enricher, Some(IPHONE), &hints(), ip);
        let again = request.enrich(&enricher, Some(IPHONE), &hints(), ip);
        assert!(Arc::ptr_eq(&first.browser, &again.browser) && Arc::ptr_eq(&first.device, &again.device));
        // Any input that differs is enriched anew, and correctly.
        let other_ua = request.enrich(&enricher, Some(MAC), &hints(), ip);
        assert!(!Arc::ptr_eq(&again.browser, &other_ua.browser));
        assert_eq!(other_ua, enricher.enrich(Some(MAC), &hints(), ip));
        let other_hints = request.enrich(&enricher, Some(MAC), &ClientHints::default(), ip);
        assert_eq!(other_hints.browser.lang, None);
        let other_ip = request.enrich(&enricher, Some(MAC), &ClientHints::default(), None);
        assert!(!Arc::ptr_eq(&other_hints.device, &other_ip.device));
        assert_eq!(other_ip, enricher.enrich(Some(MAC), &ClientHints::default(), None));
    }

    #[test]
    fn without_a_user_agent_the_hints_fill_in() {
        for ua in [None, Some(""), Some("  ")] {
            let e = Enricher::default().enrich(ua, &hints(), None);
            assert_eq!((e.browser.family.as_str(), e.browser.version.as_str()), ("Firefox", "1.0"));
            let d = &e.device;
            assert_eq!((d.category, d.device_type.as_str(), d.is_mobile), (DeviceCategory::Desktop, "Gadget", false));
            assert_eq!(
                (d.os_family.as_str(), d.os_version.as_str(), d.manufacturer.as_deref()),
                ("Plan 9", "4", Some("Acme"))
            );
        }
        let bare = Enricher::default().enrich(None, &ClientHints::default(), None);
        assert_eq!((bare.browser.family.as_str(), bare.browser.version.as_str()), ("Other", ""));
        assert_eq!((bare.device.category, bare.device.device_type.as_str()), (DeviceCategory::Other, "Other"));
        assert_eq!(bare.device.manufacturer, None);
    }

    #[test]
    fn unrecognised_user_agent_stays_other_but_takes_the_category_hint() {
        let e = Enricher::default().enrich(Some("SomethingNew/1.0"), &hints(), None);
        assert_eq!(e.browser.family, "Other");
        assert_eq!(e.device.os_family, "Other");
        assert_eq!(e.device.category, DeviceCategory::Desktop);
    }

    #[test]
    fn category_hints_refine_only_ambiguous_answers() {
        let enricher = Enricher::default();
        let tablet = ClientHints { device_category: Some("tablet".into()), ..ClientHints::default() };
        // iPadOS Safari sends a Mac User-Agent; the script knows better.
        let ipad = enricher.enrich(Some(MAC), &tablet, None);
        assert_eq!((ipad.device.category, ipad.device.is_mobile), (DeviceCategory::Tablet, true));
        // A phone stays a phone, a bot stays a bot.
        assert_eq!(enricher.enrich(Some(IPHONE), &tablet, None).device.category, DeviceCategory::Mobile);
        let bot = enricher.enrich(Some(GOOGLEBOT), &hints(), None);
        assert_eq!(
            (bot.device.category, bot.device.device_type.as_str(), bot.device.is_mobile),
            (DeviceCategory::Bot, "Bot", false)
        );
        assert_eq!(bot.browser.family, "Googlebot");
    }

    #[test]
    fn geolocation_from_the_address() {
        let geo = GeoProvider::open(testdata_file("geoip/GeoLite2-City-Test.mmdb")).unwrap_or_else(|e| panic!("{e}"));
        let enricher = Enricher::new(UserAgentParser::builtin(), geo);
        let e = enricher.enrich(
            Some(MAC),
            &ClientHints::default(),
            Some("81.2.69.160".parse().unwrap_or_else(|e| panic!("{e}"))),
        );
        let g = e.geolocation.expect("London");
        assert_eq!((g.country.as_deref(), g.locality.as_deref()), (Some("GB"), Some("London")));
        let private = enricher.enrich(
            Some(MAC),
            &ClientHints::default(),
            Some("192.168.1.1".parse().unwrap_or_else(|e| panic!("{e}"))),
        );
        assert_eq!(private.geolocation, None);
    }

    #[test]
    fn shareable_between_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Enricher>();
        send_sync::<crate::EnrichError>();
    }

    #[test]
    fn cache_answers_like_the_parser_and_stays_bounded() {
        let enricher = Enricher::default();
        let first = enricher.parse_user_agent(IPHONE);
        assert_eq!(enricher.parse_user_agent(IPHONE), first);
        assert_eq!(first, UserAgentParser::builtin().parse(IPHONE));
        for i in 0..(CACHE_ENTRIES + 10) {
            enricher.parse_user_agent(&format!("Agent/{i}"));
        }
        assert!(enricher.cache.lock().len() <= CACHE_ENTRIES);
        let long = format!("Mozilla/5.0 {}", "x".repeat(CACHE_MAX_KEY_BYTES));
        enricher.parse_user_agent(&long);
        assert!(!enricher.cache.lock().contains_key(long.as_str()));
    }
}
