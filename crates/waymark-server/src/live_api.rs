//! `GET /api/v2/journey/live`: the agent's server-push stream (Server-Sent Events) for one contact or customer.
//!
//! Events: `hello` (server time, so the page can run the 45 s / 60 s status clock against the server's),
//! `session` (a session's new state), `event` (a new journey event), `scores` (new outcome scores) and
//! `resync` (the stream fell behind; refetch). Every message has an `id`; a reconnecting `EventSource` sends
//! `Last-Event-ID` and gets what it missed.

use crate::auth::Authorized;
use crate::auth::guards::ContactSessionView;
use crate::error::{ApiError, ApiResult};
use crate::journey_api::{QueryParams, event_view, event_visible, session_view};
use crate::live::{LiveChange, LiveMessage};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use waymark_domain::ErrorCode;
use waymark_domain::ids::ContactId;
use waymark_domain::permission::Permission;
use waymark_domain::web_event::CookieId;

#[utoipa::path(get, path = "/api/v2/journey/live", tag = "journey",
    description = "Server-Sent Events for one contact or customer: `hello`, `session`, `event`, `scores`, `resync`. \
        Needs `externalContacts:session:view`. Reconnect with `Last-Event-ID` to get what was missed.",
    params(("contactId" = Option<String>, Query, description = "Watch this external contact"),
        ("customerCookieId" = Option<String>, Query, description = "Or this customer (cookie id)"),
        ("lastEventId" = Option<u64>, Query, description = "Resume after this message id")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Nothing to watch named"), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 429, description = "Too many live connections")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn live(
    auth: Authorized<ContactSessionView>,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let q = QueryParams::parse(q);
    let contact = match q.get("contactId") {
        Some(c) => Some(ContactId::parse(c).ok_or_else(|| ApiError::bad_query("contactId must be a contact id"))?),
        None => None,
    };
    let cookie = match q.get("customerCookieId") {
        Some(c) => Some(CookieId::parse(c).map_err(|_| ApiError::bad_query("customerCookieId is not a cookie id"))?),
        None => None,
    };
    if contact.is_none() && cookie.is_none() {
        return Err(ApiError::bad_query("name what to watch: contactId or customerCookieId"));
    }
    // Follow merges so that a merged contact's stream watches the survivor.
    let contact = match contact {
        Some(c) => Some(state.store.get_contact(auth.org, c).await?.ok_or_else(|| ApiError::not_found("contact"))?.id),
        None => None,
    };
    let slot = state.hub.try_connect().ok_or_else(|| {
        ApiError::new(ErrorCode::TooManyConnections, "this server has too many live connections; retry shortly")
            .with_retry_after(5)
    })?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("lastEventId"))
        .and_then(|s| s.parse::<u64>().ok());
    let watching = state.hub.watching(auth.org);
    let (rx, missed, gap) = state.hub.subscribe(auth.org, last_seen);
    let caller = auth.caller.clone();
    let now = state.clock.now();
    let cookie_s = cookie.map(|c| c.as_str().to_string());

    let mut pending = std::collections::VecDeque::new();
    pending.push_back(
        SseEvent::default()
            .event("hello")
            .data(json!({"serverTime": now, "resumed": last_seen.is_some() && !gap}).to_string()),
    );
    if gap {
        pending.push_back(SseEvent::default().event("resync").data("{}"));
    }
    for m in missed {
        if m.concerns(contact, cookie_s.as_deref())
            && let Some(e) = render(&caller, &m)
        {
            pending.push_back(e);
        }
    }
    let st = StreamState { pending, rx, caller, contact, cookie: cookie_s, _slot: slot, _watching: watching };
    // The stream owns the receiver and the connection slot: when the client goes away axum drops it, and both
    // are released at once (no task left behind).
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), st));
            }
            match st.rx.recv().await {
                Ok(m) => {
                    if m.concerns(st.contact, st.cookie.as_deref())
                        && let Some(e) = render(&st.caller, &m)
                    {
                        st.pending.push_back(e);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    metrics::counter!("waymark_live_lagged_total").increment(n);
                    st.pending.push_back(SseEvent::default().event("resync").data("{}"));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Render a hub message for one caller, or nothing if they may not see it.
fn render(caller: &crate::auth::Caller, m: &Arc<LiveMessage>) -> Option<SseEvent> {
    let record = m.record();
    if !caller.sees_divisions(&record.session.division_ids) {
        return None;
    }
    let id = m.seq.to_string();
    match &m.change {
        LiveChange::Session(r) => {
            let s = session_view(caller, &r.session);
            Some(SseEvent::default().id(id).event("session").data(json!({"session": s}).to_string()))
        }
        LiveChange::Event { record, event } => {
            if !caller.can(Permission::JourneyEventView) || !event_visible(caller, event) {
                return None;
            }
            let e = event_view(caller, event, &record.session);
            Some(
                SseEvent::default()
                    .id(id)
                    .event("event")
                    .data(json!({"sessionId": record.session.id, "event": e}).to_string()),
            )
        }
        LiveChange::Scores { record, scores } => {
            if !caller.can(Permission::JourneyOutcomeScoresView) {
                return None;
            }
            Some(
                SseEvent::default()
                    .id(id)
                    .event("scores")
                    .data(json!({"sessionId": record.session.id, "scores": &**scores}).to_string()),
            )
        }
    }
}

struct StreamState {
    pending: std::collections::VecDeque<SseEvent>,
    rx: tokio::sync::broadcast::Receiver<Arc<LiveMessage>>,
    caller: crate::auth::Caller,
    contact: Option<ContactId>,
    cookie: Option<String>,
    _slot: crate::live::OwnedSlot,
    /// Dropped after `rx`: the organisation counts as watched until the stream is gone.
    _watching: crate::live::Watching,
}

/// The live push stream.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(live))
}
