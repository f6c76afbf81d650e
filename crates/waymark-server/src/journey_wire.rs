//! The journey read API's listings written straight from the stored JSON. A stored session or event body
//! already is its wire form (the store encodes the domain type), so the listing handlers copy it member by
//! member into the response (`serde_json::value::RawValue`, no decoding into the domain types, no re-encoding)
//! and apply on the way what depends on the caller and the read:
//! - members the caller may not see are left out (`segmentAssignments`, `outcomeAchievements`,
//!   `lastConnectedQueue`, `lastUserDisposition` of a session; `queue` and `wrapupCode` of a conversation
//!   event), segment and outcome events are skipped without their view permission, and a session outside the
//!   caller's divisions is skipped;
//! - a session's `externalContact` comes from the contact column (as `with_contact_ref` does);
//! - web and web action events get the session-wide context stored events leave out
//!   (`Event::with_session_context`), at the position the typed encoding puts it.
//!
//! The output is byte for byte what serializing [`crate::journey_api::session_view`] and
//! [`crate::journey_api::event_view`] of the decoded rows gives (tests below, for callers with and without
//! each permission).

use crate::auth::Caller;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use waymark_domain::event::EventType;
use waymark_domain::permission::Permission;
use waymark_domain::session::Session;
use waymark_domain::wire::EntityRef;
use waymark_store::{StoreError, StoredEventJson, StoredSessionJson};

/// A `Session` or `Event` that is not the JSON object its row promises.
fn corrupt(what: &str, id: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what} {id}: {e}"))
}

/// An object key: borrowed from the text unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One JSON object's members in their order, values left as unparsed text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn members(text: &str) -> Result<Members<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// Writes the members of one JSON object.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.out.push(b'"');
            self.out.extend_from_slice(key.as_bytes());
            self.out.push(b'"');
        } else {
            // Writing a `str` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, key);
        }
        self.out.push(b':');
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.extend_from_slice(value.as_bytes());
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// What a caller may see of sessions and events, looked up once per response.
pub struct Visibility<'c> {
    caller: &'c Caller,
    segments: bool,
    outcomes: bool,
    queues: bool,
    wrapups: bool,
}

impl<'c> Visibility<'c> {
    pub fn of(caller: &'c Caller) -> Self {
        Visibility {
            caller,
            segments: caller.can(Permission::JourneySegmentView),
            outcomes: caller.can(Permission::JourneyOutcomeView),
            queues: caller.can(Permission::RoutingQueueSearch),
            wrapups: caller.can(Permission::RoutingWrapupCodeView),
        }
    }

    /// Session members this caller does not see (`externalContact` is always written from the column).
    fn hides_session_member(&self, key: &str) -> bool {
        match key {
            "externalContact" => true,
            "segmentAssignments" => !self.segments,
            "outcomeAchievements" => !self.outcomes,
            "lastConnectedQueue" => !self.queues,
            "lastUserDisposition" => !self.wrapups,
            _ => false,
        }
    }

    /// Whether the caller sees events of this type at all (as `journey_api::event_visible`).
    fn sees_event_type(&self, event_type: &str) -> bool {
        match EventType::parse(event_type) {
            Some(EventType::SegmentAssignment) => self.segments,
            Some(EventType::OutcomeAchieved) => self.outcomes,
            _ => true,
        }
    }
}

/// Write a stored session as `caller` may see it. Returns `false`, writing nothing, when the session's
/// divisions hide it from the caller.
pub fn write_session(out: &mut Vec<u8>, vis: &Visibility<'_>, s: &StoredSessionJson) -> Result<bool, StoreError> {
    let m = members(&s.body).map_err(|e| corrupt("session", &s.id, e))?;
    if vis.caller.divisions.is_some()
        && let Some((_, ids)) = m.0.iter().find(|(k, _)| k == "divisionIds")
    {
        let ids: Vec<String> = serde_json::from_str(ids.get()).map_err(|e| corrupt("session", &s.id, e))?;
        if !vis.caller.sees_divisions(&ids) {
            return Ok(false);
        }
    }
    let contact = s.contact_id.map(|c| EntityRef::new(c, "/api/v2/externalcontacts/contacts"));
    let mut contact = contact.as_ref();
    let mut o = Obj::open(out);
    for (k, v) in &m.0 {
        // `externalContact` follows `id` and `type` in `Session`.
        if k != "id"
            && k != "type"
            && let Some(c) = contact.take()
        {
            o.key("externalContact");
            let _ = serde_json::to_writer(&mut *o.out, c);
        }
        if !vis.hides_session_member(k) {
            o.raw(k, v.get());
        }
    }
    if let Some(c) = contact {
        o.key("externalContact");
        let _ = serde_json::to_writer(&mut *o.out, c);
    }
    o.close();
    Ok(true)
}

