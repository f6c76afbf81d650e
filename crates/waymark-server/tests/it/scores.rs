//! Live outcome predictions: scores after every web event (read API and live push), guarded by
//! `journey:outcomeScores:view`; models trained from ended sessions by maintenance, exactly once, persisted
//! and restored.

use crate::harness::{Backend, TestServer};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use waymark_domain::predict::OutcomeModel;
use waymark_server::predictions::{Predictions, model_record_id};
use waymark_store::{Record, RecordKind};

crate::store_tests!(
    sessions_are_scored_after_every_event_and_pushed_live,
    scores_need_their_permission_and_stay_in_the_organisation,
    models_learn_from_ended_sessions_exactly_once_and_survive_a_restart,
);

/// Define an outcome the way the outcomes API stores it (Genesys `Outcome` JSON).
async fn define_outcome(t: &TestServer, name: &str, active: bool) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "id": id, "displayName": name, "isActive": active, "isPositive": true, "version": 1,
        "context": {"patterns": []},
        "journey": {"patterns": [{"criteria": [{"key": "page.url", "values": ["/order/complete"], "operator": "containsAll"}],
            "count": 1, "streamType": "Web", "sessionType": "web"}]},
        "selfUri": format!("/api/v2/journey/outcomes/{id}"),
        "createdDate": t.now(), "modifiedDate": t.now(),
    });
    let r = Record::new(RecordKind::Outcome, Some(t.org), id.clone(), name, body, t.now());
    t.state.store.put_record(&r, None, true).await.expect("outcome record");
    t.state.predictions.forget(t.org);
    id
}

async fn session_of(t: &TestServer, cookie: &str, path: &str) -> String {
    let (s, v) = t.post_events(&t.event(cookie, &format!("https://shop.example{path}"))).await;
    assert_eq!(s, 200, "{v}");
    v["session"]["id"].as_str().expect("session id").to_string()
}

async fn sessions_are_scored_after_every_event_and_pushed_live(b: Backend) {
    let t = TestServer::start(b).await;
    let purchase = define_outcome(&t, "Purchase", true).await;
    define_outcome(&t, "Retired goal", false).await;
    let sid = session_of(&t, "score-cookie", "/products/tent").await;

    let path = format!("/api/v2/journey/sessions/{sid}/outcomescores");
    let (s, v) = t.get(&path).await;
    assert_eq!(s, 200, "{v}");
    let scores = v["outcomeScores"].as_array().expect("outcomeScores");
    assert_eq!(scores.len(), 1, "only active outcomes are scored: {v}");
    let score = &scores[0];
    assert_eq!(score["outcome"]["id"], purchase.as_str());
    assert_eq!(score["outcome"]["selfUri"], format!("/api/v2/journey/outcomes/{purchase}"));
    let p = score["probability"].as_f64().expect("probability");
    assert!((0.0..=1.0).contains(&p));
    assert!(score["sessionMaxProbability"].as_f64().unwrap() >= p);
    assert!((0.0..=1.0).contains(&score["quantile"].as_f64().unwrap()));
    assert!(score["sessionMaxQuantile"].is_number());
    assert_eq!(score["learning"], true, "a new model is learning");
    assert!(score["topFeatures"].is_array());
    assert!(v["modifiedDate"].as_str().is_some_and(|d| d.ends_with('Z')));

    // A connected agent gets new scores after the next event, without asking.
    let resp = t
        .client
        .get(t.url("/api/v2/journey/live?customerCookieId=score-cookie"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = eventsource_stream::EventStream::new(resp.bytes_stream());
    let hello = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(session_of(&t, "score-cookie", "/cart").await, sid);
    let pushed = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("scores within 5 s")
            .unwrap()
            .unwrap();
        if e.event == "scores" {
            break serde_json::from_str::<Value>(&e.data).unwrap();
        }
    };
    assert_eq!(pushed["sessionId"], sid.as_str());
    assert_eq!(pushed["scores"]["outcomeScores"][0]["outcome"]["id"], purchase.as_str());

    // The read API agrees with what was pushed (the session's state after both events).
    let (_, again) = t.get(&path).await;
    assert_eq!(again["outcomeScores"][0]["probability"], pushed["scores"]["outcomeScores"][0]["probability"]);

    // A node that never saw the session (restart, another node) rebuilds the same scores from the events.
    let fresh = Predictions::new();
    let rec = t.state.store.get_session(t.org, waymark_domain::ids::SessionId::parse(&sid).unwrap()).await.unwrap();
    let rebuilt = fresh.scores(&t.state, &rec.unwrap()).await.unwrap();
    assert_eq!(rebuilt["outcomeScores"][0]["probability"], again["outcomeScores"][0]["probability"]);
    assert_eq!(
        rebuilt["outcomeScores"][0]["sessionMaxProbability"],
        again["outcomeScores"][0]["sessionMaxProbability"]
    );
    t.stop().await;
}

async fn scores_need_their_permission_and_stay_in_the_organisation(b: Backend) {
    let t = TestServer::start(b).await;
    define_outcome(&t, "Purchase", true).await;
    let sid = session_of(&t, "perm-cookie", "/").await;
    let path = format!("/api/v2/journey/sessions/{sid}/outcomescores");

    let without = t.token_with(&["journey:session:view", "journey:event:view"], &[]).await;
    let (s, v) = t.get_as(&without, &path).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("journey:outcomeScores:view"), "{v}");

    let with = t.token_with(&["journey:outcomeScores:view"], &[]).await;
    assert_eq!(t.get_as(&with, &path).await.0, 200);

    // Unknown and malformed ids are 404, never another organisation's data.
    let (s, v) = t.get(&format!("/api/v2/journey/sessions/{}/outcomescores", uuid::Uuid::now_v7())).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(t.get("/api/v2/journey/sessions/not-a-session/outcomescores").await.0, 404);
    let other = TestServer::start(b).await;
    assert_eq!(other.get(&path).await.0, 404);
    other.stop().await;
    t.stop().await;
}

