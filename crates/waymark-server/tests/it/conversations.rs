//! Contact-center conversations over HTTP: lifecycles per channel, transfers, bot-only, abandon, duplicates
//! and reordering, refused channels, bad events in a batch, routing records, permissions, and linking to the
//! caller's web history.

use crate::harness::{Backend, TestServer};
use serde_json::{Value, json};

crate::store_tests!(
    full_lifecycle_per_channel,
    transfers_keep_the_last_queue_and_agent_and_create_routing_records,
    bot_only_conversations_use_the_standard_card,
    ended_before_connected_is_abandoned,
    duplicates_and_reordering_give_the_same_session,
    excluded_channels_are_refused_and_stored_nowhere,
    bad_events_in_a_batch_keep_the_rest,
    conversations_link_to_earlier_web_history,
    permissions_guard_ingestion_and_hide_routing_details,
    routing_records_are_managed_by_api,
);

const PATH: &str = "/api/v2/journey/conversationevents";

/// A lifecycle event `secs` after a fixed point ten minutes ago.
fn ev(t: &TestServer, id: &str, conv: &str, kind: &str, secs: i64) -> Value {
    json!({"id": id, "conversationId": conv, "type": kind, "timestamp": t.now().minus_secs(600).plus_secs(secs).to_iso()})
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
        o.extend(e);
    }
    v
}

async fn post_as(t: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    let r = t.client.post(t.url(PATH)).bearer_auth(token).json(body).send().await.expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(t: &TestServer, body: &Value) -> (u16, Value) {
    post_as(t, &t.token, body).await
}

/// Post a batch that must be fully accepted; returns the session id.
async fn post_all(t: &TestServer, events: Vec<Value>) -> String {
    let (status, body) = post(t, &Value::Array(events)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"], 0, "{body}");
    let sid = body["results"][0]["session"]["id"].as_str().expect("session id").to_string();
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["session"]["id"], sid.as_str(), "one conversation, one session: {body}");
    }
    sid
}

async fn session(t: &TestServer, sid: &str) -> Value {
    let (status, s) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(status, 200, "{s}");
    assert!(!s.to_string().contains("null"), "absent values are omitted: {s}");
    s
}

/// A full agent-handled lifecycle on `channel` for conversation `conv`.
fn lifecycle(t: &TestServer, conv: &str, channel: &str, direction: &str, address: Value) -> Vec<Value> {
    let p = |s: &str| format!("{conv}-{s}");
    vec![
        with(
            ev(t, &p("start"), conv, "started", 0),
            json!({"channel": channel, "direction": direction, "address": address, "subject": "Order 42"}),
        ),
        with(ev(t, &p("queue"), conv, "queued", 5), json!({"queue": {"id": "q-support", "name": "Support"}})),
        with(ev(t, &p("conn"), conv, "connected", 20), json!({"agent": {"id": "agent-ann", "name": "Ann Agent"}})),
        with(ev(t, &p("disc"), conv, "disconnected", 80), json!({"disconnectType": "customer"})),
        ev(t, &p("end"), conv, "ended", 81),
        with(ev(t, &p("wrap"), conv, "wrapup", 95), json!({"wrapupCode": {"id": "wc-solved", "name": "Solved"}})),
    ]
}

