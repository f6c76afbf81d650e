//! The journey of one customer: sessionization and the state kept per customer between events.
//!
//! [`CustomerState`] is everything needed to place the next event without reading history: the open web
//! session, the one before it (for late events), running totals and the rule engines' counters.
//! [`apply_web_event`] is a pure function from (state, event) to (new state, records to write). Storage runs it
//! inside the write transaction that holds the customer's row, so several nodes can never interleave two
//! events of one customer.

use crate::Timestamp;
use crate::event::{Event, EventType, WebEventBody};
use crate::identity::TraitIdentity;
use crate::ids::{ContactId, CustomerId, EventId, SessionId};
use crate::offer::{CustomerOffers, SessionOffers};
use crate::session::{LastEvent, Session, SessionType};
use crate::web_event::{CookieId, WebEvent};
use crate::wire::{Browser, Device, Geolocation, ReferrerMedium};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sessionization settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SessionRules {
    /// A web session ends after this many seconds without events (default 20 minutes).
    pub inactivity_timeout_secs: i64,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules { inactivity_timeout_secs: 20 * 60 }
    }
}

/// What the server learned about the visitor's software and place (User-Agent and IP enrichment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    pub browser: Arc<Browser>,
    pub device: Arc<Device>,
    pub geolocation: Option<Arc<Geolocation>>,
    pub ip_organization: Option<String>,
}

/// Rule-engine state (segments, outcomes) for one scope — a session or a customer. Kept by
/// [`crate::rules::RuleSet::on_event`]; its size is bounded by the organisation's definitions (one counter per
/// journey pattern, one entry per segment or outcome).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Pattern match counts, keyed by the pattern's stable key (definition id, scope and pattern content).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<u64, u32>,
    /// Segments assigned in this scope, in assignment order, with the definition version that matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned: Vec<Assigned>,
    /// Outcomes achieved in this scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub achieved: Vec<String>,
    /// Fingerprint of the rule set last applied to this state (a different one prunes counters).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ruleset: u64,
    /// Fingerprint of the visit context the definitions were last evaluated against.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context: u64,
    /// Which rules of the rule set `ruleset` this scope holds (assigned or achieved), as a bitset by rule
    /// index: the matcher's quick index over `assigned` and `achieved`, rebuilt when the rule set changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One segment assignment held by a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    pub segment_id: String,
    pub at: Timestamp,
    /// When the assignment lapses (`assignmentExpirationDays`), if ever.
    pub expires: Option<Timestamp>,
}

/// The open (or most recent) web session of a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSession {
    pub session: Session,
    /// First and last event time (events may arrive out of order).
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    /// Marketing source that opened the session; a different one starts a new session.
    pub source: Option<MarketingSource>,
    #[serde(default)]
    pub rules: RuleState,
    /// The offer engine's memory for this session (offers made, caps, blocks recorded).
    #[serde(default, skip_serializing_if = "SessionOffers::is_empty")]
    pub offers: SessionOffers,
}

/// UTM source/medium/campaign or the external referrer host that brought the visitor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarketingSource {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub referrer_host: Option<String>,
}

/// Everything kept per customer between events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub customer_id: CustomerId,
    pub cookie_id: CookieId,
    pub contact_id: Option<ContactId>,
    pub created: Timestamp,
    pub authenticated: bool,
    pub total_events: i64,
    pub total_pageviews: i64,
    /// Boxed, as `previous`: a session is kilobytes inline, and the state moves through the store's buffers
    /// with every event.
    pub current: Option<Box<OpenSession>>,
    /// The session before `current`, kept so that a late event can still join it.
    pub previous: Option<Box<OpenSession>>,
    #[serde(default)]
    pub rules: RuleState,
    /// The offer engine's memory across sessions (maps waiting for the next session).
    #[serde(default, skip_serializing_if = "CustomerOffers::is_empty")]
    pub offers: CustomerOffers,
    /// Bumped on every change; the PostgreSQL store uses it to tell a stale cache from a fresh one.
    pub version: i64,
    /// The `clientEventId`s this customer sent lately, so that a retried event is recognised.
    #[serde(default, skip_serializing_if = "RecentClientEvents::is_empty")]
    pub recent_client_events: RecentClientEvents,
    /// What the store last wrote of this state, for it to skip writing what its rows already hold. Not part of
    /// the state's value: never serialized, and equal to any other mark.
    #[serde(skip)]
    pub stored: StoredMark,
}

