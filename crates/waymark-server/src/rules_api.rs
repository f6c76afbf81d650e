//! Segment and outcome administration in the Genesys Journey wire format:
//! `GET/POST /api/v2/journey/segments`, `GET/PATCH/DELETE /api/v2/journey/segments/{id}` (permissions
//! `journey:segment:view|add|edit|delete`) and the same for `/api/v2/journey/outcomes` (`journey:outcome:*`).
//!
//! Definitions are validated by the domain parsers (refusals name the bad field), stored as administrative
//! records (one per definition, its version the record version, so concurrent edits conflict instead of
//! overwriting), and every change drops the organisation's compiled rules so the next event uses them.

use crate::auth::guards::{
    OutcomeAdd, OutcomeDelete, OutcomeEdit, OutcomeView, SegmentAdd, SegmentDelete, SegmentEdit, SegmentView,
};
use crate::auth::{Authorized, Guard};
use crate::error::{ApiError, ApiResult};
use crate::journey_api::QueryParams;
use crate::state::AppState;
use crate::tracking::{body_rejection, parse_json_body};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::cmp::Ordering;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::outcome::{MAX_OUTCOMES, OutcomeDefinition};
use waymark_domain::segment::{MAX_SEGMENTS, SegmentDefinition};
use waymark_domain::{ErrorCode, Rejection, Timestamp};
use waymark_store::{Record, RecordKind, StoreError};

/// Largest definition body accepted.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the CRUD handlers need to know about a kind of definition.
trait Definition: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: RecordKind;
    /// `segment` / `outcome`, for messages.
    const NOUN: &'static str;
    const PATH: &'static str;
    const MAX: usize;
    /// The query parameter that selects by id, and how many ids it takes.
    const IDS_PARAM: &'static str;
    const MAX_IDS: usize;
    /// First-level fields `sortBy` accepts.
    const SORTABLE: &'static [&'static str];
    fn parse(v: &Value) -> Result<Self, Rejection>;
    fn patched(&self, patch: &Value, now: Timestamp) -> Result<Self, Rejection>;
    fn with_identity(self, id: String, now: Timestamp) -> Self;
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn version(&self) -> i64;
    fn active(&self) -> bool;
}

impl Definition for SegmentDefinition {
    const KIND: RecordKind = RecordKind::Segment;
    const NOUN: &'static str = "segment";
    const PATH: &'static str = "/api/v2/journey/segments";
    const MAX: usize = MAX_SEGMENTS;
    const IDS_PARAM: &'static str = "segmentIds";
    const MAX_IDS: usize = 100;
    const SORTABLE: &'static [&'static str] = &[
        "id",
        "displayName",
        "description",
        "createdDate",
        "modifiedDate",
        "version",
        "isActive",
        "scope",
        "color",
        "shouldDisplayToAgent",
        "assignmentExpirationDays",
    ];
    fn parse(v: &Value) -> Result<Self, Rejection> {
        waymark_domain::segment::parse_segment_request(v)
    }
    fn patched(&self, patch: &Value, now: Timestamp) -> Result<Self, Rejection> {
        waymark_domain::segment::apply_patch(self, patch, now)
    }
    fn with_identity(self, id: String, now: Timestamp) -> Self {
        self.created(id, now)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.display_name
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn active(&self) -> bool {
        self.is_active
    }
}

impl Definition for OutcomeDefinition {
    const KIND: RecordKind = RecordKind::Outcome;
    const NOUN: &'static str = "outcome";
    const PATH: &'static str = "/api/v2/journey/outcomes";
    const MAX: usize = MAX_OUTCOMES;
    const IDS_PARAM: &'static str = "outcomeIds";
    const MAX_IDS: usize = 20;
    const SORTABLE: &'static [&'static str] =
        &["id", "displayName", "description", "createdDate", "modifiedDate", "version", "isActive", "isPositive"];
    fn parse(v: &Value) -> Result<Self, Rejection> {
        waymark_domain::outcome::parse_outcome_request(v)
    }
    fn patched(&self, patch: &Value, now: Timestamp) -> Result<Self, Rejection> {
        waymark_domain::outcome::apply_patch(self, patch, now)
    }
    fn with_identity(self, id: String, now: Timestamp) -> Self {
        self.created(id, now)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.display_name
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn active(&self) -> bool {
        self.is_active
    }
}

fn not_found<D: Definition>() -> ApiError {
    ApiError::not_found(D::NOUN)
}

fn record_of<D: Definition>(def: &D, org: waymark_domain::ids::OrgId, now: Timestamp) -> ApiResult<Record> {
    let body = serde_json::to_value(def)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the {} does not serialize: {e}", D::NOUN)))?;
    let mut r = Record::new(D::KIND, Some(org), def.id(), def.name(), body, now);
    r.version = def.version();
    Ok(r)
}