async fn full_lifecycle_per_channel(b: Backend) {
    let t = TestServer::start(b).await;
    let cases: Vec<(&str, &str, Value, &str, Option<&str>)> = vec![
        ("voice", "inbound", json!({"phone": "+442079460958"}), "Call", None),
        ("voice", "outbound", json!({"phone": "+442079460959"}), "Call", None),
        ("webMessaging", "inbound", json!({"email": "wm@example.com"}), "Messaging", Some("WebMessaging")),
        ("webChat", "inbound", json!({"cookieId": "chat-cookie"}), "Webchat", None),
        ("email", "inbound", json!({"email": "mail@example.com"}), "Email", None),
        ("sms", "inbound", json!({"phone": "+12025550143"}), "Messaging", Some("Sms")),
        ("whatsApp", "inbound", json!({"phone": "+12025550144"}), "Messaging", Some("WhatsApp")),
        ("line", "inbound", json!({"messagingId": "U123", "platform": "line"}), "Messaging", Some("Line")),
        ("twitter", "inbound", json!({"messagingId": "x-42", "platform": "twitter"}), "Messaging", Some("Twitter")),
        (
            "facebookMessenger",
            "inbound",
            json!({"messagingId": "fb-7", "platform": "facebook"}),
            "Messaging",
            Some("Facebook"),
        ),
    ];
    for (i, (channel, direction, address, ty, message_type)) in cases.into_iter().enumerate() {
        let conv = format!("conv-{i}");
        let events = lifecycle(&t, &conv, channel, direction, address);
        // The first event alone: the conversation is waiting, active (no end).
        let sid = post_all(&t, events[..2].to_vec()).await;
        let s = session(&t, &sid).await;
        assert_eq!(s["type"], "conversation");
        assert_eq!(s["conversationState"], "waiting", "{s}");
        assert!(s.get("endedDate").is_none(), "active while waiting: {s}");
        assert_eq!(post_all(&t, events[2..].to_vec()).await, sid);
        let s = session(&t, &sid).await;
        assert_eq!(s["conversationChannels"][0]["type"], ty, "{channel}: {s}");
        assert_eq!(s["conversationChannels"][0].get("messageType").and_then(Value::as_str), message_type, "{s}");
        assert_eq!(s["originatingDirection"], if direction == "inbound" { "Inbound" } else { "Outbound" });
        assert_eq!(s["conversationSubject"], "Order 42");
        assert_eq!(s["conversation"]["id"], conv.as_str());
        assert_eq!(s["lastConnectedQueue"]["name"], "Support", "{s}");
        assert_eq!(s["lastConnectedUser"]["name"], "Ann Agent");
        assert_eq!(s["lastUserDisposition"]["name"], "Solved");
        assert_eq!(s["lastUserDisconnectType"], "Peer");
        assert_eq!(s["lastAcdOutcome"], "Answered");
        assert_eq!(s["conversationState"], "endedByCustomer");
        assert_eq!(s["durationInSeconds"], 81);
        assert_eq!(s["eventCount"], 6);
        assert!(s["endedDate"].is_string(), "inactive once ended: {s}");
        assert!(s["externalContact"]["id"].is_string() || channel == "webChat", "linked by address: {s}");
        let (status, evs) = t.get(&format!("/api/v2/journey/sessions/{sid}/events")).await;
        assert_eq!(status, 200);
        let kinds: Vec<&str> = evs["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["conversationEvent"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["started", "queued", "connected", "disconnected", "ended", "wrapup"], "{evs}");
        assert_eq!(evs["entities"][0]["eventType"], "com.waymark.journey.ConversationEvent");
    }
    // Agentless notifications: outbound, no agent, ended (not abandoned).
    for (i, channel) in ["agentlessWhatsApp", "agentlessSms"].into_iter().enumerate() {
        let conv = format!("notify-{i}");
        let sid = post_all(
            &t,
            vec![
                with(
                    ev(&t, &format!("{conv}-s"), &conv, "started", 0),
                    json!({"channel": channel, "address": {"phone": "+12025550145"}}),
                ),
                with(ev(&t, &format!("{conv}-d"), &conv, "disconnected", 1), json!({"disconnectType": "system"})),
                ev(&t, &format!("{conv}-e"), &conv, "ended", 1),
            ],
        )
        .await;
        let s = session(&t, &sid).await;
        assert_eq!(s["originatingDirection"], "Outbound");
        assert_eq!(s["conversationChannels"][0]["platform"], "Agentless Notification");
        assert_eq!(s["conversationState"], "ended");
        let (status, body) =
            post(&t, &with(ev(&t, &format!("{conv}-c"), &conv, "connected", 1), json!({"agent": {"name": "Nobody"}})))
                .await;
        assert_eq!((status, body["code"].as_str()), (409, Some("invalid_transition")), "{body}");
    }
    t.stop().await;
}

async fn transfers_keep_the_last_queue_and_agent_and_create_routing_records(b: Backend) {
    let t = TestServer::start(b).await;
    let c = "transfer-1";
    let sid = post_all(
        &t,
        vec![
            with(
                ev(&t, "t1", c, "started", 0),
                json!({"channel": "voice", "direction": "inbound", "address": {"phone": "+442079460958"}}),
            ),
            with(ev(&t, "t2", c, "queued", 1), json!({"queue": {"id": "q-sales", "name": "Sales"}})),
            with(ev(&t, "t3", c, "connected", 2), json!({"agent": {"id": "u-ann", "name": "Ann"}})),
            with(ev(&t, "t4", c, "transferred", 3), json!({"queue": {"id": "q-billing", "name": "Billing"}})),
            with(ev(&t, "t5", c, "connected", 4), json!({"agent": {"id": "u-bob", "name": "Bob"}})),
            with(ev(&t, "t6", c, "disconnected", 5), json!({"disconnectType": "agent"})),
            ev(&t, "t7", c, "ended", 6),
            with(
                ev(&t, "t8", c, "wrapup", 7),
                json!({"wrapupCode": {"name": "Refund issued"}, "agent": {"id": "u-bob"}, "notes": "ok"}),
            ),
        ],
    )
    .await;
    let s = session(&t, &sid).await;
    assert_eq!(s["lastConnectedQueue"]["name"], "Billing", "{s}");
    assert_eq!(s["lastConnectedUser"]["name"], "Bob");
    assert_eq!(s["conversationState"], "endedByAgent");
    assert_eq!(s["lastUserDisconnectType"], "Client");
    let disposition = &s["lastUserDisposition"];
    assert_eq!(disposition["name"], "Refund issued");
    assert_eq!(disposition["notes"], "ok");
    assert_eq!(disposition["user"]["id"], s["lastConnectedUser"]["id"], "the wrap-up names the same (resolved) agent");

    // The queues, agents and wrap-up code now exist as organisation records, and ids resolve to them.
    let (_, queues) = t.get("/api/v2/routing/queues").await;
    let names: Vec<&str> = queues["entities"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Billing", "Sales"], "{queues}");
    let billing = queues["entities"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(s["lastConnectedQueue"]["id"], billing.as_str());
    assert_eq!(s["lastConnectedQueue"]["selfUri"], format!("/api/v2/routing/queues/{billing}"));
    let (_, codes) = t.get("/api/v2/routing/wrapupcodes?name=refund*").await;
    assert_eq!(codes["total"], 1, "{codes}");
    assert_eq!(disposition["code"], codes["entities"][0]["id"]);
    let (_, users) = t.get("/api/v2/users?name=b*").await;
    let names: Vec<&str> = users["entities"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Bob"], "{users}");
    let (status, bob) = t.get(&format!("/api/v2/users/{}", users["entities"][0]["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert!(bob.get("email").is_none() && bob.get("passwordHash").is_none(), "{bob}");

    // A second conversation naming the queue by the platform id alone finds the same record.
    let sid2 = post_all(
        &t,
        vec![
            with(
                ev(&t, "u1", "transfer-2", "started", 0),
                json!({"channel": "voice", "address": {"phone": "+442079460958"}}),
            ),
            with(ev(&t, "u2", "transfer-2", "queued", 1), json!({"queue": {"id": "q-billing"}})),
        ],
    )
    .await;
    let s2 = session(&t, &sid2).await;
    assert_eq!(s2["lastConnectedQueue"]["id"], billing.as_str());
    assert_eq!(s2["lastConnectedQueue"]["name"], "Billing");
    let (_, queues) = t.get("/api/v2/routing/queues").await;
    assert_eq!(queues["total"], 2, "no duplicate queue: {queues}");
    t.stop().await;
}

async fn bot_only_conversations_use_the_standard_card(b: Backend) {
    let t = TestServer::start(b).await;
    let c = "bot-1";
    let sid = post_all(
        &t,
        vec![
            with(
                ev(&t, "b1", c, "started", 0),
                json!({"channel": "webMessaging", "address": {"email": "bot@example.com"}}),
            ),
            ev(&t, "b2", c, "botOnly", 1),
        ],
    )
    .await;
    let s = session(&t, &sid).await;
    assert_eq!(s["botOnly"], true);
    assert_eq!(s["conversationState"], "connected");
    let (status, body) = post(&t, &with(ev(&t, "b3", c, "connected", 2), json!({"agent": {"name": "Ann"}}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("invalid_transition")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("bot-only"), "{body}");
    post_all(
        &t,
        vec![
            with(ev(&t, "b4", c, "disconnected", 40), json!({"disconnectType": "customer"})),
            ev(&t, "b5", c, "ended", 40),
        ],
    )
    .await;
    let s = session(&t, &sid).await;
    assert_eq!(s["conversationState"], "endedByCustomer");
    assert_eq!(s["durationInSeconds"], 40);
    assert_eq!(s["conversationChannels"][0]["messageType"], "WebMessaging");
    assert!(s.get("lastConnectedUser").is_none() && s.get("lastAcdOutcome").is_none(), "{s}");
    assert_eq!(s["eventCount"], 4, "the refused event is not stored");
    t.stop().await;
}

async fn ended_before_connected_is_abandoned(b: Backend) {
    let t = TestServer::start(b).await;
    let c = "abandon-1";
    let sid = post_all(
        &t,
        vec![
            with(
                ev(&t, "a1", c, "started", 0),
                json!({"channel": "voice", "direction": "inbound", "address": {"phone": "+12025550143"}}),
            ),
            with(ev(&t, "a2", c, "queued", 2), json!({"queue": {"name": "Support"}})),
            with(ev(&t, "a3", c, "disconnected", 30), json!({"disconnectType": "customer"})),
            ev(&t, "a4", c, "ended", 30),
        ],
    )
    .await;
    let s = session(&t, &sid).await;
    assert_eq!(s["conversationState"], "abandoned");
    assert_eq!(s["lastAcdOutcome"], "Abandon");
    assert_eq!(s["lastConnectedQueue"]["name"], "Support");
    assert!(s.get("lastConnectedUser").is_none());
    assert!(s["endedDate"].is_string());
    t.stop().await;
}

async fn duplicates_and_reordering_give_the_same_session(b: Backend) {
    let t = TestServer::start(b).await;
    let in_order = lifecycle(&t, "order-a", "email", "inbound", json!({"email": "order@example.com"}));
    let reversed: Vec<Value> =
        lifecycle(&t, "order-b", "email", "inbound", json!({"email": "order@example.com"})).into_iter().rev().collect();
    let a = post_all(&t, in_order.clone()).await;
    // One event per request, last first, each sent twice.
    let mut b_sid = None;
    for e in &reversed {
        for attempt in 0..2 {
            let (status, body) = post(&t, e).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["duplicate"].as_bool().unwrap_or(false), attempt == 1, "{body}");
            let sid = body["session"]["id"].as_str().unwrap().to_string();
            assert_eq!(b_sid.get_or_insert(sid.clone()), &sid);
        }
    }
    let b_sid = b_sid.unwrap();
    // Replaying the whole in-order batch is all duplicates.
    let (_, replay) = post(&t, &Value::Array(in_order)).await;
    assert!(replay["results"].as_array().unwrap().iter().all(|r| r["duplicate"] == true), "{replay}");

    let sa = session(&t, &a).await;
    let sb = session(&t, &b_sid).await;
    for k in [
        "conversationState",
        "lastConnectedQueue",
        "lastConnectedUser",
        "lastUserDisposition",
        "conversationChannels",
        "originatingDirection",
        "createdDate",
        "endedDate",
        "durationInSeconds",
        "eventCount",
        "lastAcdOutcome",
        "lastUserDisconnectType",
        "externalContact",
    ] {
        assert_eq!(sa[k], sb[k], "{k}: {sa} vs {sb}");
    }
    assert_eq!(sb["eventCount"], 6);
    let (_, evs) = t.get(&format!("/api/v2/journey/sessions/{b_sid}/events")).await;
    let kinds: Vec<&str> =
        evs["entities"].as_array().unwrap().iter().map(|e| e["conversationEvent"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["started", "queued", "connected", "disconnected", "ended", "wrapup"], "placed by timestamp");
    t.stop().await;
}

async fn excluded_channels_are_refused_and_stored_nowhere(b: Backend) {
    let t = TestServer::start(b).await;
    let before = t.state.store.stats().await.unwrap();
    for (i, channel) in
        ["cobrowse", "instagram", "callback", "campaign", "agentlessEmail", "supportCenter"].iter().enumerate()
    {
        let conv = format!("excluded-{i}");
        let (status, body) = post(
            &t,
            &with(
                ev(&t, &format!("x{i}"), &conv, "started", 0),
                json!({"channel": channel, "address": {"phone": "+12025550143"}}),
            ),
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("channel_not_in_journey")), "{channel}: {body}");
        assert_eq!(body["details"][0]["fieldName"], "channel");
        // Later events of the refused conversation are refused too.
        let (status, body) =
            post(&t, &with(ev(&t, &format!("y{i}"), &conv, "queued", 1), json!({"queue": {"name": "Q"}}))).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("channel_not_in_journey")), "{body}");
    }
    // A conversation whose start arrives after other events: what was stored is dropped.
    let (status, body) =
        post(&t, &with(ev(&t, "late-q", "excluded-late", "queued", 1), json!({"queue": {"name": "Q"}}))).await;
    assert_eq!(status, 200, "{body}");
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    let (status, body) = post(
        &t,
        &with(
            ev(&t, "late-s", "excluded-late", "started", 0),
            json!({"channel": "co-browse", "address": {"phone": "+12025550143"}}),
        ),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("channel_not_in_journey")), "{body}");
    let (status, _) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(status, 404, "the refused conversation's session is gone");
    let after = t.state.store.stats().await.unwrap();
    assert_eq!((after.sessions, after.events), (before.sessions, before.events), "nothing stored");
    t.stop().await;
}

async fn bad_events_in_a_batch_keep_the_rest(b: Backend) {
    let t = TestServer::start(b).await;
    let c = "mixed-1";
    let start = with(ev(&t, "m1", c, "started", 0), json!({"channel": "sms", "address": {"phone": "+12025550143"}}));
    let batch = json!({"events": [
        start.clone(),
        with(ev(&t, "m2", c, "queued", 1), json!({"channel": "pigeon", "queue": {"name": "Q"}})),
        with(ev(&t, "m3", "mixed-2", "started", 1), json!({"channel": "sms"})),
        with(ev(&t, "m4", c, "queued", 1), json!({"timestamp": 5, "queue": {"name": "Q"}})),
        with(start.clone(), json!({"id": "m5"})),
        with(ev(&t, "m6", c, "queued", 2), json!({"queue": {"name": "Q"}})),
        with(ev(&t, "m7", c, "explode", 3), json!({})),
        with(ev(&t, "m8", c, "disconnected", 4), json!({"disconnectType": "everyone"})),
    ]});
    let (status, body) = post(&t, &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(6)), "{body}");
    let r = &body["results"];
    let code = |i: usize| {
        (
            r[i]["status"].as_u64().unwrap(),
            r[i]["error"]["code"].as_str().unwrap_or(""),
            r[i]["error"]["details"][0]["fieldName"].as_str().unwrap_or(""),
        )
    };
    assert_eq!(code(0).0, 200);
    assert_eq!(code(1), (400, "invalid_field", "channel"));
    assert_eq!(code(2), (400, "missing_field", "address"));
    assert_eq!(code(3), (400, "invalid_field", "timestamp"));
    assert_eq!(code(4), (409, "invalid_transition", "type"));
    assert_eq!(code(5).0, 200);
    assert_eq!(code(6), (400, "invalid_field", "type"));
    assert_eq!(code(7), (400, "invalid_field", "disconnectType"));
    let s = session(&t, r[0]["session"]["id"].as_str().unwrap()).await;
    assert_eq!(s["eventCount"], 2);
    assert_eq!(s["conversationState"], "waiting");

    // Whole-request problems.
    let (status, body) = post(&t, &json!([])).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("empty_batch")));
    let too_many: Vec<Value> = (0..101).map(|i| ev(&t, &format!("n{i}"), "many", "ended", 0)).collect();
    let (status, body) = post(&t, &Value::Array(too_many)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("too_many_events")));
    let r = t
        .client
        .post(t.url(PATH))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "malformed_json");
    // A batch of only bad events is a 400 with the per-event reasons.
    let (status, body) = post(&t, &json!([with(ev(&t, "z", "z", "started", 0), json!({"channel": "voice"}))])).await;
    assert_eq!((status, body["rejected"].as_u64()), (400, Some(1)), "{body}");
    t.stop().await;
}

