//! Fuzz targets (proptest, stable toolchain) for every parser of outside data in the domain: web event JSON
//! into `parse_web_event`, page URLs with UTM and search parameters, referrers, identity traits, dates, cookie
//! ids and event names, conversation events, segment and outcome definitions. Each must never panic, and every
//! refusal is a typed `Rejection` with a 4xx code. (Action maps have their own no-panic property test beside
//! their parser.)

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use waymark_domain::deployment::Deployment;
use waymark_domain::identity::{Email, Phone, TraitIdentity};
use waymark_domain::ids::{DeploymentId, OrgId};
use waymark_domain::limits::InputLimits;
use waymark_domain::page::parse_page;
use waymark_domain::referrer::classify;
use waymark_domain::web_event::{CookieId, EventName, WebEventRequest, parse_web_event};
use waymark_domain::wire::Attribute;
use waymark_domain::{Rejection, Timestamp};

fn deployment() -> Deployment {
    let now = Timestamp::parse("2026-11-24T12:00:00Z").expect("time");
    let mut d = Deployment::new(OrgId::new_v7(now), DeploymentId::new_v7(now), "fuzz");
    d.allowed_domains = vec!["shop.example".into()];
    d.excluded_query_params = vec!["token".into()];
    d
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-24T12:00:00Z").expect("time")
}

fn assert_typed(r: &Rejection) {
    let status = r.code.http_status();
    assert!((400..500).contains(&status), "{:?} has status {status}", r.code);
    assert!(!r.message.is_empty(), "{:?} has no message", r.code);
}

/// Strings that look like what trackers send, mixed with arbitrary Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[a-zA-Z0-9_.-]{0,20}",
        Just(String::new()),
        Just("page_viewed".to_string()),
        Just("'; DROP TABLE events;--".to_string()),
        Just("<script>alert(1)</script>".to_string()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
}

/// URLs: valid-looking, broken, and arbitrary.
fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        "(https?|ftp|javascript|data|file)://[a-zA-Z0-9.\\[\\]:@-]{0,30}(:[0-9]{0,7})?(/[ -~]{0,30})?(\\?[ -~]{0,60})?(#[ -~]{0,10})?",
        "https://shop\\.example/[a-z/%]{0,20}\\?(utm_(source|medium|campaign|term|content)|q|s|token|gclid)=[ -~%]{0,20}(&(utm_source|q|query|search)=[^&#]{0,20}){0,5}",
        any::<String>(),
        Just("https://shop.example/".to_string()),
        Just("https://[::1]:99999/".to_string()),
        Just("http://%zz/".to_string()),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Web event objects: the known fields with plausible or hostile values, plus unknown junk fields.
