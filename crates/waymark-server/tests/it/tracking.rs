//! Web event ingestion over HTTP: shapes, sessionization, limits and bad input.

use crate::harness::{Backend, ORIGIN, TestServer};
use serde_json::{Value, json};

crate::store_tests!(
    single_event_answers_the_session_and_is_readable,
    batch_keeps_good_events_when_one_is_bad,
    a_batch_answer_gives_each_sessions_referrer_once,
    origin_and_deployment_are_enforced,
    bad_bodies_get_clear_codes,
    sessions_split_after_inactivity_and_new_campaigns,
    retries_with_client_event_id_are_stored_once,
    geolocation_and_user_agent_enrichment,
    ping_keeps_the_session_active,
);

async fn single_event_answers_the_session_and_is_readable(b: Backend) {
    let t = TestServer::start(b).await;
    let mut ev =
        t.event("cookie-a", "https://shop.example/products/red-shoes?q=red+shoes&utm_source=news&utm_campaign=spring");
    ev["attributes"] = json!({"cart": {"dataType": "number", "value": 2}});
    ev["referrerUrl"] = json!("https://www.google.com/search?q=shoes");
    let (status, body) = t.post_events(&ev).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customerId"], "cookie-a");
    assert_eq!(body["customerIdType"], "cookie");
    assert_eq!(body["page"]["pathname"], "/products/red-shoes");
    assert_eq!(body["page"]["hostname"], "shop.example");
    assert_eq!(body["searchQuery"], "red shoes");
    assert_eq!(body["mktCampaign"]["source"], "news");
    assert_eq!(body["referrer"]["medium"], "search");
    assert_eq!(body["browser"]["family"], "Chrome");
    assert_eq!(body["device"]["category"], "desktop");
    assert_eq!(body["session"]["eventCount"], 1);
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    assert!(!body.to_string().contains("null"), "absent values are omitted: {body}");

    let (status, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["type"], "web");
    assert_eq!(s["eventCount"], 1);
    assert_eq!(s["pageviewCount"], 1);
    assert_eq!(s["searchTerms"], json!(["red shoes"]));
    assert_eq!(s["attributes"]["cart"]["value"], "2");
    assert!(s["idleDate"].is_string() && s["awayDate"].is_string());

    let (status, evs) = t.get(&format!("/api/v2/journey/sessions/{sid}/events")).await;
    assert_eq!(status, 200);
    let e = &evs["entities"][0];
    assert_eq!(e["eventType"], "com.genesys.journey.WebEvent");
    assert_eq!(e["webEvent"]["eventName"], "page_viewed");
    assert_eq!(e["webEvent"]["browser"]["family"], "Chrome", "session context is re-attached on read");
    t.stop().await;
}

async fn batch_keeps_good_events_when_one_is_bad(b: Backend) {
    let t = TestServer::start(b).await;
    let good1 = t.event("cookie-b", "https://shop.example/a");
    let mut bad = t.event("cookie-b", "https://shop.example/b");
    bad["eventName"] = json!("not allowed!");
    let good2 = t.event("cookie-b", "https://shop.example/c");
    let (status, body) = t.post_events(&json!([good1, bad, good2])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 1);
    assert_eq!(body["results"][1]["error"]["code"], "invalid_event_name");
    assert_eq!(body["results"][0]["session"]["id"], body["results"][2]["session"]["id"]);
    let sid = body["results"][2]["session"]["id"].as_str().unwrap();
    let (_, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(s["eventCount"], 2);

    let too_many: Vec<Value> = (0..101).map(|i| t.event("cookie-b", &format!("https://shop.example/{i}"))).collect();
    let (status, body) = t.post_events(&Value::Array(too_many)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("too_many_events")));
    let (status, body) = t.post_events(&json!([])).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("empty_batch")));
    t.stop().await;
}

