//! Abuse limits: per-IP and per-deployment rate limits (429 + `Retry-After`), the live connection cap, bounded
//! per-session state, and isolation: one flooding deployment does not slow another organisation's ingest
//! beyond a stated bound.

use crate::harness::{Backend, ORIGIN, TestServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use waymark_server::bootstrap::{BootstrapRequest, bootstrap};

crate::store_tests!(
    per_ip_limit_answers_429_with_retry_after,
    per_deployment_limit_answers_429_with_retry_after,
    live_connections_are_capped_and_released,
    session_state_is_bounded,
    a_flooding_deployment_does_not_slow_another_organisation,
);

async fn post_to(t: &TestServer, deployment: &str, body: &Value) -> reqwest::Response {
    t.client
        .post(t.url(&format!("/api/v2/journey/deployments/{deployment}/webevents")))
        .header("origin", ORIGIN)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn assert_limited(r: reqwest::Response, what: &str) {
    assert_eq!(r.status().as_u16(), 429, "{what}");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After is missing"));
    assert!((1..=60).contains(&retry), "{what}: Retry-After {retry}");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited", "{what}: {body}");
}

async fn per_ip_limit_answers_429_with_retry_after(b: Backend) {
    let t = TestServer::start_with(b, |c| {
        c.rate_limits.per_ip_per_sec = 1;
        c.rate_limits.per_ip_burst = 3;
    })
    .await;
    let dep = t.deployment.to_string();
    for i in 0..3 {
        let r = post_to(&t, &dep, &t.event("cookie-ip", &format!("https://shop.example/{i}"))).await;
        assert_eq!(r.status().as_u16(), 200, "request {i} is within the burst");
    }
    let r = post_to(&t, &dep, &t.event("cookie-ip", "https://shop.example/over")).await;
    assert_limited(r, "per-IP").await;
    // Limited requests are not stored.
    assert_eq!(t.state.store.stats().await.expect("stats").events, 3);
    // Pings and preflights count against the same address.
    let r = t
        .client
        .get(t.url(&format!("/api/v2/journey/deployments/{dep}/customers/cookie-ip/ping")))
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("ping");
    assert_limited(r, "per-IP ping").await;
    t.stop().await;
}

async fn per_deployment_limit_answers_429_with_retry_after(b: Backend) {
    let t = TestServer::start_with(b, |c| {
        c.rate_limits.per_deployment_per_sec = 1;
        c.rate_limits.per_deployment_burst = 2;
    })
    .await;
    let dep = t.deployment.to_string();
    for i in 0..2 {
        let r = post_to(&t, &dep, &t.event(&format!("cookie-d{i}"), "https://shop.example/")).await;
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = post_to(&t, &dep, &t.event("cookie-d9", "https://shop.example/")).await;
    assert_limited(r, "per-deployment").await;
    // An unknown deployment id is refused before it can use anyone's budget.
    let r = post_to(&t, "not-a-deployment", &t.event("cookie-d9", "https://shop.example/")).await;
    assert_eq!(r.status().as_u16(), 404);
    t.stop().await;
}

async fn live_connections_are_capped_and_released(b: Backend) {
    let t = TestServer::start_with(b, |c| c.max_live_connections = 2).await;
    let open = |cookie: &'static str| {
        t.client.get(t.url(&format!("/api/v2/journey/live?customerCookieId={cookie}"))).bearer_auth(&t.token).send()
    };
    let a = open("c1").await.expect("a");
    let b2 = open("c2").await.expect("b");
    assert_eq!((a.status().as_u16(), b2.status().as_u16()), (200, 200));
    assert_eq!(t.state.hub.connections(), 2);
    let c = open("c3").await.expect("c");
    assert_eq!(c.status().as_u16(), 429);
    assert!(c.headers().contains_key("retry-after"));
    let body: Value = c.json().await.expect("json");
    assert_eq!(body["code"], "too_many_connections");
    // Closing a stream frees its slot.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.state.hub.connections() > 1 {
        assert!(Instant::now() < deadline, "the slot of a closed stream was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = open("c4").await.expect("d");
    assert_eq!(d.status().as_u16(), 200);
    drop((b2, d));
    t.stop().await;
}

async fn session_state_is_bounded(b: Backend) {
    let t = TestServer::start(b).await;
    // 110 events of one visitor, each with a new search term and 3 new attributes: the session keeps at most
    // 100 search terms and 200 attributes.
    let mut sid = String::new();
    for batch in 0..2 {
        let events: Vec<Value> = (0..55)
            .map(|i| {
                let n = batch * 55 + i;
                let mut e = t.event("cookie-big", &format!("https://shop.example/p?q=term{n}"));
                e["attributes"] = Value::Object(
                    (0..3).map(|a| (format!("k{n}_{a}"), json!({"dataType": "string", "value": "v"}))).collect(),
                );
                e
            })
            .collect();
        let (status, body) = t.post_events(&Value::Array(events)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 55, "{body}");
        sid = body["results"][0]["session"]["id"].as_str().expect("sid").to_string();
    }
    let (status, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["eventCount"], 110);
    assert_eq!(s["searchTerms"].as_array().map(Vec::len), Some(100), "search terms are capped");
    assert_eq!(s["attributes"].as_object().map(|o| o.len()), Some(200), "attributes are capped");
    t.stop().await;
}

/// The stated bound: under a flood from another organisation's deployment, the victim's p99 latency stays
/// below its quiet p99 plus 250 ms, and every one of its events is accepted.
const FLOOD_BOUND: Duration = Duration::from_millis(250);

async fn a_flooding_deployment_does_not_slow_another_organisation(b: Backend) {
    let t = Arc::new(
        TestServer::start_with(b, |c| {
            // The victim sends at most 40 events/s (below the limit); the flood far more.
            c.rate_limits.per_deployment_per_sec = 60;
            c.rate_limits.per_deployment_burst = 60;
        })
        .await,
    );
    let victim = bootstrap(
        t.state.store.as_ref(),
        &BootstrapRequest {
            org_name: "Victim".into(),
            admin_email: "victim@test.example".into(),
            admin_password: None,
            domain: "shop.example".into(),
        },
        t.now(),
    )
    .await
    .expect("second organisation");
    let victim_dep = victim.deployment_id.to_string();
    let measure = |n: usize| {
        let t = t.clone();
        let dep = victim_dep.clone();
        async move {
            let mut lat = Vec::with_capacity(n);
            for i in 0..n {
                let started = Instant::now();
                let r = post_to(&t, &dep, &t.event(&format!("victim-{}", i % 5), "https://shop.example/v")).await;
                lat.push(started.elapsed());
                assert_eq!(r.status().as_u16(), 200, "the victim's event {i} was refused");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            lat.sort();
            lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
        }
    };
    let quiet_p99 = measure(100).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (accepted, limited) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for f in 0..16 {
        let (t, stop, accepted, limited) = (t.clone(), stop.clone(), accepted.clone(), limited.clone());
        let dep = t.deployment.to_string();
        flooders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = post_to(&t, &dep, &t.event(&format!("flood-{f}-{}", n % 10), "https://shop.example/f")).await;
                match r.status().as_u16() {
                    200 => accepted.fetch_add(1, Ordering::Relaxed),
                    429 => limited.fetch_add(1, Ordering::Relaxed),
                    s => panic!("flood answered {s}"),
                };
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flood_p99 = measure(100).await;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.expect("flooder");
    }
    let limited = limited.load(Ordering::Relaxed);
    assert!(limited > 0, "the flood was never limited");
    assert!(
        flood_p99 <= quiet_p99 + FLOOD_BOUND,
        "victim p99 {flood_p99:?} under flood vs {quiet_p99:?} quiet exceeds the bound of +{FLOOD_BOUND:?}"
    );
    eprintln!(
        "victim p99 quiet {quiet_p99:?}, under flood {flood_p99:?}; flood accepted {}, limited {limited}",
        accepted.load(Ordering::Relaxed)
    );
    if let Ok(t) = Arc::try_unwrap(t) {
        t.stop().await;
    }
}
