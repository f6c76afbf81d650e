//! Web tracking events: the raw `WebEventRequest` as it arrives, and [`parse_web_event`], the one gate that
//! turns it into a validated [`WebEvent`] (parse, don't validate). After this point nothing re-checks lengths,
//! names or dates.

use crate::deployment::Deployment;
use crate::limits::InputLimits;
use crate::page::{ParsedPage, parse_page};
use crate::referrer::classify;
use crate::url_cache::{PageParts, UrlCache};
use crate::wire::{Attribute, Attributes, Campaign, Page, Referrer};
use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// `WebEventRequest` as sent by trackers and the Genesys SDKs. Every field is optional here so that a missing
/// field gets a precise message from [`parse_web_event`] rather than a generic deserialization error.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebEventRequest {
    pub customer_cookie_id: Option<String>,
    pub event_name: Option<String>,
    pub page: Option<RequestPage>,
    pub user_agent_string: Option<String>,
    pub browser: Option<RequestBrowser>,
    pub device: Option<RequestDevice>,
    pub search_query: Option<String>,
    pub ip_address: Option<String>,
    pub referrer_url: Option<String>,
    pub attributes: Option<BTreeMap<String, RequestAttribute>>,
    pub traits: Option<BTreeMap<String, RequestAttribute>>,
    pub external_id: Option<String>,
    pub created_date: Option<String>,
    /// Waymark extension: a client-chosen id that makes retries idempotent.
    pub client_event_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPage {
    pub url: Option<String>,
    pub title: Option<String>,
    pub keywords: Option<String>,
    pub lang: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestBrowser {
    pub family: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
    pub view_height: Option<i64>,
    pub view_width: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDevice {
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub is_mobile: Option<bool>,
    pub screen_height: Option<i64>,
    pub screen_width: Option<i64>,
    pub screen_density: Option<i64>,
    pub os_family: Option<String>,
    pub os_version: Option<String>,
    pub manufacturer: Option<String>,
}

/// A custom attribute on the wire: `{dataType, value}`; a bare JSON string or number is accepted too.
///
/// Read in one pass ([`RequestAttributeVisitor`]): an object with a `value` member and a `dataType` that is a
/// string, null or absent is typed (other members are ignored); anything else is bare. serde's untagged
/// derive read the same, but buffered every attribute into an intermediate tree first and tried each form on
/// it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RequestAttribute {
    Typed {
        #[serde(rename = "dataType")]
        data_type: Option<String>,
        value: serde_json::Value,
    },
    Bare(serde_json::Value),
}

impl<'de> Deserialize<'de> for RequestAttribute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RequestAttributeVisitor)
    }
}

/// A member name of an attribute object; the two the form needs are recognised without allocating.
enum AttributeMember {
    DataType,
    Value,
    Other(String),
}

impl<'de> Deserialize<'de> for AttributeMember {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = AttributeMember;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<AttributeMember, E> {
                Ok(match v {
                    "dataType" => AttributeMember::DataType,
                    "value" => AttributeMember::Value,
                    other => AttributeMember::Other(other.to_string()),
                })
            }
        }
        d.deserialize_str(Name)
    }
}

/// Reads a [`RequestAttribute`]: scalars and arrays become bare values as `serde_json::Value` reads them; an
/// object is read member by member.
struct RequestAttributeVisitor;