/// An opaque note a store keeps with a [`CustomerState`] in memory about the rows it last wrote for it (the
/// embedded store: a fingerprint of the slow-changing part and the activity time it wrote). A state read back
/// from storage, or built new, has the default mark: nothing known.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredMark {
    pub fingerprint: u64,
    pub activity_ms: i64,
}

impl PartialEq for StoredMark {
    /// Marks are bookkeeping, not part of the state: any two compare equal.
    fn eq(&self, _: &StoredMark) -> bool {
        true
    }
}

/// The client event ids a customer sent lately (hashed, with their event time), kept with the customer's
/// state so that recognising a retried event costs no index of its own.
///
/// An entry is kept while its event could still be accepted: [`RecentClientEvents::remember`] forgets entries
/// older than a window (the accepted event age plus clock skew), measured from the event being remembered.
/// At most [`RecentClientEvents::CAP`] entries are kept: a retry arriving after more than that many newer
/// events of the same visitor is not recognised.
///
/// Stored as one base64 string of [`PACKED_ENTRY_BYTES`] per entry (the hash, then the event time in
/// milliseconds in 48 bits, both big-endian): the JSON array of number pairs it replaces took 36 bytes per entry,
/// and made up most of the customer row that the writer rewrites with every event. That array is still read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentClientEvents(Vec<(u64, i64)>);

const PACKED_ENTRY_BYTES: usize = 14;
const PACKED_TIME_MAX: i64 = (1 << 48) - 1;

impl Serialize for RecentClientEvents {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let mut packed = Vec::with_capacity(self.0.len() * PACKED_ENTRY_BYTES);
        self.pack_into(&mut packed);
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(packed))
    }
}

impl<'de> Deserialize<'de> for RecentClientEvents {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Stored;
        impl<'de> serde::de::Visitor<'de> for Stored {
            type Value = RecentClientEvents;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("packed client event ids (base64), or an array of [hash, time] pairs")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                use base64::Engine as _;
                let packed = base64::engine::general_purpose::STANDARD_NO_PAD.decode(v).map_err(E::custom)?;
                RecentClientEvents::unpack(&packed)
                    .ok_or_else(|| E::custom(format!("packed client event ids of {} bytes", packed.len())))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(RecentClientEvents::CAP));
                while let Some(pair) = seq.next_element::<(u64, i64)>()? {
                    entries.push(pair);
                }
                Ok(RecentClientEvents(entries))
            }
        }
        deserializer.deserialize_any(Stored)
    }
}

impl RecentClientEvents {
    pub const CAP: usize = 128;