/// The session-wide context members of a `WebEvent` body, in the order `WebEventBody` declares them; a
/// `WebActionEvent` body carries the first three.
const WEB_CONTEXT: [&str; 8] =
    ["userAgentString", "browser", "device", "geolocation", "ipAddress", "ipOrganization", "mktCampaign", "referrer"];
/// `WebEventBody` members declared after the context block.
const WEB_AFTER_CONTEXT: [&str; 4] = ["attributes", "traits", "searchQuery", "authenticated"];
/// `WebActionEventBody` carries `userAgentString`, `browser`, `device`, declared last.
const ACTION_CONTEXT: usize = 3;

/// A session's context for its stored events, encoded once per response.
pub struct SessionContext {
    values: [Option<Box<RawValue>>; 8],
}

impl SessionContext {
    pub fn of(s: &Session) -> Result<Self, StoreError> {
        fn raw<T: serde::Serialize>(v: &Option<T>) -> Result<Option<Box<RawValue>>, StoreError> {
            v.as_ref()
                .map(serde_json::value::to_raw_value)
                .transpose()
                .map_err(|e| StoreError::Internal(format!("encode session context: {e}")))
        }
        Ok(SessionContext {
            values: [
                raw(&s.user_agent_string)?,
                raw(&s.browser)?,
                raw(&s.device)?,
                raw(&s.geolocation)?,
                raw(&s.ip_address)?,
                raw(&s.ip_organization)?,
                raw(&s.mkt_campaign)?,
                raw(&s.referrer)?,
            ],
        })
    }