/// The referrer is a session's (another one starts another session): a batch answer gives it with the first
/// result of each session only, and every result still names its session and counts.
async fn a_batch_answer_gives_each_sessions_referrer_once(b: Backend) {
    let t = TestServer::start(b).await;
    let with_referrer = |cookie: &str, path: &str| {
        let mut ev = t.event(cookie, &format!("https://shop.example{path}"));
        ev["referrerUrl"] = json!("https://www.google.com/search?q=shoes");
        ev
    };
    let batch = json!([
        with_referrer("cookie-r1", "/a"),
        with_referrer("cookie-r2", "/a"),
        with_referrer("cookie-r1", "/b"),
        with_referrer("cookie-r2", "/b"),
        with_referrer("cookie-r1", "/c"),
    ]);
    let (status, body) = t.post_events(&batch).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let referrers: Vec<Option<&str>> = results.iter().map(|r| r["session"]["referrer"]["medium"].as_str()).collect();
    assert_eq!(referrers, [Some("search"), Some("search"), None, None, None], "{body}");
    let counts: Vec<i64> = results.iter().map(|r| r["session"]["eventCount"].as_i64().unwrap()).collect();
    assert_eq!(counts, [1, 1, 2, 2, 3]);
    assert_eq!(results[0]["session"]["id"], results[4]["session"]["id"]);
    assert_ne!(results[0]["session"]["id"], results[1]["session"]["id"]);
    t.stop().await;
}

async fn origin_and_deployment_are_enforced(b: Backend) {
    let t = TestServer::start(b).await;
    let ev = t.event("cookie-c", "https://shop.example/");
    let r = t
        .client
        .post(t.url(&t.webevents_path()))
        .header("origin", "https://evil.example")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "origin_not_allowed");

    let unknown = format!("/api/v2/journey/deployments/{}/webevents", uuid::Uuid::new_v4());
    let r = t.client.post(t.url(&unknown)).header("origin", ORIGIN).json(&ev).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unknown_deployment");

    // Preflight: allowed origin gets CORS approval, others do not.
    let r = t
        .client
        .request(reqwest::Method::OPTIONS, t.url(&t.webevents_path()))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);
    let r = t
        .client
        .request(reqwest::Method::OPTIONS, t.url(&t.webevents_path()))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Without an Origin header the page must be on an allowed domain.
    let other = t.event("cookie-c", "https://elsewhere.example/");
    let r = t.client.post(t.url(&t.webevents_path())).json(&other).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    t.stop().await;
}