    /// Append the entries, packed as they are stored ([`PACKED_ENTRY_BYTES`] each), to `out`.
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.0.len() * PACKED_ENTRY_BYTES);
        for (hash, at) in &self.0 {
            out.extend_from_slice(&hash.to_be_bytes());
            out.extend_from_slice(&(*at).clamp(0, PACKED_TIME_MAX).to_be_bytes()[2..]);
        }
    }

    /// The entries [`RecentClientEvents::pack_into`] packed, or `None` when `packed` is not a whole number of
    /// entries.
    pub fn unpack(packed: &[u8]) -> Option<Self> {
        if !packed.len().is_multiple_of(PACKED_ENTRY_BYTES) {
            return None;
        }
        let entries = packed
            .chunks_exact(PACKED_ENTRY_BYTES)
            .map(|e| {
                let (hash, at) = e.split_at(8);
                let mut hash_bytes = [0u8; 8];
                hash_bytes.copy_from_slice(hash);
                let mut at_bytes = [0u8; 8];
                at_bytes[2..].copy_from_slice(at);
                (u64::from_be_bytes(hash_bytes), i64::from_be_bytes(at_bytes))
            })
            .collect();
        Some(RecentClientEvents(entries))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, client_event_id: &str) -> bool {
        let h = client_event_hash(client_event_id);
        self.0.iter().any(|(k, _)| *k == h)
    }

    /// Remember an id sent with an event of time `at`; forget ids of events more than `window_secs` older.
    pub fn remember(&mut self, client_event_id: &str, at: Timestamp, window_secs: i64) {
        let oldest = at.unix_millis().saturating_sub(window_secs.saturating_mul(1000));
        self.0.retain(|(_, t)| *t >= oldest);
        if self.0.len() >= Self::CAP {
            // Forget the oldest event (entries are not ordered: events may arrive out of order).
            if let Some(i) = self.0.iter().enumerate().min_by_key(|(_, (_, t))| *t).map(|(i, _)| i) {
                self.0.swap_remove(i);
            }
        }
        self.0.push((client_event_hash(client_event_id), at.unix_millis()));
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (the hashes are stored).
fn client_event_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl CustomerState {
    pub fn new(customer_id: CustomerId, cookie_id: CookieId, created: Timestamp) -> Self {
        CustomerState {
            customer_id,
            cookie_id,
            contact_id: None,
            created,
            authenticated: false,
            total_events: 0,
            total_pageviews: 0,
            current: None,
            previous: None,
            rules: RuleState::default(),
            offers: CustomerOffers::default(),
            version: 0,
            recent_client_events: RecentClientEvents::default(),
            stored: StoredMark::default(),
        }
    }
}

/// What applying one web event produced: rows to write and facts for the live hub and the models.
#[derive(Debug, Clone, PartialEq)]
pub struct WebApplied {
    /// The stored event (session-wide context left out; see [`Event::with_session_context`]).
    pub event: Event,
    /// The session the event joined, after the event.
    pub session: Session,
    /// A session this event closed (a new session started), to be written with its `endedDate`.
    pub closed: Option<Session>,
    /// Whether the event opened a new session.
    pub new_session: bool,
    /// Identity traits the event carried, for contact linking.
    pub identity: TraitIdentity,
}

/// What [`place_web_event`] produced: [`WebApplied`] without the session, which stays in the customer's state
/// (as [`CustomerState::open_session`] `event.session.id`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebPlaced {
    pub event: Event,
    pub closed: Option<Session>,
    pub new_session: bool,
    pub identity: TraitIdentity,
}

impl CustomerState {
    /// The open session (current or previous) whose id is `id`.
    pub fn open_session(&self, id: &str) -> Option<&OpenSession> {
        [self.current.as_deref(), self.previous.as_deref()].into_iter().flatten().find(|o| o.session.id == id)
    }

    /// [`CustomerState::open_session`], to change.
    pub fn open_session_mut(&mut self, id: &str) -> Option<&mut OpenSession> {
        [self.current.as_deref_mut(), self.previous.as_deref_mut()].into_iter().flatten().find(|o| o.session.id == id)
    }
}

/// Place `ev` in the customer's journey. `ids` yields fresh time-ordered ids.
pub fn apply_web_event(
    state: &mut CustomerState,
    ev: &WebEvent,
    enrichment: &Enrichment,
    rules: &SessionRules,
    identity: TraitIdentity,
    new_id: impl FnMut(Timestamp) -> uuid::Uuid,
) -> WebApplied {
    let WebPlaced { event, closed, new_session, identity } =
        place_web_event(state, ev, enrichment, rules, identity, new_id);
    let session = state.open_session(&event.session.id).expect("the event's session is open").session.clone();
    WebApplied { event, session, closed, new_session, identity }
}

