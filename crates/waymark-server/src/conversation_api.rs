//! Conversation ingestion from the contact-center platform: `POST /api/v2/journey/conversationevents` (an
//! integration token with `journey:conversationEvent:add`). One lifecycle event, an array of them, or
//! `{"events": [...]}`; every event is validated on its own, its queue, agent and wrap-up code are resolved to
//! (or created as) organisation records, and the batch is stored through group commit before the answer, which
//! says per event what happened. The live hub hears about it after the commit.

use crate::auth::Authorized;
use crate::auth::guards::ConversationEventAdd;
use crate::error::{ApiError, ApiResult};
use crate::publish::publish_results;
use crate::routing_api::{RoutingKind, resolve};
use crate::state::AppState;
use crate::tracking::{body_rejection, parse_json_body};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::conversation::{
    ConversationEvent, DecodedEvent, RoutingRef, TimeWindow, decode_conversation_batch,
};
use waymark_domain::ids::OrgId;
use waymark_domain::session::Session;
use waymark_domain::{ErrorCode, Rejection, Timestamp};
use waymark_store::{ConversationItem, IngestBatch, IngestItem, ItemResult};

/// Bytes per request: a full batch of events with long subjects fits.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `POST /api/v2/journey/conversationevents`.
#[utoipa::path(post, path = "/api/v2/journey/conversationevents", tag = "conversations",
    description = "Conversation lifecycle events (started, queued, connected, transferred, botOnly, disconnected, \
        wrapup, ended): one, an array, or `{events: [...]}`. Needs `journey:conversationEvent:add`. Answers per \
        event after the batch is durable; duplicates are ignored; excluded channels are refused with \
        `channel_not_in_journey`.",
    request_body = serde_json::Value,
    responses((status = 200, description = "Per-event results", body = serde_json::Value),
        (status = 400, description = "Malformed body"), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 413, description = "Body too large")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn post_conversation_events(
    auth: Authorized<ConversationEventAdd>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_rejection(r, MAX_BODY_BYTES).into_response(),
    };
    match ingest(&state, auth.org, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn resolve_refs(state: &AppState, org: OrgId, ev: &mut ConversationEvent, now: Timestamp) -> ApiResult<()> {
    async fn one(
        state: &AppState,
        org: OrgId,
        kind: RoutingKind,
        r: &mut Option<RoutingRef>,
        now: Timestamp,
    ) -> ApiResult<()> {
        if let Some(x) = r.as_ref() {
            *r = Some(resolve(state, org, kind, x, now).await?);
        }
        Ok(())
    }
    one(state, org, RoutingKind::Queue, &mut ev.queue, now).await?;
    one(state, org, RoutingKind::Agent, &mut ev.agent, now).await?;
    one(state, org, RoutingKind::WrapupCode, &mut ev.wrapup_code, now).await
}

/// Each request event ends as one of these, in request order.
enum Outcome {
    /// Rejected at the edge (never reached the store).
    Edge(Rejection),
    /// Sent to the store; its result is the next one.
    Stored { conversation_id: String },
}

async fn ingest(state: &AppState, org: OrgId, headers: &HeaderMap, body: &Bytes) -> ApiResult<Response> {
    let value = parse_json_body(headers, body)?;
    let now = state.clock.now();
    let limits = &state.config.limits;
    let window = TimeWindow {
        now,
        max_age_secs: state.config.retention_days.max(1) * 86_400,
        max_skew_secs: limits.max_clock_skew_secs,
    };
    let batch = decode_conversation_batch(value, limits, window, state.config.default_phone_region.as_deref())?;
    let mut outcomes = Vec::with_capacity(batch.events.len());
    let mut items = Vec::new();
    for decoded in batch.events {
        match decoded {
            DecodedEvent::Accepted(mut ev) => {
                resolve_refs(state, org, &mut ev, now).await?;
                outcomes.push(Outcome::Stored { conversation_id: ev.conversation_id.clone() });
                items.push(IngestItem::Conversation(Box::new(ConversationItem::Event(ev))));
            }
            DecodedEvent::Refused { conversation_id, at, rejection } => {
                outcomes.push(Outcome::Stored { conversation_id: conversation_id.clone() });
                items.push(IngestItem::Conversation(Box::new(ConversationItem::Refuse {
                    conversation_id,
                    at,
                    rejection,
                })));
            }
            DecodedEvent::Rejected(r) => outcomes.push(Outcome::Edge(r)),
        }
    }
    let results = if items.is_empty() {
        Vec::new()
    } else {
        let config = state.journey_config(org).await?;
        let n = items.len();
        let results = state.store.ingest(IngestBatch { org, config, items }).await?;
        metrics::counter!("waymark_events_ingested_total", "kind" => "conversation").increment(n as u64);
        results
    };
    publish_results(state, org, &results).await;

    let mut results = results.into_iter();
    let mut out = Vec::with_capacity(outcomes.len());
    let mut accepted = 0usize;
    for (index, o) in outcomes.into_iter().enumerate() {
        let mut entry = match o {
            Outcome::Edge(r) => rejected(r),
            Outcome::Stored { conversation_id } => {
                let mut e = match results.next() {
                    Some(ItemResult::Conversation(stored)) => {
                        accepted += 1;
                        json!({"status": 200, "eventId": stored.event.id, "session": summary(&stored.session.session)})
                    }
                    Some(ItemResult::Duplicate { session }) => {
                        accepted += 1;
                        let mut e = json!({"status": 200, "duplicate": true});
                        if let Some(s) = session {
                            e["session"] = summary(&s.session);
                        }
                        e
                    }
                    Some(ItemResult::Rejected(r)) => rejected(r),
                    _ => {
                        json!({"status": 500, "error": ApiError::new(ErrorCode::Internal, "the event produced no result").to_json()})
                    }
                };
                e["conversationId"] = json!(conversation_id);
                e
            }
        };
        entry["index"] = json!(index);
        out.push(entry);
    }
    let rejected_n = out.len() - accepted;
    metrics::counter!("waymark_events_rejected_total", "kind" => "conversation").increment(rejected_n as u64);
    if batch.single {
        let only = out.pop().unwrap_or(Value::Null);
        let status = only["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok());
        return Ok(match (status, only.get("error")) {
            (Some(s), Some(err)) => (s, axum::Json(err.clone())).into_response(),
            (Some(s), None) => (s, axum::Json(only)).into_response(),
            _ => ApiError::new(ErrorCode::Internal, "the event produced no result").into_response(),
        });
    }
    let status = if accepted == 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, axum::Json(json!({"accepted": accepted, "rejected": rejected_n, "results": out}))).into_response())
}

fn rejected(r: Rejection) -> Value {
    json!({"status": r.code.http_status(), "error": ApiError::from(r).to_json()})
}

/// What the sender learns about the session: where to read it and its state (nothing it may not see).
fn summary(s: &Session) -> Value {
    let mut v = json!({"id": s.id, "selfUri": s.self_uri, "createdDate": s.created_date, "eventCount": s.event_count});
    if let Some(st) = &s.conversation_state {
        v["conversationState"] = json!(st);
    }
    if let Some(c) = &s.external_contact {
        v["externalContact"] = json!(c);
    }
    v
}

/// The conversation ingestion endpoint (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_conversation_events))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}