    /// Bytes the context adds to one web event at most.
    pub fn len(&self) -> usize {
        self.values.iter().flatten().map(|v| v.get().len() + 24).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

/// Write a body object, adding the context members `keys` it lacks (as `Event::with_session_context`) where
/// the typed encoding puts them: in `keys` order, before the first member of `after`.
fn write_with_context(
    out: &mut Vec<u8>,
    body: &RawValue,
    keys: &[&str],
    after: &[&str],
    ctx: &SessionContext,
) -> Result<(), serde_json::Error> {
    let m = members(body.get())?;
    let mut present = [false; WEB_CONTEXT.len()];
    for (k, _) in &m.0 {
        if let Some(i) = keys.iter().position(|c| c == k) {
            present[i] = true;
        }
    }
    let mut o = Obj::open(out);
    // Context members before index `next` have been placed.
    let mut next = 0;
    let fill = |o: &mut Obj<'_>, next: &mut usize, upto: usize| {
        for j in *next..upto {
            if !present[j]
                && let Some(v) = &ctx.values[j]
            {
                o.raw(keys[j], v.get());
            }
        }
        *next = (*next).max(upto);
    };
    for (k, v) in &m.0 {
        if let Some(i) = keys.iter().position(|c| c == k) {
            fill(&mut o, &mut next, i);
            next = next.max(i + 1);
        } else if after.contains(&k.as_ref()) {
            fill(&mut o, &mut next, keys.len());
        }
        o.raw(k, v.get());
    }
    fill(&mut o, &mut next, keys.len());
    o.close();
    Ok(())
}

/// Write an object leaving out `hidden` members.
fn write_without(out: &mut Vec<u8>, body: &RawValue, hidden: &[&str]) -> Result<(), serde_json::Error> {
    let m = members(body.get())?;
    let mut o = Obj::open(out);
    for (k, v) in &m.0 {
        if !hidden.contains(&k.as_ref()) {
            o.raw(k, v.get());
        }
    }
    o.close();
    Ok(())
}

/// Write a stored event of the session with context `ctx` as `caller` may see it. Returns `false`, writing
/// nothing, when the caller may not see events of its type.
pub fn write_event(
    out: &mut Vec<u8>,
    vis: &Visibility<'_>,
    ctx: &SessionContext,
    e: &StoredEventJson,
) -> Result<bool, StoreError> {
    if !vis.sees_event_type(&e.event_type) {
        return Ok(false);
    }
    let bad = |err| corrupt("event", &e.id, err);
    let m = members(&e.body).map_err(bad)?;
    let hidden_conv: &[&str] = match (vis.queues, vis.wrapups) {
        (true, true) => &[],
        (false, true) => &["queue"],
        (true, false) => &["wrapupCode"],
        (false, false) => &["queue", "wrapupCode"],
    };
    let mut o = Obj::open(out);
    for (k, v) in &m.0 {
        match k.as_ref() {
            "webEvent" => {
                o.key(k);
                write_with_context(o.out, v, &WEB_CONTEXT, &WEB_AFTER_CONTEXT, ctx).map_err(bad)?;
            }
            "webActionEvent" => {
                o.key(k);
                write_with_context(o.out, v, &WEB_CONTEXT[..ACTION_CONTEXT], &[], ctx).map_err(bad)?;
            }
            "conversationEvent" if !hidden_conv.is_empty() => {
                o.key(k);
                write_without(o.out, v, hidden_conv).map_err(bad)?;
            }
            _ => o.raw(k, v.get()),
        }
    }
    o.close();
    Ok(true)
}

/// Write a listing `{"entities":[…],"nextUri":…,"selfUri":…}` (the members in the order the typed listing
/// has always had); `entity` writes one entity and says whether it wrote it.
pub fn write_listing<T>(
    capacity: usize,
    items: &[T],
    mut entity: impl FnMut(&mut Vec<u8>, &T) -> Result<bool, StoreError>,
    next_uri: Option<&str>,
    self_uri: &str,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(b"{\"entities\":[");
    let mut any = false;
    for item in items {
        let mark = out.len();
        if any {
            out.push(b',');
        }
        if entity(&mut out, item)? {
            any = true;
        } else {
            out.truncate(mark);
        }
    }
    out.push(b']');
    let mut o = Obj { out: &mut out, first: false };
    if let Some(next) = next_uri {
        o.key("nextUri");
        let _ = serde_json::to_writer(&mut *o.out, next);
    }
    o.key("selfUri");
    let _ = serde_json::to_writer(&mut *o.out, self_uri);
    o.close();
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The raw path against the typed one: decode the stored rows, apply `session_view` / `event_view`, encode.

    use super::*;
    use crate::journey_api::{event_view, event_visible, session_view};
    use serde::Serialize;
    use serde_json::json;
    use waymark_domain::event::Event;
    use waymark_domain::ids::{ContactId, OrgId, UserId};
    use waymark_domain::permission::PermissionSet;
    use waymark_domain::{Timestamp, wire::EntityRef};
    use waymark_store::ingest::{encode_event, encode_session, with_contact_ref};

    /// The typed listing: what the handlers answered before the raw path.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Listing<T> {
        entities: Vec<T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_uri: Option<String>,
        self_uri: String,
    }

    const VIEWS: [Permission; 4] = [
        Permission::JourneySegmentView,
        Permission::JourneyOutcomeView,
        Permission::RoutingQueueSearch,
        Permission::RoutingWrapupCodeView,
    ];

    /// Every caller worth telling apart: all permissions, each view permission missing, none of them, and
    /// callers limited to a division the sessions have or do not have.
    fn callers() -> Vec<Caller> {
        let caller = |permissions: PermissionSet, divisions: Option<Vec<String>>| Caller {
            org: OrgId::new_v7(Timestamp::from_unix_millis(0)),
            user_id: UserId::new_v7(Timestamp::from_unix_millis(0)),
            user_name: "t".into(),
            permissions,
            divisions,
            token_id: "t".into(),
            via_cookie: false,
        };
        let mut out = vec![caller(PermissionSet::all(), None)];
        for p in VIEWS {
            let mut set = PermissionSet::default();
            PermissionSet::all().iter().filter(|q| *q != p).for_each(|q| set.insert(q));
            out.push(caller(set, None));
        }
        let mut none = PermissionSet::default();
        PermissionSet::all().iter().filter(|q| !VIEWS.contains(q)).for_each(|q| none.insert(q));
        out.push(caller(none, None));
        out.push(caller(PermissionSet::all(), Some(vec!["d1".into()])));
        out.push(caller(none, Some(vec!["elsewhere".into()])));
        out
    }