/// A write refused by the store: a taken name or a concurrent edit is 409 with a clear message.
fn write_error<D: Definition>(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) if m.contains("named") => {
            let mut err = ApiError::new(
                ErrorCode::Conflict,
                format!("another {} already has this displayName; choose a different name", D::NOUN),
            );
            err.field = Some("displayName".into());
            err
        }
        StoreError::Conflict(_) => ApiError::new(
            ErrorCode::Conflict,
            format!("the {} was changed by someone else meanwhile; reload it and apply your change again", D::NOUN),
        ),
        other => other.into(),
    }
}

/// Load a definition of the caller's organisation; anything else is 404.
async fn load<D: Definition>(state: &AppState, org: waymark_domain::ids::OrgId, id: &str) -> ApiResult<(Record, D)> {
    if id.len() > 64 {
        return Err(not_found::<D>());
    }
    let rec = state.store.get_record(D::KIND, id).await?.ok_or_else(not_found::<D>)?;
    if rec.org != Some(org) {
        return Err(not_found::<D>());
    }
    let def = rec.decode::<D>()?;
    Ok((rec, def))
}

fn body_json(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(|r| body_rejection(r, MAX_BODY_BYTES))?;
    parse_json_body(headers, &body)
}

/// Compare two first-level JSON values for sorting: text case-insensitively, then numbers, then booleans;
/// absent values last.
fn compare_json(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()).then(x.cmp(y)),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

fn page_number(q: &QueryParams) -> ApiResult<usize> {
    match q.get("pageNumber") {
        None => Ok(1),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_query(format!("pageNumber must be a whole number from 1, got {s:?}"))),
        },
    }
}

/// `GET …`: the Genesys page-number listing, with `sortBy`, `isActive`, id selection and fuzzy query.
async fn list<D: Definition, G: Guard>(
    auth: Authorized<G>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(q);
    let records = state.store.list_records(D::KIND, Some(auth.org)).await?;
    let mut defs: Vec<(D, Value)> = Vec::with_capacity(records.len());
    for r in &records {
        let d = r.decode::<D>()?;
        let v = serde_json::to_value(&d)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the {} does not serialize: {e}", D::NOUN)))?;
        defs.push((d, v));
    }

    let ids = q.list(D::IDS_PARAM);
    if !ids.is_empty() {
        if ids.len() > D::MAX_IDS {
            return Err(ApiError::bad_query(format!("{} takes at most {} ids", D::IDS_PARAM, D::MAX_IDS)));
        }
        let entities: Vec<Value> =
            ids.iter().filter_map(|id| defs.iter().find(|(d, _)| d.id() == id).map(|(_, v)| v.clone())).collect();
        let n = entities.len();
        return Ok(Json(json!({
            "entities": entities, "pageSize": n, "pageNumber": 1, "total": n, "pageCount": 1,
            "selfUri": format!("{}?{}={}", D::PATH, D::IDS_PARAM, ids.join(",")),
        })));
    }

    if let Some(a) = q.get("isActive") {
        let want = match a.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(ApiError::bad_query(format!("isActive must be true or false, got {a:?}"))),
        };
        defs.retain(|(d, _)| d.active() == want);
    }
    let fields = q.list("queryFields");
    match (fields.is_empty(), q.get("queryValue")) {
        (true, None) => {}
        (false, Some(value)) => {
            for f in &fields {
                if !["displayName", "description"].contains(&f.as_str()) {
                    return Err(ApiError::bad_query(format!(
                        "queryFields may name displayName or description, got {f:?}"
                    )));
                }
            }
            let needle = value.trim().to_lowercase();
            defs.retain(|(_, v)| {
                fields
                    .iter()
                    .any(|f| v.get(f).and_then(Value::as_str).is_some_and(|s| s.to_lowercase().contains(&needle)))
            });
        }
        _ => return Err(ApiError::bad_query("queryFields and queryValue must be given together")),
    }
    let mut sort: Vec<(String, bool)> = Vec::new();
    for s in q.list("sortBy") {
        let (field, desc) = match s.strip_prefix('-') {
            Some(f) => (f.to_string(), true),
            None => (s.clone(), false),
        };
        if !D::SORTABLE.contains(&field.as_str()) {
            return Err(ApiError::bad_query(format!(
                "sortBy cannot use {field:?}; use one of {}",
                D::SORTABLE.join(", ")
            )));
        }
        sort.push((field, desc));
    }
    if sort.is_empty() {
        sort.push(("displayName".into(), false));
    }
    defs.sort_by(|(_, a), (_, b)| {
        sort.iter()
            .map(|(f, desc)| {
                let o = compare_json(a.get(f), b.get(f));
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| compare_json(a.get("id"), b.get("id")))
    });

    let page_size = q.page_size(25)?;
    let page_number = page_number(&q)?;
    let total = defs.len();
    let page_count = total.div_ceil(page_size).max(1);
    let entities: Vec<Value> =
        defs.into_iter().skip((page_number - 1).saturating_mul(page_size)).take(page_size).map(|(_, v)| v).collect();
    let uri = |n: usize| format!("{}?pageSize={page_size}&pageNumber={n}", D::PATH);
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "selfUri": uri(page_number),
        "firstUri": uri(1),
        "lastUri": uri(page_count),
    });
    if page_number < page_count {
        body["nextUri"] = json!(uri(page_number + 1));
    }
    if page_number > 1 {
        body["previousUri"] = json!(uri((page_number - 1).min(page_count)));
    }
    Ok(Json(body))
}

