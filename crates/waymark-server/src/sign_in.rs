//! Signing in. Integrations and the Genesys SDKs use the OAuth 2 client-credentials grant
//! (`POST /oauth/token`, RFC 6749 §4.4); people sign in with email and password (`POST /api/v2/login`), which
//! sets the HttpOnly session cookie the agent UI runs on, and sign out with `POST /api/v2/logout`.
//!
//! Secrets are checked with Argon2id on a blocking thread, against a decoy hash when the account is unknown
//! (same cost either way), and attempts are throttled per client address and per account.

use crate::accounts::{OauthClient, SESSION_TTL_SECS, TokenKind, User, decoy_hash, verify_password};
use crate::auth::guards::SignedIn;
use crate::auth::{Authorized, SESSION_COOKIE, forget_tokens};
use crate::bootstrap::{issue_token, put};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use waymark_domain::ErrorCode;
use waymark_store::RecordKind;

/// RFC 6749 §5.1 access token response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessTokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// RFC 6749 §5.2 error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct OauthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `slow_down`.
    pub error: String,
    pub error_description: String,
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut resp =
        (status, Json(OauthError { error: error.to_string(), error_description: description.into() })).into_response();
    no_store(resp.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"waymark\""));
    }
    resp
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    waymark_enrich::client_ip(peer.ip(), xff, &state.trusted_proxies)
}

/// `Authorization: Basic base64(id:secret)` (RFC 6749 §2.3.1: both parts form-urlencoded).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

/// Verify a secret against an Argon2 hash on a blocking thread (the hash costs tens of milliseconds).
async fn verify_off_runtime(secret: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&secret, &hash)).await.unwrap_or(false)
}

/// `POST /oauth/token`: the client-credentials grant.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "sign-in",
    description = "OAuth 2 client-credentials grant (RFC 6749 §4.4). Send the client id and secret with HTTP Basic \
        authentication (or as `client_id`/`client_secret` form fields) and the form body \
        `grant_type=client_credentials`. The access token is sent as `Authorization: Bearer …` afterwards.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`grant_type=client_credentials` (plus `client_id`, `client_secret` without Basic auth)"),
    responses(
        (status = 200, description = "A new access token", body = AccessTokenResponse),
        (status = 400, description = "Malformed request or unsupported grant type", body = OauthError),
        (status = 401, description = "Unknown client or wrong secret", body = OauthError),
        (status = 429, description = "Too many attempts; see Retry-After", body = OauthError),
    )
)]
pub async fn oauth_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the form body needs grant_type=client_credentials",
            );
        }
    }
    let (client_id, secret) = match (basic_credentials(&headers), field("client_id"), field("client_secret")) {
        (Some(c), None, None) => c,
        (None, Some(id), Some(secret)) => (id, secret),
        (Some(_), _, _) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send the client credentials either with Basic authentication or in the form, not both",
            );
        }
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is missing: use HTTP Basic with the client id and secret",
            );
        }
    };
    let ip = client_address(&state, &headers, peer);
    if let Err(e) = state.limiters.login(ip, &format!("oauth:{client_id}")) {
        let mut resp = oauth_error(StatusCode::TOO_MANY_REQUESTS, "slow_down", e.message.clone());
        if let Some(s) = e.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let client = match lookup_client(&state, &client_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let hash = client.as_ref().map_or_else(|| decoy_hash().to_string(), |c| c.secret_hash.clone());
    let ok = verify_off_runtime(secret, hash).await;
    let Some(client) = client.filter(|_| ok) else {
        tracing::info!(%ip, "oauth client authentication failed");
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    };
    let now = state.clock.now();
    let ttl = client.token_ttl_secs.max(60);
    let issued = issue_token(
        state.store.as_ref(),
        client.org,
        client.user_id,
        TokenKind::Oauth,
        Some(now.plus_secs(ttl)),
        &format!("oauth client {}", client.name),
        now,
    )
    .await;
    match issued {
        Ok((token, raw)) => {
            tracing::info!(client = %client.id, token = %token.id, "oauth token issued");
            let mut resp =
                Json(AccessTokenResponse { access_token: raw, token_type: "bearer".into(), expires_in: ttl })
                    .into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn lookup_client(state: &AppState, id: &str) -> ApiResult<Option<OauthClient>> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    match state.store.get_record(RecordKind::OauthClient, id).await? {
        Some(r) => Ok(Some(r.decode()?)),
        None => Ok(None),
    }
}

/// A sign-in request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// Who signed in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub id: String,
    pub name: String,
    pub email: String,
    /// Seconds until the session expires.
    pub expires_in: i64,
}

/// A sign-in request that names an origin must come from our own pages: a foreign page must not sign a
/// browser in to an account of the attacker's choosing (login CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            origin.split_once("://").map(|(_, h)| h) == Some(host)
        }
    }
}