async fn models_learn_from_ended_sessions_exactly_once_and_survive_a_restart(b: Backend) {
    let t = TestServer::start(b).await;
    let purchase = define_outcome(&t, "Purchase", true).await;
    for i in 0..6 {
        let cookie = format!("train-{i}");
        session_of(&t, &cookie, "/").await;
        session_of(&t, &cookie, "/products/tent").await;
    }
    // Nothing has ended yet: no model record.
    waymark_server::maintenance::run_once(&t.state).await;
    assert!(t.state.store.get_record(RecordKind::Model, &model_record_id(&purchase)).await.unwrap().is_none());

    // Twenty-one minutes later the sessions have ended; maintenance closes them and the model learns.
    t.clock.advance_secs(21 * 60);
    waymark_server::maintenance::run_once(&t.state).await;
    let rec = t.state.store.get_record(RecordKind::Model, &model_record_id(&purchase)).await.unwrap().expect("model");
    assert_eq!(rec.org, Some(t.org));
    assert_eq!(rec.version, 1);
    let model: OutcomeModel = rec.decode().unwrap();
    assert_eq!((model.sessions, model.positives), (6, 0));
    assert_eq!(model.quantiles.total(), 6);

    // Running again learns nothing twice.
    waymark_server::maintenance::run_once(&t.state).await;
    let again = t.state.store.get_record(RecordKind::Model, &model_record_id(&purchase)).await.unwrap().unwrap();
    assert_eq!(again.version, 1);

    // A session closed by the visitor's next session (new marketing source) is learned on the next run.
    let first = session_of(&t, "train-0", "/").await;
    let mut next = t.event("train-0", "https://shop.example/?utm_source=news&utm_campaign=x");
    next["referrerUrl"] = json!("https://www.google.com/");
    let (_, v) = t.post_events(&next).await;
    assert_ne!(v["session"]["id"].as_str().unwrap(), first);
    waymark_server::maintenance::run_once(&t.state).await;
    let rec = t.state.store.get_record(RecordKind::Model, &model_record_id(&purchase)).await.unwrap().unwrap();
    assert_eq!(rec.version, 2);
    assert_eq!(rec.decode::<OutcomeModel>().unwrap().sessions, 7);

    // A fresh process restores the model from its record.
    let restarted = Predictions::new();
    let outcomes = restarted.outcomes(&t.state, t.org).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].model.sessions, 7);
    t.stop().await;
}
