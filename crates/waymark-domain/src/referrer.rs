//! Referrer classification: which site sent the visitor, and by what medium (search, social, email, paid,
//! internal). A small, documented table of well-known sources; everything else is `unknown`.

use crate::page::{parse_http_url, registrable_domain};
use crate::wire::{Campaign, Referrer, ReferrerMedium};

const SEARCH: &[(&str, &str, &str)] = &[
    // (domain, name, query parameter with the keywords)
    ("google", "Google", "q"),
    ("bing.com", "Bing", "q"),
    ("yahoo.com", "Yahoo!", "p"),
    ("duckduckgo.com", "DuckDuckGo", "q"),
    ("baidu.com", "Baidu", "wd"),
    ("yandex", "Yandex", "text"),
    ("naver.com", "Naver", "query"),
    ("daum.net", "Daum", "q"),
    ("ecosia.org", "Ecosia", "q"),
    ("ask.com", "Ask", "q"),
];

const SOCIAL: &[(&str, &str)] = &[
    ("facebook.com", "Facebook"),
    ("fb.com", "Facebook"),
    ("instagram.com", "Instagram"),
    ("twitter.com", "Twitter"),
    ("x.com", "X"),
    ("t.co", "Twitter"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("youtube.com", "YouTube"),
    ("pinterest.com", "Pinterest"),
    ("tiktok.com", "TikTok"),
    ("line.me", "LINE"),
    ("kakao.com", "Kakao"),
    ("whatsapp.com", "WhatsApp"),
];

const EMAIL: &[(&str, &str)] = &[
    ("mail.google.com", "Gmail"),
    ("outlook.live.com", "Outlook.com"),
    ("outlook.office.com", "Outlook"),
    ("mail.yahoo.com", "Yahoo! Mail"),
    ("mail.naver.com", "Naver Mail"),
];

/// Classify a referrer URL seen on a page of `page_host`. `None` when there is no usable referrer.
pub fn classify(raw: &str, page_host: &str, campaign: Option<&Campaign>) -> Option<Referrer> {
    let url = parse_http_url(raw).ok()?;
    let hostname = url.host_str()?.to_ascii_lowercase();
    let domain = registrable_domain(&hostname);
    let mut referrer = Referrer {
        url: url.to_string(),
        domain: domain.clone(),
        hostname: hostname.clone(),
        keywords: None,
        pathname: url.path().to_string(),
        query_string: url.query().filter(|q| !q.is_empty()).map(str::to_string),
        fragment: url.fragment().filter(|f| !f.is_empty()).map(str::to_string),
        name: None,
        medium: ReferrerMedium::Unknown,
    };
    let page_domain = registrable_domain(&page_host.to_ascii_lowercase());
    let paid = campaign.and_then(|c| c.medium.as_deref()).is_some_and(|m| {
        matches!(m.to_ascii_lowercase().as_str(), "cpc" | "ppc" | "paid" | "cpm" | "paidsearch" | "display")
    }) || campaign.is_some_and(|c| c.click_id.is_some());

    if domain == page_domain {
        referrer.medium = ReferrerMedium::Internal;
    } else if let Some((_, name)) = EMAIL.iter().find(|(h, _)| hostname == *h) {
        referrer.name = Some(name.to_string());
        referrer.medium = ReferrerMedium::Email;
    } else if let Some((_, name, param)) = SEARCH.iter().find(|(d, _, _)| matches_source(&domain, &hostname, d)) {
        referrer.name = Some(name.to_string());
        referrer.keywords =
            url.query_pairs().find(|(k, _)| k == param).map(|(_, v)| v.trim().to_string()).filter(|s| !s.is_empty());
        referrer.medium = if paid { ReferrerMedium::Paid } else { ReferrerMedium::Search };
    } else if let Some((_, name)) = SOCIAL.iter().find(|(d, _)| matches_source(&domain, &hostname, d)) {
        referrer.name = Some(name.to_string());
        referrer.medium = if paid { ReferrerMedium::Paid } else { ReferrerMedium::Social };
    } else if paid {
        referrer.medium = ReferrerMedium::Paid;
    } else if campaign.and_then(|c| c.medium.as_deref()).is_some_and(|m| m.eq_ignore_ascii_case("email")) {
        referrer.medium = ReferrerMedium::Email;
    }
    Some(referrer)
}

/// `google` matches any `google.<tld>`; a full domain matches itself and its subdomains.
fn matches_source(domain: &str, hostname: &str, pattern: &str) -> bool {
    if pattern.contains('.') {
        domain == pattern
            || hostname == pattern
            || hostname.strip_suffix(pattern).is_some_and(|subdomain| subdomain.ends_with('.'))
    } else {
        domain.split('.').next() == Some(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_well_known_sources() {
        let r = classify("https://www.google.co.uk/search?q=waymark+journeys", "shop.example", None).unwrap();
        assert_eq!(r.medium, ReferrerMedium::Search);
        assert_eq!(r.name.as_deref(), Some("Google"));
        assert_eq!(r.keywords.as_deref(), Some("waymark journeys"));
        assert_eq!(classify("https://t.co/abc", "shop.example", None).unwrap().medium, ReferrerMedium::Social);
        assert_eq!(
            classify("https://mail.google.com/mail/u/0", "shop.example", None).unwrap().medium,
            ReferrerMedium::Email
        );
        assert_eq!(
            classify("https://www.shop.example/a", "shop.example", None).unwrap().medium,
            ReferrerMedium::Internal
        );
        assert_eq!(
            classify("https://blog.other.example/", "shop.example", None).unwrap().medium,
            ReferrerMedium::Unknown
        );
        let paid = Campaign { medium: Some("cpc".into()), ..Default::default() };
        assert_eq!(
            classify("https://www.bing.com/?q=x", "shop.example", Some(&paid)).unwrap().medium,
            ReferrerMedium::Paid
        );
        assert!(classify("not a url", "shop.example", None).is_none());
        // A listed domain matches its subdomains, and not a longer name that merely ends like it.
        let sub = classify("https://m.facebook.com/story", "shop.example", None).unwrap();
        assert_eq!((sub.medium, sub.name.as_deref()), (ReferrerMedium::Social, Some("Facebook")));
        assert_eq!(classify("https://notfacebook.com/", "shop.example", None).unwrap().medium, ReferrerMedium::Unknown);
    }
}
