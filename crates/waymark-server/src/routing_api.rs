//! Routing records: queues, wrap-up codes and agents (users) as organisation records with names, in Genesys
//! shapes (`/api/v2/routing/queues`, `/api/v2/routing/wrapupcodes`, `/api/v2/users`), and their creation on
//! first sight when conversation ingestion names them ([`resolve`]).
//!
//! Agents: an agent seen only in conversations becomes a `User` record **scoped to its organisation** (record
//! `org` set, record name = display name) with no email, password or roles — it can never sign in and holds no
//! permission. Sign-in accounts (accounts.rs) are global `User` records named by their email. Both kinds decode
//! as [`User`] and both are listed by `/api/v2/users`; an event may name a sign-in user by its id.
//!
//! Ids: a record created from an event that names the platform's own id gets an id derived from
//! (organisation, kind, that id), so later events naming the same id find it without a lookup table; records
//! created by the API or from a name alone get a fresh time-ordered id.

use crate::accounts::User;
use crate::auth::Authorized;
use crate::auth::guards::{QueueEdit, QueueView, WrapupCodeEdit, WrapupCodeView};
use crate::error::{ApiError, ApiResult};
use crate::journey_api::QueryParams;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::conversation::RoutingRef;
use waymark_domain::ids::{OrgId, UserId};
use waymark_domain::{ErrorCode, Timestamp};
use waymark_store::{Record, RecordKind, StoreError};

/// Which routing record an event or a route names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingKind {
    Queue,
    WrapupCode,
    Agent,
}

impl RoutingKind {
    fn record_kind(self) -> RecordKind {
        match self {
            RoutingKind::Queue => RecordKind::Queue,
            RoutingKind::WrapupCode => RecordKind::WrapupCode,
            RoutingKind::Agent => RecordKind::User,
        }
    }

    fn what(self) -> &'static str {
        match self {
            RoutingKind::Queue => "queue",
            RoutingKind::WrapupCode => "wrap-up code",
            RoutingKind::Agent => "user",
        }
    }

    fn base(self) -> &'static str {
        match self {
            RoutingKind::Queue => "/api/v2/routing/queues",
            RoutingKind::WrapupCode => "/api/v2/routing/wrapupcodes",
            RoutingKind::Agent => "/api/v2/users",
        }
    }

    /// Queue and wrap-up code names are unique in an organisation; people's names are not.
    fn unique_names(self) -> bool {
        !matches!(self, RoutingKind::Agent)
    }
}

/// The stored body of a queue or wrap-up code (Genesys `Queue` / `WrapupCode` fields Waymark keeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingEntity {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub date_created: Timestamp,
    pub date_modified: Timestamp,
    /// The contact-center platform's id, when the record was first seen in a conversation event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// An id for a record first named by the platform id `external` (stable per organisation and kind).
