//! Tests of the matcher: behaviour by example, and the property that incremental matching equals a naive
//! from-scratch evaluation of the whole history at every event.

use super::*;
use crate::event::WebEventBody;
use crate::outcome::parse_outcome_request;
use crate::segment::parse_segment_request;
use crate::wire::{Attribute, Attributes, Browser, Device, DeviceCategory, Page};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

fn t(mins: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + mins * 60_000)
}

fn segment(id: &str, created: i64, v: Value) -> SegmentDefinition {
    parse_segment_request(&v).unwrap().created(id, Timestamp::from_unix_millis(created))
}

fn outcome(id: &str, created: i64, v: Value) -> OutcomeDefinition {
    parse_outcome_request(&v).unwrap().created(id, Timestamp::from_unix_millis(created))
}

fn path_pattern(op: &str, value: &str, count: u32) -> Value {
    json!({"patterns": [{"criteria": [{"key": "page.pathname", "values": [value], "operator": op}],
        "count": count, "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}]})
}

fn visit(id: &str, category: DeviceCategory, family: &str, authenticated: bool) -> Session {
    let mut s = Session::new(id.into(), SessionType::Web, t(0));
    s.device = Some(Arc::new(Device {
        category,
        device_type: "Other".into(),
        os_family: "Linux".into(),
        os_version: "6".into(),
        ..Device::default()
    }));
    s.browser =
        Some(Arc::new(Browser { family: family.into(), version: "124.0.6367.60".into(), ..Browser::default() }));
    s.authenticated = authenticated;
    s
}

fn web(
    session: &Session,
    name: &str,
    path: &str,
    search: Option<&str>,
    attrs: &[(&str, &str)],
    at: Timestamp,
) -> Event {
    let mut e = Event::envelope(format!("e-{}", at.unix_millis()), "c".into(), session, EventType::Web, at);
    let mut attributes = Attributes::new();
    for (k, v) in attrs {
        attributes.insert(k.to_string(), Attribute { data_type: "string".into(), value: v.to_string() });
    }
    e.web_event = Some(Box::new(WebEventBody {
        event_name: name.into(),
        total_event_count: 1,
        total_pageview_count: 1,
        page: Arc::new(Page {
            url: format!("https://shop.example{path}"),
            title: "Page".into(),
            domain: "shop.example".into(),
            hostname: "shop.example".into(),
            pathname: path.into(),
            ..Page::default()
        }),
        user_agent_string: None,
        browser: None,
        device: None,
        geolocation: None,
        ip_address: None,
        ip_organization: None,
        mkt_campaign: None,
        referrer: None,
        attributes: attributes.into(),
        traits: Default::default(),
        search_query: search.map(str::to_string),
        authenticated: session.authenticated,
    }));
    e
}

fn ids(d: &[Derived]) -> Vec<String> {
    d.iter()
        .map(|d| match d {
            Derived::SegmentAssigned(s) => s.segment_id.clone(),
            Derived::OutcomeAchieved(o) => o.outcome_id.clone(),
        })
        .collect()
}

#[test]
fn counts_patterns_and_assigns_once_per_session_in_match_order() {
    let shoes =
        segment("shoes", 1, json!({"displayName": "Shoes", "journey": path_pattern("startsWith", "/shoes", 2)}));
    let any_page =
        segment("browser", 2, json!({"displayName": "Visitor", "journey": path_pattern("startsWith", "/", 1)}));
    let rs = RuleSet::new(&[shoes, any_page], &[]).unwrap();
    let s = visit("s1", DeviceCategory::Desktop, "Chrome", false);
    let (mut sr, mut cr) = (RuleState::default(), RuleState::default());
    let d1 = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/shoes/red", None, &[], t(1)), t(1));
    assert_eq!(ids(&d1), ["browser"]);
    let d2 = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/shoes/blue", None, &[], t(2)), t(2));
    assert_eq!(ids(&d2), ["shoes"]);
    let d3 = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/shoes/green", None, &[], t(3)), t(3));
    assert!(d3.is_empty(), "assigned once per session");
    assert_eq!(sr.assigned.iter().map(|a| a.segment_id.as_str()).collect::<Vec<_>>(), ["browser", "shoes"]);

    // The derived event and the session carry the assignment.
    let mut wire = s.clone();
    d2[0].apply_to(&mut wire);
    assert_eq!(wire.segment_assignments[0].segment.id, "shoes");
    let e = d2[0].to_event(&s, "id-1".into(), "e-1".into());
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["eventType"], "com.genesys.journey.SegmentAssignmentEvent");
    assert_eq!(v["segmentAssignmentEvent"]["segment"]["id"], "shoes");
    assert_eq!(v["segmentAssignmentEvent"]["segment"]["selfUri"], "/api/v2/journey/segments/shoes");
    assert_eq!(v["correlationId"], "e-1");
    assert_eq!(v["createdDate"], t(2).to_iso());

    // A new session starts from nothing: session segments ended with the old one.
    let s2 = visit("s2", DeviceCategory::Desktop, "Chrome", false);
    let mut sr2 = RuleState::default();
    let d = rs.on_event(&mut sr2, &mut cr, &s2, &web(&s2, "page_viewed", "/shoes/x", None, &[], t(30)), t(30));
    assert_eq!(ids(&d), ["browser"]);
}

#[test]
fn customer_segments_persist_across_sessions_until_they_expire() {
    let loyal = segment(
        "loyal",
        1,
        json!({"displayName": "Loyal", "scope": "Customer", "assignmentExpirationDays": 1,
               "journey": path_pattern("equal", "/account", 1)}),
    );
    let rs = RuleSet::new(&[loyal], &[]).unwrap();
    let mut cr = RuleState::default();
    let s1 = visit("s1", DeviceCategory::Desktop, "Chrome", true);
    let mut sr = RuleState::default();
    let d = rs.on_event(&mut sr, &mut cr, &s1, &web(&s1, "page_viewed", "/account", None, &[], t(0)), t(0));
    assert_eq!(ids(&d), ["loyal"]);
    let Derived::SegmentAssigned(a) = &d[0] else { panic!("a segment") };
    assert_eq!(a.expires, Some(t(24 * 60)));
    // Next session, same customer: still assigned, no new event.
    let s2 = visit("s2", DeviceCategory::Mobile, "Safari", true);
    let mut sr2 = RuleState::default();
    assert!(
        rs.on_event(&mut sr2, &mut cr, &s2, &web(&s2, "page_viewed", "/account", None, &[], t(60)), t(60)).is_empty()
    );
    // After a day it lapses; the customer still meets the pattern, so the next event assigns it again.
    let s3 = visit("s3", DeviceCategory::Mobile, "Safari", true);
    let mut sr3 = RuleState::default();
    let d = rs.on_event(
        &mut sr3,
        &mut cr,
        &s3,
        &web(&s3, "page_viewed", "/home", None, &[], t(24 * 60 + 1)),
        t(24 * 60 + 1),
    );
    assert_eq!(ids(&d), ["loyal"]);
}

#[test]
fn context_criteria_ignore_case_and_inactive_segments() {
    let ctx = |op: &str, v: &str, ic: bool| json!({"patterns": [{"criteria": [{"key": "browser.family", "values": [v], "operator": op, "shouldIgnoreCase": ic, "entityType": "visit"}]}]});
    let defs = vec![
        segment("exact", 1, json!({"displayName": "a", "context": ctx("equal", "chrome", false)})),
        segment("nocase", 2, json!({"displayName": "b", "context": ctx("equal", "chrome", true)})),
        segment(
            "inactive",
            3,
            json!({"displayName": "c", "isActive": false, "context": ctx("equal", "Chrome", false)}),
        ),
        segment("notsafari", 4, json!({"displayName": "d", "context": ctx("notContainsAny", "Safari", false)})),
        segment(
            "newer",
            5,
            json!({"displayName": "e", "context": {"patterns": [{"criteria": [
                {"key": "browser.version", "values": ["100"], "operator": "greaterThan", "entityType": "visit"}]}]}}),
        ),
        segment(
            "signedin",
            6,
            json!({"displayName": "f", "context": {"patterns": [{"criteria": [
                {"key": "authenticated", "values": ["true"], "operator": "equal", "entityType": "visit"}]}]}}),
        ),
    ];
    let rs = RuleSet::new(&defs, &[]).unwrap();
    let mut s = visit("s1", DeviceCategory::Desktop, "Chrome", false);
    let (mut sr, mut cr) = (RuleState::default(), RuleState::default());
    let d = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/", None, &[], t(0)), t(0));
    assert_eq!(ids(&d), ["nocase", "notsafari", "newer"]);
    // Signing in changes the context: the visit now matches the authenticated segment.
    s.authenticated = true;
    let d = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/", None, &[], t(1)), t(1));
    assert_eq!(ids(&d), ["signedin"]);
}

#[test]
fn outcomes_are_achieved_once_per_session_with_their_value() {
    let order = outcome(
        "order",
        1,
        json!({"displayName": "Order", "journey": path_pattern("startsWith", "/order/complete", 1),
               "associatedValueField": {"dataType": "Number", "name": "attributes.total.value"}}),
    );
    let rs = RuleSet::new(&[], &[order]).unwrap();
    let s = visit("s1", DeviceCategory::Desktop, "Chrome", false);
    let (mut sr, mut cr) = (RuleState::default(), RuleState::default());
    assert!(rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/cart", None, &[], t(0)), t(0)).is_empty());
    let d = rs.on_event(
        &mut sr,
        &mut cr,
        &s,
        &web(&s, "page_viewed", "/order/complete", None, &[("total", "42.5")], t(1)),
        t(1),
    );
    let Some(Derived::OutcomeAchieved(o)) = d.first() else { panic!("achieved: {d:?}") };
    assert_eq!((o.value, o.is_positive), (Some(42.5), true));
    let v = serde_json::to_value(d[0].to_event(&s, "x".into(), "y".into())).unwrap();
    assert_eq!(v["eventType"], "com.genesys.journey.OutcomeAchievedEvent");
    assert_eq!(v["outcomeAchievedEvent"]["outcome"]["displayName"], "Order");
    assert_eq!(v["outcomeAchievedEvent"]["value"], 42.5);
    assert!(
        rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/order/complete", None, &[], t(2)), t(2)).is_empty()
    );
}

#[test]
fn a_changed_pattern_counts_afresh_and_other_edits_keep_counts() {
    let v1 = segment("s", 1, json!({"displayName": "S", "journey": path_pattern("startsWith", "/a", 2)}));
    let rs1 = RuleSet::new(std::slice::from_ref(&v1), &[]).unwrap();
    let s = visit("s1", DeviceCategory::Desktop, "Chrome", false);
    let (mut sr, mut cr) = (RuleState::default(), RuleState::default());
    assert!(rs1.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/a", None, &[], t(0)), t(0)).is_empty());

    // A colour change keeps the count: the next /a completes the pattern.
    let recoloured = crate::segment::apply_patch(&v1, &json!({"color": "#000000"}), t(1)).unwrap();
    let rs2 = RuleSet::new(std::slice::from_ref(&recoloured), &[]).unwrap();
    let mut sr_b = sr.clone();
    let mut cr_b = cr.clone();
    let d = rs2.on_event(&mut sr_b, &mut cr_b, &s, &web(&s, "page_viewed", "/a", None, &[], t(2)), t(2));
    assert_eq!(ids(&d), ["s"]);
    let Derived::SegmentAssigned(a) = &d[0] else { panic!() };
    assert_eq!((a.version, a.color.as_str()), (2, "#000000"));

    // A new pattern starts from zero: earlier /a views do not count for /b, and the old counter is dropped.
    let changed =
        crate::segment::apply_patch(&v1, &json!({"journey": path_pattern("startsWith", "/b", 1)}), t(1)).unwrap();
    let rs3 = RuleSet::new(&[changed], &[]).unwrap();
    assert!(rs3.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/a", None, &[], t(2)), t(2)).is_empty());
    assert!(sr.counters.is_empty(), "the old pattern's counter is pruned: {:?}", sr.counters);
    assert_eq!(ids(&rs3.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/b", None, &[], t(3)), t(3))), ["s"]);
}

#[test]
fn ordering_operators_compare_numbers_and_versions() {
    let v = |s: &str| OrderValue::parse(s).unwrap();
    assert!(ordering_holds(Operator::GreaterThan, Some("124.0.6367.60"), &v("100")));
    assert!(ordering_holds(Operator::LessThan, Some("9"), &v("10")));
    assert!(ordering_holds(Operator::GreaterThanOrEqual, Some("2.50"), &v("2.5")));
    assert!(!ordering_holds(Operator::GreaterThan, Some("many"), &v("1")));
    assert!(!ordering_holds(Operator::LessThan, None, &v("1")));
    assert!(OrderValue::parse("abc").is_none());
}

// ---------------------------------------------------------------------------------------------------------
// From-scratch reference: evaluates every definition at every event by rescanning the whole history with a
// naive criterion evaluator (no automata, no counters, no change tracking).

fn naive_field<'a>(key: &str, e: &'a WebEventBody, s: &'a Session) -> Option<String> {
    let p = &e.page;
    Some(match key {
        "page.url" => p.url.clone(),
        "page.title" => p.title.clone(),
        "page.domain" => p.domain.clone(),
        "page.hostname" => p.hostname.clone(),
        "page.pathname" => p.pathname.clone(),
        "searchQuery" => e.search_query.clone()?,
        "device.category" => s.device.as_ref()?.category.wire().as_str().to_string(),
        "browser.family" => s.browser.as_ref()?.family.clone(),
        "browser.version" => s.browser.as_ref()?.version.clone(),
        "authenticated" => s.authenticated.to_string(),
        k => {
            let name = k.strip_prefix("attributes.")?.strip_suffix(".value")?;
            e.attributes.get(name)?.value.clone()
        }
    })
}

fn naive_holds(c: &Criterion, text: Option<String>) -> bool {
    if c.operator.is_ordering() {
        return ordering_holds(c.operator, text.as_deref(), &OrderValue::parse(&c.values[0]).unwrap());
    }
    let fold = |s: &str| if c.should_ignore_case { s.to_lowercase() } else { s.to_string() };
    let t = fold(text.as_deref().unwrap_or(""));
    let vals: Vec<String> = c.values.iter().map(|v| fold(v)).collect();
    let any = |f: &dyn Fn(&str) -> bool| vals.iter().any(|v| f(v));
    let all = |f: &dyn Fn(&str) -> bool| vals.iter().all(|v| f(v));
    match c.operator {
        Operator::ContainsAny => any(&|v| t.contains(v)),
        Operator::ContainsAll => all(&|v| t.contains(v)),
        Operator::NotContainsAny => !any(&|v| t.contains(v)),
        Operator::NotContainsAll => !all(&|v| t.contains(v)),
        Operator::Equal => any(&|v| t == v),
        Operator::NotEqual => !any(&|v| t == v),
        Operator::StartsWith => any(&|v| t.starts_with(v)),
        Operator::EndsWith => any(&|v| t.ends_with(v)),
        _ => unreachable!(),
    }
}

struct Step {
    visit: usize,
    session: Session,
    event: Event,
}

fn from_scratch(segs: &[SegmentDefinition], outs: &[OutcomeDefinition], history: &[Step]) -> Vec<Derived> {
    let mut segs: Vec<&SegmentDefinition> = segs.iter().filter(|s| s.is_active).collect();
    segs.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    let mut outs: Vec<&OutcomeDefinition> = outs.iter().filter(|o| o.is_active).collect();
    outs.sort_by(|a, b| (a.created_date, &a.id).cmp(&(b.created_date, &b.id)));
    let pattern_holds = |p: &crate::segment::JourneyPattern, step: &Step| {
        let w = step.event.web_event.as_ref().unwrap();
        p.event_name.as_ref().is_none_or(|n| *n == w.event_name)
            && p.criteria.iter().all(|c| naive_holds(c, naive_field(&c.key, w, &step.session)))
    };
    let context_holds = |ctx: &crate::segment::Context, s: &Session, w: &WebEventBody| {
        ctx.patterns.iter().all(|p| p.criteria.iter().all(|c| naive_holds(c, naive_field(&c.key, w, s))))
    };
    let mut out = Vec::new();
    let mut session_held: HashMap<usize, Vec<String>> = HashMap::new();
    let mut customer_held: Vec<(String, Option<Timestamp>)> = Vec::new();
    for (i, step) in history.iter().enumerate() {
        let now = step.event.created_date;
        let w = step.event.web_event.as_ref().unwrap();
        customer_held.retain(|(_, e)| e.is_none_or(|e| e > now));
        let in_scope =
            |scope: Scope| history[..=i].iter().filter(move |h| scope == Scope::Customer || h.visit == step.visit);
        for s in &segs {
            let reached = s
                .journey
                .patterns
                .iter()
                .all(|p| in_scope(s.scope).filter(|h| pattern_holds(p, h)).count() as u32 >= p.count);
            if !reached || !context_holds(&s.context, &step.session, w) {
                continue;
            }
            let expires = match (s.scope, s.assignment_expiration_days) {
                (Scope::Customer, Some(d)) => Some(now.plus_secs(i64::from(d) * 86_400)),
                _ => None,
            };
            match s.scope {
                Scope::Session => {
                    let held = session_held.entry(step.visit).or_default();
                    if held.contains(&s.id) {
                        continue;
                    }
                    held.push(s.id.clone());
                }
                Scope::Customer => {
                    if customer_held.iter().any(|(id, _)| *id == s.id) {
                        continue;
                    }
                    customer_held.push((s.id.clone(), expires));
                }
            }
            out.push(Derived::SegmentAssigned(SegmentAssigned {
                segment_id: s.id.clone(),
                display_name: s.display_name.clone(),
                color: s.color.clone(),
                scope: s.scope,
                version: s.version,
                at: now,
                expires,
            }));
        }
        for o in &outs {
            let reached = o
                .journey
                .patterns
                .iter()
                .all(|p| in_scope(Scope::Session).filter(|h| pattern_holds(p, h)).count() as u32 >= p.count);
            if !reached || !context_holds(&o.context, &step.session, w) {
                continue;
            }
            let held = session_held.entry(step.visit).or_default();
            let key = format!("outcome:{}", o.id);
            if held.contains(&key) {
                continue;
            }
            held.push(key);
            let value = o
                .associated_value_field
                .as_ref()
                .and_then(|f| w.attributes.get(f.attribute()).and_then(|a| f.value_of(&a.value)));
            out.push(Derived::OutcomeAchieved(OutcomeAchieved {
                outcome_id: o.id.clone(),
                display_name: o.display_name.clone(),
                version: o.version,
                is_positive: o.is_positive,
                value,
                at: now,
            }));
        }
    }
    out
}

// Generators: a small vocabulary so that patterns actually match.

const PATHS: &[&str] = &["/", "/shoes", "/shoes/Red", "/cart", "/order/complete", "/SHOES/blue"];
const NAMES: &[&str] = &["page_viewed", "searched", "cart_added"];
const WORDS: &[&str] = &["shoes", "Shoes", "red", "/shoes", "/cart", "blue", "complete", "/", "3", "12"];

fn arb_criterion(visit: bool) -> impl Strategy<Value = Value> {
    let keys: Vec<&'static str> = if visit {
        vec!["device.category", "browser.family", "authenticated", "browser.version"]
    } else {
        vec!["page.pathname", "page.url", "searchQuery", "attributes.cart.value"]
    };
    (
        prop::sample::select(keys),
        prop::sample::select(Operator::ALL.to_vec()),
        prop::collection::vec(prop::sample::select(WORDS.to_vec()), 1..3),
        any::<bool>(),
    )
        .prop_map(move |(key, op, mut values, ic)| {
            if op.is_ordering() {
                values = vec![if key == "browser.version" { "100" } else { "5" }];
            }
            let vals: Vec<String> = values
                .iter()
                .map(|v| match key {
                    "device.category" if !op.is_ordering() => ["desktop", "mobile", "Desktop"][v.len() % 3].to_string(),
                    "browser.family" if !op.is_ordering() => {
                        ["Chrome", "chrome", "Safari", "Fire"][v.len() % 4].to_string()
                    }
                    "authenticated" if !op.is_ordering() => ["true", "false"][v.len() % 2].to_string(),
                    _ => v.to_string(),
                })
                .collect();
            let mut c = json!({"key": key, "values": vals, "operator": op.as_str(), "shouldIgnoreCase": ic});
            if visit {
                c["entityType"] = json!("visit");
            }
            c
        })
}

fn arb_journey_pattern() -> impl Strategy<Value = Value> {
    (prop::collection::vec(arb_criterion(false), 0..3), 1u32..4, prop::option::of(prop::sample::select(NAMES.to_vec())))
        .prop_map(|(criteria, count, name)| {
            let mut p = json!({"criteria": criteria, "count": count, "streamType": "Web", "sessionType": "web"});
            if let Some(n) = name {
                p["eventName"] = json!(n);
            }
            p
        })
}

fn arb_context() -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::collection::vec(arb_criterion(true), 1..3), 0..2)
        .prop_map(|ps| json!({"patterns": ps.into_iter().map(|c| json!({"criteria": c})).collect::<Vec<_>>()}))
}

fn arb_segment() -> impl Strategy<Value = Value> {
    (
        arb_context(),
        prop::collection::vec(arb_journey_pattern(), 0..3),
        any::<bool>(),
        prop::option::of(1u32..3),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(context, patterns, customer, expiry, active)| {
            let mut v = json!({"displayName": "S", "context": context, "journey": {"patterns": patterns},
                "scope": if customer { "Customer" } else { "Session" }, "isActive": active});
            if let Some(d) = expiry {
                v["assignmentExpirationDays"] = json!(d);
            }
            v
        })
}

fn arb_outcome() -> impl Strategy<Value = Value> {
    (arb_context(), prop::collection::vec(arb_journey_pattern(), 1..3), any::<bool>()).prop_map(
        |(context, patterns, pos)| {
            json!({"displayName": "O", "context": context, "journey": {"patterns": patterns}, "isPositive": pos,
               "associatedValueField": {"dataType": "Number", "name": "attributes.cart.value"}})
        },
    )
}

#[derive(Debug, Clone)]
struct GenEvent {
    visit: usize,
    name: &'static str,
    path: &'static str,
    search: Option<&'static str>,
    cart: Option<&'static str>,
    minutes_later: i64,
    sign_in: bool,
}

fn arb_event() -> impl Strategy<Value = GenEvent> {
    (
        0usize..3,
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(PATHS.to_vec()),
        prop::option::of(prop::sample::select(vec!["red shoes", "Blue", "cart"])),
        prop::option::of(prop::sample::select(vec!["3", "12", "x"])),
        prop_oneof![Just(0i64), 1i64..30, 600i64..2000],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(visit, name, path, search, cart, minutes_later, sign_in)| GenEvent {
            visit,
            name,
            path,
            search,
            cart,
            minutes_later,
            sign_in,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Incremental matching gives exactly what evaluating the whole history from scratch at every event
    /// gives: the same assignments and achievements, at the same events, in the same order.
    #[test]
    fn incremental_equals_from_scratch(
        seg_json in prop::collection::vec(arb_segment(), 0..8),
        out_json in prop::collection::vec(arb_outcome(), 0..3),
        events in prop::collection::vec(arb_event(), 1..30),
    ) {
        let segs: Vec<SegmentDefinition> = seg_json.iter().enumerate()
            .filter_map(|(i, v)| parse_segment_request(v).ok().map(|d| d.created(format!("seg-{i}"), Timestamp::from_unix_millis(100 - i as i64))))
            .collect();
        let outs: Vec<OutcomeDefinition> = out_json.iter().enumerate()
            .filter_map(|(i, v)| parse_outcome_request(v).ok().map(|d| d.created(format!("out-{i}"), Timestamp::from_unix_millis(i as i64))))
            .collect();
        let rs = RuleSet::new(&segs, &outs).unwrap();

        let mut visits = [
            visit("v0", DeviceCategory::Desktop, "Chrome", false),
            visit("v1", DeviceCategory::Mobile, "Safari", false),
            visit("v2", DeviceCategory::Tablet, "Firefox", false),
        ];
        Arc::make_mut(visits[2].browser.as_mut().unwrap()).version = "99.1".into();
        let mut history = Vec::new();
        let mut now = 0;
        for g in &events {
            now += g.minutes_later;
            if g.sign_in {
                visits[g.visit].authenticated = true;
            }
            let s = visits[g.visit].clone();
            let mut attrs = Vec::new();
            if let Some(c) = g.cart { attrs.push(("cart", c)); }
            let e = web(&s, g.name, g.path, g.search, &attrs, t(now));
            history.push(Step { visit: g.visit, session: s, event: e });
        }

        let mut session_states: HashMap<usize, RuleState> = HashMap::new();
        let mut customer = RuleState::default();
        let mut incremental = Vec::new();
        for step in &history {
            let sr = session_states.entry(step.visit).or_default();
            incremental.extend(rs.on_event(sr, &mut customer, &step.session, &step.event, step.event.created_date));
        }
        let expected = from_scratch(&segs, &outs, &history);
        prop_assert_eq!(incremental, expected);
        // Memory stays bounded by the definitions.
        let patterns: usize = segs.iter().map(|s| s.journey.patterns.len()).sum::<usize>()
            + outs.iter().map(|o| o.journey.patterns.len()).sum::<usize>();
        for st in session_states.values().chain(std::iter::once(&customer)) {
            prop_assert!(st.counters.len() <= patterns);
            prop_assert!(st.assigned.len() <= segs.len());
        }
    }
}

#[test]
fn rule_state_survives_a_json_round_trip() {
    let seg = segment(
        "s",
        1,
        json!({"displayName": "S", "scope": "Customer", "assignmentExpirationDays": 2,
        "journey": path_pattern("startsWith", "/a", 3)}),
    );
    let rs = RuleSet::new(&[seg], &[]).unwrap();
    let s = visit("s1", DeviceCategory::Desktop, "Chrome", false);
    let (mut sr, mut cr) = (RuleState::default(), RuleState::default());
    rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/a", None, &[], t(0)), t(0));
    rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/a", None, &[], t(1)), t(1));
    let mut cr: RuleState = serde_json::from_str(&serde_json::to_string(&cr).unwrap()).unwrap();
    let mut sr: RuleState = serde_json::from_str(&serde_json::to_string(&sr).unwrap()).unwrap();
    assert_eq!(cr.counters.values().copied().collect::<Vec<_>>(), [2]);
    let d = rs.on_event(&mut sr, &mut cr, &s, &web(&s, "page_viewed", "/a", None, &[], t(2)), t(2));
    assert_eq!(ids(&d), ["s"]);
    let cr2: RuleState = serde_json::from_str(&serde_json::to_string(&cr).unwrap()).unwrap();
    assert_eq!(cr2, cr);
}