    fn browser() -> serde_json::Value {
        json!({"family": "Chrome", "version": "120", "lang": "en", "featuresFlash": false, "featuresJava": false,
            "featuresPdf": true, "featuresWebrtc": true})
    }

    fn device() -> serde_json::Value {
        json!({"category": "desktop", "type": "Other", "isMobile": false, "osFamily": "Linux", "osVersion": "6"})
    }

    fn page(path: &str) -> serde_json::Value {
        json!({"url": format!("https://shop.example{path}"), "title": "T \"quoted\" é", "domain": "shop.example",
            "hostname": "shop.example", "pathname": path})
    }

    fn web_session(id: &str, divisions: serde_json::Value) -> Session {
        serde_json::from_value(json!({
            "id": id, "type": "web", "customerId": "cookie-1", "customerIdType": "cookie",
            "outcomeAchievements": [{"outcome": {"id": "o1", "selfUri": "/api/v2/journey/outcomes/o1"},
                "achievedDate": "2024-05-01T10:01:00.000Z"}],
            "segmentAssignments": [{"segment": {"id": "s1", "selfUri": "/api/v2/journey/segments/s1"},
                "assignedDate": "2024-05-01T10:00:30.000Z"}],
            "attributes": {"plan": {"dataType": "string", "value": "gold"}},
            "browser": browser(), "device": device(),
            "geolocation": {"country": "KR", "locality": "Seoul", "latitude": 37.5, "longitude": 127.0},
            "ipAddress": "203.0.113.7", "ipOrganization": "Example ISP",
            "lastPage": page("/cart"),
            "mktCampaign": {"name": "spring", "source": "news", "medium": "email"},
            "referrer": {"url": "https://search.example/?q=x", "domain": "search.example",
                "hostname": "search.example", "pathname": "/", "medium": "search"},
            "searchTerms": ["shoes"], "userAgentString": "Mozilla/5.0 (X11; Linux x86_64)",
            "durationInSeconds": 60, "eventCount": 5, "pageviewCount": 2,
            "lastEvent": {"id": "e5", "eventName": "page_viewed", "createdDate": "2024-05-01T10:01:00.000Z"},
            "authenticated": false, "divisionIds": divisions,
            "selfUri": format!("/api/v2/journey/sessions/{id}"), "createdDate": "2024-05-01T10:00:00.000Z",
            "lastActivityDate": "2024-05-01T10:01:00.000Z"
        }))
        .expect("web session")
    }

    fn conversation_session(id: &str) -> Session {
        serde_json::from_value(json!({
            "id": id, "type": "conversation", "externalContact": {"id": "stale", "selfUri": "/stale"},
            "durationInSeconds": 300, "eventCount": 4,
            "conversation": {"id": "conv-1", "selfUri": "/api/v2/conversations/conv-1"},
            "lastConnectedQueue": {"id": "q1", "name": "Support"},
            "lastConnectedUser": {"id": "u1", "name": "Agent"},
            "lastUserDisposition": {"code": "w1", "name": "Solved"},
            "conversationChannels": [{"type": "Chat", "platform": "web"}],
            "originatingDirection": "inbound", "conversationState": "ended", "botOnly": false,
            "authenticated": true, "createdDate": "2024-05-01T09:00:00.000Z",
            "endedDate": "2024-05-01T09:05:00.000Z"
        }))
        .expect("conversation session")
    }

