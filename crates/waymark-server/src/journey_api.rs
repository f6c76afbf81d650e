//! The Genesys-compatible Journey read API: a session, its events, a contact's sessions, a customer's
//! sessions, contact search. Every response leaves out what the caller may not see.

use crate::auth::guards::{ContactSessionView, ContactView, EventView, SessionView};
use crate::auth::{Authorized, Caller};
use crate::error::{ApiError, ApiResult};
use crate::journey_wire::{SessionContext, Visibility, write_event, write_listing, write_session};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::event::{Event, EventType};
use waymark_domain::ids::{ContactId, SessionId};
use waymark_domain::permission::Permission;
use waymark_domain::session::Session;
use waymark_domain::web_event::CookieId;
use waymark_domain::{ErrorCode, Timestamp};
use waymark_store::{Contact, ContactQuery, EventPage, SessionPage, SessionRecord, StoredSessionJson};

/// Query parameters as a list of pairs; list values may be repeated or comma-joined.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        QueryParams(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// All values of `key`, splitting comma-joined lists.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            .collect()
    }

    /// `pageSize` (default `default`, at most 200).
    pub fn page_size(&self, default: usize) -> ApiResult<usize> {
        match self.get("pageSize") {
            None => Ok(default),
            Some(s) => match s.trim().parse::<usize>() {
                Ok(n) if (1..=200).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_query(format!("pageSize must be a whole number from 1 to 200, got {s:?}"))),
            },
        }
    }
}

/// Encode a `(time, id)` cursor.
pub fn encode_cursor(t: Timestamp, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", t.unix_millis()))
}

/// Decode a cursor made by [`encode_cursor`].
pub fn decode_cursor(s: &str) -> ApiResult<(Timestamp, String)> {
    let bad = || {
        ApiError::new(ErrorCode::InvalidCursor, "the cursor is not one this server issued; start again without 'after'")
    };
    let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    let ms = ms.parse::<i64>().map_err(|_| bad())?;
    if id.len() > 64 {
        return Err(bad());
    }
    Ok((Timestamp::from_unix_millis(ms), id.to_string()))
}

/// A session as this caller may see it.
pub fn session_view(caller: &Caller, s: &Session) -> Session {
    let mut s = s.clone();
    if !caller.can(Permission::JourneySegmentView) {
        s.segment_assignments.clear();
    }
    if !caller.can(Permission::JourneyOutcomeView) {
        s.outcome_achievements.clear();
    }
    if !caller.can(Permission::RoutingQueueSearch) {
        s.last_connected_queue = None;
    }
    if !caller.can(Permission::RoutingWrapupCodeView) {
        s.last_user_disposition = None;
    }
    s
}

/// Whether the caller may see an event of this type at all.
pub fn event_visible(caller: &Caller, e: &Event) -> bool {
    match e.event_type {
        EventType::SegmentAssignment => caller.can(Permission::JourneySegmentView),
        EventType::OutcomeAchieved => caller.can(Permission::JourneyOutcomeView),
        _ => true,
    }
}

/// The event as this caller may see it (wrap-up and queue hidden without permission).
pub fn event_view(caller: &Caller, e: &Event, session: &Session) -> Event {
    let mut e = e.clone().with_session_context(session);
    if let Some(c) = e.conversation_event.as_mut() {
        if !caller.can(Permission::RoutingQueueSearch) {
            c.queue = None;
        }
        if !caller.can(Permission::RoutingWrapupCodeView) {
            c.wrapup_code = None;
        }
    }
    e
}

