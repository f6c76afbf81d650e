//! The agent's Customer Journey view: one page (`ui/index.html` + an ES module, a style sheet and one message
//! catalogue per language, all embedded in the binary) served under `/agent`, with the deep links
//! `/agent/contacts/{contactId}`, `/agent/customers/{cookieId}` and `/agent/conversations/{conversationId}`.
//! The page reads the ordinary JSON API and the live stream with the sign-in cookie; this module adds only what
//! the page needs about its caller (`GET /agent/api/me`: name, permissions, the server's clock) and the
//! conversation deep-link lookup. Every page response carries a strict Content-Security-Policy (no inline
//! script, frames only from the configured ancestors).

use crate::auth::guards::{ContactSessionView, SignedIn};
use crate::auth::{Authorized, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use serde_json::{Value, json};
use waymark_domain::ids::SessionId;
use waymark_domain::session::SessionType;

/// The page's files, embedded at build time.
#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// The languages with a message catalogue (`ui/i18n/{lang}.json`); the first is the fallback.
pub const LANGUAGES: &[&str] = &["en", "ko"];

/// The Content-Security-Policy of every page response. `frame_ancestors` are the origins allowed to embed the
/// view in an iframe (a contact-center desktop); empty means only Waymark itself.
pub fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors: Vec<&str> = frame_ancestors
        .iter()
        .map(|s| s.trim())
        // One source per entry: no spaces, quotes or separators that could smuggle in another directive.
        .filter(|s| !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && c != ';' && c != ',' && c != '\''))
        .collect();
    let ancestors = if ancestors.is_empty() { "'self'".to_string() } else { format!("'self' {}", ancestors.join(" ")) };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

fn secure_headers(state: &AppState, resp: &mut Response) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(&state.config.ui_frame_ancestors)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// The best catalogue for an `Accept-Language` header (quality values respected), or the fallback.
pub fn pick_language(accept_language: Option<&str>) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for part in accept_language.unwrap_or("").split(',') {
        let mut bits = part.split(';');
        let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        let q =
            bits.find_map(|b| b.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok())).unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(lang) = LANGUAGES.iter().find(|l| **l == primary)
            && q > 0.0
            && best.is_none_or(|(_, bq)| q > bq)
        {
            best = Some((lang, q));
        }
    }
    best.map_or(LANGUAGES[0], |(l, _)| l)
}

/// Every page path answers the same document; the module reads the path.
async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get("index.html") else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the page is missing from this build").into_response();
    };
    let lang = pick_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let html = String::from_utf8_lossy(&file.data).replacen("<html lang=\"en\"", &format!("<html lang=\"{lang}\""), 1);
    let mut resp = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response();
    secure_headers(&state, &mut resp);
    resp
}

async fn asset(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    // Only files that were embedded exist. (Debug builds read them from `ui/` on disk, so never let a path
    // climb out of it.)
    let safe = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    let Some(file) = Assets::get(&path).filter(|_| safe && path != "index.html") else {
        return ApiError::not_found("asset").into_response();
    };
    let mime = match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut resp = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        file.data.into_owned(),
    )
        .into_response();
    secure_headers(&state, &mut resp);
    resp
}

fn me_json(state: &AppState, caller: &Caller) -> Value {
    let permissions: Vec<&str> = caller.permissions.iter().map(|p| p.as_str()).collect();
    json!({
        "userName": caller.user_name,
        "userId": caller.user_id.to_string(),
        "permissions": permissions,
        "serverTime": state.clock.now(),
    })
}

