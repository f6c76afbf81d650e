//! The OpenAPI document, generated from the handlers. Every API module returns a `utoipa_axum` router built
//! with `routes!(handler)`, which registers the handler **and** its `#[utoipa::path]` description in one
//! step, so a route cannot exist without being documented. [`api_routes`] assembles them; the app serves the
//! result at `/openapi.json` and a small reader page at `/docs`.

use crate::state::AppState;
use crate::{
    admin_api, conversation_api, journey_api, live_api, routing_api, rules_api, scores_api, sign_in, tracking,
};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waymark API",
        description = "Self-hosted customer-journey engine. Journey endpoints follow the Genesys Cloud Journey API \
            wire format (camelCase JSON, absent values omitted, ISO-8601 UTC dates, `entities` + cursor paging). \
            Errors are `{status, code, message}` with stable codes. Authenticate with `Authorization: Bearer …` \
            (an API token or an OAuth access token from `POST /oauth/token`) or the agent UI's session cookie.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "journey", description = "Genesys-compatible Journey read API"),
        (name = "external contacts", description = "External contacts"),
        (name = "tracking", description = "Public ingestion from websites (no token)"),
        (name = "sign-in", description = "OAuth client credentials, password sign-in"),
        (name = "admin", description = "Users, roles, divisions, tokens, OAuth clients, deployments"),
        (name = "conversations", description = "Conversation lifecycle events from the contact center"),
        (name = "routing", description = "Queues and wrap-up codes"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// Every documented API route. `body_limit` is the tracking endpoints' body limit.
pub fn api_routes(body_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tracking::routes(body_limit))
        .merge(journey_api::routes())
        .merge(live_api::routes())
        .merge(sign_in::routes())
        .merge(admin_api::routes())
        .merge(conversation_api::routes())
        .merge(routing_api::routes())
        .merge(rules_api::routes())
        .merge(scores_api::routes())
}

/// The document alone (for tests and `waymark openapi`).
pub fn document() -> utoipa::openapi::OpenApi {
    api_routes(64 * 1024).into_openapi()
}

/// The serialized document, built once at start-up.
#[derive(Clone)]
pub struct ApiDocument(pub Arc<String>);

async fn openapi_json(State(doc): State<ApiDocument>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.as_str().to_owned()).into_response()
}

/// A dependency-free reader for the document: lists every operation with its description.
async fn docs_page() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Waymark API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem} h2{margin-top:2rem;border-bottom:1px solid #dde;text-transform:capitalize}
.op{margin:.8rem 0;padding:.6rem .8rem;border:1px solid #e3e6ee;border-radius:6px}
.m{display:inline-block;min-width:4.5rem;font-weight:700;font-family:monospace}
.get{color:#1769aa}.post{color:#2e7d32}.patch{color:#a15c00}.put{color:#6a1b9a}.delete{color:#c62828}
code{font-size:.95em} .d{margin:.3rem 0 0;color:#444} .p{color:#666;font-size:.9em}
</style></head><body>
<h1>Waymark API</h1>
<p>The machine-readable document is at <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (typeof op !== 'object' || !op.responses) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      (byTag[tag] = byTag[tag] || []).push({path, method, op});
    }
  }
  const root = document.getElementById('ops');
  root.textContent = '';
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; root.appendChild(h);
    for (const {path, method, op} of byTag[tag]) {
      const div = document.createElement('div'); div.className = 'op';
      const m = document.createElement('span'); m.className = 'm ' + method; m.textContent = method.toUpperCase();
      const c = document.createElement('code'); c.textContent = path;
      div.append(m, c);
      if (op.description) { const d = document.createElement('p'); d.className = 'd'; d.textContent = op.description; div.appendChild(d); }
      const params = (op.parameters || []).map(p => p.name + ' (' + p.in + ')').join(', ');
      if (params) { const p = document.createElement('p'); p.className = 'p'; p.textContent = 'Parameters: ' + params; div.appendChild(p); }
      root.appendChild(div);
    }
  }
}).catch(e => { document.getElementById('ops').textContent = 'Could not load /openapi.json: ' + e; });
</script></body></html>"#;

/// `/openapi.json` and `/docs`.
pub fn routes(doc: &utoipa::openapi::OpenApi) -> axum::Router {
    let json = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI document");
        "{}".to_string()
    });
    axum::Router::new()
        .route("/openapi.json", axum::routing::get(openapi_json))
        .route("/docs", axum::routing::get(docs_page))
        .with_state(ApiDocument(Arc::new(json)))
}
