//! The OpenAPI document matches the router: every registered API route is documented, and every documented
//! operation is routed. Routes are read from the live router, operations are probed on the running server.

use crate::harness::{Backend, TestServer};
use serde_json::Value;
use std::collections::BTreeSet;

crate::store_tests!(every_route_is_documented_and_every_documented_operation_is_routed);

/// Operational endpoints that are deliberately not part of the API document.
const NOT_API: &[&str] = &["/", "/health", "/metrics", "/openapi.json", "/docs"];
/// Pages and static assets (the agent UI, the tracking script), not API.
const NOT_API_PREFIXES: &[&str] = &["/agent", "/sdk/"];
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// The paths registered in an axum router, read from its `Debug` output (axum prints its path table).
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let dump = format!("{router:?}");
    // `Router { path_router: …, fallback_router: …, … }`: only the first part holds routes.
    let routes_part = dump.split("fallback_router:").next().unwrap_or("");
    assert!(dump.contains("path_router"), "axum's Router Debug output changed: {dump}");
    let mut out = BTreeSet::new();
    let mut rest = routes_part;
    while let Some(i) = rest.find("\"/") {
        let tail = &rest[i + 1..];
        let Some(end) = tail.find('"') else { break };
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("00000000-0000-7000-8000-000000000000");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

async fn probe(t: &TestServer, method: &str, path: &str) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let r = t.client.request(m, t.url(&concrete(path))).send().await.expect("probe");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_string())
}

async fn every_route_is_documented_and_every_documented_operation_is_routed(b: Backend) {
    let t = TestServer::start(b).await;
    let (status, doc) = t.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");

    let router = waymark_server::app::router(t.state.clone());
    let routed = router_paths(&router);
    assert!(routed.len() >= 10, "could not read the router's paths from its Debug output: {routed:?}");
    for p in &routed {
        if NOT_API.contains(&p.as_str()) || NOT_API_PREFIXES.iter().any(|x| p.starts_with(x)) {
            continue;
        }
        assert!(
            paths.contains_key(p),
            "route {p} is registered but not in /openapi.json: register it with `utoipa_axum::routes!` on a \
             handler carrying `#[utoipa::path]`, in a module merged by `openapi::api_routes`"
        );
    }
    for (path, item) in paths {
        assert!(routed.contains(path), "{path} is documented but not routed");
        for m in METHODS {
            let documented = item.get(*m).is_some();
            let (status, code) = probe(&t, m, path).await;
            if documented {
                assert!(
                    code != "route_not_found" && code != "method_not_allowed",
                    "{} {path} is documented but answers {status} {code}",
                    m.to_uppercase()
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (405, "method_not_allowed"),
                    "{} {path} is routed but not documented",
                    m.to_uppercase()
                );
            }
        }
    }
    // Journey endpoints keep their Genesys paths.
    for p in [
        "/api/v2/journey/sessions/{session_id}",
        "/api/v2/journey/sessions/{session_id}/events",
        "/api/v2/externalcontacts/contacts/{contact_id}/journey/sessions",
        "/oauth/token",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let docs = t.client.get(t.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.expect("text").contains("/openapi.json"));
    t.stop().await;
}