fn derived_id(org: OrgId, kind: RoutingKind, external: &str) -> uuid::Uuid {
    let digest = Sha256::digest(format!("{org}/{}/{external}", kind.what()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The record `id` of this kind, if it belongs to `org`.
async fn owned(state: &AppState, org: OrgId, kind: RoutingKind, id: &str) -> ApiResult<Option<Record>> {
    let Some(rec) = state.store.get_record(kind.record_kind(), id).await? else { return Ok(None) };
    let mine = match kind {
        RoutingKind::Agent => rec.decode::<User>()?.org == org,
        _ => rec.org == Some(org),
    };
    Ok(mine.then_some(rec))
}

fn display_name(kind: RoutingKind, rec: &Record) -> ApiResult<String> {
    Ok(match kind {
        RoutingKind::Agent => rec.decode::<User>()?.name,
        _ => rec.name.clone(),
    })
}

/// Resolve a queue, agent or wrap-up code named by a conversation event to the organisation's record: by
/// record id, by the platform id it was first seen with, or by name — creating it when a name is given and
/// nothing matches. A bare id that names nothing is kept as sent.
pub async fn resolve(
    state: &AppState,
    org: OrgId,
    kind: RoutingKind,
    r: &RoutingRef,
    now: Timestamp,
) -> ApiResult<RoutingRef> {
    let found = |rec: &Record| -> ApiResult<RoutingRef> {
        Ok(RoutingRef { id: Some(rec.id.clone()), name: Some(display_name(kind, rec)?) })
    };
    if let Some(id) = &r.id {
        if let Some(rec) = owned(state, org, kind, id).await? {
            return found(&rec);
        }
        if let Some(rec) = owned(state, org, kind, &derived_id(org, kind, id).to_string()).await? {
            return found(&rec);
        }
    }
    let Some(name) = &r.name else { return Ok(r.clone()) };
    if r.id.is_none()
        && let Some(rec) = state.store.find_record(kind.record_kind(), Some(org), name).await?
    {
        return found(&rec);
    }
    let id = match &r.id {
        Some(ext) => derived_id(org, kind, ext).to_string(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let record = match kind {
        RoutingKind::Agent => {
            let user = User {
                id: UserId(uuid::Uuid::parse_str(&id).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?),
                org,
                email: String::new(),
                name: name.clone(),
                password_hash: None,
                role_ids: Vec::new(),
                division_ids: Vec::new(),
                active: true,
                service: false,
                created: now,
            };
            Record::new(RecordKind::User, Some(org), id.clone(), name.clone(), to_json(&user)?, now)
        }
        _ => {
            let body = RoutingEntity {
                id: id.clone(),
                name: name.clone(),
                description: None,
                date_created: now,
                date_modified: now,
                external_id: r.id.clone(),
            };
            Record::new(kind.record_kind(), Some(org), id.clone(), name.clone(), to_json(&body)?, now)
        }
    };
    match state.store.put_record(&record, None, kind.unique_names()).await {
        Ok(()) => {
            tracing::info!(kind = kind.what(), %id, %name, "routing record created from a conversation event");
            Ok(RoutingRef { id: Some(id), name: Some(name.clone()) })
        }
        // The name is taken (by the API, or by a concurrent request): that record is the one.
        Err(StoreError::Conflict(_)) => match state.store.find_record(kind.record_kind(), Some(org), name).await? {
            Some(rec) => found(&rec),
            None => Err(ApiError::new(
                ErrorCode::Conflict,
                format!("the {} {name:?} changed meanwhile; retry", kind.what()),
            )),
        },
        Err(e) => Err(e.into()),
    }
}

fn to_json<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

// ------------------------------------------------------------------------------------------------------------
// Queues and wrap-up codes
// ------------------------------------------------------------------------------------------------------------

fn entity_json(kind: RoutingKind, rec: &Record) -> ApiResult<Value> {
    let body: RoutingEntity = rec.decode()?;
    let mut v = to_json(&body)?;
    v["selfUri"] = json!(format!("{}/{}", kind.base(), rec.id));
    v["version"] = json!(rec.version);
    Ok(v)
}

/// `name` filter: exact (case-insensitive), or with leading/trailing `*` as wildcards (Genesys).
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.trim().to_lowercase(), name.to_lowercase());
    match (p.strip_prefix('*'), p.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => n.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => n.ends_with(rest),
        (None, Some(rest)) => n.starts_with(rest),
        (None, None) => n == p,
    }
}

/// A Genesys page (`pageSize`, `pageNumber`, `total`, `pageCount`) of already filtered entities.
fn paged(base: &str, q: &QueryParams, all: Vec<Value>) -> ApiResult<Json<Value>> {
    let size = q.page_size(25)?;
    let number = match q.get("pageNumber") {
        None => 1,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(ApiError::bad_query(format!("pageNumber must be a whole number from 1, got {s:?}"))),
        },
    };
    let total = all.len();
    let entities: Vec<Value> = all.into_iter().skip((number - 1).saturating_mul(size)).take(size).collect();
    Ok(Json(json!({
        "entities": entities,
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "pageCount": total.div_ceil(size),
        "selfUri": format!("{base}?pageSize={size}&pageNumber={number}"),
    })))
}

async fn list_entities(state: &AppState, org: OrgId, kind: RoutingKind, q: &QueryParams) -> ApiResult<Json<Value>> {
    let name = q.get("name").map(str::to_string);
    if name.as_ref().is_some_and(|n| n.len() > 256) {
        return Err(ApiError::bad_query("name is longer than 256 characters"));
    }
    let ids = q.list("id");
    let mut all = Vec::new();
    for rec in state.store.list_records(kind.record_kind(), Some(org)).await? {
        if name.as_ref().is_some_and(|n| !name_matches(n, &rec.name)) || (!ids.is_empty() && !ids.contains(&rec.id)) {
            continue;
        }
        all.push(entity_json(kind, &rec)?);
    }
    paged(kind.base(), q, all)
}

/// What a POST or PUT body may say.
struct EntityInput {
    name: String,
    description: Option<String>,
    version: Option<i64>,
}

fn entity_input(body: &Value) -> ApiResult<EntityInput> {
    let obj = body.as_object().ok_or_else(|| ApiError::new(ErrorCode::MalformedJson, "send a JSON object"))?;
    let bad = |field: &str, message: &str| ApiError {
        code: ErrorCode::InvalidField,
        message: message.to_string(),
        field: Some(field.to_string()),
        retry_after: None,
    };
    let name = match obj.get("name") {
        None | Some(Value::Null) => {
            return Err(ApiError {
                code: ErrorCode::MissingField,
                message: "name is required".into(),
                field: Some("name".into()),
                retry_after: None,
            });
        }
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(bad("name", "name must be a string")),
    };
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(bad("name", "name must be 1-256 characters of text"));
    }
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 1024 => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(_) => return Err(bad("description", "description must be text of at most 1024 bytes")),
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| bad("version", "version must be a whole number"))?),
    };
    Ok(EntityInput { name, description, version })
}