async fn bad_bodies_get_clear_codes(b: Backend) {
    let t = TestServer::start(b).await;
    let url = t.url(&t.webevents_path());
    let send = |body: Vec<u8>, ct: &'static str| {
        let c = t.client.clone();
        let url = url.clone();
        async move {
            let r = c.post(url).header("origin", ORIGIN).header("content-type", ct).body(body).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "malformed_json"),
        (vec![0x7b, 0xff, 0xfe, 0x7d], "application/json", 400, "invalid_utf8"),
        (vec![b' '; 70 * 1024], "application/json", 413, "body_too_large"),
        (b"[".repeat(5000), "application/json", 400, "malformed_json"),
        (b"{}".to_vec(), "application/xml", 415, "unsupported_media_type"),
        (b"42".to_vec(), "application/json", 400, "malformed_json"),
        (br#"{"customerCookieId": 5}"#.to_vec(), "application/json", 400, "invalid_field"),
        (br#"{"customerCookieId": "x", "eventName": "page_viewed", "page": {"url": "https://shop.example/"}, "createdDate": "2001-01-01T00:00:00Z"}"#.to_vec(), "application/json", 400, "event_too_old"),
        (br#"{"customerCookieId": "x'; DROP TABLE events;--", "eventName": "page_viewed"}"#.to_vec(), "application/json", 400, "invalid_customer_id"),
    ];
    for (body, ct, status, code) in cases {
        let (s, v) = send(body, ct).await;
        assert_eq!((s, v["code"].as_str().unwrap_or("")), (status, code), "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // sendBeacon posts text/plain.
    let ev = t.event("cookie-d", "https://shop.example/beacon");
    let (s, v) = send(serde_json::to_vec(&ev).unwrap(), "text/plain;charset=UTF-8").await;
    assert_eq!(s, 200, "{v}");
    // Nothing from the bad requests was stored.
    let stats = t.state.store.stats().await.unwrap();
    assert_eq!(stats.events, 1);
    t.stop().await;
}

async fn sessions_split_after_inactivity_and_new_campaigns(b: Backend) {
    let t = TestServer::start(b).await;
    let (_, a) = t.post_events(&t.event("cookie-e", "https://shop.example/")).await;
    t.clock.advance_secs(21 * 60);
    let (_, b2) = t.post_events(&t.event("cookie-e", "https://shop.example/again")).await;
    assert_ne!(a["session"]["id"], b2["session"]["id"], "20 minutes of silence start a new session");
    let (_, c) = t.post_events(&t.event("cookie-e", "https://shop.example/?utm_source=mail&utm_campaign=autumn")).await;
    assert_ne!(b2["session"]["id"], c["session"]["id"], "a new campaign starts a new session");
    let (_, first) = t.get(&format!("/api/v2/journey/sessions/{}", a["session"]["id"].as_str().unwrap())).await;
    assert!(first["endedDate"].is_string(), "{first}");
    t.stop().await;
}

async fn retries_with_client_event_id_are_stored_once(b: Backend) {
    let t = TestServer::start(b).await;
    let mut ev = t.event("cookie-f", "https://shop.example/");
    ev["clientEventId"] = json!("evt-1");
    let (s1, a) = t.post_events(&ev).await;
    let (s2, b2) = t.post_events(&ev).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b2["duplicate"], true);
    let sid = a["session"]["id"].as_str().unwrap();
    let (_, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(s["eventCount"], 1);
    t.stop().await;
}

fn testdata() -> std::path::PathBuf {
    match std::env::var_os("WAYMARK_TESTDATA") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata")),
    }
}

async fn geolocation_and_user_agent_enrichment(b: Backend) {
    let db = testdata().join("geoip/GeoIP2-City-Test.mmdb");
    assert!(db.exists(), "test data missing: {}", db.display());
    let t = TestServer::start_with(b, |c| {
        c.geoip_city_db = Some(db);
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let mut ev = t.event("cookie-g", "https://shop.example/");
    ev["userAgentString"] = json!(
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    );
    let r = t
        .client
        .post(t.url(&t.webevents_path()))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", "81.2.69.160")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["geolocation"]["country"], "GB");
    assert_eq!(body["geolocation"]["locality"], "London");
    assert_eq!(body["geolocation"]["timezone"], "Europe/London");
    assert_eq!(body["device"]["category"], "tablet");
    assert_eq!(body["device"]["osFamily"], "iOS");
    assert_eq!(body["browser"]["family"], "Mobile Safari");
    t.stop().await;
}

async fn ping_keeps_the_session_active(b: Backend) {
    let t = TestServer::start(b).await;
    let (_, a) = t.post_events(&t.event("cookie-h", "https://shop.example/")).await;
    let sid = a["session"]["id"].as_str().unwrap().to_string();
    t.clock.advance_secs(50);
    let r = t
        .client
        .get(t.url(&format!(
            "/api/v2/journey/deployments/{}/customers/cookie-h/ping?dl=https%3A%2F%2Fshop.example%2F",
            t.deployment
        )))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["pollIntervalMilliseconds"].as_i64().unwrap() > 0);
    let (_, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    let idle = waymark_domain::Timestamp::parse(s["idleDate"].as_str().unwrap()).unwrap();
    assert!(idle > t.now(), "the ping moved the idle date into the future: {s}");
    t.stop().await;
}