/// `POST /api/v2/login`: password sign-in; sets the session cookie.
#[utoipa::path(
    post,
    path = "/api/v2/login",
    tag = "sign-in",
    description = "Sign in with email and password. Sets the `waymark_session` cookie (HttpOnly, SameSite=Strict) \
        that the agent UI uses. Attempts are limited per client address and per account.",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = LoginResponse),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)"),
        (status = 429, description = "Too many attempts; see Retry-After"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(ErrorCode::MalformedJson, format!("the body must be JSON {{\"email\", \"password\"}}: {e}"))
    })?;
    if !same_origin(&headers) {
        return Err(ApiError::new(
            ErrorCode::CsrfRejected,
            "sign-in must come from Waymark's own pages (the Origin header names another site)",
        ));
    }
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 320 || req.password.len() > 1024 {
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password"));
    }
    let ip = client_address(&state, &headers, peer);
    state.limiters.login(ip, &email)?;
    let user = match state.store.find_record(RecordKind::User, None, &email).await? {
        Some(r) => Some(r.decode::<User>()?),
        None => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| decoy_hash().to_string());
    let ok = verify_off_runtime(req.password, hash).await;
    let Some(user) = user.filter(|u| ok && u.active && u.password_hash.is_some()) else {
        tracing::info!(%ip, "sign-in failed");
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password"));
    };
    let now = state.clock.now();
    let (token, raw) = issue_token(
        state.store.as_ref(),
        user.org,
        user.id,
        TokenKind::Session,
        Some(now.plus_secs(SESSION_TTL_SECS)),
        "browser sign-in",
        now,
    )
    .await?;
    tracing::info!(user = %user.id, session = %token.id, "signed in");
    let cookie = format!(
        "{SESSION_COOKIE}={raw}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_SECS}{}",
        if state.config.secure_cookies { "; Secure" } else { "" }
    );
    let mut resp = Json(LoginResponse {
        id: user.id.to_string(),
        name: user.name,
        email: user.email,
        expires_in: SESSION_TTL_SECS,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    no_store(resp.headers_mut());
    Ok(resp)
}

/// `POST /api/v2/logout`: revoke the presented session (or token) and clear the cookie.
#[utoipa::path(
    post,
    path = "/api/v2/logout",
    tag = "sign-in",
    description = "Sign out: revokes the session cookie (or the bearer token) this request was made with.",
    responses((status = 204, description = "Signed out; the cookie is cleared"), (status = 401, description = "Not signed in")),
    security(("bearer" = []), ("session_cookie" = []))
)]
pub async fn logout(auth: Authorized<SignedIn>, State(state): State<AppState>) -> ApiResult<Response> {
    revoke_token(&state, &auth.token_id).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let clear = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if state.config.secure_cookies { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Mark a token revoked and forget cached tokens. `false` when there was no such token.
pub async fn revoke_token(state: &AppState, token_id: &str) -> ApiResult<bool> {
    let Some(rec) = state.store.get_record(RecordKind::Token, token_id).await? else { return Ok(false) };
    let mut token: crate::accounts::Token = rec.decode()?;
    if !token.revoked {
        token.revoked = true;
        put(
            state.store.as_ref(),
            RecordKind::Token,
            Some(token.org),
            &token.id,
            &token.id,
            &token,
            state.clock.now(),
            false,
        )
        .await?;
    }
    forget_tokens(state);
    tracing::info!(token = %token.id, "token revoked");
    Ok(true)
}

/// Routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(oauth_token)).routes(routes!(login)).routes(routes!(logout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_and_unescaped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("my%20id:s3c:ret"))).unwrap(),
        );
        assert_eq!(basic_credentials(&h), Some(("my id".into(), "s3c:ret".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
    }
}