fn conflict_to_api(kind: RoutingKind, e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::Conflict(m) if m.contains("already exists") => ApiError::new(
            ErrorCode::Conflict,
            format!("a {} named {name:?} already exists; pick another name", kind.what()),
        ),
        other => other.into(),
    }
}

async fn create_entity(state: &AppState, org: OrgId, kind: RoutingKind, body: &Value) -> ApiResult<Response> {
    let input = entity_input(body)?;
    let now = state.clock.now();
    let id = uuid::Uuid::now_v7().to_string();
    let entity = RoutingEntity {
        id: id.clone(),
        name: input.name.clone(),
        description: input.description,
        date_created: now,
        date_modified: now,
        external_id: None,
    };
    let rec = Record::new(kind.record_kind(), Some(org), id, input.name.clone(), to_json(&entity)?, now);
    state.store.put_record(&rec, None, true).await.map_err(|e| conflict_to_api(kind, e, &input.name))?;
    Ok(Json(entity_json(kind, &rec)?).into_response())
}

async fn get_entity(state: &AppState, org: OrgId, kind: RoutingKind, id: &str) -> ApiResult<Json<Value>> {
    let rec = owned(state, org, kind, id).await?.ok_or_else(|| ApiError::not_found(kind.what()))?;
    Ok(Json(entity_json(kind, &rec)?))
}

async fn update_entity(
    state: &AppState,
    org: OrgId,
    kind: RoutingKind,
    id: &str,
    body: &Value,
) -> ApiResult<Json<Value>> {
    let input = entity_input(body)?;
    let rec = owned(state, org, kind, id).await?.ok_or_else(|| ApiError::not_found(kind.what()))?;
    let mut entity: RoutingEntity = rec.decode()?;
    let now = state.clock.now();
    entity.name = input.name.clone();
    entity.description = input.description;
    entity.date_modified = now;
    let expect = input.version.unwrap_or(rec.version);
    let next =
        Record { name: input.name.clone(), body: to_json(&entity)?, version: rec.version + 1, updated: now, ..rec };
    state.store.put_record(&next, Some(expect), true).await.map_err(|e| conflict_to_api(kind, e, &input.name))?;
    Ok(Json(entity_json(kind, &next)?))
}

async fn delete_entity(state: &AppState, org: OrgId, kind: RoutingKind, id: &str) -> ApiResult<StatusCode> {
    owned(state, org, kind, id).await?.ok_or_else(|| ApiError::not_found(kind.what()))?;
    state.store.delete_record(kind.record_kind(), Some(org), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn json_body(body: Result<Json<Value>, axum::extract::rejection::JsonRejection>) -> ApiResult<Value> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {}", e.body_text())))
}

type JsonBody = Result<Json<Value>, axum::extract::rejection::JsonRejection>;

/// `GET /api/v2/routing/queues?name=&id=&pageSize=&pageNumber=`.
#[utoipa::path(get, path = "/api/v2/routing/queues", tag = "routing", description = "Queues of the organisation. Needs `routing:queue:view`.", params(("name" = Option<String>, Query, description = "Name filter"), ("pageSize" = Option<u32>, Query, description = "Page size"), ("pageNumber" = Option<u32>, Query, description = "Page number")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_queues(
    auth: Authorized<QueueView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    list_entities(&state, auth.org, RoutingKind::Queue, &QueryParams::parse(q)).await
}

/// `POST /api/v2/routing/queues`.
#[utoipa::path(post, path = "/api/v2/routing/queues", tag = "routing", description = "Create a queue. Needs `routing:queue:edit`.", request_body = serde_json::Value, responses((status = 201, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_queue(
    auth: Authorized<QueueEdit>,
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<Response> {
    create_entity(&state, auth.org, RoutingKind::Queue, &json_body(body)?).await
}

/// `GET /api/v2/routing/queues/{queueId}`.
#[utoipa::path(get, path = "/api/v2/routing/queues/{queue_id}", tag = "routing", description = "One queue. Needs `routing:queue:view`.", params(("queue_id" = String, Path, description = "Queue id")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_queue(
    auth: Authorized<QueueView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_entity(&state, auth.org, RoutingKind::Queue, &id).await
}

/// `PUT /api/v2/routing/queues/{queueId}`.
#[utoipa::path(put, path = "/api/v2/routing/queues/{queue_id}", tag = "routing", description = "Update a queue. Needs `routing:queue:edit`.", params(("queue_id" = String, Path, description = "Queue id")), request_body = serde_json::Value, responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn put_queue(
    auth: Authorized<QueueEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    update_entity(&state, auth.org, RoutingKind::Queue, &id, &json_body(body)?).await
}

