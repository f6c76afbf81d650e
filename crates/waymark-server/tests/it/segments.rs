//! Segments and outcomes over HTTP: Genesys CRUD, matching on ingest, the journey and session they show on,
//! scopes, bad definitions, permissions and the per-organisation limit.

use crate::harness::{Backend, TestServer};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use waymark_domain::segment::{MAX_SEGMENTS, parse_segment_request};
use waymark_server::bootstrap::{BootstrapRequest, bootstrap};
use waymark_store::{Record, RecordKind};

crate::store_tests!(
    assignments_and_outcomes_appear_on_the_journey_in_order,
    session_segments_end_with_the_session_and_customer_segments_persist,
    crud_follows_genesys_shapes_versions_and_organisations,
    invalid_definitions_are_refused_with_the_field,
    permissions_are_enforced_and_named,
    at_most_500_segments_per_organisation,
);

/// Send `method` with the admin token (or `token`) and a JSON body.
async fn send(t: &TestServer, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = t.client.request(method, t.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(t: &TestServer, path: &str, body: Value) -> (u16, Value) {
    send(t, &t.token, reqwest::Method::POST, path, Some(body)).await
}

fn pathname_pattern(op: &str, value: &str, count: u32) -> Value {
    json!({"patterns": [{
        "criteria": [{"key": "page.pathname", "values": [value], "operator": op, "shouldIgnoreCase": true}],
        "count": count, "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"
    }]})
}

async fn create_segment(t: &TestServer, body: Value) -> String {
    let (s, v) = post(t, "/api/v2/journey/segments", body).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().expect("id").to_string()
}

async fn events_of(t: &TestServer, sid: &str) -> Vec<Value> {
    let (s, v) = t.get(&format!("/api/v2/journey/sessions/{sid}/events")).await;
    assert_eq!(s, 200, "{v}");
    v["entities"].as_array().expect("entities").clone()
}

/// `eventType` short names and the segment/outcome each derived event names.
fn timeline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["eventType"].as_str().unwrap_or("") {
            "com.genesys.journey.WebEvent" => {
                format!("web:{}", e["webEvent"]["page"]["pathname"].as_str().unwrap_or(""))
            }
            "com.genesys.journey.SegmentAssignmentEvent" => {
                format!("segment:{}", e["segmentAssignmentEvent"]["displayName"].as_str().unwrap_or(""))
            }
            "com.genesys.journey.OutcomeAchievedEvent" => {
                format!("outcome:{}", e["outcomeAchievedEvent"]["outcome"]["displayName"].as_str().unwrap_or(""))
            }
            other => other.to_string(),
        })
        .collect()
}

