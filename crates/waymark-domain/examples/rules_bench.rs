//! Segment matching cost per event: `RuleSet::on_event` with 500 segments (and again with 100 outcomes on
//! top), over synthetic visitors whose sessions start, browse, search and buy.
//!
//! Run: `cargo run --release -p waymark-domain --example rules_bench`
//!
//! Prints mean / p50 / p99 / max microseconds per event. Every call is timed, including the first event of
//! each session (where every definition is evaluated against the new visit's context).

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use waymark_domain::Timestamp;
use waymark_domain::event::{Event, EventType, WebEventBody};
use waymark_domain::journey::RuleState;
use waymark_domain::outcome::{OutcomeDefinition, parse_outcome_request};
use waymark_domain::rules::RuleSet;
use waymark_domain::segment::{SegmentDefinition, parse_segment_request};
use waymark_domain::session::{Session, SessionType};
use waymark_domain::wire::{Attribute, Attributes, Browser, Campaign, Device, DeviceCategory, Geolocation, Page};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const CATEGORIES: &[&str] =
    &["shoes", "boots", "bags", "hats", "coats", "socks", "belts", "gloves", "scarves", "shirts"];
const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "JP", "BR", "IN", "CA"];
const BROWSERS: &[&str] = &["Chrome", "Safari", "Firefox", "Edge"];
const SOURCES: &[&str] = &["google", "newsletter", "facebook", "partner"];
const WORDS: &[&str] = &["red", "leather", "sale", "winter", "kids", "running", "waterproof", "gift"];

fn journey(criteria: Value, count: u64, event: &str) -> Value {
    json!({"patterns": [{"criteria": criteria, "count": count, "streamType": "Web", "sessionType": "web", "eventName": event}]})
}

fn context(key: &str, op: &str, values: Vec<String>) -> Value {
    json!({"patterns": [{"criteria": [{"key": key, "values": values, "operator": op, "shouldIgnoreCase": false, "entityType": "visit"}]}]})
}

fn segments(n: usize, rng: &mut Rng) -> Vec<SegmentDefinition> {
    (0..n)
        .map(|i| {
            let cat = rng.pick(CATEGORIES);
            let scope = if i % 5 == 0 { "Customer" } else { "Session" };
            let mut v = json!({"displayName": format!("Segment {i}"), "scope": scope});
            match i % 10 {
                // Browsing a category (or a product of it) N times.
                0..=4 => {
                    let op = ["startsWith", "containsAny", "containsAll", "endsWith", "equal"][i % 5];
                    let value = match op {
                        "startsWith" => format!("/{cat}"),
                        "endsWith" => format!("/item{}", rng.below(50)),
                        "equal" => format!("/{cat}/item{}", rng.below(50)),
                        _ => format!("{cat}/item{}", rng.below(10)),
                    };
                    v["journey"] = journey(
                        json!([{"key": "page.pathname", "values": [value], "operator": op, "shouldIgnoreCase": i % 3 == 0}]),
                        1 + rng.below(3),
                        "page_viewed",
                    );
                }
                // Who the visitor is: device, country, browser, campaign.
                5 => v["context"] = context("geolocation.country", "equal", vec![rng.pick(COUNTRIES).into()]),
                6 => {
                    v["context"] = json!({"patterns": [{"criteria": [
                        {"key": "browser.family", "values": [rng.pick(BROWSERS)], "operator": "equal", "shouldIgnoreCase": true, "entityType": "visit"},
                        {"key": "geolocation.country", "values": [rng.pick(COUNTRIES)], "operator": "notEqual", "shouldIgnoreCase": false, "entityType": "visit"}
                    ]}]})
                }
                // Both: a campaign visitor who looked at a category.
                7 => {
                    v["context"] = context("mktCampaign.source", "equal", vec![rng.pick(SOURCES).into()]);
                    v["journey"] = journey(
                        json!([{"key": "page.url", "values": [cat], "operator": "containsAny", "shouldIgnoreCase": true}]),
                        2,
                        "page_viewed",
                    );
                }
                // Searches.
                8 => {
                    v["journey"] = journey(
                        json!([{"key": "searchQuery", "values": [rng.pick(WORDS), rng.pick(WORDS)], "operator": "containsAny", "shouldIgnoreCase": true}]),
                        1,
                        "searched",
                    )
                }
                // Big carts.
                _ => {
                    v["journey"] = journey(
                        json!([{"key": "attributes.cartValue.value", "values": [format!("{}", 50 + rng.below(400))], "operator": "greaterThan", "shouldIgnoreCase": false}]),
                        1,
                        "cart_updated",
                    )
                }
            }
            parse_segment_request(&v).expect("valid").created(format!("seg-{i:03}"), Timestamp::from_unix_millis(i as i64))
        })
        .collect()
}

fn outcomes(n: usize, rng: &mut Rng) -> Vec<OutcomeDefinition> {
    (0..n)
        .map(|i| {
            let cat = rng.pick(CATEGORIES);
            let v = json!({"displayName": format!("Outcome {i}"),
                "journey": journey(json!([{"key": "page.pathname", "values": [format!("/{cat}/checkout/done")], "operator": "startsWith", "shouldIgnoreCase": false}]), 1, "page_viewed"),
                "associatedValueField": {"dataType": "Number", "name": "attributes.cartValue.value"}});
            parse_outcome_request(&v).expect("valid").created(format!("out-{i:03}"), Timestamp::from_unix_millis(i as i64))
        })
        .collect()
}

