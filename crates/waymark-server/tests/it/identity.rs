//! Identity over HTTP: traits link cookies to external contacts; logout starts a new customer.

use crate::harness::{Backend, TestServer};
use serde_json::json;

crate::store_tests!(
    same_email_from_two_cookies_is_one_contact,
    logout_is_a_new_customer_and_journey,
    contacts_are_found_by_name_email_phone_cookie
);

async fn identify(t: &TestServer, cookie: &str, traits: serde_json::Value) -> serde_json::Value {
    let mut ev = t.event(cookie, "https://shop.example/account");
    ev["eventName"] = json!("user_identified");
    ev["traits"] = traits;
    let (status, body) = t.post_events(&ev).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn same_email_from_two_cookies_is_one_contact(b: Backend) {
    let t = TestServer::start(b).await;
    let a = identify(
        &t,
        "laptop-cookie",
        json!({"email": {"dataType": "string", "value": "Ann@Example.com"}, "givenName": "Ann"}),
    )
    .await;
    let b2 = identify(&t, "phone-cookie", json!({"email": "ann@example.COM", "cellPhone": "+44 20 7946 0958"})).await;
    let contact = a["externalContact"]["id"].as_str().expect("linked to a contact").to_string();
    assert_eq!(b2["externalContact"]["id"], contact);
    let (status, list) = t.get(&format!("/api/v2/externalcontacts/contacts/{contact}/journey/sessions")).await;
    assert_eq!(status, 200, "{list}");
    let entities = list["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 2, "both customers' sessions: {list}");
    let customers: Vec<&str> = entities.iter().map(|s| s["customerId"].as_str().unwrap()).collect();
    assert!(customers.contains(&"laptop-cookie") && customers.contains(&"phone-cookie"));
    assert!(entities.iter().all(|s| s["externalContact"]["id"] == contact.as_str()));
    let (_, c) = t.get(&format!("/api/v2/externalcontacts/contacts/{contact}")).await;
    assert_eq!(c["firstName"], "Ann");
    assert_eq!(c["cellPhone"]["e164"], "+442079460958");

    // A third cookie that brings the phone and a new email merges nothing new but links to the same contact;
    // a cookie that links two existing contacts merges them.
    identify(&t, "tablet-cookie", json!({"email": "bob@example.com"})).await;
    let merged = identify(&t, "kiosk-cookie", json!({"email": "bob@example.com", "cellPhone": "+442079460958"})).await;
    let survivor = merged["externalContact"]["id"].as_str().unwrap().to_string();
    let (_, list) = t.get(&format!("/api/v2/externalcontacts/contacts/{survivor}/journey/sessions")).await;
    assert_eq!(list["entities"].as_array().unwrap().len(), 4, "{list}");
    t.stop().await;
}

async fn logout_is_a_new_customer_and_journey(b: Backend) {
    let t = TestServer::start(b).await;
    let a = identify(&t, "before-logout", json!({"email": "carol@example.com"})).await;
    // The tracker rotates the cookie id on logout: the same person continues as a new, anonymous customer.
    let (_, after) = t.post_events(&t.event("after-logout", "https://shop.example/")).await;
    assert_ne!(a["session"]["id"], after["session"]["id"]);
    assert!(after.get("externalContact").is_none(), "{after}");
    assert_eq!(after["authenticated"], false);
    let (_, old) = t.get("/api/v2/journey/customers/cookie/before-logout/sessions").await;
    let (_, new) = t.get("/api/v2/journey/customers/cookie/after-logout/sessions").await;
    assert_eq!(old["entities"].as_array().unwrap().len(), 1);
    assert_eq!(new["entities"].as_array().unwrap().len(), 1);
    assert_ne!(old["entities"][0]["id"], new["entities"][0]["id"]);
    t.stop().await;
}

async fn contacts_are_found_by_name_email_phone_cookie(b: Backend) {
    let t = TestServer::start(b).await;
    let a = identify(
        &t,
        "dave-cookie",
        json!({"email": "dave@example.com", "givenName": "Dave", "familyName": "Jones", "phone": "+12025550143"}),
    )
    .await;
    let id = a["externalContact"]["id"].as_str().unwrap().to_string();
    for q in ["Dave", "jones", "dave@example.com", "+12025550143", "dave-cookie", "Dave Jones"] {
        let (status, r) = t.get(&format!("/api/v2/externalcontacts/contacts?q={}", urlencode(q))).await;
        assert_eq!(status, 200);
        assert_eq!(r["entities"][0]["id"], id.as_str(), "query {q}: {r}");
    }
    let (_, none) = t.get("/api/v2/externalcontacts/contacts?q=%25").await;
    assert_eq!(none["entities"].as_array().unwrap().len(), 0, "LIKE wildcards are escaped");
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