async fn assignments_and_outcomes_appear_on_the_journey_in_order(b: Backend) {
    let t = TestServer::start(b).await;
    let shoes = create_segment(
        &t,
        json!({"displayName": "Shoe shopper", "color": "#AA0000", "journey": pathname_pattern("startsWith", "/SHOES", 2)}),
    )
    .await;
    let desktop = create_segment(
        &t,
        json!({"displayName": "Desktop visitor", "context": {"patterns": [{"criteria": [
            {"key": "device.category", "values": ["desktop"], "operator": "equal", "shouldIgnoreCase": false, "entityType": "visit"}
        ]}]}}),
    )
    .await;
    create_segment(
        &t,
        json!({"displayName": "Never", "isActive": false, "journey": pathname_pattern("startsWith", "/", 1)}),
    )
    .await;
    let (s, order) = post(
        &t,
        "/api/v2/journey/outcomes",
        json!({"displayName": "Order placed", "isPositive": true,
               "journey": pathname_pattern("startsWith", "/order/complete", 1),
               "associatedValueField": {"dataType": "Number", "name": "attributes.total.value"}}),
    )
    .await;
    assert_eq!(s, 201, "{order}");
    let (_, contact_ev) = {
        let mut e = t.event("seg-cookie", "https://shop.example/");
        e["traits"] = json!({"email": "shopper@example.com"});
        t.post_events(&e).await
    };
    let contact = contact_ev["externalContact"]["id"].as_str().expect("contact").to_string();

    // An agent is watching this customer live.
    let mut live = t.live_stream(&format!("contactId={contact}")).await;

    let (_, first) = t.post_events(&t.event("seg-cookie", "https://shop.example/shoes/red")).await;
    let (_, second) = t.post_events(&t.event("seg-cookie", "https://shop.example/shoes/blue")).await;
    let mut done = t.event("seg-cookie", "https://shop.example/order/complete?id=7");
    done["attributes"] = json!({"total": {"dataType": "number", "value": 99.5}});
    let (status, _) = t.post_events(&done).await;
    assert_eq!(status, 200);
    t.post_events(&t.event("seg-cookie", "https://shop.example/shoes/green")).await;

    let sid = first["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(second["session"]["id"].as_str(), Some(sid.as_str()));
    let events = events_of(&t, &sid).await;
    assert_eq!(
        timeline(&events),
        [
            "web:/",
            "segment:Desktop visitor",
            "web:/shoes/red",
            "web:/shoes/blue",
            "segment:Shoe shopper",
            "web:/order/complete",
            "outcome:Order placed",
            "web:/shoes/green",
        ]
    );
    // A derived event names its segment like Genesys does and points at the event that caused it.
    let seg_event = &events[4];
    assert_eq!(seg_event["segmentAssignmentEvent"]["segment"]["id"], shoes.as_str());
    assert_eq!(seg_event["segmentAssignmentEvent"]["segment"]["selfUri"], format!("/api/v2/journey/segments/{shoes}"));
    assert_eq!(seg_event["segmentAssignmentEvent"]["color"], "#AA0000");
    assert_eq!(seg_event["correlationId"], events[3]["id"]);
    assert_eq!(seg_event["session"]["id"], sid.as_str());
    assert_eq!(events[6]["outcomeAchievedEvent"]["value"], 99.5);
    assert_eq!(events[6]["outcomeAchievedEvent"]["outcome"]["version"], 1);

    let (_, session) = t.get(&format!("/api/v2/journey/sessions/{sid}")).await;
    let assigned: Vec<&str> = session["segmentAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["segment"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(assigned, [desktop.as_str(), shoes.as_str()], "assignment order");
    assert!(session["segmentAssignments"][0]["assignedDate"].is_string());
    assert_eq!(session["outcomeAchievements"][0]["outcome"]["id"], order["id"]);

    // The event filter works on derived events too.
    let (_, only) = t
        .get(&format!("/api/v2/journey/sessions/{sid}/events?eventType=com.genesys.journey.SegmentAssignmentEvent"))
        .await;
    assert_eq!(only["entities"].as_array().unwrap().len(), 2);

    // The agent heard the assignment live.
    let mut heard = false;
    for _ in 0..40 {
        let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(5), live.next()).await else { break };
        if e.event == "event" && e.data.contains("SegmentAssignmentEvent") && e.data.contains("Shoe shopper") {
            heard = true;
            break;
        }
    }
    assert!(heard, "the segment assignment reached the live stream");

    // Editing the pattern applies from then on: a new session needs /boots now, /shoes no longer counts.
    let (s, patched) = send(
        &t,
        &t.token,
        reqwest::Method::PATCH,
        &format!("/api/v2/journey/segments/{shoes}"),
        Some(json!({"version": 1, "journey": pathname_pattern("startsWith", "/boots", 1)})),
    )
    .await;
    assert_eq!((s, patched["version"].as_i64()), (200, Some(2)), "{patched}");
    let (_, other) = t.post_events(&t.event("seg-cookie-2", "https://shop.example/shoes/a")).await;
    t.post_events(&t.event("seg-cookie-2", "https://shop.example/shoes/b")).await;
    t.post_events(&t.event("seg-cookie-2", "https://shop.example/boots/a")).await;
    let other_sid = other["session"]["id"].as_str().unwrap();
    assert_eq!(
        timeline(&events_of(&t, other_sid).await),
        ["web:/shoes/a", "segment:Desktop visitor", "web:/shoes/b", "web:/boots/a", "segment:Shoe shopper"]
    );
    t.stop().await;
}

async fn session_segments_end_with_the_session_and_customer_segments_persist(b: Backend) {
    let t = TestServer::start(b).await;
    create_segment(&t, json!({"displayName": "Account (visit)", "journey": pathname_pattern("equal", "/account", 1)}))
        .await;
    create_segment(
        &t,
        json!({"displayName": "Account (customer)", "scope": "Customer", "assignmentExpirationDays": 30,
               "journey": pathname_pattern("equal", "/account", 1)}),
    )
    .await;
    let (_, a) = t.post_events(&t.event("scope-cookie", "https://shop.example/account")).await;
    let s1 = a["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        timeline(&events_of(&t, &s1).await),
        ["web:/account", "segment:Account (visit)", "segment:Account (customer)"]
    );
    // A new campaign starts a new session for the same customer.
    let (_, b2) = t
        .post_events(&t.event("scope-cookie", "https://shop.example/account?utm_source=news&utm_campaign=winter"))
        .await;
    let s2 = b2["session"]["id"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    assert_eq!(timeline(&events_of(&t, &s2).await), ["web:/account", "segment:Account (visit)"]);
    let (_, session2) = t.get(&format!("/api/v2/journey/sessions/{s2}")).await;
    assert_eq!(session2["segmentAssignments"].as_array().unwrap().len(), 1);
    let (_, seg_event) = t.get(&format!("/api/v2/journey/sessions/{s1}/events")).await;
    assert_eq!(seg_event["entities"][2]["segmentAssignmentEvent"]["scope"], "Customer");
    t.stop().await;
}

async fn crud_follows_genesys_shapes_versions_and_organisations(b: Backend) {
    let t = TestServer::start(b).await;
    let mut ids = Vec::new();
    for name in ["Charlie", "alpha", "Bravo"] {
        ids.push(create_segment(&t, json!({"displayName": name, "journey": pathname_pattern("equal", "/x", 1)})).await);
    }
    let (s, v) = t.get(&format!("/api/v2/journey/segments/{}", ids[0])).await;
    assert_eq!(s, 200);
    for f in [
        "id",
        "isActive",
        "displayName",
        "version",
        "color",
        "scope",
        "shouldDisplayToAgent",
        "context",
        "journey",
        "selfUri",
        "createdDate",
        "modifiedDate",
    ] {
        assert!(v.get(f).is_some(), "JourneySegment has {f}: {v}");
    }
    assert_eq!((v["scope"].as_str(), v["version"].as_i64()), (Some("Session"), Some(1)));
    assert!(!v.to_string().contains("null"));

    let (s, page) = t.get("/api/v2/journey/segments?pageSize=2").await;
    assert_eq!(s, 200, "{page}");
    let names: Vec<&str> =
        page["entities"].as_array().unwrap().iter().map(|e| e["displayName"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "Bravo"]);
    assert_eq!(
        (page["pageSize"].as_u64(), page["pageNumber"].as_u64(), page["total"].as_u64(), page["pageCount"].as_u64()),
        (Some(2), Some(1), Some(3), Some(2))
    );
    assert_eq!(page["nextUri"], "/api/v2/journey/segments?pageSize=2&pageNumber=2");
    let (_, page2) = t.get("/api/v2/journey/segments?pageSize=2&pageNumber=2&sortBy=-displayName").await;
    assert_eq!(page2["entities"][0]["displayName"], "alpha");
    let (_, by_id) = t.get(&format!("/api/v2/journey/segments?segmentIds={},{}", ids[2], ids[0])).await;
    assert_eq!(by_id["total"], 2);
    assert_eq!(by_id["entities"][0]["displayName"], "Bravo");
    let (_, q) = t.get("/api/v2/journey/segments?queryFields=displayName&queryValue=RAV").await;
    assert_eq!(q["total"], 1);
    let (s, bad) = t.get("/api/v2/journey/segments?sortBy=colour").await;
    assert_eq!((s, bad["code"].as_str()), (400, Some("invalid_query_parameter")));

    // PATCH: version checks, a duplicate name is a conflict, and the change is visible.
    let path = format!("/api/v2/journey/segments/{}", ids[0]);
    let (s, p) =
        send(&t, &t.token, reqwest::Method::PATCH, &path, Some(json!({"version": 1, "isActive": false}))).await;
    assert_eq!((s, p["version"].as_i64(), p["isActive"].as_bool()), (200, Some(2), Some(false)), "{p}");
    let (s, stale) =
        send(&t, &t.token, reqwest::Method::PATCH, &path, Some(json!({"version": 1, "color": "#000"}))).await;
    assert_eq!((s, stale["code"].as_str()), (409, Some("conflict")), "{stale}");
    let (s, dup) = send(&t, &t.token, reqwest::Method::PATCH, &path, Some(json!({"displayName": "Bravo"}))).await;
    assert_eq!((s, dup["code"].as_str()), (409, Some("conflict")), "{dup}");
    let (_, active) = t.get("/api/v2/journey/segments?isActive=false").await;
    assert_eq!(active["total"], 1);

    // Another organisation on the same server sees none of it: 404 exactly like an absent id, for every verb.
    let other = bootstrap(
        t.state.store.as_ref(),
        &BootstrapRequest {
            org_name: "Other".into(),
            admin_email: "admin@other.example".into(),
            admin_password: None,
            domain: "other.example".into(),
        },
        t.now(),
    )
    .await
    .expect("second organisation");
    let absent = format!("/api/v2/journey/segments/{}", uuid::Uuid::now_v7());
    for (method, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PATCH, Some(json!({"color": "#000"}))),
        (reqwest::Method::DELETE, None),
    ] {
        let (s1, v1) = send(&t, &other.token, method.clone(), &path, body.clone()).await;
        let (s2, v2) = send(&t, &other.token, method.clone(), &absent, body).await;
        assert_eq!((s1, &v1), (s2, &v2), "{method}");
        assert_eq!(s1, 404, "{method}");
    }
    let (_, theirs) = send(&t, &other.token, reqwest::Method::GET, "/api/v2/journey/segments", None).await;
    assert_eq!(theirs["total"], 0);
    assert_eq!(t.get(&path).await.1["version"], 2, "untouched by the other organisation");

    let (s, _) = send(&t, &t.token, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    assert_eq!(t.get(&path).await.0, 404);
    assert_eq!(send(&t, &t.token, reqwest::Method::DELETE, &path, None).await.0, 404);

    // Outcomes have the same shapes.
    let (s, o) = post(
        &t,
        "/api/v2/journey/outcomes",
        json!({"displayName": "Signed up", "journey": pathname_pattern("equal", "/welcome", 1)}),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    assert_eq!((o["isPositive"].as_bool(), o["isActive"].as_bool()), (Some(true), Some(true)));
    let (_, list) = t.get("/api/v2/journey/outcomes").await;
    assert_eq!(list["total"], 1);
    let opath = format!("/api/v2/journey/outcomes/{}", o["id"].as_str().unwrap());
    let (s, p) =
        send(&t, &t.token, reqwest::Method::PATCH, &opath, Some(json!({"version": 1, "isPositive": false}))).await;
    assert_eq!((s, p["isPositive"].as_bool()), (200, Some(false)));
    assert_eq!(send(&t, &t.token, reqwest::Method::DELETE, &opath, None).await.0, 204);
    t.stop().await;
}

async fn invalid_definitions_are_refused_with_the_field(b: Backend) {
    let t = TestServer::start(b).await;
    let mut bad = json!({"displayName": "Bad", "journey": pathname_pattern("equal", "/x", 1)});
    bad["journey"]["patterns"][0]["criteria"] = json!([
        {"key": "page.pathname", "values": ["/x"], "operator": "equal"},
        {"key": "page.url", "values": ["x"], "operator": "resembles"}
    ]);
    let (s, v) = post(&t, "/api/v2/journey/segments", bad).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_field")), "{v}");
    assert_eq!(v["details"][0]["fieldName"], "journey.patterns[0].criteria[1].operator");
    assert!(v["message"].as_str().unwrap().contains("resembles"), "{v}");

    let (s, v) = post(&t, "/api/v2/journey/segments", json!({"journey": pathname_pattern("equal", "/x", 1)})).await;
    assert_eq!(
        (s, v["code"].as_str(), v["details"][0]["fieldName"].as_str()),
        (400, Some("missing_field"), Some("displayName"))
    );
    let (s, v) = post(
        &t,
        "/api/v2/journey/segments",
        json!({"displayName": "Ctx", "context": {"patterns": [{"criteria": [{"key": "shoeSize", "values": ["9"], "operator": "equal", "entityType": "visit"}]}]}}),
    )
    .await;
    assert_eq!((s, v["details"][0]["fieldName"].as_str()), (400, Some("context.patterns[0].criteria[0].key")), "{v}");
    let (s, v) = post(&t, "/api/v2/journey/outcomes", json!({"displayName": "No journey"})).await;
    assert_eq!((s, v["details"][0]["fieldName"].as_str()), (400, Some("journey.patterns")), "{v}");

    let r = t
        .client
        .post(t.url("/api/v2/journey/segments"))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body("{\"displayName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "malformed_json");

    // A bad PATCH changes nothing.
    let id = create_segment(&t, json!({"displayName": "Good", "journey": pathname_pattern("equal", "/x", 1)})).await;
    let path = format!("/api/v2/journey/segments/{id}");
    let (s, v) = send(
        &t,
        &t.token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"journey": {"patterns": [{"count": 0, "criteria": []}]}})),
    )
    .await;
    assert_eq!((s, v["details"][0]["fieldName"].as_str()), (400, Some("journey.patterns[0].count")), "{v}");
    assert_eq!(t.get(&path).await.1["version"], 1);
    t.stop().await;
}

async fn permissions_are_enforced_and_named(b: Backend) {
    let t = TestServer::start(b).await;
    let id =
        create_segment(&t, json!({"displayName": "Any page", "journey": pathname_pattern("startsWith", "/", 1)})).await;
    let viewer = t.token_with(&["journey:segment:view"], &[]).await;
    let path = format!("/api/v2/journey/segments/{id}");
    assert_eq!(t.get_as(&viewer, &path).await.0, 200);
    assert_eq!(t.get_as(&viewer, "/api/v2/journey/segments").await.0, 200);
    let body = json!({"displayName": "X", "journey": pathname_pattern("equal", "/x", 1)});
    for (method, p, body, perm) in [
        (reqwest::Method::POST, "/api/v2/journey/segments".to_string(), Some(body.clone()), "journey:segment:add"),
        (reqwest::Method::PATCH, path.clone(), Some(json!({"color": "#000"})), "journey:segment:edit"),
        (reqwest::Method::DELETE, path.clone(), None, "journey:segment:delete"),
        (reqwest::Method::GET, "/api/v2/journey/outcomes".to_string(), None, "journey:outcome:view"),
        (reqwest::Method::POST, "/api/v2/journey/outcomes".to_string(), Some(body.clone()), "journey:outcome:add"),
    ] {
        let (s, v) = send(&t, &viewer, method.clone(), &p, body).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("missing_permission")), "{method} {p}: {v}");
        assert!(v["message"].as_str().unwrap().contains(perm), "{method} {p}: {v}");
    }
    let nobody = t.token_with(&[], &[]).await;
    let (s, v) = t.get_as(&nobody, "/api/v2/journey/segments").await;
    assert_eq!(s, 403);
    assert!(v["message"].as_str().unwrap().contains("journey:segment:view"));
    assert_eq!(t.client.get(t.url("/api/v2/journey/segments")).send().await.unwrap().status().as_u16(), 401);

    // An agent without journey:segment:view sees the journey but not the segments on it.
    let (_, ev) = t.post_events(&t.event("perm-cookie", "https://shop.example/")).await;
    let sid = ev["session"]["id"].as_str().unwrap();
    let agent = t.token_with(&["journey:event:view", "journey:session:view"], &[]).await;
    let (_, evs) = t.get_as(&agent, &format!("/api/v2/journey/sessions/{sid}/events")).await;
    assert_eq!(timeline(evs["entities"].as_array().unwrap()), ["web:/"]);
    let (_, s) = t.get_as(&agent, &format!("/api/v2/journey/sessions/{sid}")).await;
    assert!(s.get("segmentAssignments").is_none(), "{s}");
    assert_eq!(timeline(&events_of(&t, sid).await), ["web:/", "segment:Any page"]);
    t.stop().await;
}

