//! The administration API: users (`/api/v2/users`), roles (`/api/v2/authorization/roles`), divisions
//! (`/api/v2/authorization/divisions`), API tokens (`/api/v2/tokens`), OAuth clients (`/api/v2/oauth/clients`)
//! and tracking deployments (`/api/v2/webdeployments/deployments`), in Genesys-like shapes.
//!
//! Nobody can hand out more than they hold: roles given to a user, a role or an OAuth client must only contain
//! permissions the caller has, and a caller limited to divisions can only grant (non-empty) subsets of them.

use crate::accounts::{
    OAUTH_TOKEN_TTL_SECS, OauthClient, Role, Token, TokenKind, User, hash_password, mint_client_credentials,
};
use crate::auth::guards::{
    DeploymentAdd, DeploymentDelete, DeploymentEdit, DeploymentView, DivisionEdit, DivisionView, OauthClientEdit,
    OauthClientView, RoleEdit, RoleView, SignedIn, UserEdit, UserView,
};
use crate::auth::{Authorized, Caller, forget_tokens};
use crate::bootstrap::{issue_token, put};
use crate::error::{ApiError, ApiResult};
use crate::journey_api::QueryParams;
use crate::sign_in::revoke_token;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::deployment::{Deployment, default_search_params};
use waymark_domain::ids::{DeploymentId, DivisionId, OrgId, RoleId, UserId};
use waymark_domain::permission::{Permission, PermissionSet};
use waymark_domain::{ErrorCode, Timestamp};
use waymark_store::{Record, RecordKind};

// ---------------------------------------------------------------------------------------------------------
// Shared pieces

/// Decode a JSON body; syntax errors are `malformed_json`, wrong or unknown fields `invalid_field`.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidField,
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, format!("the request body is not valid: {e}"))
    })
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(ErrorCode::InvalidField, message);
    e.field = Some(field.to_string());
    e
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// A Genesys page-number listing of `items` (`pageNumber` from 1, `pageSize` ≤ 500, default 25).
fn paged(items: Vec<Value>, q: &QueryParams, base: &str) -> ApiResult<Json<Value>> {
    let size = match q.get("pageSize") {
        None => 25,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::bad_query(format!("pageSize must be from 1 to 500, got {s:?}"))),
        },
    };
    let number = match q.get("pageNumber") {
        None => 1,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(ApiError::bad_query(format!("pageNumber must be 1 or more, got {s:?}"))),
        },
    };
    let total = items.len();
    let page_count = total.div_ceil(size).max(1);
    let entities: Vec<Value> = items.into_iter().skip((number - 1).saturating_mul(size)).take(size).collect();
    let mut v = json!({
        "entities": entities, "pageSize": size, "pageNumber": number, "total": total, "pageCount": page_count,
        "selfUri": format!("{base}?pageSize={size}&pageNumber={number}"),
        "firstUri": format!("{base}?pageSize={size}&pageNumber=1"),
        "lastUri": format!("{base}?pageSize={size}&pageNumber={page_count}"),
    });
    if number < page_count {
        v["nextUri"] = json!(format!("{base}?pageSize={size}&pageNumber={}", number + 1));
    }
    if number > 1 {
        v["previousUri"] = json!(format!("{base}?pageSize={size}&pageNumber={}", number - 1));
    }
    Ok(Json(v))
}

/// A record of `kind` that belongs to the caller's organisation, or 404.
async fn own_record<T: DeserializeOwned>(
    state: &AppState,
    caller: &Caller,
    kind: RecordKind,
    id: &str,
    what: &str,
    org_of: impl Fn(&T) -> OrgId,
) -> ApiResult<T> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::not_found(what));
    }
    let rec = state.store.get_record(kind, id).await?.ok_or_else(|| ApiError::not_found(what))?;
    let value: T = rec.decode()?;
    if org_of(&value) != caller.org {
        return Err(ApiError::not_found(what));
    }
    Ok(value)
}

/// Check a role list: every role exists in the caller's organisation, and the caller holds every permission
/// they grant. Returns the parsed ids.
async fn grantable_roles(state: &AppState, caller: &Caller, raw: &[String]) -> ApiResult<Vec<RoleId>> {
    let mut out = Vec::new();
    let mut granted = PermissionSet::EMPTY;
    for r in raw {
        let id = RoleId::parse(r).ok_or_else(|| invalid("roleIds", format!("{r:?} is not a role id")))?;
        let role = match state.store.get_record(RecordKind::Role, &id.to_string()).await? {
            Some(rec) => rec.decode::<Role>()?,
            None => return Err(invalid("roleIds", format!("no role {r}"))),
        };
        if role.org != caller.org {
            return Err(invalid("roleIds", format!("no role {r}")));
        }
        granted = granted.union(role.permission_set());
        if !out.contains(&id) {
            out.push(id);
        }
    }
    beyond_caller(caller, granted, "roleIds")?;
    Ok(out)
}

/// Refuse to grant permissions the caller does not hold.
fn beyond_caller(caller: &Caller, granted: PermissionSet, field: &str) -> ApiResult<()> {
    let missing: Vec<&str> = granted.iter().filter(|p| !caller.can(*p)).map(|p| p.as_str()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        let mut e = ApiError::new(
            ErrorCode::MissingPermission,
            format!("you cannot grant permissions you do not hold: {}", missing.join(", ")),
        );
        e.field = Some(field.to_string());
        Err(e)
    }
}