/// [`apply_web_event`] without a copy of the session: the store snapshots a session once per batch, after the
/// batch's last event of it (a copy per event was a sixth of the single writer's time in batches).
pub fn place_web_event(
    state: &mut CustomerState,
    ev: &WebEvent,
    enrichment: &Enrichment,
    rules: &SessionRules,
    identity: TraitIdentity,
    mut new_id: impl FnMut(Timestamp) -> uuid::Uuid,
) -> WebPlaced {
    let at = ev.created;
    let timeout_ms = rules.inactivity_timeout_secs.max(1) * 1000;
    let source = marketing_source(ev);

    // Which session does the event belong to?
    enum Slot {
        Current,
        Previous,
        New,
    }
    let slot = match &state.current {
        None => Slot::New,
        Some(cur) => {
            let source_changed = source.is_some() && source != cur.source && at >= cur.first_at;
            if source_changed {
                Slot::New
            } else if at >= cur.first_at {
                if at.millis_since(cur.last_at) > timeout_ms { Slot::New } else { Slot::Current }
            } else if cur.first_at.millis_since(at) <= timeout_ms {
                Slot::Current
            } else {
                match &state.previous {
                    Some(p) if at >= p.first_at.plus_millis(-timeout_ms) && at <= p.last_at.plus_millis(timeout_ms) => {
                        Slot::Previous
                    }
                    _ => Slot::Current,
                }
            }
        }
    };

    let mut closed = None;
    let new_session = matches!(slot, Slot::New);
    if new_session {
        if let Some(mut old) = state.current.take() {
            old.session.ended_date = Some(old.last_at);
            closed = Some(old.session.clone());
            state.previous = Some(old);
        }
        let id = SessionId(new_id(at));
        let mut s = Session::new(id.to_string(), SessionType::Web, at);
        s.customer_id = Some(ev.cookie_id.as_str().to_string());
        s.customer_id_type = Some("cookie".into());
        s.short_id = Some(short_id(&id));
        s.mkt_campaign = ev.campaign.clone();
        s.referrer = ev.referrer.clone().filter(|r| r.medium != ReferrerMedium::Internal);
        s.division_ids = ev.division_ids.clone();
        state.current = Some(Box::new(OpenSession {
            session: s,
            first_at: at,
            last_at: at,
            source: source.clone(),
            rules: RuleState::default(),
            offers: SessionOffers::default(),
        }));
    }

    if !identity.identifiers.is_empty() {
        state.authenticated = true;
    }
    state.total_events += 1;
    if ev.event_name.is_page_view() {
        state.total_pageviews += 1;
    }
    state.version += 1;
    let authenticated = state.authenticated;
    let contact = state.contact_id;
    let (total_events, total_pageviews) = (state.total_events, state.total_pageviews);

    let open = match slot {
        Slot::Previous => state.previous.as_mut(),
        _ => state.current.as_mut(),
    }
    .expect("a session exists for the chosen slot");

    let is_latest = at >= open.last_at;
    open.first_at = open.first_at.min(at);
    open.last_at = open.last_at.max(at);
    let s = &mut open.session;
    s.created_date = s.created_date.min(at);
    s.event_count += 1;
    if ev.event_name.is_page_view() {
        s.pageview_count = Some(s.pageview_count.unwrap_or(0) + 1);
    }
    if is_latest {
        s.last_page = Some(ev.page.clone());
    }
    for t in &ev.search_terms {
        if !s.search_terms.contains(t) && s.search_terms.len() < 100 {
            s.search_terms.push(t.clone());
        }
    }
    // Values usually repeat from one event to the next (a cart size, a user agent): copied only when they change.
    for (k, v) in ev.attributes.iter() {
        let room = s.attributes.len() < 200;
        match s.attributes.get_mut(k) {
            Some(held) if held == v => {}
            Some(held) => *held = v.clone(),
            None if room => {
                s.attributes.insert(k.clone(), v.clone());
            }
            None => {}
        }
    }
    s.browser = Some(enrichment.browser.clone());
    s.device = Some(enrichment.device.clone());
    if enrichment.geolocation.is_some() {
        s.geolocation = enrichment.geolocation.clone();
    }
    s.ip_organization = enrichment.ip_organization.clone().or(s.ip_organization.take());
    if ev.ip_collected
        && let Some(ip) = ev.ip
        && s.ip_address.as_deref().and_then(|held| held.parse::<std::net::IpAddr>().ok()) != Some(ip)
    {
        // Formatting the address for every event was 2.7 % of the store writer's time in batches.
        s.ip_address = Some(ip.to_string());
    }
    if ev.user_agent.is_some() && s.user_agent_string != ev.user_agent {
        s.user_agent_string = ev.user_agent.clone();
    }
    if ev.external_id.is_some() && s.external_id != ev.external_id {
        s.external_id = ev.external_id.clone();
    }
    s.authenticated = authenticated;
    if let Some(c) = contact {
        s.external_contact = Some(crate::wire::EntityRef::new(c, "/api/v2/externalcontacts/contacts"));
    }
    s.touch(at);
    // A closed session that receives a late event is still closed; keep its end at its last activity.
    if s.ended_date.is_some() {
        s.ended_date = Some(open.last_at);
    }

    let event_id = EventId(new_id(at)).to_text();
    if is_latest {
        s.last_event =
            Some(LastEvent { id: event_id.clone(), event_name: ev.event_name.as_str().to_string(), created_date: at });
    }
    let mut event = Event::envelope(event_id.clone(), event_id, s, EventType::Web, at);
    event.web_event = Some(Box::new(WebEventBody {
        event_name: ev.event_name.as_str().to_string(),
        total_event_count: total_events,
        total_pageview_count: total_pageviews,
        page: ev.page.clone(),
        user_agent_string: None,
        browser: None,
        device: None,
        geolocation: None,
        ip_address: None,
        ip_organization: None,
        mkt_campaign: None,
        referrer: ev.referrer.clone().filter(|r| r.medium == ReferrerMedium::Internal),
        attributes: ev.attributes.clone(),
        traits: ev.traits.clone(),
        search_query: ev.search_query.clone(),
        authenticated,
    }));
    WebPlaced { event, closed, new_session, identity }
}

