//! Engagement: action maps CRUD (`/api/v2/journey/actionmaps`, Genesys `ActionMap`/`ActionMapListing`,
//! behind `journey:actionmap:*`), the public `actionevent` endpoint where the tracker reports what became of
//! an offer, and the `DeploymentWebAction` shape the ping answer carries offers in. The decisions themselves
//! are the offer engine's ([`waymark_domain::offer`]), run inside the journey write path.

use crate::auth::Authorized;
use crate::auth::guards::{ActionMapAdd, ActionMapDelete, ActionMapEdit, ActionMapView};
use crate::error::{ApiError, ApiResult};
use crate::journey_api::QueryParams;
use crate::publish::publish_results;
use crate::state::AppState;
use crate::tracking::{body_rejection, cors, parse_json_body, preflight, tracking_context};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use waymark_domain::ErrorCode;
use waymark_domain::action_map::{ActionMap, ActionMapMeta, ActionMapRequest, MAX_ACTION_MAPS, parse_action_map};
use waymark_domain::ids::SessionId;
use waymark_domain::offer::{ActionState, OfferRecord};
use waymark_store::{ActionItem, IngestBatch, IngestItem, ItemResult, Record, RecordKind};

/// `DeploymentWebAction`: one offer in a ping answer.
pub fn web_action_json(o: &OfferRecord, cookie: &str, session_id: &str) -> Value {
    let mut v = json!({
        "id": o.id,
        "mediaType": o.action.media_type.as_str(),
        "customerId": cookie,
        "customerIdType": "cookie",
        "actionMapId": o.map_id,
        "actionMapVersion": o.map_version,
        "sessionId": session_id,
    });
    if let Some(c) = &o.action.content_offer {
        v["contentOfferProperties"] = serde_json::to_value(c).unwrap_or(Value::Null);
    } else {
        let text = o.action.web_messaging_offer_fields.as_ref().and_then(|f| f.offer_text.clone());
        v["webMessagingOfferProperties"] = match text {
            Some(t) => json!({"offerText": t}),
            None => json!({}),
        };
    }
    v
}

async fn load_map(state: &AppState, org: waymark_domain::ids::OrgId, id: &str) -> ApiResult<(Record, ActionMap)> {
    let rec = state
        .store
        .get_record(RecordKind::ActionMap, id)
        .await?
        .filter(|r| r.org == Some(org))
        .ok_or_else(|| ApiError::not_found("action map"))?;
    let map: ActionMap = rec.decode()?;
    Ok((rec, map))
}

fn request_from(value: Value) -> ApiResult<ActionMapRequest> {
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::MalformedJson, "send an ActionMap JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, format!("the body does not have the ActionMap shape: {e}")))
}

fn record_of(org: waymark_domain::ids::OrgId, map: &ActionMap) -> ApiResult<Record> {
    let body = serde_json::to_value(map).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let mut r = Record::new(RecordKind::ActionMap, Some(org), &map.id, &map.display_name, body, map.modified_date);
    r.version = map.version;
    Ok(r)
}