async fn identify(t: &TestServer, cookie: &str, email: &str) -> Value {
    let mut e = t.event(cookie, "https://shop.example/account");
    e["eventName"] = json!("user_identified");
    e["traits"] = json!({"email": email});
    let (status, body) = t.post_events(&e).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn conversations_link_to_earlier_web_history(b: Backend) {
    let t = TestServer::start(b).await;
    // Web identify with an email, then an email conversation from the same (differently cased) address.
    let web = identify(&t, "web-cookie-1", "Eve@Example.com").await;
    let contact = web["externalContact"]["id"].as_str().expect("web contact").to_string();
    let sid = post_all(
        &t,
        vec![with(
            ev(&t, "l1", "mail-1", "started", 0),
            json!({"channel": "email", "address": {"email": "eve@EXAMPLE.com"}, "subject": "Where is my order?"}),
        )],
    )
    .await;
    let s = session(&t, &sid).await;
    assert_eq!(s["externalContact"]["id"], contact.as_str(), "{s}");
    assert_eq!(s["customerIdType"], "email");
    let (status, list) = t.get(&format!("/api/v2/externalcontacts/contacts/{contact}/journey/sessions")).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = list["entities"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(types.len(), 2, "{list}");
    assert!(types.contains(&"web") && types.contains(&"conversation"), "{list}");

    // A call from a new phone number creates a contact that a search by phone finds.
    let call = post_all(
        &t,
        vec![with(
            ev(&t, "l2", "call-1", "started", 0),
            json!({"channel": "voice", "address": {"phone": "+1 202 555 0199"}}),
        )],
    )
    .await;
    let call_contact = session(&t, &call).await["externalContact"]["id"].as_str().unwrap().to_string();
    let (_, found) = t.get("/api/v2/externalcontacts/contacts?q=%2B12025550199").await;
    assert_eq!(found["entities"][0]["id"], call_contact.as_str(), "{found}");

    // A chat from a web offer (tracker cookie id) joins the visitor's web customer; when the visitor
    // identifies later, the chat follows the customer to the contact.
    t.post_events(&t.event("offer-cookie", "https://shop.example/help")).await;
    let chat = post_all(
        &t,
        vec![with(
            ev(&t, "l3", "chat-1", "started", 0),
            json!({"channel": "webChat", "address": {"cookieId": "offer-cookie"}}),
        )],
    )
    .await;
    let (_, by_cookie) = t.get("/api/v2/journey/customers/cookie/offer-cookie/sessions").await;
    let ids: Vec<&str> = by_cookie["entities"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{by_cookie}");
    assert!(ids.contains(&chat.as_str()));
    let later = identify(&t, "offer-cookie", "frank@example.com").await;
    let frank = later["externalContact"]["id"].as_str().unwrap();
    assert_eq!(session(&t, &chat).await["externalContact"]["id"], frank);
    t.stop().await;
}

async fn permissions_guard_ingestion_and_hide_routing_details(b: Backend) {
    let t = TestServer::start(b).await;
    let start =
        with(ev(&t, "p1", "perm-1", "started", 0), json!({"channel": "voice", "address": {"phone": "+12025550143"}}));
    let reader = t.token_with(&["journey:session:view", "journey:event:view"], &[]).await;
    let (status, body) = post_as(&t, &reader, &start).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("missing_permission")), "{body}");
    let (status, _) = t.client.post(t.url(PATH)).json(&start).send().await.map(|r| (r.status().as_u16(), ())).unwrap();
    assert_eq!(status, 401);

    let integration = t.token_with(&["journey:conversationEvent:add"], &[]).await;
    let events = vec![
        start,
        with(ev(&t, "p2", "perm-1", "queued", 1), json!({"queue": {"name": "Secret queue"}})),
        with(ev(&t, "p3", "perm-1", "connected", 2), json!({"agent": {"name": "Ann"}})),
        ev(&t, "p4", "perm-1", "ended", 3),
        with(ev(&t, "p5", "perm-1", "wrapup", 4), json!({"wrapupCode": {"name": "Secret code"}})),
    ];
    let (status, body) = post_as(&t, &integration, &Value::Array(events)).await;
    assert_eq!(status, 200, "{body}");
    let sid = body["results"][0]["session"]["id"].as_str().unwrap();
    // The integration answer carries no routing details.
    assert!(!body.to_string().contains("Secret"), "{body}");

    let (_, s) = t.get_as(&reader, &format!("/api/v2/journey/sessions/{sid}")).await;
    assert!(s.get("lastConnectedQueue").is_none(), "no queue without routing:queue:search: {s}");
    assert!(s.get("lastUserDisposition").is_none(), "no wrap-up without routing:wrapupCode:view: {s}");
    assert_eq!(s["lastConnectedUser"]["name"], "Ann");
    let (_, evs) = t.get_as(&reader, &format!("/api/v2/journey/sessions/{sid}/events")).await;
    assert!(!evs.to_string().contains("Secret"), "{evs}");
    let agent = t
        .token_with(
            &["journey:session:view", "journey:event:view", "routing:queue:search", "routing:wrapupCode:view"],
            &[],
        )
        .await;
    let (_, s) = t.get_as(&agent, &format!("/api/v2/journey/sessions/{sid}")).await;
    assert_eq!(s["lastConnectedQueue"]["name"], "Secret queue");
    assert_eq!(s["lastUserDisposition"]["name"], "Secret code");
    let (_, evs) = t.get_as(&agent, &format!("/api/v2/journey/sessions/{sid}/events")).await;
    assert_eq!(evs["entities"][1]["conversationEvent"]["queue"]["name"], "Secret queue");
    t.stop().await;
}

async fn routing_records_are_managed_by_api(b: Backend) {
    let t = TestServer::start(b).await;
    let send = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut r = t.client.request(method, t.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.expect("request");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    for (base, what) in [("/api/v2/routing/queues", "queue"), ("/api/v2/routing/wrapupcodes", "wrap-up code")] {
        let (status, created) =
            send(Method::POST, base, &t.token, Some(json!({"name": "Premium", "description": "VIP"}))).await;
        assert_eq!(status, 200, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["selfUri"], format!("{base}/{id}"));
        assert!(created["dateCreated"].is_string());
        let (status, dup) = send(Method::POST, base, &t.token, Some(json!({"name": "premium"}))).await;
        assert_eq!((status, dup["code"].as_str()), (409, Some("conflict")), "{what}: {dup}");
        let (status, bad) = send(Method::POST, base, &t.token, Some(json!({"name": 7}))).await;
        assert_eq!((status, bad["details"][0]["fieldName"].as_str()), (400, Some("name")), "{bad}");
        let (status, bad) = send(Method::POST, base, &t.token, Some(json!({}))).await;
        assert_eq!((status, bad["code"].as_str()), (400, Some("missing_field")));
        let (status, renamed) =
            send(Method::PUT, &format!("{base}/{id}"), &t.token, Some(json!({"name": "Premium Plus"}))).await;
        assert_eq!(status, 200, "{renamed}");
        assert_eq!(renamed["version"], 2);
        let (_, list) = t.get(&format!("{base}?name=premium*")).await;
        assert_eq!(list["entities"][0]["name"], "Premium Plus", "{list}");
        let (status, _) =
            send(Method::PUT, &format!("{base}/{id}"), &t.token, Some(json!({"name": "X", "version": 1}))).await;
        assert_eq!(status, 409, "a stale version is refused");
        let (status, _) = send(Method::DELETE, &format!("{base}/{id}"), &t.token, None).await;
        assert_eq!(status, 204);
        let (status, _) = t.get(&format!("{base}/{id}")).await;
        assert_eq!(status, 404);
        let (status, _) = t.get(&format!("{base}/not-a-record")).await;
        assert_eq!(status, 404);
    }
    // View without edit.
    let viewer = t.token_with(&["routing:queue:view", "routing:wrapupCode:view", "directory:user:view"], &[]).await;
    let (status, _) = t.get_as(&viewer, "/api/v2/routing/queues").await;
    assert_eq!(status, 200);
    let (status, body) = send(Method::POST, "/api/v2/routing/queues", &viewer, Some(json!({"name": "Nope"}))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("missing_permission")));
    let (status, users) = t.get_as(&viewer, "/api/v2/users").await;
    assert_eq!(status, 200);
    assert!(users["entities"].as_array().unwrap().iter().any(|u| u["email"] == "admin@test.example"), "{users}");
    let nobody = t.token_with(&["journey:session:view"], &[]).await;
    for path in ["/api/v2/routing/queues", "/api/v2/routing/wrapupcodes", "/api/v2/users"] {
        let (status, _) = t.get_as(&nobody, path).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, body) = t.get("/api/v2/routing/queues?pageSize=0").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query_parameter")));
    t.stop().await;
}