/// Check a division list: every division exists in the caller's organisation, and a caller limited to
/// divisions grants only a non-empty subset of theirs.
async fn grantable_divisions(state: &AppState, caller: &Caller, raw: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for d in raw {
        let id = DivisionId::parse(d).ok_or_else(|| invalid("divisionIds", format!("{d:?} is not a division id")))?;
        let ok = match state.store.get_record(RecordKind::Division, &id.to_string()).await? {
            Some(rec) => rec.org == Some(caller.org),
            None => false,
        };
        if !ok {
            return Err(invalid("divisionIds", format!("no division {d}")));
        }
        if !out.contains(&id.to_string()) {
            out.push(id.to_string());
        }
    }
    if let Some(mine) = &caller.divisions
        && (out.is_empty() || out.iter().any(|d| !mine.contains(d)))
    {
        let mut e = ApiError::new(
            ErrorCode::MissingPermission,
            "you are limited to divisions; you can only grant a non-empty subset of your own divisions",
        );
        e.field = Some("divisionIds".into());
        return Err(e);
    }
    Ok(out)
}

fn check_name(field: &str, name: &str, max: usize) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(invalid(field, format!("{field} must not be empty")));
    }
    if n.chars().count() > max {
        return Err(invalid(field, format!("{field} is longer than {max} characters")));
    }
    if n.chars().any(char::is_control) {
        return Err(invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(n.to_string())
}

fn check_password(p: &str) -> ApiResult<()> {
    let n = p.chars().count();
    if !(10..=1024).contains(&n) {
        return Err(invalid("password", "the password must have 10 to 1024 characters"));
    }
    Ok(())
}

async fn hash_off_runtime(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("password hashing failed: {e}")))?
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("password hashing failed: {e}")))
}

// ---------------------------------------------------------------------------------------------------------
// Users

fn user_json(u: &User) -> Value {
    let mut v = json!({
        "id": u.id.to_string(),
        "name": u.name,
        "state": if u.active { "active" } else { "inactive" },
        "roleIds": u.role_ids.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "divisionIds": u.division_ids,
        "hasPassword": u.password_hash.is_some(),
        "dateCreated": u.created,
        "selfUri": format!("/api/v2/users/{}", u.id),
    });
    // Agents seen only in conversations have no email; absent values are omitted on the wire.
    if !u.email.is_empty() {
        v["email"] = json!(u.email);
    }
    v
}

async fn org_users(state: &AppState, org: OrgId) -> ApiResult<Vec<User>> {
    let mut users = Vec::new();
    for r in state.store.list_records(RecordKind::User, None).await? {
        let u: User = r.decode()?;
        if u.org == org && !u.service {
            users.push(u);
        }
    }
    Ok(users)
}

async fn save_user(state: &AppState, u: &User) -> ApiResult<()> {
    put(state.store.as_ref(), RecordKind::User, None, &u.id.to_string(), &u.email, u, state.clock.now(), true).await?;
    forget_tokens(state);
    Ok(())
}

#[utoipa::path(get, path = "/api/v2/users", tag = "admin", description = "People of the organisation. Needs `directory:user:view`.",
    params(("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1"),
        ("name" = Option<String>, Query, description = "Name, `*` wildcards at either end"), ("id" = Option<String>, Query, description = "Ids, comma-joined or repeated")),
    responses((status = 200, description = "Page of users", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_users(
    auth: Authorized<UserView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(q);
    let name = q.get("name").map(str::to_string);
    let ids = q.list("id");
    let users: Vec<User> = org_users(&state, auth.org)
        .await?
        .into_iter()
        .filter(|u| name.as_ref().is_none_or(|n| crate::routing_api::name_matches(n, &u.name)))
        .filter(|u| ids.is_empty() || ids.contains(&u.id.to_string()))
        .collect();
    paged(users.iter().map(user_json).collect(), &q, "/api/v2/users")
}

#[utoipa::path(get, path = "/api/v2/users/me", tag = "admin",
    description = "The signed-in caller: user, effective permissions and divisions. Needs only a valid sign-in.",
    responses((status = 200, description = "The caller", body = serde_json::Value), (status = 401, description = "No valid token")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_me(auth: Authorized<SignedIn>, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let rec = state.store.get_record(RecordKind::User, &auth.user_id.to_string()).await?;
    let mut v = match rec {
        Some(r) => user_json(&r.decode::<User>()?),
        None => return Err(ApiError::not_found("user")),
    };
    v["permissions"] = json!(auth.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>());
    v["organization"] = json!({"id": auth.org.to_string()});
    Ok(Json(v))
}

#[utoipa::path(get, path = "/api/v2/users/{user_id}", tag = "admin", description = "One user. Needs `directory:user:view`.",
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user", body = serde_json::Value), (status = 401, description = "No valid token"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such user")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_user(
    auth: Authorized<UserView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let u: User = own_record(&state, &auth, RecordKind::User, &id, "user", |u: &User| u.org).await?;
    if u.service {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(user_json(&u)))
}

/// Create a person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    /// 10 to 1024 characters; omit for an account that only uses API tokens.
    pub password: Option<String>,
    #[serde(default)]
    pub role_ids: Vec<String>,
    /// Empty = every division.
    #[serde(default)]
    pub division_ids: Vec<String>,
}

fn check_email(e: &str) -> ApiResult<String> {
    let e = e.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(invalid("email", "email must be an address like agent@example.com"));
    }
    Ok(e)
}