fn visit(id: u64, rng: &mut Rng) -> Session {
    let mut s = Session::new(format!("s-{id}"), SessionType::Web, Timestamp::from_unix_millis(0));
    s.device = Some(Arc::new(Device {
        category: if rng.below(3) == 0 { DeviceCategory::Mobile } else { DeviceCategory::Desktop },
        device_type: "Other".into(),
        os_family: "Windows".into(),
        os_version: "10".into(),
        ..Device::default()
    }));
    s.browser = Some(Arc::new(Browser {
        family: rng.pick(BROWSERS).into(),
        version: "124.0.6367.60".into(),
        ..Browser::default()
    }));
    s.geolocation = Some(Arc::new(Geolocation { country: Some(rng.pick(COUNTRIES).into()), ..Geolocation::default() }));
    if rng.below(2) == 0 {
        s.mkt_campaign = Some(Arc::new(Campaign { source: Some(rng.pick(SOURCES).into()), ..Campaign::default() }));
    }
    s
}

fn event(s: &Session, n: u64, rng: &mut Rng) -> Event {
    let cat = rng.pick(CATEGORIES);
    let (name, path, search, cart) = match rng.below(10) {
        0 => ("searched", "/search".to_string(), Some(format!("{} {}", rng.pick(WORDS), rng.pick(WORDS))), None),
        1 => ("cart_updated", format!("/{cat}/cart"), None, Some(format!("{}", rng.below(600)))),
        2 if rng.below(4) == 0 => {
            ("page_viewed", format!("/{cat}/checkout/done"), None, Some(format!("{}", rng.below(600))))
        }
        _ => ("page_viewed", format!("/{cat}/item{}", rng.below(50)), None, None),
    };
    let at = Timestamp::from_unix_millis(1_800_000_000_000 + n as i64 * 1000);
    let mut e = Event::envelope(format!("e-{n}"), format!("e-{n}"), s, EventType::Web, at);
    let mut attributes = Attributes::new();
    if let Some(c) = cart {
        attributes.insert("cartValue".into(), Attribute { data_type: "number".into(), value: c });
    }
    e.web_event = Some(Box::new(WebEventBody {
        event_name: name.into(),
        total_event_count: n as i64,
        total_pageview_count: n as i64,
        page: Arc::new(Page {
            url: format!("https://shop.example{path}?ref=home"),
            title: format!("{cat} — Shop"),
            domain: "shop.example".into(),
            hostname: "shop.example".into(),
            pathname: path,
            query_string: Some("ref=home".into()),
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
        search_query: search,
        authenticated: false,
    }));
    e
}

/// CPU time this thread has used, in µs (Linux `/proc/thread-self/stat` utime + stime, 100 ticks/s), so that
/// time spent waiting for a core on a busy machine is not counted.
fn thread_cpu_micros() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10_000.0)
}

fn run(label: &str, rules: &RuleSet, events: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut customers: Vec<RuleState> = (0..2000).map(|_| RuleState::default()).collect();
    let mut times = Vec::with_capacity(events);
    let mut firsts = Vec::new();
    let mut cpu_total = Some(0.0);
    let mut derived = 0usize;
    let mut n = 0u64;
    let mut sessions = 0u64;
    while (n as usize) < events {
        // Build a batch of visits first, so that only matching is timed.
        let mut batch = Vec::new();
        let mut batch_events = 0;
        while batch_events < 10_000 && (n as usize) < events {
            let c = rng.below(customers.len() as u64) as usize;
            let s = visit(sessions, &mut rng);
            sessions += 1;
            let evs: Vec<Event> = (0..1 + rng.below(20))
                .map(|_| {
                    n += 1;
                    event(&s, n, &mut rng)
                })
                .collect();
            batch_events += evs.len();
            batch.push((c, s, evs));
        }
        let cpu0 = thread_cpu_micros();
        for (c, s, evs) in &batch {
            let mut sr = RuleState::default();
            for (k, e) in evs.iter().enumerate() {
                let t0 = Instant::now();
                let d = rules.on_event(&mut sr, &mut customers[*c], s, e, e.created_date);
                let ns = t0.elapsed().as_nanos() as u64;
                times.push(ns);
                if k == 0 {
                    firsts.push(ns);
                }
                derived += d.len();
            }
        }
        cpu_total = match (cpu_total, cpu0, thread_cpu_micros()) {
            (Some(t), Some(a), Some(b)) => Some(t + b - a),
            _ => None,
        };
    }
    let cpu = cpu_total.map(|t| t / times.len() as f64);
    times.sort_unstable();
    firsts.sort_unstable();
    println!(
        "  first event of a session: mean {:.2} µs, p50 {:.2} µs",
        firsts.iter().sum::<u64>() as f64 / firsts.len() as f64 / 1000.0,
        firsts[firsts.len() / 2] as f64 / 1000.0
    );
    let mean = times.iter().sum::<u64>() as f64 / times.len() as f64 / 1000.0;
    let q = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0;
    println!(
        "{label}: {} events in {sessions} sessions, {derived} derived — wall clock per event: mean {mean:.2} µs, p50 {:.2} µs, p99 {:.2} µs, max {:.1} µs",
        times.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    if let Some(c) = cpu {
        println!("  CPU time per event (the thread's own, preemption excluded; includes the timing calls): {c:.2} µs");
    }
}

fn main() {
    let mut rng = Rng(42);
    let segs = segments(500, &mut rng);
    let outs = outcomes(100, &mut rng);
    let t0 = Instant::now();
    let only_segments = RuleSet::new(&segs, &[]).expect("compiles");
    println!("compiled 500 segments in {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0);
    let both = RuleSet::new(&segs, &outs).expect("compiles");
    // Warm up caches and the allocator, then measure.
    run("warm-up", &only_segments, 20_000);
    run("500 segments", &only_segments, 200_000);
    run("500 segments + 100 outcomes", &both, 200_000);
}
