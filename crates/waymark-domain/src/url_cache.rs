//! Parsed page URLs and classified referrers, shared by the requests of one deployment ([`UrlCache`]).
//!
//! A site's visitors view the same pages and arrive from the same few referrers: parsing each page URL
//! (WHATWG rules, IDNA hosts, query pairs) and classifying each referrer again for every single-event request
//! took ~8 % of the request threads' time, and in a batch of events on different pages a parse per event. The
//! cache answers a URL it has seen with the same `Arc`s the first parse gave. It is bounded in entries and in
//! bytes (a full cache is emptied and fills again), holds only successful parses, and serves only the page
//! rules (search and excluded parameters, fragments) it was made for: a deployment whose rules change gets a
//! new cache.

use crate::deployment::Deployment;
use crate::wire::{Campaign, Page, Referrer};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

/// Most pages one deployment's cache holds.
pub const MAX_PAGES: usize = 1024;
/// Most referrers one deployment's cache holds.
pub const MAX_REFERRERS: usize = 512;
/// Most bytes of URLs and titles one deployment's cache holds (pages of long URLs fill it before
/// [`MAX_PAGES`] does; each is kept about three times over: the key, the page's URL and its parts).
pub const MAX_BYTES: usize = 1 << 20;

/// What a page URL gave: its page, its site-search terms and its UTM campaign.
pub type PageParts = (Arc<Page>, Vec<String>, Option<Arc<Campaign>>);

/// The deployment settings a page parse depends on.
#[derive(Debug, Clone, PartialEq)]
struct PageRules {
    search_query_params: Vec<String>,
    excluded_query_params: Vec<String>,
    keep_url_fragment: bool,
}

impl PageRules {
    fn of(d: &Deployment) -> PageRules {
        PageRules {
            search_query_params: d.search_query_params.clone(),
            excluded_query_params: d.excluded_query_params.clone(),
            keep_url_fragment: d.keep_url_fragment,
        }
    }

    fn fit(&self, d: &Deployment) -> bool {
        self.keep_url_fragment == d.keep_url_fragment
            && self.search_query_params == d.search_query_params
            && self.excluded_query_params == d.excluded_query_params
    }
}

#[derive(Debug)]
struct CachedPage {
    url: Box<str>,
    title: Box<str>,
    page: Arc<Page>,
    search_terms: Vec<String>,
    campaign: Option<Arc<Campaign>>,
}

#[derive(Debug)]
struct CachedReferrer {
    raw: Box<str>,
    page_host: Box<str>,
    campaign: Option<Arc<Campaign>>,
    referrer: Option<Arc<Referrer>>,
}

#[derive(Debug, Default)]
struct Maps {
    pages: HashMap<u64, CachedPage, foldhash::fast::RandomState>,
    referrers: HashMap<u64, CachedReferrer, foldhash::fast::RandomState>,
    /// The text the two maps hold, roughly ([`MAX_BYTES`]).
    bytes: usize,
}

impl Maps {
    /// Make room for an entry of `bytes` under `key`: a full cache is emptied (it fills again with what
    /// visitors send now, which is what a bounded cache of a site's pages should hold).
    fn make_room(&mut self, pages: bool, key: u64, bytes: usize) {
        let full = if pages {
            self.pages.len() >= MAX_PAGES && !self.pages.contains_key(&key)
        } else {
            self.referrers.len() >= MAX_REFERRERS && !self.referrers.contains_key(&key)
        };
        if full || self.bytes + bytes > MAX_BYTES {
            self.pages.clear();
            self.referrers.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
    }
}

/// Page parses and referrer classifications of one deployment, keyed by a hash of their inputs (the inputs
/// themselves are kept and compared, so a hash collision is a miss, never a wrong answer).
#[derive(Debug)]
pub struct UrlCache {
    rules: PageRules,
    hasher: foldhash::fast::RandomState,
    maps: Mutex<Maps>,
}

impl UrlCache {
    /// An empty cache for `deployment`'s page rules.
    pub fn new(deployment: &Deployment) -> UrlCache {
        UrlCache {
            rules: PageRules::of(deployment),
            hasher: foldhash::fast::RandomState::default(),
            maps: Mutex::new(Maps::default()),
        }
    }