#[utoipa::path(post, path = "/api/v2/users", tag = "admin",
    description = "Create a person. Needs `directory:user:edit`; the roles given must not exceed the caller's permissions.",
    request_body = CreateUser,
    responses((status = 201, description = "The new user", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 403, description = "Missing permission"), (status = 409, description = "Email taken")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_user(
    auth: Authorized<UserEdit>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: CreateUser = body(&bytes)?;
    let email = check_email(&req.email)?;
    let name = check_name("name", &req.name, 200)?;
    let role_ids = grantable_roles(&state, &auth, &req.role_ids).await?;
    let division_ids = if req.division_ids.is_empty() && auth.divisions.is_some() {
        auth.divisions.clone().unwrap_or_default()
    } else {
        grantable_divisions(&state, &auth, &req.division_ids).await?
    };
    let password_hash = match req.password {
        Some(p) => {
            check_password(&p)?;
            Some(hash_off_runtime(p).await?)
        }
        None => None,
    };
    let now = state.clock.now();
    let user = User {
        id: UserId::new_v7(now),
        org: auth.org,
        email,
        name,
        password_hash,
        role_ids,
        division_ids,
        active: true,
        created: now,
        service: false,
    };
    save_user(&state, &user).await?;
    tracing::info!(by = %auth.user_id, user = %user.id, "user created");
    Ok(created(user_json(&user)))
}

/// Change a person; omitted fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchUser {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub role_ids: Option<Vec<String>>,
    pub division_ids: Option<Vec<String>>,
    /// `active` or `inactive` (inactive users cannot sign in and their tokens stop working).
    pub state: Option<String>,
}

#[utoipa::path(patch, path = "/api/v2/users/{user_id}", tag = "admin",
    description = "Change a user (omitted fields stay). Needs `directory:user:edit`.",
    params(("user_id" = String, Path, description = "User id")), request_body = PatchUser,
    responses((status = 200, description = "The user", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 403, description = "Missing permission"), (status = 404, description = "No such user")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn patch_user(
    auth: Authorized<UserEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let req: PatchUser = body(&bytes)?;
    let mut u: User = own_record(&state, &auth, RecordKind::User, &id, "user", |u: &User| u.org).await?;
    if u.service {
        return Err(ApiError::not_found("user"));
    }
    // A division-limited admin manages only users inside their divisions.
    if let Some(mine) = &auth.divisions
        && (u.division_ids.is_empty() || u.division_ids.iter().any(|d| !mine.contains(d)))
    {
        return Err(ApiError::not_found("user"));
    }
    if let Some(n) = &req.name {
        u.name = check_name("name", n, 200)?;
    }
    if let Some(e) = &req.email {
        u.email = check_email(e)?;
    }
    if let Some(r) = &req.role_ids {
        u.role_ids = grantable_roles(&state, &auth, r).await?;
    }
    if let Some(d) = &req.division_ids {
        u.division_ids = grantable_divisions(&state, &auth, d).await?;
    }
    if let Some(s) = &req.state {
        u.active = match s.as_str() {
            "active" => true,
            "inactive" => false,
            other => return Err(invalid("state", format!("state must be 'active' or 'inactive', not {other:?}"))),
        };
        if !u.active && u.id == auth.user_id {
            return Err(ApiError::new(ErrorCode::Conflict, "you cannot deactivate yourself"));
        }
    }
    if let Some(p) = req.password {
        check_password(&p)?;
        u.password_hash = Some(hash_off_runtime(p).await?);
    }
    save_user(&state, &u).await?;
    tracing::info!(by = %auth.user_id, user = %u.id, "user changed");
    Ok(Json(user_json(&u)))
}

#[utoipa::path(delete, path = "/api/v2/users/{user_id}", tag = "admin",
    description = "Delete a user; their tokens stop working at once. Needs `directory:user:edit`.",
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such user"), (status = 409, description = "You cannot delete yourself")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_user(
    auth: Authorized<UserEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let u: User = own_record(&state, &auth, RecordKind::User, &id, "user", |u: &User| u.org).await?;
    if u.service {
        return Err(ApiError::not_found("user"));
    }
    if let Some(mine) = &auth.divisions
        && (u.division_ids.is_empty() || u.division_ids.iter().any(|d| !mine.contains(d)))
    {
        return Err(ApiError::not_found("user"));
    }
    if u.id == auth.user_id {
        return Err(ApiError::new(ErrorCode::Conflict, "you cannot delete yourself"));
    }
    state.store.delete_record(RecordKind::User, None, &u.id.to_string()).await?;
    forget_tokens(&state);
    tracing::info!(by = %auth.user_id, user = %u.id, "user deleted");
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------------------
// Roles

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "permissions": r.permissions,
        "default": r.builtin,
        "selfUri": format!("/api/v2/authorization/roles/{}", r.id),
    })
}