/// `POST …`: create a definition (at most `D::MAX` per organisation).
async fn create<D: Definition, G: Guard>(
    auth: Authorized<G>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let v = body_json(&headers, body)?;
    let def = D::parse(&v)?;
    let _writing = state.definitions_lock.lock().await;
    let existing = state.store.list_records(D::KIND, Some(auth.org)).await?;
    if existing.len() >= D::MAX {
        return Err(ApiError::new(
            ErrorCode::LimitReached,
            format!(
                "this organisation already has {} {}s, the most allowed; delete one before adding another",
                existing.len(),
                D::NOUN
            ),
        ));
    }
    let now = state.clock.now();
    let def = def.with_identity(uuid::Uuid::now_v7().to_string(), now);
    let rec = record_of(&def, auth.org, now)?;
    state.store.put_record(&rec, None, true).await.map_err(write_error::<D>)?;
    state.forget_journey_config(auth.org);
    tracing::info!(org = %auth.org, kind = D::NOUN, id = def.id(), user = %auth.user_id, "definition created");
    Ok((StatusCode::CREATED, Json(rec.body)).into_response())
}

/// `GET …/{id}`.
async fn get_one<D: Definition, G: Guard>(
    auth: Authorized<G>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (rec, _) = load::<D>(&state, auth.org, &id).await?;
    Ok(Json(rec.body))
}

/// `PATCH …/{id}`: fields present replace the stored ones; a stale `version` is 409.
async fn patch<D: Definition, G: Guard>(
    auth: Authorized<G>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = body_json(&headers, body)?;
    let _writing = state.definitions_lock.lock().await;
    let (rec, current) = load::<D>(&state, auth.org, &id).await?;
    let next = current.patched(&v, state.clock.now())?;
    let new = record_of(&next, auth.org, state.clock.now())?;
    state.store.put_record(&new, Some(rec.version), true).await.map_err(write_error::<D>)?;
    state.forget_journey_config(auth.org);
    tracing::info!(org = %auth.org, kind = D::NOUN, id = %id, version = next.version(), user = %auth.user_id, "definition changed");
    Ok(Json(new.body))
}