    /// Whether this cache's answers hold for `deployment` (its page rules are the ones the cache was made for).
    pub fn fits(&self, deployment: &Deployment) -> bool {
        self.rules.fit(deployment)
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        // A panic while the lock was held cannot leave a half-written entry (inserts are single calls).
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The parts an earlier parse of `url` with `title` gave.
    pub fn page(&self, url: &str, title: &str) -> Option<PageParts> {
        let key = self.hasher.hash_one((url, title));
        let maps = self.maps();
        let hit = maps.pages.get(&key).filter(|c| &*c.url == url && &*c.title == title)?;
        Some((hit.page.clone(), hit.search_terms.clone(), hit.campaign.clone()))
    }

    /// Remember what parsing `url` with `title` gave.
    pub fn keep_page(&self, url: &str, title: &str, parts: &PageParts) {
        let key = self.hasher.hash_one((url, title));
        let mut maps = self.maps();
        maps.make_room(true, key, 3 * (url.len() + title.len()) + 256);
        let (page, search_terms, campaign) = parts;
        maps.pages.insert(
            key,
            CachedPage {
                url: url.into(),
                title: title.into(),
                page: page.clone(),
                search_terms: search_terms.clone(),
                campaign: campaign.clone(),
            },
        );
    }

    /// The classification an earlier call gave for the referrer `raw` of a page on `page_host` with `campaign`.
    pub fn referrer(&self, raw: &str, page_host: &str, campaign: Option<&Campaign>) -> Option<Option<Arc<Referrer>>> {
        let key = self.hasher.hash_one((raw, page_host));
        let maps = self.maps();
        let hit = maps
            .referrers
            .get(&key)
            .filter(|c| &*c.raw == raw && &*c.page_host == page_host && c.campaign.as_deref() == campaign)?;
        Some(hit.referrer.clone())
    }

    /// Remember the classification of the referrer `raw` of a page on `page_host` with `campaign`.
    pub fn keep_referrer(
        &self,
        raw: &str,
        page_host: &str,
        campaign: Option<&Arc<Campaign>>,
        referrer: Option<&Arc<Referrer>>,
    ) {
        let key = self.hasher.hash_one((raw, page_host));
        let mut maps = self.maps();
        maps.make_room(false, key, 2 * raw.len() + page_host.len() + 256);
        maps.referrers.insert(
            key,
            CachedReferrer {
                raw: raw.into(),
                page_host: page_host.into(),
                campaign: campaign.cloned(),
                referrer: referrer.cloned(),
            },
        );
    }

    /// Pages and referrers held now, and the bytes of text they hold (roughly).
    pub fn held(&self) -> (usize, usize, usize) {
        let maps = self.maps();
        (maps.pages.len(), maps.referrers.len(), maps.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeploymentId, OrgId};
    use crate::page::parse_page;

    fn dep() -> Deployment {
        Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t")
    }

    fn parts(url: &str, d: &Deployment) -> PageParts {
        let p = parse_page(url, "t", d).unwrap();
        (Arc::new(p.page), p.search_terms, p.campaign.map(Arc::new))
    }

    #[test]
    fn a_page_is_answered_for_its_url_and_title_only() {
        let d = dep();
        let cache = UrlCache::new(&d);
        let url = "https://shop.example/search?q=boots";
        assert!(cache.page(url, "t").is_none());
        let kept = parts(url, &d);
        cache.keep_page(url, "t", &kept);
        let (page, terms, _) = cache.page(url, "t").unwrap();
        assert!(Arc::ptr_eq(&page, &kept.0), "the same parse is shared");
        assert_eq!(terms, vec!["boots"]);
        assert!(cache.page(url, "other title").is_none());
        assert!(cache.page("https://shop.example/search?q=boot", "t").is_none());
    }

    #[test]
    fn a_referrer_is_answered_for_its_page_host_and_campaign_only() {
        let cache = UrlCache::new(&dep());
        let raw = "https://www.google.com/search?q=x";
        let paid = Arc::new(Campaign { medium: Some("cpc".into()), ..Campaign::default() });
        let organic = crate::referrer::classify(raw, "shop.example", None).map(Arc::new);
        cache.keep_referrer(raw, "shop.example", None, organic.as_ref());
        assert_eq!(cache.referrer(raw, "shop.example", None), Some(organic));
        assert_eq!(cache.referrer(raw, "shop.example", Some(&paid)), None);
        assert_eq!(cache.referrer(raw, "other.example", None), None);
    }

    #[test]
    fn the_cache_stays_bounded_and_serves_only_its_rules() {
        let d = dep();
        let cache = UrlCache::new(&d);
        for i in 0..MAX_PAGES * 2 + 7 {
            let url = format!("https://shop.example/p/{i}");
            cache.keep_page(&url, "t", &parts(&url, &d));
            cache.keep_referrer(&url, "shop.example", None, None);
            let (pages, referrers, _) = cache.held();
            assert!(pages <= MAX_PAGES && referrers <= MAX_REFERRERS, "{pages} pages, {referrers} referrers");
        }
        // Long URLs fill the byte budget first.
        let long = format!("https://shop.example/{}", "x".repeat(4000));
        for i in 0..200 {
            let url = format!("{long}/{i}");
            cache.keep_page(&url, "t", &parts(&url, &d));
            let (pages, _, bytes) = cache.held();
            assert!(bytes <= MAX_BYTES && pages < 100, "{pages} pages in {bytes} bytes");
        }
        assert!(cache.fits(&d));
        let mut other = d.clone();
        other.excluded_query_params = vec!["token".into()];
        assert!(!cache.fits(&other));
        let mut fragments = d;
        fragments.keep_url_fragment = !fragments.keep_url_fragment;
        assert!(!cache.fits(&fragments));
    }
}