/// Validate permission strings (exact names, case-insensitive on the entity, or `*` patterns) and return
/// them in canonical spelling.
fn canonical_permissions(raw: &[String]) -> ApiResult<(Vec<String>, PermissionSet)> {
    let mut out = Vec::new();
    let mut set = PermissionSet::EMPTY;
    for p in raw {
        let p = p.trim();
        let name = if let Some(exact) = Permission::parse(p) {
            set.insert(exact);
            exact.as_str().to_string()
        } else if p.contains('*') && !Permission::expand(p).is_empty() {
            Permission::expand(p).into_iter().for_each(|x| set.insert(x));
            p.to_string()
        } else {
            return Err(invalid("permissions", format!("unknown permission {p:?}")));
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok((out, set))
}

#[utoipa::path(get, path = "/api/v2/authorization/roles", tag = "admin",
    description = "Roles of the organisation (built-in `Admin` and `User`, plus custom ones). Needs `authorization:role:view`.",
    params(("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1")),
    responses((status = 200, description = "Page of roles", body = serde_json::Value), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_roles(
    auth: Authorized<RoleView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for r in state.store.list_records(RecordKind::Role, Some(auth.org)).await? {
        items.push(role_json(&r.decode::<Role>()?));
    }
    paged(items, &QueryParams::parse(q), "/api/v2/authorization/roles")
}

#[utoipa::path(get, path = "/api/v2/authorization/roles/{role_id}", tag = "admin", description = "One role. Needs `authorization:role:view`.",
    params(("role_id" = String, Path, description = "Role id")),
    responses((status = 200, description = "The role", body = serde_json::Value), (status = 404, description = "No such role")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_role(
    auth: Authorized<RoleView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r: Role = own_record(&state, &auth, RecordKind::Role, &id, "role", |r: &Role| r.org).await?;
    Ok(Json(role_json(&r)))
}

/// A custom role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRequest {
    pub name: Option<String>,
    /// Permission strings (`journey:session:view`, or patterns like `journey:*:view`).
    pub permissions: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/api/v2/authorization/roles", tag = "admin",
    description = "Create a custom role with any subset of the caller's permissions. Needs `authorization:role:edit`.",
    request_body = RoleRequest,
    responses((status = 201, description = "The role", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 403, description = "Missing permission"), (status = 409, description = "Name taken")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_role(
    auth: Authorized<RoleEdit>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: RoleRequest = body(&bytes)?;
    let name = check_name("name", req.name.as_deref().unwrap_or(""), 100)?;
    let (permissions, set) = canonical_permissions(&req.permissions.unwrap_or_default())?;
    beyond_caller(&auth, set, "permissions")?;
    let now = state.clock.now();
    let role = Role { id: RoleId::new_v7(now), org: auth.org, name, permissions, builtin: false };
    put(state.store.as_ref(), RecordKind::Role, Some(auth.org), &role.id.to_string(), &role.name, &role, now, true)
        .await?;
    tracing::info!(by = %auth.user_id, role = %role.id, "role created");
    Ok(created(role_json(&role)))
}

#[utoipa::path(patch, path = "/api/v2/authorization/roles/{role_id}", tag = "admin",
    description = "Rename a custom role or replace its permissions. Built-in roles cannot change. Needs `authorization:role:edit`.",
    params(("role_id" = String, Path, description = "Role id")), request_body = RoleRequest,
    responses((status = 200, description = "The role", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 404, description = "No such role"), (status = 409, description = "Built-in role or name taken")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn patch_role(
    auth: Authorized<RoleEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let req: RoleRequest = body(&bytes)?;
    let mut role: Role = own_record(&state, &auth, RecordKind::Role, &id, "role", |r: &Role| r.org).await?;
    if role.builtin {
        return Err(ApiError::new(ErrorCode::Conflict, "built-in roles cannot be changed; create a custom role"));
    }
    beyond_caller(&auth, role.permission_set(), "permissions")?;
    if let Some(n) = &req.name {
        role.name = check_name("name", n, 100)?;
    }
    if let Some(p) = &req.permissions {
        let (permissions, set) = canonical_permissions(p)?;
        beyond_caller(&auth, set, "permissions")?;
        role.permissions = permissions;
    }
    let now = state.clock.now();
    put(state.store.as_ref(), RecordKind::Role, Some(auth.org), &role.id.to_string(), &role.name, &role, now, true)
        .await?;
    forget_tokens(&state);
    Ok(Json(role_json(&role)))
}

#[utoipa::path(delete, path = "/api/v2/authorization/roles/{role_id}", tag = "admin",
    description = "Delete a custom role that no user holds. Needs `authorization:role:edit`.",
    params(("role_id" = String, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such role"),
        (status = 409, description = "Built-in or still assigned")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_role(
    auth: Authorized<RoleEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let role: Role = own_record(&state, &auth, RecordKind::Role, &id, "role", |r: &Role| r.org).await?;
    if role.builtin {
        return Err(ApiError::new(ErrorCode::Conflict, "built-in roles cannot be deleted"));
    }
    let mut holders = 0;
    for r in state.store.list_records(RecordKind::User, None).await? {
        let u: User = r.decode()?;
        if u.org == auth.org && u.role_ids.contains(&role.id) {
            holders += 1;
        }
    }
    if holders > 0 {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{holders} user(s) or OAuth client(s) still hold this role; take it away from them first"),
        ));
    }
    state.store.delete_record(RecordKind::Role, Some(auth.org), &role.id.to_string()).await?;
    forget_tokens(&state);
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------------------
// Divisions

/// A division: sessions (through their deployment) and users carry division ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Division {
    pub id: DivisionId,
    pub org: OrgId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created: Timestamp,
}

fn division_json(d: &Division) -> Value {
    let mut v = json!({
        "id": d.id.to_string(), "name": d.name, "homeDivision": false,
        "selfUri": format!("/api/v2/authorization/divisions/{}", d.id),
    });
    if !d.description.is_empty() {
        v["description"] = json!(d.description);
    }
    v
}

/// Create or change a division.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DivisionRequest {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(get, path = "/api/v2/authorization/divisions", tag = "admin",
    description = "Divisions of the organisation. Needs `authorization:division:view`.",
    params(("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1")),
    responses((status = 200, description = "Page of divisions", body = serde_json::Value), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_divisions(
    auth: Authorized<DivisionView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for r in state.store.list_records(RecordKind::Division, Some(auth.org)).await? {
        items.push(division_json(&r.decode::<Division>()?));
    }
    paged(items, &QueryParams::parse(q), "/api/v2/authorization/divisions")
}

#[utoipa::path(get, path = "/api/v2/authorization/divisions/{division_id}", tag = "admin",
    description = "One division. Needs `authorization:division:view`.",
    params(("division_id" = String, Path, description = "Division id")),
    responses((status = 200, description = "The division", body = serde_json::Value), (status = 404, description = "No such division")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_division(
    auth: Authorized<DivisionView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let d: Division = own_record(&state, &auth, RecordKind::Division, &id, "division", |d: &Division| d.org).await?;
    Ok(Json(division_json(&d)))
}

#[utoipa::path(post, path = "/api/v2/authorization/divisions", tag = "admin",
    description = "Create a division. Needs `authorization:division:edit`.", request_body = DivisionRequest,
    responses((status = 201, description = "The division", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 409, description = "Name taken")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_division(
    auth: Authorized<DivisionEdit>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: DivisionRequest = body(&bytes)?;
    let now = state.clock.now();
    let d = Division {
        id: DivisionId::new_v7(now),
        org: auth.org,
        name: check_name("name", req.name.as_deref().unwrap_or(""), 100)?,
        description: req.description.unwrap_or_default(),
        created: now,
    };
    put(state.store.as_ref(), RecordKind::Division, Some(auth.org), &d.id.to_string(), &d.name, &d, now, true).await?;
    Ok(created(division_json(&d)))
}

#[utoipa::path(patch, path = "/api/v2/authorization/divisions/{division_id}", tag = "admin",
    description = "Rename or describe a division. Needs `authorization:division:edit`.",
    params(("division_id" = String, Path, description = "Division id")), request_body = DivisionRequest,
    responses((status = 200, description = "The division", body = serde_json::Value), (status = 404, description = "No such division")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn patch_division(
    auth: Authorized<DivisionEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let req: DivisionRequest = body(&bytes)?;
    let mut d: Division =
        own_record(&state, &auth, RecordKind::Division, &id, "division", |d: &Division| d.org).await?;
    if let Some(n) = &req.name {
        d.name = check_name("name", n, 100)?;
    }
    if let Some(desc) = req.description {
        d.description = desc;
    }
    let now = state.clock.now();
    put(state.store.as_ref(), RecordKind::Division, Some(auth.org), &d.id.to_string(), &d.name, &d, now, true).await?;
    Ok(Json(division_json(&d)))
}

#[utoipa::path(delete, path = "/api/v2/authorization/divisions/{division_id}", tag = "admin",
    description = "Delete a division no user, OAuth client or deployment uses. Needs `authorization:division:edit`.",
    params(("division_id" = String, Path, description = "Division id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such division"),
        (status = 409, description = "Still in use")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_division(
    auth: Authorized<DivisionEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let d: Division = own_record(&state, &auth, RecordKind::Division, &id, "division", |d: &Division| d.org).await?;
    let key = d.id.to_string();
    let mut in_use = false;
    for r in state.store.list_records(RecordKind::Deployment, Some(auth.org)).await? {
        in_use |= r.decode::<Deployment>()?.division_ids.contains(&key);
    }
    for r in state.store.list_records(RecordKind::User, None).await? {
        let u: User = r.decode()?;
        in_use |= u.org == auth.org && u.division_ids.contains(&key);
    }
    if in_use {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "users, OAuth clients or deployments still belong to this division; move them first",
        ));
    }
    state.store.delete_record(RecordKind::Division, Some(auth.org), &key).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------------------
// Tokens

fn token_json(t: &Token, now: Timestamp) -> Value {
    let state = if t.revoked {
        "revoked"
    } else if t.expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    let mut v = json!({
        "id": t.id, "userId": t.user_id.to_string(), "kind": t.kind, "state": state,
        "dateCreated": t.created, "selfUri": format!("/api/v2/tokens/{}", t.id),
    });
    if !t.description.is_empty() {
        v["description"] = json!(t.description);
    }
    if let Some(e) = t.expires {
        v["dateExpires"] = json!(e);
    }
    v
}

/// Whose tokens a request is about: the caller's own, or (with `authorization:token:edit`) another user's in
/// the same organisation.
async fn token_owner(state: &AppState, caller: &Caller, user: Option<&str>) -> ApiResult<UserId> {
    let Some(raw) = user else { return Ok(caller.user_id) };
    let id = UserId::parse(raw).ok_or_else(|| ApiError::not_found("user"))?;
    if id == caller.user_id {
        return Ok(id);
    }
    if !caller.can(Permission::AuthorizationTokenEdit) {
        return Err(ApiError::new(
            ErrorCode::MissingPermission,
            "managing other people's tokens needs the permission authorization:token:edit",
        ));
    }
    let u: User = own_record(state, caller, RecordKind::User, &id.to_string(), "user", |u: &User| u.org).await?;
    Ok(u.id)
}

#[utoipa::path(get, path = "/api/v2/tokens", tag = "admin",
    description = "Your tokens (API tokens, sign-in sessions, OAuth access tokens); `userId` lists someone else's \
        and needs `authorization:token:edit`. Secrets are never shown again.",
    params(("userId" = Option<String>, Query, description = "Another user (needs authorization:token:edit)"),
        ("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1")),
    responses((status = 200, description = "Page of tokens", body = serde_json::Value), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_tokens(
    auth: Authorized<SignedIn>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(q);
    let owner = token_owner(&state, &auth, q.get("userId")).await?;
    let now = state.clock.now();
    let mut items = Vec::new();
    for r in state.store.list_records(RecordKind::Token, Some(auth.org)).await? {
        let t: Token = r.decode()?;
        if t.user_id == owner {
            items.push(token_json(&t, now));
        }
    }
    paged(items, &q, "/api/v2/tokens")
}

/// Issue an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    pub description: String,
    /// Lifetime in seconds (60 s to 10 years; default 90 days).
    pub expires_in_seconds: Option<i64>,
    /// Issue for another user (needs `authorization:token:edit`).
    pub user_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v2/tokens", tag = "admin",
    description = "Issue an API token for yourself (or, with `authorization:token:edit`, for another user). The \
        `token` field of the answer is the only time the secret is shown.",
    request_body = CreateToken,
    responses((status = 201, description = "The token, with its secret once", body = serde_json::Value),
        (status = 400, description = "Invalid field"), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_token(
    auth: Authorized<SignedIn>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: CreateToken = body(&bytes)?;
    let owner = token_owner(&state, &auth, req.user_id.as_deref()).await?;
    let ttl = req.expires_in_seconds.unwrap_or(90 * 86_400);
    if !(60..=10 * 365 * 86_400).contains(&ttl) {
        return Err(invalid("expiresInSeconds", "expiresInSeconds must be from 60 to 315360000"));
    }
    if req.description.chars().count() > 200 {
        return Err(invalid("description", "description is longer than 200 characters"));
    }
    let now = state.clock.now();
    let (t, raw) = issue_token(
        state.store.as_ref(),
        auth.org,
        owner,
        TokenKind::Api,
        Some(now.plus_secs(ttl)),
        &req.description,
        now,
    )
    .await?;
    tracing::info!(by = %auth.user_id, token = %t.id, "API token issued");
    let mut v = token_json(&t, now);
    v["token"] = json!(raw);
    Ok(created(v))
}

#[utoipa::path(delete, path = "/api/v2/tokens/{token_id}", tag = "admin",
    description = "Revoke a token at once: your own, or another user's with `authorization:token:edit`.",
    params(("token_id" = String, Path, description = "Token id (the 16 hex characters after `wm_`)")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_token(
    auth: Authorized<SignedIn>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t: Token = own_record(&state, &auth, RecordKind::Token, &id, "token", |t: &Token| t.org).await?;
    if t.user_id != auth.user_id && !auth.can(Permission::AuthorizationTokenEdit) {
        // Someone else's token is indistinguishable from an absent one without the permission.
        return Err(ApiError::not_found("token"));
    }
    revoke_token(&state, &t.id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------------------
// OAuth clients

async fn client_json(state: &AppState, c: &OauthClient) -> ApiResult<Value> {
    let user = state.store.get_record(RecordKind::User, &c.user_id.to_string()).await?;
    let (roles, divisions) = match user {
        Some(r) => {
            let u: User = r.decode()?;
            (u.role_ids.iter().map(|r| r.to_string()).collect::<Vec<_>>(), u.division_ids)
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut v = json!({
        "id": c.id, "name": c.name, "authorizedGrantType": "CLIENT-CREDENTIALS",
        "accessTokenValiditySeconds": c.token_ttl_secs, "roleIds": roles, "divisionIds": divisions,
        "state": "active", "dateCreated": c.created, "selfUri": format!("/api/v2/oauth/clients/{}", c.id),
    });
    if !c.description.is_empty() {
        v["description"] = json!(c.description);
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v2/oauth/clients", tag = "admin",
    description = "OAuth clients (client-credentials grant). Needs `oauth:client:view`.",
    params(("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1")),
    responses((status = 200, description = "Page of clients", body = serde_json::Value), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_clients(
    auth: Authorized<OauthClientView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for r in state.store.list_records(RecordKind::OauthClient, Some(auth.org)).await? {
        items.push(client_json(&state, &r.decode::<OauthClient>()?).await?);
    }
    paged(items, &QueryParams::parse(q), "/api/v2/oauth/clients")
}

#[utoipa::path(get, path = "/api/v2/oauth/clients/{client_id}", tag = "admin", description = "One OAuth client. Needs `oauth:client:view`.",
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 200, description = "The client", body = serde_json::Value), (status = 404, description = "No such client")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_client(
    auth: Authorized<OauthClientView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c: OauthClient =
        own_record(&state, &auth, RecordKind::OauthClient, &id, "OAuth client", |c: &OauthClient| c.org).await?;
    Ok(Json(client_json(&state, &c).await?))
}

/// Create an OAuth client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateClient {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Roles whose permissions the client's tokens carry.
    #[serde(default)]
    pub role_ids: Vec<String>,
    #[serde(default)]
    pub division_ids: Vec<String>,
    /// Access token lifetime (300 s to 48 h; default 86,400).
    pub access_token_validity_seconds: Option<i64>,
}

/// Create an OAuth client and its service identity; returns `(client, secret)`. Shared by the API and the CLI.
#[allow(clippy::too_many_arguments)]
pub async fn create_oauth_client(
    store: &dyn waymark_store::Store,
    org: OrgId,
    name: &str,
    description: &str,
    role_ids: Vec<RoleId>,
    division_ids: Vec<String>,
    ttl: i64,
    now: Timestamp,
) -> ApiResult<(OauthClient, String)> {
    let (client_id, secret) = mint_client_credentials();
    let secret_hash = hash_off_runtime(secret.clone()).await?;
    let user = User {
        id: UserId::new_v7(now),
        org,
        email: format!("{client_id}@oauth-clients.waymark.invalid"),
        name: name.to_string(),
        password_hash: None,
        role_ids,
        division_ids,
        active: true,
        created: now,
        service: true,
    };
    put(store, RecordKind::User, None, &user.id.to_string(), &user.email, &user, now, true).await?;
    let client = OauthClient {
        id: client_id,
        org,
        user_id: user.id,
        secret_hash,
        name: name.to_string(),
        description: description.to_string(),
        token_ttl_secs: ttl,
        created: now,
    };
    let body = serde_json::to_value(&client).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    store.put_record(&Record::new(RecordKind::OauthClient, Some(org), &client.id, name, body, now), None, true).await?;
    Ok((client, secret))
}

#[utoipa::path(post, path = "/api/v2/oauth/clients", tag = "admin",
    description = "Create an OAuth client for the client-credentials grant. The answer's `secret` is the only time \
        it is shown. Needs `oauth:client:edit`; the roles must not exceed the caller's permissions.",
    request_body = CreateClient,
    responses((status = 201, description = "The client, with its secret once", body = serde_json::Value),
        (status = 400, description = "Invalid field"), (status = 403, description = "Missing permission"),
        (status = 409, description = "Name taken")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_client(
    auth: Authorized<OauthClientEdit>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: CreateClient = body(&bytes)?;
    let name = check_name("name", &req.name, 100)?;
    let roles = grantable_roles(&state, &auth, &req.role_ids).await?;
    let divisions = if req.division_ids.is_empty() && auth.divisions.is_some() {
        auth.divisions.clone().unwrap_or_default()
    } else {
        grantable_divisions(&state, &auth, &req.division_ids).await?
    };
    let ttl = req.access_token_validity_seconds.unwrap_or(OAUTH_TOKEN_TTL_SECS);
    if !(300..=172_800).contains(&ttl) {
        return Err(invalid("accessTokenValiditySeconds", "accessTokenValiditySeconds must be from 300 to 172800"));
    }
    let now = state.clock.now();
    let (client, secret) =
        create_oauth_client(state.store.as_ref(), auth.org, &name, &req.description, roles, divisions, ttl, now)
            .await?;
    tracing::info!(by = %auth.user_id, client = %client.id, "OAuth client created");
    let mut v = client_json(&state, &client).await?;
    v["secret"] = json!(secret);
    Ok(created(v))
}

#[utoipa::path(delete, path = "/api/v2/oauth/clients/{client_id}", tag = "admin",
    description = "Delete an OAuth client; the tokens it obtained stop working at once. Needs `oauth:client:edit`.",
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such client")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_client(
    auth: Authorized<OauthClientEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c: OauthClient =
        own_record(&state, &auth, RecordKind::OauthClient, &id, "OAuth client", |c: &OauthClient| c.org).await?;
    state.store.delete_record(RecordKind::OauthClient, Some(auth.org), &c.id).await?;
    state.store.delete_record(RecordKind::User, None, &c.user_id.to_string()).await?;
    forget_tokens(&state);
    tracing::info!(by = %auth.user_id, client = %c.id, "OAuth client deleted");
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------------------
// Deployments

fn deployment_json(d: &Deployment) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.remove("orgId");
        o.insert("id".into(), json!(d.id.to_string()));
        o.insert("status".into(), json!("Active"));
        o.insert("selfUri".into(), json!(format!("/api/v2/webdeployments/deployments/{}", d.id)));
    }
    v
}

/// Create or change a deployment; omitted fields keep their value (or the default on create).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentRequest {
    pub name: Option<String>,
    pub allow_all_domains: Option<bool>,
    /// Hostnames (`shop.example`) or wildcard subdomains (`*.shop.example`).
    pub allowed_domains: Option<Vec<String>>,
    pub search_query_params: Option<Vec<String>>,
    pub excluded_query_params: Option<Vec<String>>,
    pub keep_url_fragment: Option<bool>,
    pub ip_collection: Option<bool>,
    /// Addresses or CIDR ranges whose visitors are not tracked.
    pub excluded_ip_ranges: Option<Vec<String>>,
    /// Divisions the deployment's sessions belong to.
    pub division_ids: Option<Vec<String>>,
}

fn check_domain(d: &str) -> ApiResult<String> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let host = d.strip_prefix("*.").unwrap_or(&d);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !ok {
        return Err(invalid("allowedDomains", format!("{d:?} is not a host name like shop.example or *.shop.example")));
    }
    Ok(d)
}

fn check_params(field: &str, list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > 50 {
        return Err(invalid(field, format!("{field} holds at most 50 names")));
    }
    list.iter()
        .map(|p| {
            let p = p.trim();
            if p.is_empty() || p.len() > 128 {
                Err(invalid(field, format!("{field} names must have 1 to 128 characters")))
            } else {
                Ok(p.to_string())
            }
        })
        .collect()
}

async fn apply_deployment(
    state: &AppState,
    caller: &Caller,
    d: &mut Deployment,
    req: DeploymentRequest,
) -> ApiResult<()> {
    if let Some(n) = &req.name {
        d.name = check_name("name", n, 200)?;
    }
    if let Some(a) = req.allow_all_domains {
        d.allow_all_domains = a;
    }
    if let Some(list) = &req.allowed_domains {
        if list.len() > 100 {
            return Err(invalid("allowedDomains", "allowedDomains holds at most 100 domains"));
        }
        d.allowed_domains = list.iter().map(|x| check_domain(x)).collect::<ApiResult<_>>()?;
    }
    if let Some(list) = &req.search_query_params {
        d.search_query_params = check_params("searchQueryParams", list)?;
    }
    if let Some(list) = &req.excluded_query_params {
        d.excluded_query_params = check_params("excludedQueryParams", list)?;
    }
    if let Some(k) = req.keep_url_fragment {
        d.keep_url_fragment = k;
    }
    if let Some(i) = req.ip_collection {
        d.ip_collection = i;
    }
    if let Some(list) = &req.excluded_ip_ranges {
        if list.len() > 100 {
            return Err(invalid("excludedIpRanges", "excludedIpRanges holds at most 100 ranges"));
        }
        let mut out = Vec::new();
        for r in list {
            let r = r.trim();
            let ok = r.parse::<ipnet::IpNet>().is_ok() || r.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                return Err(invalid(
                    "excludedIpRanges",
                    format!("{r:?} is not an address or CIDR range like 203.0.113.0/24"),
                ));
            }
            out.push(r.to_string());
        }
        d.excluded_ip_ranges = out;
    }
    if let Some(list) = &req.division_ids {
        d.division_ids = grantable_divisions(state, caller, list).await?;
    }
    if !d.allow_all_domains && d.allowed_domains.is_empty() {
        return Err(invalid("allowedDomains", "name at least one allowed domain, or set allowAllDomains"));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v2/webdeployments/deployments", tag = "admin",
    description = "Tracking deployments (websites). Needs `journey:deployment:view`.",
    params(("pageSize" = Option<u32>, Query, description = "1–500"), ("pageNumber" = Option<u32>, Query, description = "From 1")),
    responses((status = 200, description = "Page of deployments", body = serde_json::Value), (status = 403, description = "Missing permission")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn list_deployments(
    auth: Authorized<DeploymentView>,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for r in state.store.list_records(RecordKind::Deployment, Some(auth.org)).await? {
        let d: Deployment = r.decode()?;
        if auth.sees_divisions(&d.division_ids) {
            items.push(deployment_json(&d));
        }
    }
    paged(items, &QueryParams::parse(q), "/api/v2/webdeployments/deployments")
}

async fn own_deployment(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Deployment> {
    let d: Deployment =
        own_record(state, caller, RecordKind::Deployment, id, "deployment", |d: &Deployment| d.org_id).await?;
    if !caller.sees_divisions(&d.division_ids) {
        return Err(ApiError::not_found("deployment"));
    }
    Ok(d)
}

#[utoipa::path(get, path = "/api/v2/webdeployments/deployments/{deployment_id}", tag = "admin",
    description = "One deployment. Needs `journey:deployment:view`.",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The deployment", body = serde_json::Value), (status = 404, description = "No such deployment")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_deployment(
    auth: Authorized<DeploymentView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(deployment_json(&own_deployment(&state, &auth, &id).await?)))
}

#[utoipa::path(post, path = "/api/v2/webdeployments/deployments", tag = "admin",
    description = "Create a deployment: allowed domains (or all), search and excluded query parameters, URL \
        fragments, IP collection, excluded IP ranges, divisions. Needs `journey:deployment:add`.",
    request_body = DeploymentRequest,
    responses((status = 201, description = "The deployment", body = serde_json::Value), (status = 400, description = "Invalid field")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn create_deployment(
    auth: Authorized<DeploymentAdd>,
    State(state): State<AppState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let req: DeploymentRequest = body(&bytes)?;
    let now = state.clock.now();
    let mut d = Deployment::new(auth.org, DeploymentId::new_v7(now), "");
    d.search_query_params = default_search_params();
    if req.name.is_none() {
        return Err(invalid("name", "name is required"));
    }
    let divisions_given = req.division_ids.is_some();
    apply_deployment(&state, &auth, &mut d, req).await?;
    if !divisions_given && let Some(mine) = &auth.divisions {
        d.division_ids = mine.clone();
    }
    put(state.store.as_ref(), RecordKind::Deployment, Some(auth.org), &d.id.to_string(), &d.name, &d, now, false)
        .await?;
    tracing::info!(by = %auth.user_id, deployment = %d.id, "deployment created");
    Ok(created(deployment_json(&d)))
}

#[utoipa::path(patch, path = "/api/v2/webdeployments/deployments/{deployment_id}", tag = "admin",
    description = "Change a deployment (omitted fields stay). Takes effect within seconds. Needs `journey:deployment:edit`.",
    params(("deployment_id" = String, Path, description = "Deployment id")), request_body = DeploymentRequest,
    responses((status = 200, description = "The deployment", body = serde_json::Value), (status = 400, description = "Invalid field"),
        (status = 404, description = "No such deployment")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn patch_deployment(
    auth: Authorized<DeploymentEdit>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let req: DeploymentRequest = body(&bytes)?;
    let mut d = own_deployment(&state, &auth, &id).await?;
    apply_deployment(&state, &auth, &mut d, req).await?;
    let now = state.clock.now();
    put(state.store.as_ref(), RecordKind::Deployment, Some(auth.org), &d.id.to_string(), &d.name, &d, now, false)
        .await?;
    state.forget_deployment(d.id);
    Ok(Json(deployment_json(&d)))
}

#[utoipa::path(delete, path = "/api/v2/webdeployments/deployments/{deployment_id}", tag = "admin",
    description = "Delete a deployment; its tracking requests are refused from then on (stored journeys stay). \
        Needs `journey:deployment:delete`.",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such deployment")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn delete_deployment(
    auth: Authorized<DeploymentDelete>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let d = own_deployment(&state, &auth, &id).await?;
    state.store.delete_record(RecordKind::Deployment, Some(auth.org), &d.id.to_string()).await?;
    state.forget_deployment(d.id);
    Ok(no_content())
}

/// The administration routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_me))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, patch_role, delete_role))
        .routes(routes!(list_divisions, create_division))
        .routes(routes!(get_division, patch_division, delete_division))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, delete_client))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, patch_deployment, delete_deployment))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_canonicalised_and_checked() {
        let (names, set) =
            canonical_permissions(&["journey:outcomescores:view".into(), "journey:segment:*".into()]).unwrap();
        assert_eq!(names, vec!["journey:outcomeScores:view", "journey:segment:*"]);
        assert!(set.contains(Permission::JourneyOutcomeScoresView));
        assert!(set.contains(Permission::JourneySegmentDelete));
        assert!(canonical_permissions(&["journey:nothing:view".into()]).is_err());
        assert!(canonical_permissions(&["nope:*:view".into()]).is_err());
    }

    #[test]
    fn domains_and_emails_are_validated() {
        assert_eq!(check_domain("Shop.Example.").unwrap(), "shop.example");
        assert_eq!(check_domain("*.shop.example").unwrap(), "*.shop.example");
        assert!(check_domain("http://shop.example").is_err());
        assert!(check_domain("").is_err());
        assert_eq!(check_email(" Agent@Example.COM ").unwrap(), "agent@example.com");
        assert!(check_email("agent").is_err());
        assert!(check_email("a b@example.com").is_err());
    }

    #[test]
    fn pages_are_cut_and_linked() {
        let items: Vec<Value> = (0..7).map(|i| json!(i)).collect();
        let q = QueryParams::parse(Some("pageSize=3&pageNumber=2".into()));
        let Json(v) = paged(items, &q, "/x").unwrap();
        assert_eq!(v["entities"], json!([3, 4, 5]));
        assert_eq!((v["total"].as_u64(), v["pageCount"].as_u64()), (Some(7), Some(3)));
        assert_eq!(v["nextUri"], "/x?pageSize=3&pageNumber=3");
        assert!(paged(vec![], &QueryParams::parse(Some("pageSize=0".into())), "/x").is_err());
    }
}