/// Mark the open session ended if it has been inactive longer than the timeout at `now`.
/// Returns the closed session, to be written.
pub fn expire(state: &mut CustomerState, rules: &SessionRules, now: Timestamp) -> Option<Session> {
    let cur = state.current.as_ref()?;
    if cur.session.ended_date.is_some() || now.millis_since(cur.last_at) <= rules.inactivity_timeout_secs * 1000 {
        return None;
    }
    let mut old = state.current.take()?;
    old.session.ended_date = Some(old.last_at);
    let closed = old.session.clone();
    state.previous = Some(old);
    state.version += 1;
    Some(closed)
}

fn marketing_source(ev: &WebEvent) -> Option<MarketingSource> {
    let c = ev.campaign.as_ref();
    let referrer_host =
        ev.referrer.as_ref().filter(|r| r.medium != ReferrerMedium::Internal).map(|r| r.hostname.clone());
    let utm = c.is_some_and(|c| c.source.is_some() || c.medium.is_some() || c.name.is_some());
    if !utm && referrer_host.is_none() {
        return None;
    }
    Some(MarketingSource {
        utm_source: c.and_then(|c| c.source.clone()),
        utm_medium: c.and_then(|c| c.medium.clone()),
        utm_campaign: c.and_then(|c| c.name.clone()),
        referrer_host,
    })
}