fn web_event_json() -> impl Strategy<Value = Value> {
    let field = |name: &'static str, v: BoxedStrategy<Value>| prop::option::of(v).prop_map(move |v| (name, v));
    (
        field("customerCookieId", text().prop_map(Value::String).boxed()),
        field("eventName", text().prop_map(Value::String).boxed()),
        field("createdDate", prop_oneof![Just(json!(now().to_iso())), text().prop_map(Value::String)].boxed()),
        field(
            "page",
            (url(), text(), prop::option::of(text()))
                .prop_map(|(u, t, l)| json!({"url": u, "title": t, "lang": l}))
                .boxed(),
        ),
        field("referrerUrl", url().prop_map(Value::String).boxed()),
        field("attributes", json_value().boxed()),
        field("traits", json_value().boxed()),
        field("browser", json_value().boxed()),
        field("device", json_value().boxed()),
        field("ipAddress", text().prop_map(Value::String).boxed()),
        field("clientEventId", text().prop_map(Value::String).boxed()),
        prop::collection::btree_map(text(), json_value(), 0..3),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i, j, k, junk)| {
            let mut m = Map::new();
            for (name, v) in [a, b, c, d, e, f, g, h, i, j, k] {
                if let Some(v) = v {
                    m.insert(name.to_string(), v);
                }
            }
            for (k, v) in junk {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

fn run_web_event(bytes: &[u8]) {
    let Ok(req) = serde_json::from_slice::<WebEventRequest>(bytes) else { return };
    let d = deployment();
    match parse_web_event(req, &d, &InputLimits::default(), now(), None, Some("Mozilla/5.0")) {
        Ok(ev) => {
            let limits = InputLimits::default();
            assert!(ev.page.url.len() <= limits.max_url_bytes * 3, "stored URL is bounded");
            assert!(ev.attributes.len() <= limits.max_attributes);
            assert!(ev.traits.len() <= limits.max_attributes);
        }
        Err(r) => assert_typed(&r),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn web_event_json_never_panics(v in web_event_json()) {
        run_web_event(&serde_json::to_vec(&v).expect("json"));
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        run_web_event(&serde_json::to_vec(&v).expect("json"));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run_web_event(&bytes);
    }

    #[test]
    fn page_urls_never_panic(u in url(), title in text()) {
        match parse_page(&u, &title, &deployment()) {
            Ok(p) => {
                prop_assert!(!p.page.hostname.is_empty() || p.page.url.is_empty() || u.contains("://"));
                prop_assert!(!p.page.url.contains("token="), "excluded parameters are removed: {}", p.page.url);
            }
            Err(r) => assert_typed(&r),
        }
    }

    #[test]
    fn referrers_never_panic(r in url(), host in text()) {
        let _ = classify(&r, &host, None);
    }

    #[test]
    fn identity_traits_never_panic(
        traits in prop::collection::btree_map(
            prop_oneof![Just("email".to_string()), Just("phone".to_string()), Just("givenName".to_string()),
                        Just("familyName".to_string()), Just("line".to_string()), text()],
            text(),
            0..8,
        ),
        region in prop::option::of(prop_oneof![Just("US".to_string()), Just("KR".to_string()), "[A-Z]{0,3}", text()]),
    ) {
        let attrs: BTreeMap<String, Attribute> = traits
            .into_iter()
            .map(|(k, v)| (k, Attribute { data_type: "string".into(), value: v }))
            .collect();
        let t = TraitIdentity::from_traits(&attrs, region.as_deref());
        let _ = (t.is_empty(), t.name());
    }

    #[test]
    fn emails_phones_dates_ids_never_panic(s in text(), region in prop::option::of("[A-Z]{2}")) {
        let _ = Email::parse(&s);
        let _ = Phone::parse(&s, region.as_deref());
        if let Some(t) = Timestamp::parse(&s) {
            prop_assert!(Timestamp::parse(&t.to_iso()).is_some(), "a parsed date prints back parseable");
        }
        if let Err(r) = CookieId::parse(&s) { assert_typed(&r) }
        if let Err(r) = EventName::parse(&s) { assert_typed(&r) }
    }
}

// ----- conversation events, segment and outcome definitions (the contact center's and admins' input) -----

fn run_conversations(body: Value) {
    let window = waymark_domain::conversation::TimeWindow { now: now(), max_age_secs: 3600, max_skew_secs: 300 };
    match waymark_domain::conversation::decode_conversation_batch(body, &InputLimits::default(), window, Some("US")) {
        Ok(batch) => {
            for ev in batch.events {
                match ev {
                    waymark_domain::conversation::DecodedEvent::Accepted(_) => {}
                    waymark_domain::conversation::DecodedEvent::Refused { rejection, .. } => assert_typed(&rejection),
                    waymark_domain::conversation::DecodedEvent::Rejected(r) => assert_typed(&r),
                }
            }
        }
        Err(r) => assert_typed(&r),
    }
}

/// Conversation events that look like what a contact-center platform sends, with hostile values mixed in.
fn conversation_json() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("started"),
        Just("queued"),
        Just("connected"),
        Just("transferred"),
        Just("botOnly"),
        Just("disconnected"),
        Just("wrapup"),
        Just("ended"),
        Just("exploded")
    ];
    let channel = prop_oneof![Just("voice"), Just("webChat"), Just("email"), Just("sms"), Just("cobrowse"), Just("")];
    (kind, channel, text(), text(), json_value(), prop::option::of(-10_000i64..10_000)).prop_map(
        |(kind, channel, id, addr, extra, secs)| {
            let mut v = json!({"id": id, "conversationId": "c-1", "type": kind, "channel": channel,
                "direction": "inbound", "address": {"phone": addr, "email": addr}, "queue": {"name": addr},
                "agent": extra, "wrapupCode": {"id": addr}});
            if let Some(s) = secs {
                v["timestamp"] = json!(now().plus_secs(s).to_iso());
            }
            v
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn conversation_events_never_panic(events in prop::collection::vec(conversation_json(), 0..8)) {
        run_conversations(Value::Array(events));
    }

    #[test]
    fn arbitrary_conversation_bodies_never_panic(v in json_value()) {
        run_conversations(v);
    }

    #[test]
    fn segment_and_outcome_definitions_never_panic(v in json_value()) {
        if let Err(r) = waymark_domain::segment::parse_segment_request(&v) {
            assert_typed(&r);
        }
        if let Err(r) = waymark_domain::outcome::parse_outcome_request(&v) {
            assert_typed(&r);
        }
    }
}