async fn at_most_500_segments_per_organisation(b: Backend) {
    let t = TestServer::start(b).await;
    // Fill up to one below the limit directly in the store (500 HTTP round trips add nothing to the test).
    let now = t.now();
    let template = json!({"displayName": "x", "journey": pathname_pattern("equal", "/x", 1)});
    for i in 0..MAX_SEGMENTS - 1 {
        let def = parse_segment_request(&template).unwrap().created(uuid::Uuid::now_v7().to_string(), now);
        let mut def = def;
        def.display_name = format!("Segment {i}");
        let rec = Record::new(
            RecordKind::Segment,
            Some(t.org),
            def.id.clone(),
            def.display_name.clone(),
            serde_json::to_value(&def).unwrap(),
            now,
        );
        t.state.store.put_record(&rec, None, true).await.unwrap();
    }
    let (s, _) = post(
        &t,
        "/api/v2/journey/segments",
        json!({"displayName": "Number 500", "journey": pathname_pattern("equal", "/y", 1)}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = post(
        &t,
        "/api/v2/journey/segments",
        json!({"displayName": "Number 501", "journey": pathname_pattern("equal", "/y", 1)}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("limit_reached")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("500"), "{v}");
    let (_, list) = t.get("/api/v2/journey/segments?pageSize=200").await;
    assert_eq!((list["total"].as_u64(), list["pageCount"].as_u64()), (Some(500), Some(3)));

    // All 500 are matched on every event; the one with a matching pattern is assigned.
    let (_, ev) = t.post_events(&t.event("limit-cookie", "https://shop.example/y")).await;
    let sid = ev["session"]["id"].as_str().unwrap();
    assert_eq!(timeline(&events_of(&t, sid).await), ["web:/y", "segment:Number 500"]);
    t.stop().await;
}