impl<'de> serde::de::Visitor<'de> for RequestAttributeVisitor {
    type Value = RequestAttribute;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute: {dataType, value} or a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)))
    }

    fn visit_str<E>(self, v: &str) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(v.into()))
    }

    fn visit_unit<E>(self) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(serde_json::Value::Null))
    }

    fn visit_none<E>(self) -> Result<RequestAttribute, E> {
        Ok(RequestAttribute::Bare(serde_json::Value::Null))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<RequestAttribute, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RequestAttribute, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            items.push(v);
        }
        Ok(RequestAttribute::Bare(serde_json::Value::Array(items)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RequestAttribute, A::Error> {
        let (mut data_type, mut value) = (None::<serde_json::Value>, None::<serde_json::Value>);
        // Members other than the two, kept only in case the object turns out bare.
        let mut others = serde_json::Map::new();
        while let Some(key) = map.next_key::<AttributeMember>()? {
            let v = map.next_value::<serde_json::Value>()?;
            match key {
                AttributeMember::DataType => data_type = Some(v),
                AttributeMember::Value => value = Some(v),
                AttributeMember::Other(name) => {
                    others.insert(name, v);
                }
            }
        }
        match (data_type, value) {
            (None | Some(serde_json::Value::Null), Some(value)) => {
                Ok(RequestAttribute::Typed { data_type: None, value })
            }
            (Some(serde_json::Value::String(t)), Some(value)) => {
                Ok(RequestAttribute::Typed { data_type: Some(t), value })
            }
            (data_type, value) => {
                others.extend(data_type.map(|t| ("dataType".to_string(), t)));
                others.extend(value.map(|v| ("value".to_string(), v)));
                Ok(RequestAttribute::Bare(serde_json::Value::Object(others)))
            }
        }
    }
}

/// A validated event name: letters, digits and underscores, 1–255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventName(String);

impl EventName {
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Rejection::at(
                ErrorCode::InvalidEventName,
                "eventName",
                format!(
                    "eventName must be 1-255 letters, digits or underscores (e.g. page_viewed), got {:?}",
                    s.chars().take(64).collect::<String>()
                ),
            ));
        }
        Ok(EventName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_page_view(&self) -> bool {
        self.0 == "page_viewed"
    }
}

/// A validated customer cookie id: 1–128 characters of `[A-Za-z0-9._-]` (the tracker uses UUIDs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CookieId(String);

impl CookieId {
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(Rejection::at(
                ErrorCode::InvalidCustomerId,
                "customerCookieId",
                "customerCookieId must be 1-128 characters of letters, digits, '-', '_' or '.' (the tracker sends a UUID)",
            ));
        }
        Ok(CookieId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hints the client sent about its browser/device; the server's User-Agent parse fills the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientHints {
    pub browser_family: Option<String>,
    pub browser_version: Option<String>,
    pub lang: Option<String>,
    pub view_height: Option<i64>,
    pub view_width: Option<i64>,
    pub device_category: Option<String>,
    pub device_type: Option<String>,
    pub screen_height: Option<i64>,
    pub screen_width: Option<i64>,
    pub screen_density: Option<i64>,
    pub os_family: Option<String>,
    pub os_version: Option<String>,
    pub manufacturer: Option<String>,
}

/// A web event that passed every check at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct WebEvent {
    pub cookie_id: CookieId,
    pub event_name: EventName,
    pub created: Timestamp,
    pub page: Arc<Page>,
    /// The explicit `searchQuery`, or the first search term of the page URL.
    pub search_query: Option<String>,
    /// Every search term this event carries (explicit query and URL parameters), de-duplicated.
    pub search_terms: Vec<String>,
    pub campaign: Option<Arc<Campaign>>,
    pub referrer: Option<Arc<Referrer>>,
    pub attributes: Arc<Attributes>,
    pub traits: Arc<Attributes>,
    pub user_agent: Option<String>,
    pub hints: ClientHints,
    /// Client address, used for geolocation; stored only when `ip_collected`.
    pub ip: Option<IpAddr>,
    /// Whether the deployment keeps visitors' addresses.
    pub ip_collected: bool,
    pub external_id: Option<String>,
    pub client_event_id: Option<String>,
    /// The deployment's divisions; a session opened by this event carries them.
    pub division_ids: Vec<String>,
}

/// Validate a `WebEventRequest` for `deployment` at time `now`. `request_ip` is the client address derived
/// from the connection (and trusted proxies); `request_user_agent` the `User-Agent` header.
pub fn parse_web_event(
    req: WebEventRequest,
    deployment: &Deployment,
    limits: &InputLimits,
    now: Timestamp,
    request_ip: Option<IpAddr>,
    request_user_agent: Option<&str>,
) -> Result<WebEvent, Rejection> {
    parse_web_event_in(req, deployment, limits, now, request_ip, request_user_agent, &mut UrlMemo::default())
}

/// The last page URL and referrer one request's events parsed, and what they gave. A tracker's batch comes
/// from one visitor, whose events on one page share its URL and referrer: parsing and classifying them again
/// for every event was a tenth of the request threads' time in batches of 100. Behind it, when given, the
/// deployment's [`UrlCache`] shared by all requests.
#[derive(Debug, Default)]
pub struct UrlMemo<'c> {
    page: Option<LastPage>,
    referrer: Option<LastReferrer>,
    shared: Option<&'c UrlCache>,
}