/// `GET /agent/api/me`: who is signed in, what they may see, and the server's clock (the page runs the 45 s /
/// 60 s status clock against it).
async fn me(auth: Authorized<SignedIn>, State(state): State<AppState>) -> Response {
    let mut resp = Json(me_json(&state, &auth)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /agent/api/conversations/{id}`: where a conversation's journey lives (its session and its contact or
/// customer), so a contact-center desktop can open the view for the interaction at hand. `{id}` is the contact
/// center's conversation id, or the conversation's Waymark session id.
async fn conversation(
    auth: Authorized<ContactSessionView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("conversation");
    if id.is_empty() || id.len() > 256 {
        return Err(not_found());
    }
    let sid = match state.store.conversation_session(auth.org, &id).await? {
        Some(sid) => sid,
        None => SessionId::parse(&id).ok_or_else(not_found)?,
    };
    let rec = crate::journey_api::visible_session(&state, &auth, &sid.to_string()).await.map_err(|_| not_found())?;
    if rec.session.session_type != SessionType::Conversation {
        return Err(not_found());
    }
    let mut v = json!({"sessionId": rec.session.id});
    if let Some(c) = rec.contact_id {
        v["contactId"] = json!(c.to_string());
    }
    if let Some(c) = &rec.session.customer_id {
        v["customerId"] = json!(c);
    }
    Ok(Json(v))
}

/// The agent UI's routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        // The server's root is the agent's front door.
        .route("/", get(|| async { axum::response::Redirect::to("/agent") }))
        .route("/agent", get(page))
        .route("/agent/", get(page))
        .route("/agent/contacts/{id}", get(page))
        .route("/agent/customers/{id}", get(page))
        .route("/agent/conversations/{id}", get(page))
        .route("/agent/assets/{*path}", get(asset))
        .route("/agent/api/me", get(me))
        .route("/agent/api/conversations/{id}", get(conversation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn catalogue(lang: &str) -> serde_json::Map<String, Value> {
        let file = Assets::get(&format!("i18n/{lang}.json")).unwrap_or_else(|| panic!("i18n/{lang}.json is embedded"));
        match serde_json::from_slice::<Value>(&file.data) {
            Ok(Value::Object(m)) => m,
            other => panic!("i18n/{lang}.json must be a JSON object of strings, got {other:?}"),
        }
    }

    #[test]
    fn every_catalogue_has_every_key_of_the_english_one() {
        let en = catalogue("en");
        assert!(en.len() > 50, "the English catalogue looks truncated");
        for lang in LANGUAGES {
            let cat = catalogue(lang);
            let want: BTreeSet<&String> = en.keys().collect();
            let have: BTreeSet<&String> = cat.keys().collect();
            let missing: Vec<_> = want.difference(&have).collect();
            let extra: Vec<_> = have.difference(&want).collect();
            assert!(missing.is_empty(), "{lang}.json misses keys {missing:?}");
            assert!(extra.is_empty(), "{lang}.json has keys the English catalogue lacks: {extra:?}");
            for (k, v) in &cat {
                let s = v.as_str().unwrap_or_else(|| panic!("{lang}.json {k} is not a string"));
                assert!(!s.trim().is_empty(), "{lang}.json {k} is empty");
                // Placeholders must survive translation.
                let ph = |s: &str| -> BTreeSet<String> {
                    s.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(n, _)| n.to_string())).collect()
                };
                let en_s = en[k].as_str().unwrap_or("");
                assert_eq!(ph(s), ph(en_s), "{lang}.json {k} changes the placeholders of {en_s:?}");
            }
        }
    }

    #[test]
    fn every_message_the_page_uses_is_in_the_catalogue() {
        let en = catalogue("en");
        let mut used = BTreeSet::new();
        for name in ["app.js", "index.html"] {
            let file = Assets::get(name).unwrap_or_else(|| panic!("{name} is embedded"));
            let src = String::from_utf8_lossy(&file.data).to_string();
            // `t("key"` in the module and `data-i18n="key"` in the document.
            for marker in ["t(\"", "data-i18n=\""] {
                let mut parts = src.split(marker);
                let mut before = parts.next().unwrap_or("");
                for part in parts {
                    // `t(` only as a call of its own, not the end of `split(` or `get(`.
                    let own = !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                    if (own || marker.starts_with("data"))
                        && let Some((key, _)) = part.split_once('"')
                    {
                        used.insert(key.to_string());
                    }
                    before = part;
                }
            }
        }
        assert!(used.len() > 30, "found too few message keys in the page ({})", used.len());
        let missing: Vec<_> = used.iter().filter(|k| !en.contains_key(*k)).collect();
        assert!(missing.is_empty(), "the page uses messages missing from en.json: {missing:?}");
    }

    #[test]
    fn language_follows_accept_language_with_quality() {
        assert_eq!(pick_language(None), "en");
        assert_eq!(pick_language(Some("ko-KR,ko;q=0.9,en-US;q=0.8")), "ko");
        assert_eq!(pick_language(Some("fr-FR,en;q=0.5,ko;q=0.7")), "ko");
        assert_eq!(pick_language(Some("de")), "en");
        assert_eq!(pick_language(Some("ko;q=0")), "en");
    }

    #[test]
    fn policy_forbids_inline_script_and_sanitises_ancestors() {
        let p = content_security_policy(&[]);
        assert!(p.starts_with("default-src 'self'"));
        assert!(!p.contains("unsafe-inline"));
        assert!(p.ends_with("frame-ancestors 'self'"));
        let p = content_security_policy(&["https://desk.example".into(), "x; script-src *".into()]);
        assert!(p.ends_with("frame-ancestors 'self' https://desk.example"), "{p}");
    }

    #[test]
    fn page_has_no_inline_script_or_style() {
        let file = Assets::get("index.html").expect("index.html");
        let html = String::from_utf8_lossy(&file.data).to_string();
        assert!(html.starts_with("<!doctype html>\n<html lang=\"en\""), "the language substitution needs this");
        for s in html.split("<script").skip(1) {
            assert!(s.contains("src=\"/agent/assets/"), "inline script in index.html: {s}");
        }
        assert!(!html.contains("<style") && !html.contains(" style="), "inline style in index.html");
        for part in html.split(" on").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_lowercase()).collect();
            assert!(!(name.len() > 2 && part[name.len()..].starts_with('=')), "inline handler on{name} in index.html");
        }
    }
}
