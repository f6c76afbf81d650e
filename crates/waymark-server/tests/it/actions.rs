//! Action maps over HTTP: CRUD with permissions and versions, offers decided on events and delivered by the
//! ping, offer states reported to `actionevent`, and every decision on the journey.

use crate::harness::{Backend, ORIGIN, TestServer};
use serde_json::{Value, json};

crate::store_tests!(
    action_maps_crud_follows_genesys_with_permissions_and_versions,
    an_offer_is_decided_delivered_and_answered_on_the_journey,
    blocked_offers_say_why,
    actionevent_rejects_bad_input_and_other_deployments,
    the_tracker_script_is_served_with_caching_and_gzip,
    outcome_quantile_triggers_use_the_live_scores,
);

impl TestServer {
    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut rb = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Create an action map as the admin; returns its JSON.
    pub async fn create_action_map(&self, body: &Value) -> Value {
        let (status, v) = self.send(reqwest::Method::POST, "/api/v2/journey/actionmaps", &self.token, Some(body)).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn ping(&self, cookie: &str, url: &str) -> (u16, Value) {
        let path = format!("/api/v2/journey/deployments/{}/customers/{cookie}/ping", self.deployment);
        let r = {
            let dl: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
            self.client.get(self.url(&format!("{path}?dl={dl}"))).header("origin", ORIGIN).send().await.expect("ping")
        };
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn action_event(&self, body: &Value) -> (u16, Value) {
        let path = format!("/api/v2/journey/deployments/{}/actionevent", self.deployment);
        let r = self.client.post(self.url(&path)).header("origin", ORIGIN).json(body).send().await.expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The session's `WebActionEvent`s as (state, map name, blocked reason).
    pub async fn action_events(&self, session: &str) -> Vec<(String, String, Option<String>)> {
        let (status, evs) = self
            .get(&format!("/api/v2/journey/sessions/{session}/events?eventType=com.genesys.journey.WebActionEvent"))
            .await;
        assert_eq!(status, 200, "{evs}");
        evs["entities"]
            .as_array()
            .expect("entities")
            .iter()
            .map(|e| {
                let a = &e["webActionEvent"];
                (
                    a["action"]["state"].as_str().unwrap_or("").to_string(),
                    a["actionMap"]["displayName"].as_str().unwrap_or("").to_string(),
                    a["blockedReason"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

fn checkout_chat() -> Value {
    json!({
        "displayName": "Checkout help",
        "triggerWithEventConditions": [{"key": "page.pathname", "values": ["/checkout"], "operator": "startsWith",
            "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
        "activation": {"type": "immediate"},
        "weight": 3,
        "action": {"mediaType": "webchat", "webMessagingOfferFields": {"offerText": "Need a hand with your order?"}}
    })
}

async fn action_maps_crud_follows_genesys_with_permissions_and_versions(b: Backend) {
    use reqwest::Method;
    let t = TestServer::start(b).await;
    let created = t.create_action_map(&checkout_chat()).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["version"], 1);
    assert_eq!(created["isActive"], true);
    assert_eq!(created["selfUri"], format!("/api/v2/journey/actionmaps/{id}"));
    assert!(created["createdDate"].as_str().unwrap().ends_with('Z'));
    assert!(!created.to_string().contains("null"));

    let (status, list) = t.get("/api/v2/journey/actionmaps?pageSize=10").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["pageCount"], 1);
    assert_eq!(list["entities"][0]["id"], id.as_str());

    // PATCH needs the current version; a stale one conflicts.
    let path = format!("/api/v2/journey/actionmaps/{id}");
    let (status, v) = t.send(Method::PATCH, &path, &t.token, Some(&json!({"isActive": false}))).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("missing_field")), "{v}");
    let (status, v) =
        t.send(Method::PATCH, &path, &t.token, Some(&json!({"version": 1, "isActive": false, "weight": 1}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["version"].as_i64(), v["isActive"].as_bool(), v["weight"].as_i64()), (Some(2), Some(false), Some(1)));
    assert_eq!(v["displayName"], "Checkout help", "fields not sent are kept");
    let (status, v) = t.send(Method::PATCH, &path, &t.token, Some(&json!({"version": 1, "weight": 2}))).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("conflict")));
    let (status, v) = t.send(Method::PATCH, &path, &t.token, Some(&json!({"version": 2, "weight": 7}))).await;
    assert_eq!((status, v["details"][0]["fieldName"].as_str()), (400, Some("weight")), "{v}");

    // Bad input names the field; duplicate names conflict.
    let (status, v) = t
        .send(
            Method::POST,
            "/api/v2/journey/actionmaps",
            &t.token,
            Some(&json!({"displayName": "x", "action": {"mediaType": "webchat"}})),
        )
        .await;
    assert_eq!((status, v["details"][0]["fieldName"].as_str()), (400, Some("triggerWithSegments")), "{v}");
    let (status, _) = t.send(Method::POST, "/api/v2/journey/actionmaps", &t.token, Some(&checkout_chat())).await;
    assert_eq!(status, 409);

    // Permissions: view only can read, not write; nothing without view.
    let viewer = t.token_with(&["journey:actionmap:view"], &[]).await;
    assert_eq!(t.get_as(&viewer, &path).await.0, 200);
    let (status, v) = t.send(Method::DELETE, &path, &viewer, None).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("missing_permission")));
    let nobody = t.token_with(&["journey:session:view"], &[]).await;
    assert_eq!(t.get_as(&nobody, "/api/v2/journey/actionmaps").await.0, 403);
    let editor = t.token_with(&["journey:actionmap:edit"], &[]).await;
    let (status, _) = t.send(Method::POST, "/api/v2/journey/actionmaps", &editor, Some(&checkout_chat())).await;
    assert_eq!(status, 403);

    let (status, _) = t.send(Method::DELETE, &path, &t.token, None).await;
    assert_eq!(status, 204);
    assert_eq!(t.get(&path).await.0, 404);
    assert_eq!(t.send(Method::DELETE, &path, &t.token, None).await.0, 404);
    t.stop().await;
}

async fn an_offer_is_decided_delivered_and_answered_on_the_journey(b: Backend) {
    let t = TestServer::start(b).await;
    let map = t.create_action_map(&checkout_chat()).await;
    let (status, body) = t.post_events(&t.event("cookie-offer", "https://shop.example/home")).await;
    assert_eq!(status, 200, "{body}");
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    let (_, ping) = t.ping("cookie-offer", "https://shop.example/home").await;
    assert_eq!(ping["actions"], json!([]), "no trigger yet: {ping}");
    assert_eq!(ping["pollIntervalMilliseconds"], 5000);

    t.post_events(&t.event("cookie-offer", "https://shop.example/checkout/cart")).await;
    let (status, ping) = t.ping("cookie-offer", "https://shop.example/checkout/cart").await;
    assert_eq!(status, 200, "{ping}");
    let action = &ping["actions"][0];
    assert_eq!(action["mediaType"], "webchat");
    assert_eq!(action["actionMapId"], map["id"]);
    assert_eq!(action["actionMapVersion"], 1);
    assert_eq!(action["sessionId"], sid.as_str());
    assert_eq!(action["customerId"], "cookie-offer");
    assert_eq!(action["customerIdType"], "cookie");
    assert_eq!(action["webMessagingOfferProperties"]["offerText"], "Need a hand with your order?");
    let action_id = action["id"].as_str().unwrap().to_string();

    let report = |state: &str| json!({"sessionId": sid, "actionId": action_id, "actionState": state});
    assert_eq!(t.action_event(&report("offered")).await.0, 204);
    // Once offered, the ping no longer carries it.
    let (_, ping) = t.ping("cookie-offer", "https://shop.example/checkout/cart").await;
    assert_eq!(ping["actions"], json!([]));
    // A retry is harmless; an impossible transition is refused.
    assert_eq!(t.action_event(&report("offered")).await.0, 204);
    assert_eq!(t.action_event(&report("accepted")).await.0, 204);
    let (status, v) = t.action_event(&report("rejected")).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("invalid_transition")), "{v}");

    let events = t.action_events(&sid).await;
    let states: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(states, ["qualified", "offered", "accepted"], "{events:?}");
    assert!(events.iter().all(|e| e.1 == "Checkout help" && e.2.is_none()));
    let (_, evs) = t.get(&format!("/api/v2/journey/sessions/{sid}/events")).await;
    let accepted = evs["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["webActionEvent"]["action"]["state"] == "accepted")
        .unwrap();
    assert!(accepted["webActionEvent"]["timeToDisposition"].is_i64());
    assert_eq!(accepted["webActionEvent"]["action"]["prompt"], "Need a hand with your order?");
    assert_eq!(accepted["session"]["id"], sid.as_str());

    // The accepted chat started a web chat conversation in the same customer's journey.
    let (status, sessions) = t.get("/api/v2/journey/customers/cookie/cookie-offer/sessions").await;
    assert_eq!(status, 200, "{sessions}");
    let chat = sessions["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "conversation")
        .unwrap_or_else(|| panic!("no conversation session: {sessions}"));
    assert_eq!(chat["conversation"]["id"], action_id.as_str(), "{chat}");
    assert_eq!(chat["customerId"], "cookie-offer");
    assert_eq!(chat["originatingDirection"], "Inbound");
    assert_eq!(chat["conversationChannels"][0]["type"], "Webchat", "{chat}");
    t.stop().await;
}

async fn blocked_offers_say_why(b: Backend) {
    let t = TestServer::start(b).await;
    let mut url_bound = checkout_chat();
    url_bound["displayName"] = json!("Pay page only");
    url_bound["pageUrlConditions"] = json!([{"values": ["/checkout/pay"], "operator": "containsAny"}]);
    t.create_action_map(&url_bound).await;
    let mut content = json!({
        "displayName": "Free shipping",
        "triggerWithEventConditions": [{"key": "searchQuery", "values": ["shoes"], "operator": "containsAny",
            "streamType": "Web", "sessionType": "web"}],
        "weight": 1,
        "action": {"mediaType": "contentOffer", "contentOffer": {"title": "Free shipping", "headline": "Today only",
            "body": "On all shoes.", "displayMode": "Overlay", "layoutMode": "TextOnly",
            "callToAction": {"text": "Shop now", "url": "https://shop.example/shoes", "target": "Self"}}}
    });
    let created = t.create_action_map(&content).await;
    content["version"] = created["version"].clone();

    let (_, body) = t.post_events(&t.event("cookie-block", "https://shop.example/search?q=shoes")).await;
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    let (_, ping) = t.ping("cookie-block", "https://shop.example/search?q=shoes").await;
    assert_eq!(ping["actions"][0]["contentOfferProperties"]["callToAction"]["text"], "Shop now", "{ping}");
    assert_eq!(ping["actions"][0]["contentOfferProperties"]["headline"], "Today only");
    // The chat map triggers on /checkout but the page condition wants /checkout/pay; and an offer is open.
    t.post_events(&t.event("cookie-block", "https://shop.example/checkout/cart")).await;
    let events = t.action_events(&sid).await;
    assert!(events.contains(&("qualified".into(), "Free shipping".into(), None)), "{events:?}");
    assert!(
        events.contains(&("qualified".into(), "Pay page only".into(), Some("pageUrlCondition".into()))),
        "{events:?}"
    );
    t.post_events(&t.event("cookie-block", "https://shop.example/checkout/pay")).await;
    let events = t.action_events(&sid).await;
    assert!(events.contains(&("qualified".into(), "Pay page only".into(), Some("existingOffer".into()))), "{events:?}");
    t.stop().await;
}

async fn actionevent_rejects_bad_input_and_other_deployments(b: Backend) {
    let t = TestServer::start(b).await;
    let sid = uuid::Uuid::now_v7().to_string();
    let cases = [
        (json!({"actionId": "a", "actionState": "offered"}), 400, "missing_field"),
        (json!({"sessionId": "nope", "actionId": "a", "actionState": "offered"}), 400, "invalid_field"),
        (json!({"sessionId": sid, "actionId": "a", "actionState": "loved"}), 400, "invalid_field"),
        (json!({"sessionId": sid, "actionId": "a", "actionState": "offered"}), 404, "not_found"),
    ];
    for (body, status, code) in cases {
        let (s, v) = t.action_event(&body).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let r = t
        .client
        .post(t.url(&format!("/api/v2/journey/deployments/{}/actionevent", t.deployment)))
        .header("origin", "https://evil.example")
        .json(&json!({"sessionId": sid, "actionId": "a", "actionState": "offered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = t
        .client
        .post(t.url(&format!("/api/v2/journey/deployments/{}/actionevent", uuid::Uuid::now_v7())))
        .json(&json!({"sessionId": sid, "actionId": "a", "actionState": "offered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    t.stop().await;
}

async fn the_tracker_script_is_served_with_caching_and_gzip(b: Backend) {
    let t = TestServer::start(b).await;
    let r = t.client.get(t.url("/sdk/waymark.js")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/javascript; charset=utf-8");
    assert!(h["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = h["etag"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    assert!(body.contains("'forms:track'") && body.contains("attachShadow"), "the real tracker is served");
    let r = t.client.get(t.url("/sdk/waymark.js")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let r = t.client.get(t.url("/sdk/waymark.js")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap().len();
    assert!(gz < 10_000, "the tracker stays small: {gz} bytes gzipped");
    t.stop().await;
}

/// An action map triggered by an outcome's quantile fires on the ping once the session's live score is in the
/// top of the distribution, and not while the model is still learning.
async fn outcome_quantile_triggers_use_the_live_scores(b: Backend) {
    use waymark_domain::predict::{ModelParams, OutcomeModel};
    use waymark_server::predictions::model_record_id;
    use waymark_store::{Record, RecordKind};
    let t = TestServer::start(b).await;
    let outcome = json!({"displayName": "Purchase", "isActive": true,
        "journey": {"patterns": [{"criteria": [{"key": "page.url", "values": ["/order/complete"], "operator": "containsAll",
            "shouldIgnoreCase": true}], "count": 1, "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}]}});
    let (status, o) = t.send(reqwest::Method::POST, "/api/v2/journey/outcomes", &t.token, Some(&outcome)).await;
    assert_eq!(status, 201, "{o}");
    let outcome_id = o["id"].as_str().unwrap().to_string();
    t.create_action_map(&json!({
        "displayName": "Hot buyer",
        "triggerWithOutcomeQuantileConditions": [{"outcomeId": outcome_id, "maxQuantileThreshold": 0.5}],
        "action": {"mediaType": "contentOffer", "contentOffer": {"title": "Hot", "headline": "Just for you",
            "body": "Free shipping today.", "displayMode": "Overlay", "layoutMode": "TextOnly",
            "callToAction": {"text": "Shop now", "url": "https://shop.example/", "target": "Self"}}}
    }))
    .await;

    // While the model is learning there is no score to trigger on.
    t.post_events(&t.event("cookie-learning", "https://shop.example/p/tent")).await;
    let (_, ping) = t.ping("cookie-learning", "https://shop.example/p/tent").await;
    assert_eq!(ping["actions"], json!([]), "a learning model triggers nothing: {ping}");

    // A trained model under which every earlier session scored near zero: any live score is in the top quantiles.
    let mut model = OutcomeModel::new(ModelParams::default());
    model.sessions = 1_000;
    model.positives = 100;
    for _ in 0..1_000 {
        model.quantiles.insert(0.0);
    }
    assert!(!model.learning());
    let now = t.now();
    let record = Record::new(
        RecordKind::Model,
        Some(t.org),
        model_record_id(&outcome_id),
        "Purchase",
        serde_json::to_value(&model).unwrap(),
        now,
    );
    t.state.store.put_record(&record, None, false).await.expect("model");
    t.state.predictions.forget(t.org);

    t.post_events(&t.event("cookie-hot", "https://shop.example/p/tent")).await;
    let (status, ping) = t.ping("cookie-hot", "https://shop.example/p/tent").await;
    assert_eq!(status, 200, "{ping}");
    assert_eq!(ping["actions"][0]["contentOfferProperties"]["headline"], "Just for you", "{ping}");
    t.stop().await;
}