/// `GET /api/v2/journey/actionmaps`: `ActionMapListing`, paged by `pageNumber`/`pageSize`, optionally only
/// `actionMapIds`, sorted by `sortBy` (`displayName`, `createdDate`, `modifiedDate`, `weight`; `-` descending).
#[utoipa::path(get, path = "/api/v2/journey/actionmaps", tag = "engagement", description = "Genesys `ActionMapListing`. Needs `journey:actionmap:view`.", params(("pageNumber" = Option<u32>, Query, description = "Page number"), ("pageSize" = Option<u32>, Query, description = "Page size (at most 200)"), ("actionMapIds" = Option<String>, Query, description = "Only these ids (comma-separated, at most 100)"), ("sortBy" = Option<String>, Query, description = "displayName, createdDate, modifiedDate or weight; prefix - for descending")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
async fn list(
    caller: Authorized<ActionMapView>,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(raw);
    let page_size = q.page_size(25)?;
    let page_number = match q.get("pageNumber") {
        None => 1,
        Some(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_query(format!("pageNumber must be a whole number from 1, got {s:?}")))?,
    };
    let mut maps: Vec<ActionMap> = Vec::new();
    for r in state.store.list_records(RecordKind::ActionMap, Some(caller.org)).await? {
        maps.push(r.decode()?);
    }
    let ids = q.list("actionMapIds");
    if !ids.is_empty() {
        if ids.len() > 100 {
            return Err(ApiError::bad_query("actionMapIds holds at most 100 ids"));
        }
        maps.retain(|m| ids.contains(&m.id));
    }
    if let Some(sort) = q.get("sortBy") {
        let (desc, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, sort),
        };
        match field {
            "displayName" => maps.sort_by_key(|m| m.display_name.to_lowercase()),
            "createdDate" => maps.sort_by_key(|m| m.created_date),
            "modifiedDate" => maps.sort_by_key(|m| m.modified_date),
            "weight" => maps.sort_by_key(|m| m.weight),
            other => {
                return Err(ApiError::bad_query(format!(
                    "sortBy {other:?} is not one of displayName, createdDate, modifiedDate, weight"
                )));
            }
        }
        if desc {
            maps.reverse();
        }
    }
    let total = maps.len();
    let page_count = total.div_ceil(page_size).max(1);
    let entities: Vec<&ActionMap> = maps.iter().skip((page_number - 1) * page_size).take(page_size).collect();
    let uri = |n: usize| format!("/api/v2/journey/actionmaps?pageSize={page_size}&pageNumber={n}");
    let mut v = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "lastUri": uri(page_count),
        "selfUri": uri(page_number),
    });
    if page_number < page_count {
        v["nextUri"] = json!(uri(page_number + 1));
    }
    if page_number > 1 {
        v["previousUri"] = json!(uri(page_number - 1));
    }
    Ok(Json(v))
}