/// Load a session the caller may see; anything else (absent, other organisation, other division) is 404.
pub async fn visible_session(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<SessionRecord> {
    let id = SessionId::parse(raw_id).ok_or_else(|| ApiError::not_found("session"))?;
    let rec = state.store.get_session(caller.org, id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    if !caller.sees_divisions(&rec.session.division_ids) {
        return Err(ApiError::not_found("session"));
    }
    Ok(rec)
}

/// `GET /api/v2/journey/sessions/{sessionId}`.
#[utoipa::path(get, path = "/api/v2/journey/sessions/{session_id}", tag = "journey",
    description = "One session (Genesys `Session`). Needs `journey:session:view` or `externalContacts:session:view`; \
        segments, outcomes, queue and wrap-up are left out without their view permissions.",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Genesys `Session`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such session visible to the caller")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_session(
    auth: Authorized<SessionView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Session>> {
    let rec = visible_session(&state, &auth, &id).await?;
    Ok(Json(session_view(&auth, &rec.session)))
}

/// `GET /api/v2/journey/sessions/{sessionId}/events?pageSize&after&eventType`.
#[utoipa::path(get, path = "/api/v2/journey/sessions/{session_id}/events", tag = "journey",
    description = "A session's events in time order (Genesys `EventListing`), cursor paging. Needs `journey:event:view`.",
    params(("session_id" = String, Path, description = "Session id"), ("pageSize" = Option<u32>, Query, description = "1–200"), ("after" = Option<String>, Query, description = "Cursor from `nextUri`"),
        ("eventType" = Option<String>, Query, description = "Event types, comma-joined or repeated, e.g. `com.genesys.journey.WebEvent`")),
    responses((status = 200, description = "Genesys `EventListing`", body = serde_json::Value),
        (status = 400, description = "Bad query parameter"), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such session")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_session_events(
    auth: Authorized<EventView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = QueryParams::parse(q);
    let page = match event_page(&q) {
        Ok(page) => page,
        // A session the caller may not see answers 404 before its query is judged.
        Err(e) => {
            visible_session(&state, &auth, &id).await?;
            return Err(e);
        }
    };
    let sid = SessionId::parse(&id).ok_or_else(|| ApiError::not_found("session"))?;
    let page_size = page.limit - 1;
    let (rec, events) = state
        .store
        .session_with_events_json(auth.org, sid, &page)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    if !auth.sees_divisions(&rec.session.division_ids) {
        return Err(ApiError::not_found("session"));
    }
    let base = format!("/api/v2/journey/sessions/{id}/events");
    let type_q: String = page.types.iter().map(|t| format!("&eventType={}", t.as_str())).collect();
    let next = (events.len() > page_size).then(|| events.get(page_size - 1)).flatten().map(|last| {
        let cursor = encode_cursor(Timestamp::from_unix_millis(last.created_ms), &last.id);
        format!("{base}?pageSize={page_size}{type_q}&after={cursor}")
    });
    let shown = &events[..events.len().min(page_size)];
    let ctx = SessionContext::of(&rec.session)?;
    let vis = Visibility::of(&auth);
    let capacity = 256 + shown.iter().map(|e| e.body.len() + 2).sum::<usize>() + shown.len() * ctx.len();
    let body = write_listing(
        capacity,
        shown,
        |out, e| write_event(out, &vis, &ctx, e),
        next.as_deref(),
        &format!("{base}?pageSize={page_size}{type_q}"),
    )?;
    Ok(json_response(body))
}

/// `pageSize` (1–200, default 100), `eventType` and `after` of a session's events; the page asks for one more
/// event than `pageSize` (whether there is a next page).
fn event_page(q: &QueryParams) -> ApiResult<EventPage> {
    let page_size = q.page_size(100)?;
    let mut types = Vec::new();
    for t in q.list("eventType") {
        types.push(EventType::parse(&t).ok_or_else(|| {
            ApiError::bad_query(format!(
                "eventType {t:?} is not one of {}",
                EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?);
    }
    let after = q.get("after").map(decode_cursor).transpose()?;
    Ok(EventPage { after, limit: page_size + 1, types })
}

/// A JSON response written by [`crate::journey_wire`].
fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn window_start(state: &AppState) -> Timestamp {
    state.clock.now().minus_secs(state.config.retention_days * 86_400)
}

/// `pageSize` (1–200, default 25) and `after` of a session listing; the page asks for one more session than
/// `pageSize` (whether there is a next page).
fn session_page(state: &AppState, q: &QueryParams) -> ApiResult<SessionPage> {
    let page_size = q.page_size(25)?;
    let before = q.get("after").map(decode_cursor).transpose()?;
    Ok(SessionPage { since: window_start(state), before, limit: page_size + 1 })
}

/// A `SessionListing` of `rows` (fetched with `page`) as `caller` may see it.
fn session_listing(caller: &Caller, base: &str, page: &SessionPage, rows: &[StoredSessionJson]) -> ApiResult<Response> {
    let page_size = page.limit - 1;
    let next = (rows.len() > page_size).then(|| rows.get(page_size - 1)).flatten().map(|last| {
        let cursor = encode_cursor(Timestamp::from_unix_millis(last.created_ms), &last.id);
        format!("{base}?pageSize={page_size}&after={cursor}")
    });
    let shown = &rows[..rows.len().min(page_size)];
    let vis = Visibility::of(caller);
    let capacity = 256 + shown.iter().map(|s| s.body.len() + 128).sum::<usize>();
    let body = write_listing(
        capacity,
        shown,
        |out, s| write_session(out, &vis, s),
        next.as_deref(),
        &format!("{base}?pageSize={page_size}"),
    )?;
    Ok(json_response(body))
}

/// `GET /api/v2/externalcontacts/contacts/{contactId}/journey/sessions`: newest first, last 60 days.
#[utoipa::path(get, path = "/api/v2/externalcontacts/contacts/{contact_id}/journey/sessions", tag = "journey",
    description = "An external contact's sessions, newest first, last 60 days (Genesys `SessionListing`). Needs \
        `externalContacts:session:view`.",
    params(("contact_id" = String, Path, description = "External contact id"), ("pageSize" = Option<u32>, Query, description = "1–200"), ("after" = Option<String>, Query, description = "Cursor from `nextUri`"),
        ("includeMerged" = Option<bool>, Query, description = "Accepted for compatibility; merged contacts are always followed")),
    responses((status = 200, description = "Genesys `SessionListing`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such contact")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_contact_sessions(
    auth: Authorized<ContactSessionView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = QueryParams::parse(q);
    let cid = ContactId::parse(&id).ok_or_else(|| ApiError::not_found("contact"))?;
    let page = match session_page(&state, &q) {
        Ok(page) => page,
        // An unknown contact answers 404 before the query is judged.
        Err(e) => {
            state.store.get_contact(auth.org, cid).await?.ok_or_else(|| ApiError::not_found("contact"))?;
            return Err(e);
        }
    };
    // Follows merges: a merged contact's sessions now live under the survivor.
    let rows =
        state.store.contact_sessions_json(auth.org, cid, &page).await?.ok_or_else(|| ApiError::not_found("contact"))?;
    session_listing(&auth, &format!("/api/v2/externalcontacts/contacts/{id}/journey/sessions"), &page, &rows)
}

/// `GET /api/v2/journey/customers/cookie/{cookieId}/sessions` (the removed Genesys path, kept for lookups by
/// cookie id).
#[utoipa::path(get, path = "/api/v2/journey/customers/{id_type}/{customer_id}/sessions", tag = "journey",
    description = "A customer's (cookie id's) sessions, newest first (the Genesys path removed upstream in SDK 174). \
        Needs `journey:session:view` or `externalContacts:session:view`.",
    params(("id_type" = String, Path, description = "Must be `cookie`"), ("customer_id" = String, Path, description = "Cookie id"), ("pageSize" = Option<u32>, Query, description = "1–200"), ("after" = Option<String>, Query, description = "Cursor from `nextUri`")),
    responses((status = 200, description = "Genesys `SessionListing`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_customer_sessions(
    auth: Authorized<SessionView>,
    State(state): State<AppState>,
    Path((id_type, cookie)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    if id_type != "cookie" {
        return Err(ApiError::new(ErrorCode::InvalidField, "customerIdType must be 'cookie'"));
    }
    let q = QueryParams::parse(q);
    let cookie = CookieId::parse(&cookie).map_err(|_| ApiError::not_found("customer"))?;
    let page = session_page(&state, &q)?;
    let rows = state.store.customer_sessions_json(auth.org, &cookie, &page).await?;
    session_listing(&auth, &format!("/api/v2/journey/customers/cookie/{}/sessions", cookie.as_str()), &page, &rows)
}

/// An external contact in (simplified) Genesys `ExternalContact` shape.
pub fn contact_json(c: &Contact) -> Value {
    let mut v = json!({
        "id": c.id.to_string(),
        "selfUri": format!("/api/v2/externalcontacts/contacts/{}", c.id),
        "createDate": c.created,
        "modifyDate": c.modified,
    });
    let name = c.display_name.clone().or_else(|| match (&c.first_name, &c.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(l)) => Some(l.clone()),
        _ => None,
    });
    if let Some(f) = &c.first_name {
        v["firstName"] = json!(f);
    }
    if let Some(l) = &c.last_name {
        v["lastName"] = json!(l);
    }
    if let Some(n) = name {
        v["displayName"] = json!(n);
    }
    if let Some(e) = c.emails.first() {
        v["workEmail"] = json!(e);
    }
    if let Some(e) = c.emails.get(1) {
        v["otherEmail"] = json!(e);
    }
    if let Some(p) = c.phones.first() {
        v["cellPhone"] = json!({"e164": p, "display": p});
    }
    if let Some(p) = c.phones.get(1) {
        v["otherPhone"] = json!({"e164": p, "display": p});
    }
    v["emails"] = json!(c.emails);
    v["phoneNumbers"] = json!(c.phones);
    v["cookieIds"] = json!(c.cookie_ids);
    if !c.messaging_ids.is_empty() {
        v["messagingIds"] = json!(c.messaging_ids);
    }
    v
}

/// `GET /api/v2/externalcontacts/contacts?q=`: by name, email, phone or cookie id.
#[utoipa::path(get, path = "/api/v2/externalcontacts/contacts", tag = "external contacts",
    description = "Find external contacts by name, email, phone or cookie id. Needs `externalContacts:session:view` \
        or `externalContacts:contact:view`.",
    params(("q" = Option<String>, Query, description = "Search text"), ("pageSize" = Option<u32>, Query, description = "1–200")),
    responses((status = 200, description = "`entities` of Genesys `ExternalContact`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn search_contacts(
    auth: Authorized<ContactView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(q);
    let text = q.get("q").unwrap_or("").trim().to_string();
    if text.len() > 256 {
        return Err(ApiError::bad_query("q is longer than 256 characters"));
    }
    let page_size = q.page_size(25)?;
    let found = state.store.search_contacts(auth.org, &ContactQuery { text }, page_size).await?;
    let entities: Vec<Value> = found.iter().map(contact_json).collect();
    Ok(Json(json!({"entities": entities, "pageSize": page_size, "pageNumber": 1, "total": entities.len()})))
}

/// `GET /api/v2/externalcontacts/contacts/{contactId}`.
#[utoipa::path(get, path = "/api/v2/externalcontacts/contacts/{contact_id}", tag = "external contacts",
    description = "One external contact (following merges).",
    params(("contact_id" = String, Path, description = "External contact id")),
    responses((status = 200, description = "Genesys `ExternalContact`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such contact")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_contact(
    auth: Authorized<ContactView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cid = ContactId::parse(&id).ok_or_else(|| ApiError::not_found("contact"))?;
    let c = state.store.get_contact(auth.org, cid).await?.ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(Json(contact_json(&c)))
}

/// The Journey read API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_session))
        .routes(routes!(get_session_events))
        .routes(routes!(get_contact_sessions))
        .routes(routes!(search_contacts))
        .routes(routes!(get_contact))
        .routes(routes!(get_customer_sessions))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
}
