//! Signing in for integrations and the Genesys SDKs: the OAuth 2 client-credentials grant (`POST /oauth/token`,
//! RFC 6749 §4.4), and token revocation. (People sign in through `login_api`.)
//!
//! Client secrets are checked with Argon2id on a blocking thread, against a decoy hash when the client is
//! unknown (same cost either way), and attempts are throttled per client address and per client id.

use crate::accounts::{OauthClient, TokenKind, decoy_hash, verify_password};
use crate::auth::forget_tokens;
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
    OpenApiRouter::new().routes(routes!(oauth_token)).layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
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
