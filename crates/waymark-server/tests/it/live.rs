//! Live push: an agent's stream hears an event within a fraction of a second, and resumes after a drop.

use crate::harness::{Backend, TestServer};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

crate::store_tests!(agent_stream_receives_events_live_and_resumes, a_batch_sends_each_event_and_its_session_once);

async fn agent_stream_receives_events_live_and_resumes(b: Backend) {
    let t = TestServer::start(b).await;
    let mut first = t.event("live-cookie", "https://shop.example/");
    first["traits"] = json!({"email": "live@example.com"});
    let (_, a) = t.post_events(&first).await;
    let contact = a["externalContact"]["id"].as_str().unwrap().to_string();

    let mut events = t.live_stream(&format!("contactId={contact}")).await;
    let hello = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(hello.event, "hello");

    let sent = Instant::now();
    t.post_events(&t.event("live-cookie", "https://shop.example/pricing")).await;
    let mut got_event = None;
    let mut last_id = String::new();
    while got_event.is_none() {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        last_id = e.id.clone();
        if e.event == "event" {
            got_event = Some(e);
        }
    }
    let latency = sent.elapsed();
    let data: serde_json::Value = serde_json::from_str(&got_event.unwrap().data).unwrap();
    assert_eq!(data["event"]["webEvent"]["page"]["pathname"], "/pricing");
    assert!(latency < Duration::from_millis(500), "event reached the agent in {latency:?}");
    drop(events);

    // Reconnect with Last-Event-ID after missing an event: it is replayed.
    t.post_events(&t.event("live-cookie", "https://shop.example/cart")).await;
    let resp = t
        .client
        .get(t.url(&format!("/api/v2/journey/live?contactId={contact}")))
        .bearer_auth(&t.token)
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap();
    let mut events = eventsource_stream::EventStream::new(resp.bytes_stream());
    let mut replayed = false;
    for _ in 0..10 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
        if e.event == "event" && e.data.contains("/cart") {
            replayed = true;
            break;
        }
    }
    assert!(replayed, "the missed event was replayed");

    // No permission to the view, no stream.
    let nope = t.token_with(&["journey:session:view"], &[]).await;
    let r = t
        .client
        .get(t.url(&format!("/api/v2/journey/live?contactId={contact}")))
        .bearer_auth(&nope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    t.stop().await;
}

/// A tracker's batch of one visitor's events: the stream hears every event, then the session once, in its state
/// after the last of them (the states in between are superseded in the same commit).
async fn a_batch_sends_each_event_and_its_session_once(b: Backend) {
    let t = TestServer::start(b).await;
    let mut first = t.event("batch-cookie", "https://shop.example/");
    first["traits"] = json!({"email": "batch@example.com"});
    let (_, a) = t.post_events(&first).await;
    let contact = a["externalContact"]["id"].as_str().unwrap().to_string();
    let mut events = t.live_stream(&format!("contactId={contact}")).await;
    let hello = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(hello.event, "hello");

    let batch = json!(["/a", "/b", "/c"].map(|p| t.event("batch-cookie", &format!("https://shop.example{p}"))));
    let (status, answer) = t.post_events(&batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["session"]["eventCount"], 3, "each result keeps its own count: {answer}");

    let mut pages = Vec::new();
    let session = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .unwrap();
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        match e.event.as_str() {
            "event" => pages.push(data["event"]["webEvent"]["page"]["pathname"].as_str().unwrap_or("").to_string()),
            "session" => break data,
            _ => {}
        }
    };
    assert_eq!(pages, ["/a", "/b", "/c"], "every event before the session");
    assert_eq!(session["session"]["eventCount"], 4, "the session as the last event left it: {session}");
    t.stop().await;
}