/// `DELETE …/{id}`: 204. Past assignments stay on the sessions that received them.
async fn delete<D: Definition, G: Guard>(
    auth: Authorized<G>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let _writing = state.definitions_lock.lock().await;
    // Load first, so another organisation's id is 404 exactly like an absent one.
    load::<D>(&state, auth.org, &id).await?;
    if !state.store.delete_record(D::KIND, Some(auth.org), &id).await? {
        return Err(not_found::<D>());
    }
    state.forget_journey_config(auth.org);
    tracing::info!(org = %auth.org, kind = D::NOUN, id = %id, user = %auth.user_id, "definition deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/journey/segments", tag = "journey",
    description = "The organisation's segments (Genesys list shape). Needs `journey:segment:view`.",
    params(("pageSize" = Option<u32>, Query, description = "Page size"), ("pageNumber" = Option<u32>, Query, description = "Page number")),
    responses((status = 200, description = "`entities` + paging", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn list_segments(auth: Authorized<SegmentView>, state: State<AppState>, q: RawQuery) -> ApiResult<Json<Value>> {
    list::<SegmentDefinition, SegmentView>(auth, state, q).await
}

#[utoipa::path(post, path = "/api/v2/journey/segments", tag = "journey",
    description = "Create a segment (Genesys JSON). Needs `journey:segment:add`. Invalid definitions are refused with a message and \
        the field that is wrong.",
    request_body = serde_json::Value,
    responses((status = 201, description = "The created segment", body = serde_json::Value), (status = 400, description = "Invalid definition"),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 409, description = "Name taken or limit reached")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn create_segment(
    auth: Authorized<SegmentAdd>,
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    create::<SegmentDefinition, SegmentAdd>(auth, state, headers, body).await
}

#[utoipa::path(get, path = "/api/v2/journey/segments/{segment_id}", tag = "journey", description = "One segment. Needs `journey:segment:view`.",
    params(("segment_id" = String, Path, description = "Id")),
    responses((status = 200, description = "The segment", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such segment")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn get_segment(
    auth: Authorized<SegmentView>,
    state: State<AppState>,
    id: Path<String>,
) -> ApiResult<Json<Value>> {
    get_one::<SegmentDefinition, SegmentView>(auth, state, id).await
}

#[utoipa::path(patch, path = "/api/v2/journey/segments/{segment_id}", tag = "journey",
    description = "Change a segment; `version` must match the stored one. Needs `journey:segment:edit`.",
    params(("segment_id" = String, Path, description = "Id")), request_body = serde_json::Value,
    responses((status = 200, description = "The updated segment", body = serde_json::Value), (status = 400, description = "Invalid change"),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such segment"), (status = 409, description = "Stale version")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn patch_segment(
    auth: Authorized<SegmentEdit>,
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    patch::<SegmentDefinition, SegmentEdit>(auth, state, id, headers, body).await
}

#[utoipa::path(delete, path = "/api/v2/journey/segments/{segment_id}", tag = "journey", description = "Delete a segment. Needs `journey:segment:delete`.",
    params(("segment_id" = String, Path, description = "Id")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such segment")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn delete_segment(
    auth: Authorized<SegmentDelete>,
    state: State<AppState>,
    id: Path<String>,
) -> ApiResult<StatusCode> {
    delete::<SegmentDefinition, SegmentDelete>(auth, state, id).await
}

#[utoipa::path(get, path = "/api/v2/journey/outcomes", tag = "journey",
    description = "The organisation's outcomes (Genesys list shape). Needs `journey:outcome:view`.",
    params(("pageSize" = Option<u32>, Query, description = "Page size"), ("pageNumber" = Option<u32>, Query, description = "Page number")),
    responses((status = 200, description = "`entities` + paging", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn list_outcomes(auth: Authorized<OutcomeView>, state: State<AppState>, q: RawQuery) -> ApiResult<Json<Value>> {
    list::<OutcomeDefinition, OutcomeView>(auth, state, q).await
}

#[utoipa::path(post, path = "/api/v2/journey/outcomes", tag = "journey",
    description = "Create a outcome (Genesys JSON). Needs `journey:outcome:add`. Invalid definitions are refused with a message and \
        the field that is wrong.",
    request_body = serde_json::Value,
    responses((status = 201, description = "The created outcome", body = serde_json::Value), (status = 400, description = "Invalid definition"),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 409, description = "Name taken or limit reached")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn create_outcome(
    auth: Authorized<OutcomeAdd>,
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    create::<OutcomeDefinition, OutcomeAdd>(auth, state, headers, body).await
}

#[utoipa::path(get, path = "/api/v2/journey/outcomes/{outcome_id}", tag = "journey", description = "One outcome. Needs `journey:outcome:view`.",
    params(("outcome_id" = String, Path, description = "Id")),
    responses((status = 200, description = "The outcome", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such outcome")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn get_outcome(
    auth: Authorized<OutcomeView>,
    state: State<AppState>,
    id: Path<String>,
) -> ApiResult<Json<Value>> {
    get_one::<OutcomeDefinition, OutcomeView>(auth, state, id).await
}

#[utoipa::path(patch, path = "/api/v2/journey/outcomes/{outcome_id}", tag = "journey",
    description = "Change a outcome; `version` must match the stored one. Needs `journey:outcome:edit`.",
    params(("outcome_id" = String, Path, description = "Id")), request_body = serde_json::Value,
    responses((status = 200, description = "The updated outcome", body = serde_json::Value), (status = 400, description = "Invalid change"),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such outcome"), (status = 409, description = "Stale version")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn patch_outcome(
    auth: Authorized<OutcomeEdit>,
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    patch::<OutcomeDefinition, OutcomeEdit>(auth, state, id, headers, body).await
}

#[utoipa::path(delete, path = "/api/v2/journey/outcomes/{outcome_id}", tag = "journey", description = "Delete a outcome. Needs `journey:outcome:delete`.",
    params(("outcome_id" = String, Path, description = "Id")),
    responses((status = 204, description = "Deleted"), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such outcome")),
    security(("bearer" = []), ("session_cookie" = [])))]
async fn delete_outcome(
    auth: Authorized<OutcomeDelete>,
    state: State<AppState>,
    id: Path<String>,
) -> ApiResult<StatusCode> {
    delete::<OutcomeDefinition, OutcomeDelete>(auth, state, id).await
}

/// Segment and outcome definitions (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(get_segment, patch_segment, delete_segment))
        .routes(routes!(list_outcomes, create_outcome))
        .routes(routes!(get_outcome, patch_outcome, delete_outcome))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}