/// A parsed page, shared (`Arc`) by the events on it; the key's buffers are reused from one miss to the next.
#[derive(Debug)]
struct LastPage {
    url: String,
    title: String,
    page: Arc<Page>,
    search_terms: Vec<String>,
    campaign: Option<Arc<Campaign>>,
}

#[derive(Debug)]
struct LastReferrer {
    raw: String,
    page_host: String,
    campaign: Option<Arc<Campaign>>,
    referrer: Option<Arc<Referrer>>,
}

impl<'c> UrlMemo<'c> {
    /// A memo backed by `shared`, the cache of the deployment whose events it parses.
    pub fn with_cache(shared: &'c UrlCache) -> UrlMemo<'c> {
        UrlMemo { page: None, referrer: None, shared: Some(shared) }
    }

    /// The shared cache, when it holds answers for `deployment`'s page rules.
    fn shared_for(&self, deployment: &Deployment) -> Option<&'c UrlCache> {
        self.shared.filter(|c| c.fits(deployment))
    }

    /// [`parse_page`], or its last answer for the same URL and title (a memo serves one deployment).
    fn page(&mut self, url: &str, title: &str, deployment: &Deployment) -> Result<PageParts, Rejection> {
        if let Some(last) = &self.page
            && last.url == url
            && last.title == title
        {
            return Ok((last.page.clone(), last.search_terms.clone(), last.campaign.clone()));
        }
        let shared = self.shared_for(deployment);
        let (page, search_terms, campaign) = match shared.and_then(|c| c.page(url, title)) {
            Some(parts) => parts,
            None => {
                let ParsedPage { page, search_terms, campaign } = parse_page(url, title, deployment)?;
                let parts = (Arc::new(page), search_terms, campaign.map(Arc::new));
                if let Some(c) = shared {
                    c.keep_page(url, title, &parts);
                }
                parts
            }
        };
        let last = self.page.get_or_insert_with(|| LastPage {
            url: String::new(),
            title: String::new(),
            page: page.clone(),
            search_terms: Vec::new(),
            campaign: None,
        });
        last.url.replace_range(.., url);
        last.title.replace_range(.., title);
        last.page = page.clone();
        last.search_terms.clone_from(&search_terms);
        last.campaign = campaign.clone();
        Ok((page, search_terms, campaign))
    }

    /// [`classify`], or its last answer for the same referrer, page host and campaign.
    fn referrer(
        &mut self,
        raw: &str,
        page_host: &str,
        campaign: Option<&Arc<Campaign>>,
        deployment: &Deployment,
    ) -> Option<Arc<Referrer>> {
        if let Some(last) = &self.referrer
            && last.raw == raw
            && last.page_host == page_host
            && last.campaign.as_deref() == campaign.map(|c| &**c)
        {
            return last.referrer.clone();
        }
        let shared = self.shared_for(deployment);
        let referrer = match shared.and_then(|c| c.referrer(raw, page_host, campaign.map(|c| &**c))) {
            Some(known) => known,
            None => {
                let referrer = classify(raw, page_host, campaign.map(|c| &**c)).map(Arc::new);
                if let Some(c) = shared {
                    c.keep_referrer(raw, page_host, campaign, referrer.as_ref());
                }
                referrer
            }
        };
        let last = self.referrer.get_or_insert_with(|| LastReferrer {
            raw: String::new(),
            page_host: String::new(),
            campaign: None,
            referrer: None,
        });
        last.raw.replace_range(.., raw);
        last.page_host.replace_range(.., page_host);
        last.campaign = campaign.cloned();
        last.referrer = referrer.clone();
        referrer
    }
}