/// A 4–6 digit number derived from the session id, for reading out over the phone.
fn short_id(id: &SessionId) -> String {
    let b = id.0.as_bytes();
    let n = u32::from_be_bytes([b[12], b[13], b[14], b[15]]) % 900_000 + 100_000;
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Deployment;
    use crate::ids::{DeploymentId, OrgId};
    use crate::limits::InputLimits;
    use crate::web_event::{WebEventRequest, parse_web_event};
    use proptest::prelude::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + s * 1000)
    }

    fn ev(at: i64, url: &str, referrer: Option<&str>) -> WebEvent {
        let req: WebEventRequest = serde_json::from_value(serde_json::json!({
            "customerCookieId": "cookie-1",
            "eventName": "page_viewed",
            "page": {"url": url, "title": "T"},
            "referrerUrl": referrer,
            "createdDate": t(at).to_iso(),
        }))
        .unwrap();
        let d = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t");
        parse_web_event(req, &d, &InputLimits::default(), t(at), None, None).unwrap()
    }

    fn ids() -> impl FnMut(Timestamp) -> uuid::Uuid {
        let mut n = 0u128;
        move |_| {
            n += 1;
            uuid::Uuid::from_u128(n)
        }
    }

    fn state() -> CustomerState {
        CustomerState::new(CustomerId(uuid::Uuid::nil()), CookieId::parse("cookie-1").unwrap(), t(0))
    }

    fn apply(st: &mut CustomerState, e: &WebEvent, idgen: &mut impl FnMut(Timestamp) -> uuid::Uuid) -> WebApplied {
        apply_web_event(st, e, &Enrichment::default(), &SessionRules::default(), TraitIdentity::default(), idgen)
    }

    #[test]
    fn a_state_stored_with_the_old_event_name_path_still_loads() {
        let mut st = state();
        let mut idgen = ids();
        apply(&mut st, &ev(0, "https://shop.example/a", None), &mut idgen);
        let mut json = serde_json::to_value(&st).unwrap();
        // Stores written before the path was dropped hold the session's event names.
        json["current"]["path"] = serde_json::json!(["page_viewed"]);
        let loaded: CustomerState = serde_json::from_value(json).unwrap();
        assert_eq!(loaded, st);
    }

    #[test]
    fn recent_client_events_recognise_retries_within_the_window_and_stay_bounded() {
        let mut r = RecentClientEvents::default();
        r.remember("a", t(0), 3600);
        assert!(r.contains("a"));
        assert!(!r.contains("b"));
        // An event more than the window later forgets "a": a retry of it would be too old to be accepted.
        r.remember("b", t(3601), 3600);
        assert!(!r.contains("a") && r.contains("b"));
        for i in 0..(RecentClientEvents::CAP * 2) {
            r.remember(&format!("k{i}"), t(3601 + i as i64), 3600);
        }
        assert_eq!(r.len(), RecentClientEvents::CAP);
        // The newest are kept, the oldest forgotten.
        assert!(r.contains(&format!("k{}", RecentClientEvents::CAP * 2 - 1)));
        assert!(!r.contains("k0"));
        // Stored hashes must never change between builds.
        assert_eq!(client_event_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn recent_client_events_are_stored_packed_and_read_back_from_either_form() {
        let mut r = RecentClientEvents::default();
        for i in 0..20 {
            r.remember(&format!("01a210b7-b83d-7215-ab8f-{i:012}"), t(i), 3600);
        }
        let packed = serde_json::to_string(&r).unwrap();
        assert!(packed.starts_with('"') && packed.len() < 20 * 20, "{} bytes: {packed}", packed.len());
        assert_eq!(serde_json::from_str::<RecentClientEvents>(&packed).unwrap(), r);
        // The array of [hash, time] pairs that earlier versions stored.
        let pairs: Vec<(u64, i64)> = r.0.clone();
        let old = serde_json::to_string(&pairs).unwrap();
        assert_eq!(serde_json::from_str::<RecentClientEvents>(&old).unwrap(), r);
        assert_eq!(serde_json::from_str::<RecentClientEvents>(r#""""#).unwrap(), RecentClientEvents::default());
        // Damaged values are errors, not panics.
        for bad in [r#""AAAA""#, r#""not base64!""#, "7", r#"[["x", 1]]"#] {
            assert!(serde_json::from_str::<RecentClientEvents>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn twenty_minutes_of_silence_start_a_new_session() {
        let mut st = state();
        let mut g = ids();
        let a = apply(&mut st, &ev(0, "https://s.example/a", None), &mut g);
        let b = apply(&mut st, &ev(1199, "https://s.example/b", None), &mut g);
        assert_eq!(a.session.id, b.session.id);
        assert_eq!(b.session.event_count, 2);
        assert_eq!(b.session.pageview_count, Some(2));
        let c = apply(&mut st, &ev(1199 + 1201, "https://s.example/c", None), &mut g);
        assert!(c.new_session);
        assert_ne!(c.session.id, b.session.id);
        assert_eq!(c.closed.unwrap().ended_date, Some(t(1199)));
    }

    #[test]
    fn a_new_marketing_source_starts_a_new_session() {
        let mut st = state();
        let mut g = ids();
        let a = apply(&mut st, &ev(0, "https://s.example/?utm_source=news&utm_campaign=spring", None), &mut g);
        let same = apply(&mut st, &ev(10, "https://s.example/x", Some("https://s.example/")), &mut g);
        assert_eq!(a.session.id, same.session.id);
        let b = apply(&mut st, &ev(20, "https://s.example/", Some("https://www.google.com/search?q=x")), &mut g);
        assert_ne!(a.session.id, b.session.id);
        assert_eq!(b.session.referrer.unwrap().name.as_deref(), Some("Google"));
    }

    #[test]
    fn a_session_keeps_the_address_of_its_latest_event_that_has_one() {
        let mut st = state();
        let mut g = ids();
        let at = |s: i64, ip: Option<&str>, collected: bool| {
            let mut e = ev(s, "https://s.example/", None);
            e.ip = ip.map(|i| i.parse().unwrap());
            e.ip_collected = collected;
            e
        };
        let seen = |st: &mut CustomerState, e: &WebEvent, g: &mut _| apply(st, e, g).session.ip_address;
        assert_eq!(seen(&mut st, &at(1, Some("192.0.2.1"), true), &mut g).as_deref(), Some("192.0.2.1"));
        assert_eq!(seen(&mut st, &at(2, Some("192.0.2.1"), true), &mut g).as_deref(), Some("192.0.2.1"));
        assert_eq!(seen(&mut st, &at(3, None, true), &mut g).as_deref(), Some("192.0.2.1"));
        assert_eq!(seen(&mut st, &at(4, Some("2001:db8::1"), true), &mut g).as_deref(), Some("2001:db8::1"));
        assert_eq!(seen(&mut st, &at(5, Some("192.0.2.9"), false), &mut g).as_deref(), Some("2001:db8::1"));
        assert_eq!(seen(&mut st, &at(6, Some("192.0.2.9"), true), &mut g).as_deref(), Some("192.0.2.9"));
    }

    #[test]
    fn late_events_are_placed_in_their_session_and_do_not_move_the_last_page() {
        let mut st = state();
        let mut g = ids();
        apply(&mut st, &ev(100, "https://s.example/late-start", None), &mut g);
        let r = apply(&mut st, &ev(50, "https://s.example/earlier", None), &mut g);
        assert_eq!(r.session.created_date, t(50));
        assert_eq!(r.session.last_page.unwrap().pathname, "/late-start");
        assert_eq!(r.session.duration_in_seconds, 50);
    }

    proptest! {
        /// Whatever order a burst of events arrives in (all within one session's reach), the session holds the
        /// same count, start, end and last page.
        #[test]
        fn arrival_order_inside_a_session_does_not_change_it(times in proptest::collection::vec(0i64..600, 1..20), seed in any::<u64>()) {
            let events: Vec<WebEvent> = times.iter()
                .map(|s| ev(*s, &format!("https://s.example/p{}", s), None)).collect();
            let run = |order: &[usize]| {
                let mut st = state();
                let mut g = ids();
                let mut last = None;
                for &i in order { last = Some(apply(&mut st, &events[i], &mut g).session); }
                last.unwrap()
            };
            let forward: Vec<usize> = (0..events.len()).collect();
            let mut shuffled = forward.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let a = run(&forward);
            let b = run(&shuffled);
            prop_assert_eq!(a.event_count, b.event_count);
            prop_assert_eq!(a.created_date, b.created_date);
            prop_assert_eq!(a.last_activity_date, b.last_activity_date);
            prop_assert_eq!(a.last_page.map(|p| p.pathname.clone()), b.last_page.map(|p| p.pathname.clone()));
        }
    }
}
