//! Browser sign-in and sign-out for the agent UI: `POST /api/v2/login` checks an e-mail and password
//! (Argon2id, verified on a blocking thread, rate-limited per client address and per user name) and answers a
//! `waymark_session` cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when configured) holding a session token;
//! `POST /api/v2/logout` revokes that token and clears the cookie. Both refuse cross-site requests (CSRF).

use crate::accounts::{Token, TokenKind, User, verify_password};
use crate::auth::guards::SignedIn;
use crate::auth::{Authorized, SESSION_COOKIE, forget_tokens};
use crate::bootstrap::{issue_token, put};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use waymark_domain::ErrorCode;
use waymark_store::RecordKind;

/// How long a browser session lasts.
pub const SESSION_HOURS: i64 = 12;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// A state-changing request without a cookie must still come from our own pages when it names an origin:
/// a foreign page must not sign a browser in to an account of the attacker's choosing (login CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            origin.split_once("://").map(|(_, h)| h) == Some(host)
        }
    }
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(|_| ApiError::new(ErrorCode::Internal, "could not build the session cookie"))
}

/// `POST /api/v2/login` `{email, password}` → `200 {userName}` + session cookie.
#[utoipa::path(post, path = "/api/v2/login", tag = "sign-in",
    description = "Sign in with email and password. Sets the `waymark_session` cookie (HttpOnly, SameSite=Strict) \
        the agent UI runs on. Attempts are limited per client address and per account; cross-site requests are refused.",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in; the cookie is set", body = serde_json::Value),
        (status = 400, description = "Malformed body or missing field"),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)"),
        (status = 403, description = "Cross-site request"), (status = 429, description = "Too many attempts; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::new(ErrorCode::CsrfRejected, "cross-site sign-in refused; sign in on the Waymark page"));
    }
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("the body is not a sign-in request: {e}")))?;
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 320 {
        return Err(ApiError::from(waymark_domain::Rejection::at(
            ErrorCode::MissingField,
            "email",
            "email is required (at most 320 characters)",
        )));
    }
    if req.password.is_empty() || req.password.len() > 1024 {
        return Err(ApiError::from(waymark_domain::Rejection::at(
            ErrorCode::MissingField,
            "password",
            "password is required (at most 1024 characters)",
        )));
    }
    let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let ip = waymark_enrich::client_ip(peer.ip(), xff, &state.trusted_proxies);
    state.limiters.login(ip, &email)?;

    let bad = || ApiError::new(ErrorCode::InvalidCredentials, "wrong e-mail or password");
    let user: Option<User> = match state.store.find_record(RecordKind::User, None, &email).await? {
        Some(r) => Some(r.decode()?),
        None => None,
    };
    // Verify against a real hash even for unknown users, so timing does not reveal who has an account.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "password check failed; it has been logged"))?;
    let Some(user) = user.filter(|u| ok && u.active && u.password_hash.is_some()) else {
        tracing::info!(%ip, "sign-in refused");
        return Err(bad());
    };
    let now = state.clock.now();
    let expires = now.plus_secs(SESSION_HOURS * 3600);
    let (_, token) =
        issue_token(state.store.as_ref(), user.org, user.id, TokenKind::Session, Some(expires), "browser sign-in", now)
            .await?;
    let cookie = session_cookie(&state, &token, SESSION_HOURS * 3600)?;
    tracing::info!(user = %user.id, "signed in");
    let mut resp = Json(json!({"userName": user.name, "email": user.email})).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `POST /api/v2/logout`: revoke the session token and clear the cookie.
#[utoipa::path(post, path = "/api/v2/logout", tag = "sign-in",
    description = "Sign out: revokes the session of the cookie and clears it.",
    responses((status = 204, description = "Signed out"), (status = 401, description = "Not signed in"),
        (status = 403, description = "Cross-site request")),
    security(("session_cookie" = []), ("bearer" = [])))]
pub async fn logout(auth: Authorized<SignedIn>, State(state): State<AppState>) -> ApiResult<Response> {
    if let Some(rec) = state.store.get_record(RecordKind::Token, &auth.token_id).await? {
        let mut token: Token = rec.decode()?;
        if token.kind == TokenKind::Session && !token.revoked {
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
            forget_tokens(&state);
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, "", 0)?);
    Ok(resp)
}

/// An Argon2id hash of a random password nobody knows, for constant-time refusals.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3p6sE1yqa7vMvbE0hNqz8m4tQ9nN6mJdO5kq3r7mYt0";

/// Sign-in routes.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(login))
        .routes(utoipa_axum::routes!(logout))
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_parses_and_matches_nothing_common() {
        assert!(!verify_password("", DUMMY_HASH));
        assert!(!verify_password("password", DUMMY_HASH));
        use argon2::password_hash::phc::PasswordHash;
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash must parse, or unknown users answer faster");
    }

    #[test]
    fn cross_site_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("waymark.local:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://waymark.local:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
    }
}