    fn event(session: &Session, n: u32, body: serde_json::Value) -> Event {
        let mut e = json!({
            "id": format!("e{n}"), "correlationId": format!("c{n}"), "customerId": "cookie-1",
            "customerIdType": "cookie",
            "session": {"id": session.id, "selfUri": format!("/api/v2/journey/sessions/{}", session.id),
                "type": session.session_type.as_str()},
            "createdDate": format!("2024-05-01T10:00:{n:02}.000Z"),
        });
        if let (Some(e), Some(b)) = (e.as_object_mut(), body.as_object()) {
            e.extend(b.clone());
        }
        serde_json::from_value(e).expect("event")
    }

    /// Events of every type, web events with none, some and all of their session context stored.
    fn events(web: &Session, conv: &Session) -> Vec<Event> {
        let web_body = |extra: serde_json::Value| {
            let mut b = json!({"eventName": "page_viewed", "totalEventCount": 1, "totalPageviewCount": 1,
                "page": page("/p"), "attributes": {}, "traits": {"email": {"dataType": "string", "value": "a@b.c"}},
                "searchQuery": "shoes", "authenticated": false});
            if let (Some(b), Some(x)) = (b.as_object_mut(), extra.as_object()) {
                b.extend(x.clone());
            }
            b
        };
        vec![
            event(web, 1, json!({"eventType": "com.genesys.journey.WebEvent", "webEvent": web_body(json!({}))})),
            event(
                web,
                2,
                json!({"eventType": "com.genesys.journey.WebEvent",
                "webEvent": web_body(json!({"device": device(), "referrer": {"url": "https://o.example/",
                    "domain": "o.example", "hostname": "o.example", "pathname": "/", "medium": "unknown"}}))}),
            ),
            event(
                web,
                3,
                json!({"eventType": "com.genesys.journey.WebEvent",
                "webEvent": web_body(json!({"userAgentString": "own", "browser": browser(), "device": device(),
                    "geolocation": {"country": "US"}, "ipAddress": "198.51.100.1", "ipOrganization": "Own",
                    "mktCampaign": {"name": "own"}, "referrer": {"url": "https://o.example/",
                    "domain": "o.example", "hostname": "o.example", "pathname": "/", "medium": "unknown"}}))}),
            ),
            event(
                web,
                4,
                json!({"eventType": "com.genesys.journey.WebActionEvent", "webActionEvent": {
                "action": {"id": "a1", "state": "offered", "mediaType": "webchat", "prompt": "Hi",
                    "createdDate": "2024-05-01T10:00:04.000Z"},
                "actionMap": {"id": "m1", "version": 1, "displayName": "Chat"}, "blockedReason": "frequencyCap"}}),
            ),
            event(
                web,
                5,
                json!({"eventType": "com.genesys.journey.SegmentAssignmentEvent",
                "segmentAssignmentEvent": {"segment": {"id": "s1"}, "displayName": "VIP", "color": "#ff0000"}}),
            ),
            event(
                web,
                6,
                json!({"eventType": "com.genesys.journey.OutcomeAchievedEvent",
                "outcomeAchievedEvent": {"outcome": {"id": "o1", "displayName": "Purchase", "version": 2},
                    "value": 12.5}}),
            ),
            event(
                conv,
                7,
                json!({"eventType": "com.waymark.journey.ConversationEvent", "conversationEvent": {
                "kind": "wrapup", "channel": "chat", "queue": {"id": "q1", "name": "Support"},
                "user": {"id": "u1", "name": "Agent"}, "wrapupCode": {"id": "w1", "name": "Solved"}}}),
            ),
            event(
                conv,
                8,
                json!({"eventType": "com.waymark.journey.ConversationEvent",
                "conversationEvent": {"kind": "started"}}),
            ),
        ]
    }

    fn stored_session(s: &Session, contact: Option<ContactId>) -> StoredSessionJson {
        StoredSessionJson {
            contact_id: contact,
            created_ms: s.created_date.unix_millis(),
            id: s.id.clone(),
            body: encode_session(s).expect("encode"),
        }
    }

