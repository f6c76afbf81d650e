//! Access control over HTTP: tokens, permissions, organisations, divisions.

use crate::harness::{Backend, TestServer};

crate::store_tests!(tokens_and_permissions_are_enforced, responses_leave_out_what_the_caller_may_not_see);

async fn tokens_and_permissions_are_enforced(b: Backend) {
    let t = TestServer::start(b).await;
    let (_, ev) = t.post_events(&t.event("cookie-auth", "https://shop.example/")).await;
    let sid = ev["session"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/journey/sessions/{sid}");

    let r = t.client.get(t.url(&path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], "unauthenticated");
    let (s, v) = t.get_as("wm_0123456789abcdef_nope", &path).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_token")));
    let forged = format!("{}x", t.token);
    assert_eq!(t.get_as(&forged, &path).await.0, 401);

    // Either permission reads one session.
    let viewer = t.token_with(&["journey:session:view"], &[]).await;
    assert_eq!(t.get_as(&viewer, &path).await.0, 200);
    let contact_viewer = t.token_with(&["externalContacts:session:view"], &[]).await;
    assert_eq!(t.get_as(&contact_viewer, &path).await.0, 200);
    // Events need journey:event:view; the 403 names it.
    let (s, v) = t.get_as(&viewer, &format!("{path}/events")).await;
    assert_eq!(s, 403);
    assert!(v["message"].as_str().unwrap().contains("journey:event:view"), "{v}");
    let nothing = t.token_with(&[], &[]).await;
    assert_eq!(t.get_as(&nothing, &path).await.0, 403);

    // Another organisation's ids look exactly like absent ones.
    let other = TestServer::start(b).await;
    let (s1, v1) = other.get(&path).await;
    let (s2, v2) = other.get(&format!("/api/v2/journey/sessions/{}", uuid::Uuid::now_v7())).await;
    assert_eq!((s1, &v1), (s2, &v2));
    assert_eq!(s1, 404);
    other.stop().await;
    t.stop().await;
}

async fn responses_leave_out_what_the_caller_may_not_see(b: Backend) {
    let t = TestServer::start(b).await;
    let (_, ev) = t.post_events(&t.event("cookie-div", "https://shop.example/")).await;
    let sid = ev["session"]["id"].as_str().unwrap().to_string();
    // A caller limited to another division does not see a session without divisions? It does: sessions
    // without divisions belong to the whole organisation.
    let limited = t.token_with(&["journey:session:view"], &["north"]).await;
    assert_eq!(t.get_as(&limited, &format!("/api/v2/journey/sessions/{sid}")).await.0, 200);
    t.stop().await;
}
