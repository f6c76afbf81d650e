//! Compatibility with the official Genesys Cloud Python SDK (`purecloudplatformclientv2==269.0.0`): the real
//! server on port 0 with journeys and an OAuth client, then `tests/sdk/compat.py` logs in with client
//! credentials and reads a session, its events and a contact's sessions through the SDK's own models.
//! Python and the SDK are required (`scripts/test` installs them); without them this test fails.

use crate::harness::{Backend, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

crate::store_tests!(the_official_python_sdk_reads_sessions_events_and_contact_sessions);

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn web_event(t: &TestServer, cookie: &str, name: &str, url: &str, secs_ago: i64) -> Value {
    json!({
        "customerCookieId": cookie,
        "eventName": name,
        "page": {"url": url, "title": "Shop"},
        "createdDate": t.now().plus_secs(-secs_ago).to_iso(),
        "userAgentString": CHROME,
    })
}

async fn post(t: &TestServer, ev: &Value) -> Value {
    let (status, body) = t.post_events(ev).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn the_official_python_sdk_reads_sessions_events_and_contact_sessions(b: Backend) {
    let t = TestServer::start(b).await;
    let cookie = "sdk-cookie-1";
    let landing = "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=winter";
    let mut first = web_event(&t, cookie, "page_viewed", landing, 30);
    first["referrerUrl"] = json!("https://www.google.com/");
    let created = first["createdDate"].as_str().expect("date").to_string();
    let r1 = post(&t, &first).await;
    let sid = r1["session"]["id"].as_str().expect("session id").to_string();
    post(&t, &web_event(&t, cookie, "page_viewed", "https://shop.example/search?q=boots", 20)).await;
    let mut identify = web_event(&t, cookie, "user_identified", "https://shop.example/account", 10);
    identify["traits"] = json!({"email": "sdk.user@example.com"});
    let r3 = post(&t, &identify).await;
    let contact = r3["externalContact"]["id"].as_str().expect("contact").to_string();
    assert_eq!(r3["session"]["id"], sid.as_str(), "one session: {r3}");
    // The same person on a second device: a second session of the contact.
    let mut other = web_event(&t, "sdk-cookie-2", "user_identified", "https://shop.example/account", 5);
    other["traits"] = json!({"email": "sdk.user@example.com"});
    let r4 = post(&t, &other).await;
    let sid2 = r4["session"]["id"].as_str().expect("session id").to_string();

    // An OAuth client holding the built-in User role.
    let (_, roles) = t.get("/api/v2/authorization/roles").await;
    let user_role = roles["entities"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["name"] == "User")
        .and_then(|r| r["id"].as_str())
        .expect("User role")
        .to_string();
    let resp = t
        .client
        .post(t.url("/api/v2/oauth/clients"))
        .bearer_auth(&t.token)
        .json(&json!({"name": "SDK compatibility", "roleIds": [user_role]}))
        .send()
        .await
        .expect("create client");
    assert_eq!(resp.status().as_u16(), 201);
    let client: Value = resp.json().await.expect("client json");
    let (client_id, secret) =
        (client["id"].as_str().expect("id").to_string(), client["secret"].as_str().expect("secret").to_string());

    let expected = json!({
        "sessionId": sid,
        "cookie": cookie,
        "contactId": contact,
        "createdDate": created,
        "eventCount": 3,
        "pageviewCount": 2,
        "browserFamily": "Chrome",
        "deviceCategory": "desktop",
        "lastPageUrl": "https://shop.example/account",
        "firstPageUrl": landing,
        "utmSource": "newsletter",
        "referrerMedium": "search",
        "searchTerms": ["boots"],
        "lastEventName": "user_identified",
        "eventNames": ["page_viewed", "page_viewed", "user_identified"],
        "contactSessionIds": [sid, sid2],
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).expect("write expectations");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/compat.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .arg(&t.base)
        .arg(&client_id)
        .arg(&secret)
        .arg(&expected_path)
        // Keep the SDK's config-file reader and watcher away from any real ~/.genesyscloudpython.
        .env("HOME", dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the SDK script did not finish within 240 s")
        .expect("cannot run python3: the SDK compatibility test needs python3 and purecloudplatformclientv2==269.0.0");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK compatibility failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("all SDK compatibility checks passed"), "{stdout}");
    t.stop().await;
}