    #[test]
    fn session_listing_equals_the_typed_path_for_every_caller() {
        let contact = ContactId::new_v7(Timestamp::from_unix_millis(1));
        let mut with_ref = web_session("s-2", json!([]));
        with_ref.external_contact = Some(EntityRef::new(contact, "/api/v2/externalcontacts/contacts"));
        let rows = [
            (web_session("s-1", json!(["d1"])), Some(contact)),
            (with_ref, Some(contact)),
            (web_session("s-3", json!(["d2"])), None),
            (conversation_session("s-4"), Some(contact)),
            (conversation_session("s-5"), None),
        ];
        let stored: Vec<_> = rows.iter().map(|(s, c)| stored_session(s, *c)).collect();
        for caller in callers() {
            let vis = Visibility::of(&caller);
            let raw = write_listing(0, &stored, |out, s| write_session(out, &vis, s), Some("/next?a=\"b\""), "/self")
                .expect("raw listing");
            let typed = Listing {
                entities: rows
                    .iter()
                    .map(|(s, c)| with_contact_ref(s.clone(), *c))
                    .filter(|s| caller.sees_divisions(&s.division_ids))
                    .map(|s| session_view(&caller, &s))
                    .collect::<Vec<_>>(),
                next_uri: Some("/next?a=\"b\"".into()),
                self_uri: "/self".into(),
            };
            let typed = serde_json::to_vec(&typed).expect("typed listing");
            assert_eq!(
                String::from_utf8_lossy(&raw),
                String::from_utf8_lossy(&typed),
                "caller {:?} {:?}",
                caller.permissions.iter().collect::<Vec<_>>(),
                caller.divisions
            );
        }
    }

    #[test]
    fn event_listing_equals_the_typed_path_for_every_caller() {
        let web = web_session("s-1", json!([]));
        let conv = conversation_session("s-2");
        let bare = serde_json::from_value::<Session>(json!({"id": "s-3", "type": "web", "durationInSeconds": 0,
            "eventCount": 0, "authenticated": false, "createdDate": "2024-05-01T10:00:00.000Z"}))
        .expect("bare session");
        let all = events(&web, &conv);
        for session in [&web, &conv, &bare] {
            let stored: Vec<StoredEventJson> = all
                .iter()
                .map(|e| StoredEventJson {
                    event_type: e.event_type.as_str().to_string(),
                    created_ms: e.created_date.unix_millis(),
                    id: e.id.clone(),
                    body: encode_event(e).expect("encode"),
                })
                .collect();
            let ctx = SessionContext::of(session).expect("context");
            for caller in callers() {
                let vis = Visibility::of(&caller);
                let raw = write_listing(0, &stored, |out, e| write_event(out, &vis, &ctx, e), None, "/self?x=1")
                    .expect("raw listing");
                let typed = Listing {
                    entities: all
                        .iter()
                        .filter(|e| event_visible(&caller, e))
                        .map(|e| event_view(&caller, e, session))
                        .collect::<Vec<_>>(),
                    next_uri: None,
                    self_uri: "/self?x=1".into(),
                };
                let typed = serde_json::to_vec(&typed).expect("typed listing");
                assert_eq!(
                    String::from_utf8_lossy(&raw),
                    String::from_utf8_lossy(&typed),
                    "session {} caller {:?}",
                    session.id,
                    caller.permissions.iter().collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn the_typed_listing_is_the_json_value_the_api_answered_before() {
        let web = web_session("s-1", json!([]));
        let caller = &callers()[0];
        let entities = vec![session_view(caller, &web)];
        let old = json!({"entities": entities, "selfUri": "/self", "nextUri": "/next"});
        let new = serde_json::to_value(Listing { entities, next_uri: Some("/next".into()), self_uri: "/self".into() })
            .expect("typed listing");
        assert_eq!(old, new);
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic() {
        let caller = &callers()[0];
        let vis = Visibility::of(caller);
        let bad = StoredSessionJson { contact_id: None, created_ms: 0, id: "x".into(), body: "{\"id\":".into() };
        assert!(write_session(&mut Vec::new(), &vis, &bad).is_err());
        let ctx = SessionContext::of(&web_session("s", json!([]))).expect("context");
        let bad = StoredEventJson {
            event_type: "com.genesys.journey.WebEvent".into(),
            created_ms: 0,
            id: "e".into(),
            body: "{\"webEvent\":[1]}".into(),
        };
        assert!(write_event(&mut Vec::new(), &vis, &ctx, &bad).is_err());
    }
}