/// [`parse_web_event`] for one of a request's events, `memo` shared by them.
pub fn parse_web_event_in(
    req: WebEventRequest,
    deployment: &Deployment,
    limits: &InputLimits,
    now: Timestamp,
    request_ip: Option<IpAddr>,
    request_user_agent: Option<&str>,
    memo: &mut UrlMemo<'_>,
) -> Result<WebEvent, Rejection> {
    let cookie = req.customer_cookie_id.as_deref().ok_or_else(|| missing("customerCookieId"))?;
    let cookie_id = CookieId::parse(cookie)?;
    let event_name = EventName::parse(req.event_name.as_deref().ok_or_else(|| missing("eventName"))?)?;
    let created_raw = req.created_date.as_deref().ok_or_else(|| missing("createdDate"))?;
    let created = Timestamp::parse(created_raw).ok_or_else(|| {
        Rejection::at(
            ErrorCode::InvalidDate,
            "createdDate",
            format!(
                "createdDate must be an ISO-8601 UTC date-time such as 2026-11-24T10:00:00.000Z, got {:?}",
                clip(created_raw, 40)
            ),
        )
    })?;
    if created < now.minus_secs(limits.max_event_age_secs) {
        return Err(Rejection::at(
            ErrorCode::EventTooOld,
            "createdDate",
            format!(
                "event from {created} is older than {} seconds and is rejected; send events as they happen",
                limits.max_event_age_secs
            ),
        ));
    }
    if created > now.plus_secs(limits.max_clock_skew_secs) {
        return Err(Rejection::at(
            ErrorCode::EventInFuture,
            "createdDate",
            format!(
                "event from {created} is more than {} seconds in the future; check the client clock",
                limits.max_clock_skew_secs
            ),
        ));
    }
    let page_in = req.page.ok_or_else(|| missing("page"))?;
    let url = page_in.url.as_deref().ok_or_else(|| missing("page.url"))?;
    check_len("page.url", url, limits.max_url_bytes)?;
    let title = page_in.title.as_deref().unwrap_or("");
    check_len("page.title", title, limits.max_text_bytes)?;
    let (mut page, url_terms, campaign) = memo.page(url, title, deployment)?;
    // An event's own keywords or language make its page its own copy.
    if let Some(k) = page_in.keywords.as_deref() {
        check_len("page.keywords", k, limits.max_text_bytes)?;
        Arc::make_mut(&mut page).keywords = Some(k.to_string());
    }
    if let Some(l) = page_in.lang.as_deref() {
        check_len("page.lang", l, 35)?;
        Arc::make_mut(&mut page).lang = Some(l.to_string());
    }

    let mut search_terms = Vec::new();
    let explicit = match req.search_query.as_deref().map(str::trim) {
        Some(q) if !q.is_empty() => {
            check_len("searchQuery", q, limits.max_text_bytes)?;
            Some(q.to_string())
        }
        _ => None,
    };
    for t in explicit.iter().chain(url_terms.iter()) {
        if !search_terms.contains(t) {
            search_terms.push(t.clone());
        }
    }
    let search_query = explicit.or_else(|| url_terms.first().cloned());

    let referrer = match req.referrer_url.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(r) => {
            check_len("referrerUrl", r, limits.max_url_bytes)?;
            memo.referrer(r, &page.hostname, campaign.as_ref(), deployment)
        }
        None => None,
    };

    let attributes = parse_attributes("attributes", req.attributes, limits)?;
    let traits = parse_attributes("traits", req.traits, limits)?;

    let user_agent = match req.user_agent_string.as_deref().or(request_user_agent) {
        Some(ua) if !ua.is_empty() => Some(clip(ua, limits.max_text_bytes)),
        _ => None,
    };
    let ip = match req.ip_address.as_deref() {
        Some(s) if !s.is_empty() => Some(s.trim().parse::<IpAddr>().map_err(|_| {
            Rejection::at(ErrorCode::InvalidField, "ipAddress", "ipAddress must be an IPv4 or IPv6 address")
        })?),
        _ => request_ip,
    };
    if let Some(ip) = ip
        && deployment.ip_excluded(ip)
    {
        return Err(Rejection::new(
            ErrorCode::IpExcluded,
            "this visitor's address is in the deployment's excluded IP ranges; the event is not tracked",
        ));
    }
    let text = |field: &str, v: Option<String>| -> Result<Option<String>, Rejection> {
        match v {
            Some(s) => {
                check_len(field, &s, 256)?;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    };
    let b = req.browser.unwrap_or_default();
    let d = req.device.unwrap_or_default();
    let hints = ClientHints {
        browser_family: text("browser.family", b.family)?,
        browser_version: text("browser.version", b.version)?,
        lang: text("browser.lang", b.lang)?,
        view_height: b.view_height.filter(|v| (0..=100_000).contains(v)),
        view_width: b.view_width.filter(|v| (0..=100_000).contains(v)),
        device_category: text("device.category", d.category)?,
        device_type: text("device.type", d.device_type)?,
        screen_height: d.screen_height.filter(|v| (0..=100_000).contains(v)),
        screen_width: d.screen_width.filter(|v| (0..=100_000).contains(v)),
        screen_density: d.screen_density.filter(|v| (0..=100).contains(v)),
        os_family: text("device.osFamily", d.os_family)?,
        os_version: text("device.osVersion", d.os_version)?,
        manufacturer: text("device.manufacturer", d.manufacturer)?,
    };
    let external_id = text("externalId", req.external_id)?;
    let client_event_id = text("clientEventId", req.client_event_id)?;

    Ok(WebEvent {
        cookie_id,
        event_name,
        created,
        page,
        search_query,
        search_terms,
        campaign,
        referrer,
        attributes: Arc::new(attributes),
        traits: Arc::new(traits),
        user_agent,
        hints,
        ip,
        ip_collected: deployment.ip_collection,
        external_id,
        client_event_id,
        division_ids: deployment.division_ids.clone(),
    })
}

fn parse_attributes(
    field: &str,
    raw: Option<BTreeMap<String, RequestAttribute>>,
    limits: &InputLimits,
) -> Result<Attributes, Rejection> {
    let Some(raw) = raw else { return Ok(Attributes::new()) };
    if raw.len() > limits.max_attributes {
        return Err(Rejection::at(
            ErrorCode::TooManyAttributes,
            field,
            format!("{field} has {} entries; at most {} are accepted per event", raw.len(), limits.max_attributes),
        ));
    }
    let mut out = Attributes::new();
    for (key, value) in raw {
        if key.is_empty() || key.chars().count() > limits.max_attribute_key_chars {
            return Err(Rejection::at(
                ErrorCode::AttributeTooLong,
                format!("{field}.{}", clip(&key, 32)),
                format!("{field} keys must be 1-{} characters", limits.max_attribute_key_chars),
            ));
        }
        let (data_type, value) = match value {
            RequestAttribute::Typed { data_type, value } => (data_type, value),
            RequestAttribute::Bare(v) => (None, v),
        };
        let (inferred, text) = match value {
            serde_json::Value::String(s) => ("string", s),
            serde_json::Value::Number(n) => ("number", n.to_string()),
            serde_json::Value::Bool(b) => ("boolean", b.to_string()),
            serde_json::Value::Null => ("string", String::new()),
            _ => {
                return Err(Rejection::at(
                    ErrorCode::InvalidField,
                    format!("{field}.{key}.value"),
                    "attribute values must be a string, number or boolean",
                ));
            }
        };
        if text.len() > limits.max_attribute_value_bytes {
            return Err(Rejection::at(
                ErrorCode::AttributeTooLong,
                format!("{field}.{key}.value"),
                format!("attribute values are limited to {} bytes", limits.max_attribute_value_bytes),
            ));
        }
        let data_type = data_type.filter(|t| !t.is_empty() && t.len() <= 32).unwrap_or_else(|| inferred.to_string());
        out.insert(key, Attribute { data_type, value: text });
    }
    Ok(out)
}

fn missing(field: &str) -> Rejection {
    Rejection::at(ErrorCode::MissingField, field, format!("{field} is required"))
}

fn check_len(field: &str, s: &str, max: usize) -> Result<(), Rejection> {
    if s.len() > max {
        return Err(Rejection::at(
            ErrorCode::InvalidField,
            field,
            format!("{field} is {} bytes long; at most {max} are accepted", s.len()),
        ));
    }
    Ok(())
}

fn clip(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeploymentId, OrgId};

    fn dep() -> Deployment {
        Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t")
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-24T12:00:00Z").unwrap()
    }

    fn req() -> WebEventRequest {
        serde_json::from_value(serde_json::json!({
            "customerCookieId": "c0ffee00-0000-4000-8000-000000000001",
            "eventName": "page_viewed",
            "page": {"url": "https://shop.example/search?q=red+shoes", "title": "Search"},
            "createdDate": "2026-11-24T11:59:00.000Z",
            "attributes": {"cart": {"dataType": "number", "value": 3}, "tier": "gold"},
            "traits": {"email": {"dataType": "string", "value": "Ann@Example.com"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_good_event_parses() {
        let ev = parse_web_event(req(), &dep(), &InputLimits::default(), now(), None, Some("UA")).unwrap();
        assert_eq!(ev.event_name.as_str(), "page_viewed");
        assert_eq!(ev.search_terms, vec!["red shoes"]);
        assert_eq!(ev.attributes["cart"].value, "3");
        assert_eq!(ev.attributes["tier"].data_type, "string");
        assert_eq!(ev.user_agent.as_deref(), Some("UA"));
    }

    proptest::proptest! {
        /// Events parsed with one request's memo are the events parsed one by one, whatever repeats or changes
        /// from one event to the next (page, title, keywords, language, referrer, campaign parameters, a bad URL);
        /// so are events of requests that share a deployment's [`UrlCache`] (a new request every few events),
        /// and of a deployment whose search parameters changed after its cache was filled.
        #[test]
        fn a_requests_url_memo_changes_no_event(
            picks in proptest::collection::vec((0usize..4, 0usize..2, 0usize..5, 0usize..3, 0usize..4), 1..24),
        ) {
            let pages = [
                "https://shop.example/a",
                "https://shop.example/search?q=red+shoes",
                "https://shop.example/a?utm_source=news&utm_medium=cpc",
                "not a url",
            ];
            let referrers = [
                None,
                Some("https://www.google.com/search?q=shoes"),
                Some("https://shop.example/previous"),
                Some("https://mail.google.com/mail/u/0"),
                Some("::"),
            ];
            let shared = UrlCache::new(&dep());
            let mut other_rules = dep();
            other_rules.search_query_params = vec!["utm_source".into()];
            let mut memo = UrlMemo::default();
            let mut request = UrlMemo::with_cache(&shared);
            for (page, title, referrer, own, next) in picks {
                let mut r = req();
                r.page = Some(RequestPage {
                    url: Some(pages[page].to_string()),
                    title: Some(["Home", "Shoes"][title].to_string()),
                    // An event's own keywords or language change its page, never the next event's.
                    keywords: (own == 1).then(|| "red, shoes".to_string()),
                    lang: (own == 2).then(|| "en-GB".to_string()),
                });
                r.referrer_url = referrers[referrer].map(str::to_string);
                let l = InputLimits::default();
                let with_memo = parse_web_event_in(r.clone(), &dep(), &l, now(), None, None, &mut memo);
                if next == 0 {
                    request = UrlMemo::with_cache(&shared);
                }
                let with_cache = parse_web_event_in(r.clone(), &dep(), &l, now(), None, None, &mut request);
                proptest::prop_assert_eq!(&with_cache, &with_memo);
                if next == 1 {
                    // A request of the deployment after its rules changed, on the cache filled before.
                    let mut changed = UrlMemo::with_cache(&shared);
                    let there = parse_web_event_in(r.clone(), &other_rules, &l, now(), None, None, &mut changed);
                    proptest::prop_assert_eq!(there, parse_web_event(r.clone(), &other_rules, &l, now(), None, None));
                }
                let alone = parse_web_event(r, &dep(), &l, now(), None, None);
                proptest::prop_assert_eq!(with_memo, alone);
            }
        }
    }

    /// An array is never taken for `{dataType, value}` (a derived struct could read one as a sequence):
    /// `"colors": ["red", "blue"]` is refused like every other non-scalar value.
    #[test]
    fn an_array_attribute_is_refused_not_read_as_a_typed_one() {
        for attributes in [serde_json::json!({"colors": ["red", "blue"]}), serde_json::json!({"n": [null, 5]})] {
            let mut body = serde_json::to_value(req()).unwrap();
            body["attributes"] = attributes.clone();
            let r: WebEventRequest = serde_json::from_value(body).unwrap();
            let err = parse_web_event(r, &dep(), &InputLimits::default(), now(), None, None).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidField, "{attributes}: {err:?}");
        }
    }

    /// The wire forms of an attribute: `{dataType, value}` (other members ignored, `dataType` absent or null),
    /// or a bare value; anything else (a `dataType` that is not a string, an object without `value`) is a bare
    /// value, which validation then judges.
    #[test]
    fn attribute_wire_forms() {
        let read = |v: serde_json::Value| serde_json::from_str::<RequestAttribute>(&v.to_string()).unwrap();
        let typed = |t: Option<&str>, v: serde_json::Value| RequestAttribute::Typed {
            data_type: t.map(str::to_string),
            value: v,
        };
        let cases = [
            (serde_json::json!({"dataType": "number", "value": 3}), typed(Some("number"), serde_json::json!(3))),
            (serde_json::json!({"value": "x", "note": 1}), typed(None, serde_json::json!("x"))),
            (serde_json::json!({"dataType": null, "value": null}), typed(None, serde_json::Value::Null)),
            (
                serde_json::json!({"dataType": 5, "value": 1}),
                RequestAttribute::Bare(serde_json::json!({"dataType": 5, "value": 1})),
            ),
            (
                serde_json::json!({"dataType": "string"}),
                RequestAttribute::Bare(serde_json::json!({"dataType": "string"})),
            ),
            (serde_json::json!("gold"), RequestAttribute::Bare(serde_json::json!("gold"))),
            (serde_json::json!(["a", 1]), RequestAttribute::Bare(serde_json::json!(["a", 1]))),
        ];
        for (wire, want) in cases {
            assert_eq!(read(wire.clone()), want, "{wire}");
        }
    }

    /// serde's untagged derive of the same enum: the reading [`RequestAttribute`] replaced.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum DerivedAttribute {
        Typed {
            #[serde(rename = "dataType")]
            data_type: Option<String>,
            value: serde_json::Value,
        },
        Bare(serde_json::Value),
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            "[a-z\\\"é]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![Just("dataType".to_string()), Just("value".to_string()), "[a-zA-Z]{0,8}"],
                    inner,
                    0..4,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any JSON reads as the same attribute as serde's untagged derive read it.
        #[test]
        fn an_attribute_reads_as_the_derived_reader_read_it(v in json_value()) {
            let text = v.to_string();
            let ours = serde_json::from_str::<RequestAttribute>(&text).unwrap();
            let derived = match serde_json::from_str::<DerivedAttribute>(&text).unwrap() {
                DerivedAttribute::Typed { data_type, value } => RequestAttribute::Typed { data_type, value },
                DerivedAttribute::Bare(v) => RequestAttribute::Bare(v),
            };
            proptest::prop_assert_eq!(ours, derived, "{}", text);
        }
    }

    #[test]
    fn each_problem_has_its_code() {
        let l = InputLimits::default();
        type Mutation = Box<dyn Fn(&mut WebEventRequest)>;
        let cases: Vec<(Mutation, ErrorCode)> = vec![
            (Box::new(|r| r.event_name = Some("page viewed".into())), ErrorCode::InvalidEventName),
            (Box::new(|r| r.event_name = None), ErrorCode::MissingField),
            (Box::new(|r| r.created_date = Some("2026-11-24T10:00:00Z".into())), ErrorCode::EventTooOld),
            (Box::new(|r| r.created_date = Some("2026-11-24T13:00:00Z".into())), ErrorCode::EventInFuture),
            (Box::new(|r| r.created_date = Some("noon".into())), ErrorCode::InvalidDate),
            (Box::new(|r| r.customer_cookie_id = Some("<script>".into())), ErrorCode::InvalidCustomerId),
            (Box::new(|r| r.page.as_mut().unwrap().url = Some("javascript:x".into())), ErrorCode::InvalidUrl),
            (
                Box::new(|r| {
                    r.attributes =
                        Some((0..51).map(|i| (format!("k{i}"), RequestAttribute::Bare("v".into()))).collect())
                }),
                ErrorCode::TooManyAttributes,
            ),
            (
                Box::new(|r| {
                    r.attributes = Some([("k".to_string(), RequestAttribute::Bare("x".repeat(1025).into()))].into())
                }),
                ErrorCode::AttributeTooLong,
            ),
        ];
        for (i, (mutate, code)) in cases.into_iter().enumerate() {
            let mut r = req();
            mutate(&mut r);
            let err = parse_web_event(r, &dep(), &l, now(), None, None).unwrap_err();
            assert_eq!(err.code, code, "case {i}: {err:?}");
        }
    }
}
