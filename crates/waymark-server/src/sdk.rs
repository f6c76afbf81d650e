//! The tracking script websites embed: `GET /sdk/waymark.js`, plain JavaScript compiled into the binary
//! (no build step), served with an `ETag`, a short cache lifetime and gzip when the browser accepts it.

use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The tracker's source.
pub const TRACKER_JS: &str = include_str!("sdk/waymark.js");

fn etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| {
        let digest = Sha256::digest(TRACKER_JS.as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

async fn tracker(headers: HeaderMap) -> Response {
    let tag = etag();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { TRACKER_JS.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// `GET /sdk/waymark.js`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/sdk/waymark.js", axum::routing::get(tracker))
        .layer(tower_http::compression::CompressionLayer::new())
}
