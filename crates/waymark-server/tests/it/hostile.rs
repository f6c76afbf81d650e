//! Hostile input on the public tracking endpoint: every bad request gets a clear 4xx with a stable code, nothing
//! half-written is stored, no good event is lost, and injection strings are stored verbatim but stay inert.

use crate::harness::{Backend, ORIGIN, TestServer};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

crate::store_tests!(
    bad_requests_get_stable_codes_and_store_nothing,
    injection_strings_are_stored_verbatim,
    slow_bodies_time_out
);

/// POST raw bytes to the tracking endpoint.
async fn post_raw(t: &TestServer, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let r = t
        .client
        .post(t.url(&t.webevents_path()))
        .header("origin", ORIGIN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn stored_events(t: &TestServer) -> u64 {
    t.state.store.stats().await.expect("stats").events
}

async fn bad_requests_get_stable_codes_and_store_nothing(b: Backend) {
    let t = TestServer::start(b).await;
    let good = t.event("cookie-good", "https://shop.example/start");
    let (status, body) = t.post_events(&good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored_events(&t).await, 1);

    let deep_array = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let mut deep_attr = t.event("cookie-x", "https://shop.example/deep");
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    deep_attr["attributes"] = json!({"deep": {"dataType": "string", "value": nested}});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = t.event("cookie-x", "https://shop.example/x");
        f(&mut e);
        serde_json::to_vec(&e).expect("json")
    };
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("truncated JSON", br#"{"customerCookieId": "a", "eventName": "#.to_vec(), "application/json", 400, "malformed_json"),
        ("not JSON at all", b"hello=world&a=b".to_vec(), "application/json", 400, "malformed_json"),
        ("a JSON string", br#""page_viewed""#.to_vec(), "application/json", 400, "malformed_json"),
        ("empty body", Vec::new(), "application/json", 400, "malformed_json"),
        ("trailing garbage", [serde_json::to_vec(&good).expect("json"), b"}}".to_vec()].concat(), "application/json", 400, "malformed_json"),
        ("oversize body", vec![b' '; 70 * 1024], "application/json", 413, "body_too_large"),
        ("deeply nested attribute value", serde_json::to_vec(&deep_attr).expect("json"), "application/json", 400, "invalid_field"),
        ("invalid UTF-8", vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'], "application/json", 400, "invalid_utf8"),
        ("form content type", b"{}".to_vec(), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("negative attribute number (legitimate)", with(&|e| e["attributes"] = json!({"n": {"dataType": "number", "value": -5}})), "application/json", 200, ""),
        ("huge number literal", br#"{"customerCookieId":"a","eventName":"page_viewed","createdDate":"2026-01-01T00:00:00Z","page":{"url":"https://shop.example/"},"browser":{"viewWidth":1e400}}"#.to_vec(), "application/json", 400, "malformed_json"),
        ("huge integer", with(&|e| e["browser"] = json!({"viewWidth": 1e30})), "application/json", 400, "invalid_field"),
        // An out-of-range hint is dropped, not the event: the visitor's page view is real.
        ("negative screen size (hint dropped)", with(&|e| e["device"] = json!({"screenWidth": -1, "screenDensity": 1_000_000})), "application/json", 200, ""),
        ("wrong type", with(&|e| e["page"] = json!("https://shop.example/")), "application/json", 400, "invalid_field"),
        ("SQL in the cookie id", with(&|e| e["customerCookieId"] = json!("x'; DROP TABLE events;--")), "application/json", 400, "invalid_customer_id"),
        ("bad date", with(&|e| e["createdDate"] = json!("2026-13-45T99:00:00Z")), "application/json", 400, "invalid_date"),
        ("words for a date", with(&|e| e["createdDate"] = json!("yesterday")), "application/json", 400, "invalid_date"),
        ("numeric date", with(&|e| e["createdDate"] = json!(1_700_000_000_000i64)), "application/json", 400, "invalid_field"),
        ("ancient date", with(&|e| e["createdDate"] = json!("1970-01-01T00:00:00Z")), "application/json", 400, "event_too_old"),
        ("future date", with(&|e| e["createdDate"] = json!("2999-01-01T00:00:00Z")), "application/json", 400, "event_in_future"),
        ("javascript URL", with(&|e| e["page"]["url"] = json!("javascript:alert(1)")), "application/json", 400, "invalid_url"),
        ("oversize URL", with(&|e| e["page"]["url"] = json!(format!("https://shop.example/{}", "a".repeat(5000)))), "application/json", 400, "invalid_field"),
        ("bad event name", with(&|e| e["eventName"] = json!("<script>")), "application/json", 400, "invalid_event_name"),
        ("too many attributes", with(&|e| e["attributes"] = Value::Object((0..60).map(|i| (format!("a{i}"), json!("v"))).collect())), "application/json", 400, "too_many_attributes"),
    ];
    let mut expected_stored = 1;
    for (name, body, ct, want_status, want_code) in cases {
        let (status, resp) = post_raw(&t, body, ct).await;
        if want_status == 200 {
            assert_eq!(status, 200, "{name}: {resp}");
            expected_stored += 1;
            continue;
        }
        assert_eq!(status, want_status, "{name}: {resp}");
        assert_eq!(resp["code"], want_code, "{name}: {resp}");
        assert_eq!(resp["status"], want_status, "{name}: {resp}");
        assert!(resp["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: a message says what is wrong");
        assert_eq!(stored_events(&t).await, expected_stored, "{name}: nothing stored");
    }
    // A batch of one event nested 5,000 deep: the batch is split without parsing its events, and the event
    // is refused on its own (it is an array, not an event object).
    let (status, resp) = post_raw(&t, deep_array.into_bytes(), "application/json").await;
    assert_eq!(status, 400, "deep nesting: {resp}");
    assert_eq!(resp["accepted"], 0, "deep nesting: {resp}");
    assert_eq!(resp["results"][0]["error"]["code"], "invalid_field", "deep nesting: {resp}");
    assert_eq!(stored_events(&t).await, expected_stored, "deep nesting: nothing stored");
    // The server is still healthy and the good event is still there, exactly once.
    let (status, body) = t.post_events(&t.event("cookie-good", "https://shop.example/after")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["eventCount"], 2, "{body}");
    assert_eq!(stored_events(&t).await, expected_stored + 1);
    t.stop().await;
}

async fn injection_strings_are_stored_verbatim(b: Backend) {
    let t = TestServer::start(b).await;
    let nasty_title = "<script>alert('x')</script>\"; DROP TABLE events; -- ' OR '1'='1";
    let nasty_attr = "'); DELETE FROM sessions; --<img src=x onerror=alert(1)>";
    let mut ev = t.event("cookie-inj", "https://shop.example/search?q=%27%3B%20DROP%20TABLE%20events%3B--");
    ev["page"]["title"] = json!(nasty_title);
    ev["attributes"] = json!({"note": {"dataType": "string", "value": nasty_attr}});
    ev["searchQuery"] = json!("<b>bold</b> OR 1=1");
    let (status, body) = t.post_events(&ev).await;
    assert_eq!(status, 200, "{body}");
    let sid = body["session"]["id"].as_str().expect("session id").to_string();
    let r = t
        .client
        .get(t.url(&format!("/api/v2/journey/sessions/{sid}/events")))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("get");
    assert!(
        r.headers()["content-type"].to_str().unwrap_or("").starts_with("application/json"),
        "served as JSON, never as HTML"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let evs: Value = r.json().await.expect("json");
    let w = &evs["entities"][0]["webEvent"];
    assert_eq!(w["page"]["title"], nasty_title);
    assert_eq!(w["attributes"]["note"]["value"], nasty_attr);
    assert_eq!(w["searchQuery"], "<b>bold</b> OR 1=1");
    // The tables the strings name are intact.
    let (status, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["eventCount"], 1);
    assert!(s["searchTerms"].as_array().is_some_and(|a| a.iter().any(|v| v == "'; DROP TABLE events;--")), "{s}");
    assert_eq!(t.state.store.stats().await.expect("stats").events, 1);
    t.stop().await;
}

async fn slow_bodies_time_out(b: Backend) {
    let t = TestServer::start_with(b, |c| c.body_timeout_secs = 1).await;
    let addr = t.base.trim_start_matches("http://").to_string();
    let body = serde_json::to_vec(&t.event("cookie-slow", "https://shop.example/slow")).expect("json");
    let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\norigin: {ORIGIN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        t.webevents_path(),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    // Trickle a byte every 200 ms: never idle long, but never done.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for b in body.iter().take(body.len() - 1) {
        if sock.write_all(&[*b]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the server never gave up on the slow body");
    }
    if answer.is_empty() {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await.expect("answer").expect("read");
        answer.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(t.state.store.stats().await.expect("stats").events, 0, "nothing stored");
    t.stop().await;
}