/// `GET /api/v2/journey/actionmaps/{id}`.
#[utoipa::path(get, path = "/api/v2/journey/actionmaps/{action_map_id}", tag = "engagement", description = "One Genesys `ActionMap`. Needs `journey:actionmap:view`.", params(("action_map_id" = String, Path, description = "Action map id")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
async fn get_one(
    caller: Authorized<ActionMapView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ActionMap>> {
    Ok(Json(load_map(&state, caller.org, &id).await?.1))
}

/// `POST /api/v2/journey/actionmaps`.
#[utoipa::path(post, path = "/api/v2/journey/actionmaps", tag = "engagement", description = "Create an action map (Genesys `ActionMap`; content offers carry `action.contentOffer`). Needs `journey:actionmap:add`.", request_body = serde_json::Value, responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found"), (status = 409, description = "Name taken or limit reached")), security(("bearer" = []), ("session_cookie" = [])))]
async fn create(
    caller: Authorized<ActionMapAdd>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ActionMap>> {
    let body = body.map_err(|r| body_rejection(r, state.config.limits.max_body_bytes))?;
    let req = request_from(parse_json_body(&headers, &body)?)?;
    let now = state.clock.now();
    let existing = state.store.list_records(RecordKind::ActionMap, Some(caller.org)).await?.len();
    if existing >= MAX_ACTION_MAPS {
        return Err(ApiError::new(
            ErrorCode::LimitReached,
            format!("an organisation may have at most {MAX_ACTION_MAPS} action maps; delete unused ones first"),
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let map = parse_action_map(req, ActionMapMeta { id, version: 1, created: now, modified: now })?;
    state.store.put_record(&record_of(caller.org, &map)?, None, true).await?;
    state.forget_journey_config(caller.org);
    tracing::info!(org = %caller.org, action_map = %map.id, user = %caller.user_name, "action map created");
    Ok(Json(map))
}

/// `PATCH /api/v2/journey/actionmaps/{id}`: the fields sent replace the stored ones; `version` must be the
/// stored version (optimistic concurrency), and the answer carries the next.
#[utoipa::path(patch, path = "/api/v2/journey/actionmaps/{action_map_id}", tag = "engagement", description = "Update an action map (Genesys `PatchActionMap`; `version` required). Needs `journey:actionmap:edit`.", params(("action_map_id" = String, Path, description = "Action map id")), request_body = serde_json::Value, responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found"), (status = 409, description = "Version conflict")), security(("bearer" = []), ("session_cookie" = [])))]
async fn patch(
    caller: Authorized<ActionMapEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ActionMap>> {
    let body = body.map_err(|r| body_rejection(r, state.config.limits.max_body_bytes))?;
    let Value::Object(changes) = parse_json_body(&headers, &body)? else {
        return Err(ApiError::new(ErrorCode::MalformedJson, "send a PatchActionMap JSON object"));
    };
    let (_, old) = load_map(&state, caller.org, &id).await?;
    let version = match changes.get("version") {
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::from(waymark_domain::Rejection::at(
                ErrorCode::InvalidField,
                "version",
                "version must be a number",
            ))
        })?,
        None => {
            return Err(waymark_domain::Rejection::at(
                ErrorCode::MissingField,
                "version",
                "version is required: send the version you read, so that concurrent edits are not lost",
            )
            .into());
        }
    };
    if version != old.version {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the action map is at version {}, not {version}; reload it and apply your change again",
                old.version
            ),
        ));
    }
    let mut merged = serde_json::to_value(&old).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    if let Value::Object(m) = &mut merged {
        for (k, v) in changes {
            if matches!(k.as_str(), "id" | "version" | "selfUri" | "createdDate" | "modifiedDate") {
                continue;
            }
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
    }
    let now = state.clock.now();
    let map = parse_action_map(
        request_from(merged)?,
        ActionMapMeta { id: old.id.clone(), version: old.version + 1, created: old.created_date, modified: now },
    )?;
    state.store.put_record(&record_of(caller.org, &map)?, Some(old.version), true).await?;
    state.forget_journey_config(caller.org);
    tracing::info!(org = %caller.org, action_map = %map.id, version = map.version, "action map updated");
    Ok(Json(map))
}

/// `DELETE /api/v2/journey/actionmaps/{id}`: 204.
#[utoipa::path(delete, path = "/api/v2/journey/actionmaps/{action_map_id}", tag = "engagement", description = "Delete an action map. Needs `journey:actionmap:delete`.", params(("action_map_id" = String, Path, description = "Action map id")), responses((status = 204, description = "Deleted"), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
async fn delete(
    caller: Authorized<ActionMapDelete>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    load_map(&state, caller.org, &id).await?;
    if !state.store.delete_record(RecordKind::ActionMap, Some(caller.org), &id).await? {
        return Err(ApiError::not_found("action map"));
    }
    state.forget_journey_config(caller.org);
    tracing::info!(org = %caller.org, action_map = %id, "action map deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `ActionEventRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionEventRequest {
    session_id: Option<String>,
    action_id: Option<String>,
    action_state: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// `POST /api/v2/journey/deployments/{deploymentId}/actionevent`: the tracker reports an offer's new state;
/// recorded as a `WebActionEvent` on the session. 204 when stored (or already in that state).
#[utoipa::path(post, path = "/api/v2/journey/deployments/{deployment_id}/actionevent", tag = "tracking", description = "Public (no token): the tracker reports an offer's new state (Genesys `ActionEventRequest`), recorded as a `WebActionEvent`. An accepted chat offer starts a web chat conversation for the visitor.", params(("deployment_id" = String, Path, description = "Deployment id")), request_body(content = serde_json::Value, description = "`ActionEventRequest`"), responses((status = 204, description = "Recorded"), (status = 400, description = "Invalid input"), (status = 403, description = "Origin not allowed"), (status = 404, description = "Unknown deployment, session or action"), (status = 409, description = "Impossible transition"), (status = 429, description = "Rate limited")))]
async fn post_actionevent(
    State(state): State<AppState>,
    Path(deployment_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = match tracking_context(&state, &deployment_id, &headers, peer).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let body = body.map_err(|r| body_rejection(r, state.config.limits.max_body_bytes))?;
        let req: ActionEventRequest = serde_json::from_value(parse_json_body(&headers, &body)?).map_err(|e| {
            ApiError::new(ErrorCode::InvalidField, format!("the body does not have the ActionEventRequest shape: {e}"))
        })?;
        let field = |f: &str, m: &str| ApiError::from(waymark_domain::Rejection::at(ErrorCode::InvalidField, f, m));
        let missing = |f: &str| {
            ApiError::from(waymark_domain::Rejection::at(ErrorCode::MissingField, f, format!("{f} is required")))
        };
        let session_id = req.session_id.as_deref().ok_or_else(|| missing("sessionId"))?;
        let session_id =
            SessionId::parse(session_id).ok_or_else(|| field("sessionId", "sessionId must be the session's UUID"))?;
        let action_id = req.action_id.ok_or_else(|| missing("actionId"))?;
        if action_id.is_empty() || action_id.len() > 64 {
            return Err(field("actionId", "actionId must be the id the ping returned"));
        }
        let raw_state = req.action_state.as_deref().ok_or_else(|| missing("actionState"))?;
        let action_state = ActionState::parse(raw_state).ok_or_else(|| {
            let all: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
            field("actionState", &format!("actionState {raw_state:?} is not one of {}", all.join(", ")))
        })?;
        for (name, v) in [("errorCode", &req.error_code), ("errorMessage", &req.error_message)] {
            if v.as_ref().is_some_and(|s| s.len() > 1024) {
                return Err(field(name, &format!("{name} is longer than 1024 bytes")));
            }
        }
        let org = ctx.deployment.org_id;
        let config = state.journey_config(org).await?;
        let item = ActionItem {
            session_id,
            action_id,
            state: action_state,
            error_code: req.error_code,
            error_message: req.error_message,
            at: state.clock.now(),
        };
        let results =
            state.store.ingest(IngestBatch { org, config, items: vec![IngestItem::Action(Box::new(item))] }).await?;
        publish_results(&state, org, &results).await;
        match results.into_iter().next() {
            Some(ItemResult::Action(stored)) => {
                if let Some(e) = &stored.event {
                    metrics::counter!("waymark_events_ingested_total", "kind" => "action").increment(1);
                    tracing::debug!(session = %stored.session.session.id, event = %e.id, state = raw_state, "offer state recorded");
                    if action_state == ActionState::Accepted {
                        start_chat(&state, org, &stored, e).await?;
                    }
                }
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Some(ItemResult::Rejected(r)) => Err(r.into()),
            _ => Err(ApiError::new(ErrorCode::Internal, "the action event produced no result")),
        }
    }
    .await;
    let mut resp = result.unwrap_or_else(|e| e.into_response());
    cors(&mut resp, ctx.origin.as_deref());
    resp
}

/// An accepted chat offer starts a web chat (or web messaging) conversation for the visitor: a `started`
/// lifecycle event addressed to the visitor's cookie id, so the conversation session joins the same customer's
/// journey as the web session that received the offer. Its id derives from the action id, so a retried report
/// cannot start a second conversation.
async fn start_chat(
    state: &AppState,
    org: waymark_domain::ids::OrgId,
    stored: &waymark_store::ActionStored,
    event: &waymark_domain::event::Event,
) -> ApiResult<()> {
    use waymark_domain::conversation::{Address, Channel, ConversationEvent, Direction, LifecycleType};
    let Some(action) = event.web_action_event.as_ref() else { return Ok(()) };
    let channel = match action.action.media_type.as_str() {
        "webchat" => Channel::WebChat,
        "webMessagingOffer" => Channel::WebMessaging,
        _ => return Ok(()),
    };
    let Some(cookie) =
        stored.session.session.customer_id.as_deref().and_then(|c| waymark_domain::web_event::CookieId::parse(c).ok())
    else {
        return Ok(());
    };
    let conversation = ConversationEvent {
        id: format!("offer-{}", action.action.id),
        conversation_id: action.action.id.clone(),
        kind: LifecycleType::Started,
        at: event.created_date,
        channel: Some(channel),
        direction: Some(Direction::Inbound),
        address: Some(Address { cookie_id: Some(cookie), ..Default::default() }),
        subject: Some(action.action.prompt.clone()).filter(|p| !p.is_empty()),
        queue: None,
        agent: None,
        wrapup_code: None,
        notes: None,
        disconnect_type: None,
    };
    let config = state.journey_config(org).await?;
    let item = IngestItem::Conversation(Box::new(waymark_store::ConversationItem::Event(Box::new(conversation))));
    let results = state.store.ingest(IngestBatch { org, config, items: vec![item] }).await?;
    if let Some(ItemResult::Rejected(r)) = results.first() {
        tracing::warn!(org = %org, action = %action.action.id, reason = %r.message, "the accepted chat could not start a conversation");
    }
    publish_results(state, org, &results).await;
    Ok(())
}

/// Action maps CRUD and the public `actionevent` endpoint.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, patch, delete))
        .routes(routes!(post_actionevent))
        .route("/api/v2/journey/deployments/{deployment_id}/actionevent", axum::routing::options(preflight))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}