/// `DELETE /api/v2/routing/queues/{queueId}`.
#[utoipa::path(delete, path = "/api/v2/routing/queues/{queue_id}", tag = "routing", description = "Delete a queue. Needs `routing:queue:edit`.", params(("queue_id" = String, Path, description = "Queue id")), responses((status = 204, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_queue(
    auth: Authorized<QueueEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_entity(&state, auth.org, RoutingKind::Queue, &id).await
}

/// `GET /api/v2/routing/wrapupcodes?name=&id=&pageSize=&pageNumber=`.
#[utoipa::path(get, path = "/api/v2/routing/wrapupcodes", tag = "routing", description = "Wrap-up codes. Needs `routing:wrapupCode:view`.", params(("name" = Option<String>, Query, description = "Name filter"), ("pageSize" = Option<u32>, Query, description = "Page size"), ("pageNumber" = Option<u32>, Query, description = "Page number")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_wrapup_codes(
    auth: Authorized<WrapupCodeView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    list_entities(&state, auth.org, RoutingKind::WrapupCode, &QueryParams::parse(q)).await
}

/// `POST /api/v2/routing/wrapupcodes`.
#[utoipa::path(post, path = "/api/v2/routing/wrapupcodes", tag = "routing", description = "Create a wrap-up code. Needs `routing:wrapupCode:edit`.", request_body = serde_json::Value, responses((status = 201, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_wrapup_code(
    auth: Authorized<WrapupCodeEdit>,
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<Response> {
    create_entity(&state, auth.org, RoutingKind::WrapupCode, &json_body(body)?).await
}

/// `GET /api/v2/routing/wrapupcodes/{codeId}`.
#[utoipa::path(get, path = "/api/v2/routing/wrapupcodes/{code_id}", tag = "routing", description = "One wrap-up code. Needs `routing:wrapupCode:view`.", params(("code_id" = String, Path, description = "Wrap-up code id")), responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_wrapup_code(
    auth: Authorized<WrapupCodeView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_entity(&state, auth.org, RoutingKind::WrapupCode, &id).await
}

/// `PUT /api/v2/routing/wrapupcodes/{codeId}`.
#[utoipa::path(put, path = "/api/v2/routing/wrapupcodes/{code_id}", tag = "routing", description = "Update a wrap-up code. Needs `routing:wrapupCode:edit`.", params(("code_id" = String, Path, description = "Wrap-up code id")), request_body = serde_json::Value, responses((status = 200, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn put_wrapup_code(
    auth: Authorized<WrapupCodeEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    update_entity(&state, auth.org, RoutingKind::WrapupCode, &id, &json_body(body)?).await
}

/// `DELETE /api/v2/routing/wrapupcodes/{codeId}`.
#[utoipa::path(delete, path = "/api/v2/routing/wrapupcodes/{code_id}", tag = "routing", description = "Delete a wrap-up code. Needs `routing:wrapupCode:edit`.", params(("code_id" = String, Path, description = "Wrap-up code id")), responses((status = 204, description = "Success", body = serde_json::Value), (status = 400, description = "Invalid input"), (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"), (status = 404, description = "Not found")), security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_wrapup_code(
    auth: Authorized<WrapupCodeEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_entity(&state, auth.org, RoutingKind::WrapupCode, &id).await
}

/// Routing records (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_queues, create_queue))
        .routes(routes!(get_queue, put_queue, delete_queue))
        .routes(routes!(list_wrapup_codes, create_wrapup_code))
        .routes(routes!(get_wrapup_code, put_wrapup_code, delete_wrapup_code))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filter_wildcards() {
        assert!(name_matches("sales", "Sales"));
        assert!(!name_matches("sales", "Sales EU"));
        assert!(name_matches("sales*", "Sales EU"));
        assert!(name_matches("*eu", "Sales EU"));
        assert!(name_matches("*les e*", "Sales EU"));
        assert!(!name_matches("*x*", "Sales EU"));
    }

    #[test]
    fn derived_ids_are_stable_per_org_and_kind() {
        let a = OrgId(uuid::Uuid::from_u128(1));
        let b = OrgId(uuid::Uuid::from_u128(2));
        assert_eq!(derived_id(a, RoutingKind::Queue, "q-1"), derived_id(a, RoutingKind::Queue, "q-1"));
        assert_ne!(derived_id(a, RoutingKind::Queue, "q-1"), derived_id(b, RoutingKind::Queue, "q-1"));
        assert_ne!(derived_id(a, RoutingKind::Queue, "q-1"), derived_id(a, RoutingKind::WrapupCode, "q-1"));
    }
}
