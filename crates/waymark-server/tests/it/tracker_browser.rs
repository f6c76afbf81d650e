//! The tracker in a real browser: headless Chromium (driven over WebDriver by chromedriver) loads a test site
//! served by the test on localhost that embeds the Waymark snippet. Page views, SPA navigation, a search, a
//! form, a custom event, identify and logout must reach the store with the right customer and session; action
//! maps fire, the offer appears (Shadow DOM, focus on its button), is answered with the keyboard, and every
//! state is on the journey. Chromium and chromedriver are required: the test fails loudly without them.

use crate::harness::{Backend, TestServer};
use axum::extract::Path;
use axum::response::Html;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use waymark_domain::deployment::Deployment;
use waymark_store::RecordKind;

crate::store_tests!(the_tracker_records_a_visit_and_answers_offers_in_chromium);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn start_browser() -> (Driver, Client) {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1200,900"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium");
    (driver, client)
}

/// The test website. Every page embeds the async snippet; the checkout page has a form; `/app` is a SPA.
async fn start_site(waymark: String, deployment: String) -> String {
    let page = move |title: &str, body: &str| {
        Html(format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>button {{ color: red !important; font-size: 40px; }} div {{ border: 5px solid lime; }}</style>
<script>
(function(w,d,n,u){{w[n]=w[n]||function(){{(w[n].q=w[n].q||[]).push(arguments)}};
var s=d.createElement('script');s.async=1;s.src=u;s.setAttribute('data-waymark-global',n);
d.head.appendChild(s)}})(window,document,'wm','{waymark}/sdk/waymark.js');
wm('init','{deployment}',{{idleAfterSeconds:0}});
wm('forms:track','form.track',{{captureFormDataOnSubmit:true}});
wm('pageview');
</script></head><body><h1>{title}</h1>{body}<div style="height:3000px">tall</div></body></html>"#
        ))
    };
    let home = page("Home", r#"<a id="search" href="/search?q=red+shoes">search</a>"#);
    let app = page("App", r#"<button id="next" onclick="history.pushState({}, '', '/app/step2')">next</button>"#);
    let search = page("Search results", "<p>3 shoes</p>");
    let checkout = page(
        "Checkout",
        r#"<form class="track" name="order" action="/thanks" method="post">
<label>Email <input id="email" name="email" type="email"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Order</button></form>"#,
    );
    let thanks = page("Thanks", "<p>thank you</p>");
    let router = axum::Router::new().route(
        "/{*path}",
        axum::routing::any(move |Path(path): Path<String>| {
            let (home, app, search, checkout, thanks) =
                (home.clone(), app.clone(), search.clone(), checkout.clone(), thanks.clone());
            async move {
                match path.split('/').next().unwrap_or("") {
                    "home" => home,
                    "app" => app,
                    "search" => search,
                    "checkout" => checkout,
                    _ => thanks,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind site");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://127.0.0.1:{}", addr.port())
}

/// Poll `f` until it returns `Some`, or fail with what was last seen.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("timed out waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn cookie_id(c: &Client) -> String {
    let v = c
        .execute("var m = document.cookie.match(/(?:^|; )_wm_customer=([^;]+)/); return m ? m[1] : null;", vec![])
        .await
        .expect("read cookie");
    v.as_str().expect("the tracker set its first-party cookie").to_string()
}

/// All web sessions and their events of a customer, sessions newest first, events in order.
async fn journey(t: &TestServer, cookie: &str) -> Vec<(Value, Vec<Value>)> {
    let mut j = all_sessions(t, cookie).await;
    j.retain(|(s, _)| s["type"] == "web");
    j
}

/// Every session (web and conversation) of a customer.
async fn all_sessions(t: &TestServer, cookie: &str) -> Vec<(Value, Vec<Value>)> {
    let (status, sessions) = t.get(&format!("/api/v2/journey/customers/cookie/{cookie}/sessions")).await;
    if status != 200 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in sessions["entities"].as_array().cloned().unwrap_or_default() {
        let id = s["id"].as_str().unwrap_or("").to_string();
        let (_, evs) = t.get(&format!("/api/v2/journey/sessions/{id}/events?pageSize=200")).await;
        out.push((s, evs["entities"].as_array().cloned().unwrap_or_default()));
    }
    out
}

fn web_names(events: &[Value]) -> Vec<String> {
    events.iter().filter_map(|e| e["webEvent"]["eventName"].as_str().map(str::to_string)).collect()
}

fn offer_states(events: &[Value], map: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["webActionEvent"]["actionMap"]["displayName"] == map)
        .filter_map(|e| e["webActionEvent"]["action"]["state"].as_str().map(str::to_string))
        .collect()
}

/// Wait until the customer's web events include `name`; returns the whole journey.
///
/// The journey is read again once the event shows: [`all_sessions`] reads the sessions before their events, so
/// the read that first sees the event may hold its session as it was before that event's commit (seen on
/// PostgreSQL: `authenticated` still false beside the identifying event). A read that starts after the event
/// was visible gets the session of that commit or later.
async fn wait_for_event(t: &TestServer, cookie: &str, name: &str) -> Vec<(Value, Vec<Value>)> {
    eventually(&format!("{name} from {cookie}"), || async {
        let j = journey(t, cookie).await;
        if j.iter().any(|(_, evs)| web_names(evs).iter().any(|n| n == name)) {
            Ok(())
        } else {
            Err(format!("{:?}", j.iter().map(|(_, e)| web_names(e)).collect::<Vec<_>>()))
        }
    })
    .await;
    journey(t, cookie).await
}

/// Wait for an offer on the page; returns (action map name shown, the focused element's class, dialog label).
async fn wait_for_offer(c: &Client) -> Value {
    eventually("the offer to appear", || async {
        let v = c
            .execute(
                r#"var h = document.querySelector('[data-waymark-offer]');
                   if (!h || !h.shadowRoot) return null;
                   var r = h.shadowRoot, box = r.querySelector('[role=dialog]'), yes = r.querySelector('.yes');
                   return {title: r.getElementById(box.getAttribute('aria-labelledby')).textContent,
                           text: r.getElementById(box.getAttribute('aria-describedby')).textContent,
                           focused: r.activeElement ? r.activeElement.className : null,
                           dismissLabel: r.querySelector('.x').getAttribute('aria-label'),
                           buttonColor: getComputedStyle(yes).color,
                           buttonSize: getComputedStyle(yes).fontSize};"#,
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        if v.is_null() { Err("no offer yet".to_string()) } else { Ok(v) }
    })
    .await
}

async fn offer_gone(c: &Client) {
    eventually("the offer to close", || async {
        let v = c.execute("return !!document.querySelector('[data-waymark-offer]');", vec![]).await;
        match v {
            Ok(Value::Bool(false)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn press(c: &Client, key: char) {
    let keys =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    c.perform_actions(keys).await.expect("press a key");
}

async fn the_tracker_records_a_visit_and_answers_offers_in_chromium(b: Backend) {
    let t = TestServer::start_with(b, |c| c.ping_interval_ms = 300).await;
    // The test site runs on 127.0.0.1: allow it on the deployment.
    let store = t.state.store.clone();
    let rec = store.get_record(RecordKind::Deployment, &t.deployment.to_string()).await.unwrap().unwrap();
    let mut dep: Deployment = rec.decode().unwrap();
    dep.allowed_domains.push("127.0.0.1".into());
    let mut rec2 = rec.clone();
    rec2.body = serde_json::to_value(&dep).unwrap();
    store.put_record(&rec2, None, false).await.unwrap();
    t.state.forget_deployment(t.deployment);

    t.create_action_map(&json!({
        "displayName": "Shoe sale",
        "triggerWithEventConditions": [{"key": "searchQuery", "values": ["shoes"], "operator": "containsAny",
            "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
        "action": {"mediaType": "contentOffer", "contentOffer": {"title": "Shoe sale", "headline": "20% off today",
            "body": "Every pair of red shoes.", "displayMode": "Overlay", "layoutMode": "TextOnly",
            "callToAction": {"text": "See shoes", "url": "https://shop.example/shoes", "target": "Blank"}}}
    }))
    .await;
    t.create_action_map(&json!({
        "displayName": "Checkout help",
        "triggerWithEventConditions": [{"key": "page.pathname", "values": ["/checkout"], "operator": "startsWith",
            "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
        "weight": 3,
        "ignoreFrequencyCap": true,
        "action": {"mediaType": "webchat", "webMessagingOfferFields": {"offerText": "Questions about your order?"}}
    }))
    .await;

    let site = start_site(t.base.clone(), t.deployment.to_string()).await;
    let (_driver, c) = start_browser().await;

    // A page view, then SPA navigation.
    c.goto(&format!("{site}/app")).await.expect("open the app");
    let cookie = cookie_id(&c).await;
    wait_for_event(&t, &cookie, "page_viewed").await;
    c.find(Locator::Css("#next")).await.expect("next button").click().await.expect("click next");
    let j = eventually("the SPA page view", || async {
        let j = journey(&t, &cookie).await;
        let paths: Vec<String> = j
            .iter()
            .flat_map(|(_, evs)| {
                evs.iter().filter_map(|e| e["webEvent"]["page"]["pathname"].as_str().map(str::to_string))
            })
            .collect();
        if paths.iter().any(|p| p == "/app/step2") { Ok(j) } else { Err(format!("{paths:?}")) }
    })
    .await;
    assert_eq!(j.len(), 1, "one session so far");
    let session_id = j[0].0["id"].as_str().unwrap().to_string();
    let spa = j[0].1.iter().find(|e| e["webEvent"]["page"]["pathname"] == "/app/step2").unwrap();
    assert_eq!(spa["webEvent"]["referrer"]["medium"], "internal", "the SPA view names the previous page");

    // A search: the content offer fires, shows in a Shadow DOM, takes focus; Escape dismisses it.
    c.goto(&format!("{site}/search?q=red+shoes")).await.expect("search");
    let offer = wait_for_offer(&c).await;
    assert_eq!(offer["title"], "Shoe sale", "{offer}");
    assert!(offer["text"].as_str().unwrap().contains("20% off today"));
    assert_eq!(offer["focused"], "yes", "focus moves to the offer's button");
    assert_eq!(offer["dismissLabel"], "Dismiss offer");
    assert_ne!(offer["buttonColor"], "rgb(255, 0, 0)", "the host page's CSS does not leak into the offer: {offer}");
    assert_ne!(offer["buttonSize"], "40px", "{offer}");
    press(&c, '\u{e00c}').await; // Escape
    offer_gone(&c).await;
    let j = eventually("the sale offer's states", || async {
        let j = journey(&t, &cookie).await;
        let states = j.iter().map(|(_, evs)| offer_states(evs, "Shoe sale")).collect::<Vec<_>>().concat();
        if states == ["qualified", "offered", "rejected"] { Ok(j) } else { Err(format!("{states:?}")) }
    })
    .await;
    let searched = j[0].1.iter().find(|e| e["webEvent"]["searchQuery"] == "red shoes");
    assert!(searched.is_some(), "the search reached the store");
    assert_eq!(j[0].0["searchTerms"], json!(["red shoes"]));

    // Checkout: the chat offer fires; Enter on the focused button accepts it.
    c.goto(&format!("{site}/checkout")).await.expect("checkout");
    let offer = wait_for_offer(&c).await;
    assert_eq!(offer["text"], "Questions about your order?", "{offer}");
    let chat_opened = c.execute("window.__chat = null; window.addEventListener('waymark:chat', function (e) { window.__chat = e.detail.id; }); return true;", vec![]).await;
    assert!(chat_opened.is_ok());
    press(&c, '\u{e007}').await; // Enter
    offer_gone(&c).await;
    let chat = c.execute("return window.__chat;", vec![]).await.expect("chat event");
    assert!(chat.is_string(), "accepting a chat offer tells the page to open its chat: {chat}");
    eventually("the web chat conversation", || async {
        let all = all_sessions(&t, &cookie).await;
        let conv = all.iter().find(|(s, _)| s["type"] == "conversation").map(|(s, _)| s.clone());
        match conv {
            Some(s) if s["conversation"]["id"] == chat && s["conversationChannels"][0]["type"] == "Webchat" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually("the chat offer's states", || async {
        let j = journey(&t, &cookie).await;
        let states = j.iter().map(|(_, evs)| offer_states(evs, "Checkout help")).collect::<Vec<_>>().concat();
        if states == ["qualified", "offered", "accepted"] { Ok(()) } else { Err(format!("{states:?}")) }
    })
    .await;

    // The form: typed for real, submitted; the password never leaves the page.
    c.find(Locator::Css("#email")).await.unwrap().send_keys("ana@example.com").await.unwrap();
    c.find(Locator::Css("#password")).await.unwrap().send_keys("hunter2").await.unwrap();
    c.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let j = wait_for_event(&t, &cookie, "form_submitted").await;
    let form = j[0].1.iter().find(|e| e["webEvent"]["eventName"] == "form_submitted").unwrap();
    assert_eq!(form["webEvent"]["attributes"]["field_email"]["value"], "ana@example.com", "{form}");
    assert_eq!(form["webEvent"]["attributes"]["formName"]["value"], "order");
    assert!(!form.to_string().contains("hunter2"), "passwords are never captured");

    // A custom event, then identify: the next event carries the traits and links a contact.
    c.execute("wm('record', 'video_played', {seconds: 12, title: 'Fit guide'});", vec![]).await.unwrap();
    let j = wait_for_event(&t, &cookie, "video_played").await;
    let video = j[0].1.iter().find(|e| e["webEvent"]["eventName"] == "video_played").unwrap();
    assert_eq!(video["webEvent"]["attributes"]["seconds"]["value"], "12");
    c.execute("wm('identify', {email: 'ana@example.com', givenName: 'Ana'}); wm('record', 'profile_viewed');", vec![])
        .await
        .unwrap();
    let j = wait_for_event(&t, &cookie, "profile_viewed").await;
    assert_eq!(j.len(), 1, "everything so far is one visit: {:?}", j.iter().map(|s| &s.0["id"]).collect::<Vec<_>>());
    assert_eq!(j[0].0["id"], session_id.as_str(), "every event joined the same session");
    assert_eq!(j[0].0["authenticated"], true);
    let contact = j[0].0["externalContact"]["id"].as_str().expect("identify linked a contact").to_string();
    let events_before_logout = j[0].1.len();
    let names = web_names(&j[0].1);
    for n in ["page_viewed", "form_submitted", "video_played", "profile_viewed"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }

    // Logout rotates the cookie: a new customer with a new journey, not linked to the contact.
    c.execute("wm('logout'); wm('pageview');", vec![]).await.unwrap();
    let new_cookie = cookie_id(&c).await;
    assert_ne!(new_cookie, cookie, "logout rotates the customer id");
    let j2 = wait_for_event(&t, &new_cookie, "page_viewed").await;
    assert_eq!(j2.len(), 1);
    assert_ne!(j2[0].0["id"], session_id.as_str());
    assert!(j2[0].0.get("externalContact").is_none(), "the new customer is anonymous: {}", j2[0].0);
    let old = journey(&t, &cookie).await;
    assert_eq!(old.len(), 1, "the old customer's journey is unchanged");
    assert_eq!(old[0].1.len(), events_before_logout, "nothing after logout joined the old journey");
    let (_, contact_sessions) = t.get(&format!("/api/v2/externalcontacts/contacts/{contact}/journey/sessions")).await;
    let types: Vec<&str> =
        contact_sessions["entities"].as_array().unwrap().iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(types, ["conversation", "web"], "the contact has the first visit and its chat only: {contact_sessions}");

    c.close().await.expect("close the browser");
    t.stop().await;
}
