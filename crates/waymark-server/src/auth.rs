//! Who is calling, and may they? The [`Authorized`] extractor carries the required permission in its type:
//! a handler that takes `Authorized<SessionView>` cannot run for a caller without it. Handlers without an
//! `Authorized<…>` argument are only the public tracking endpoints, which are keyed by deployment and origin.

use crate::accounts::{Role, Token, TokenKind, User, parse_token, secret_matches};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_domain::ErrorCode;
use waymark_domain::ids::{OrgId, UserId};
use waymark_domain::permission::{Permission, PermissionSet};
use waymark_store::RecordKind;

/// The session cookie of the agent UI.
pub const SESSION_COOKIE: &str = "waymark_session";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub org: OrgId,
    pub user_id: UserId,
    pub user_name: String,
    pub permissions: PermissionSet,
    /// Divisions the caller may see; `None` = all.
    pub divisions: Option<Vec<String>>,
    pub token_id: String,
    pub via_cookie: bool,
}

impl Caller {
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }

    /// Whether a session with `division_ids` is visible: sessions without divisions belong to everyone in
    /// the organisation; others need a shared division.
    pub fn sees_divisions(&self, division_ids: &[String]) -> bool {
        match &self.divisions {
            None => true,
            Some(mine) => division_ids.is_empty() || division_ids.iter().any(|d| mine.contains(d)),
        }
    }
}

/// A permission requirement: the caller needs **any** of `ANY_OF`.
pub trait Guard: Send + Sync + 'static {
    const ANY_OF: &'static [Permission];
}

/// Declare a guard type.
#[macro_export]
macro_rules! guard {
    ($($(#[$doc:meta])* $name:ident => [$($p:ident),+]);* $(;)?) => {$(
        $(#[$doc])*
        pub struct $name;
        impl $crate::auth::Guard for $name {
            const ANY_OF: &'static [waymark_domain::permission::Permission] =
                &[$(waymark_domain::permission::Permission::$p),+];
        }
    )*};
}

pub mod guards {
    //! The permission guards used by handlers.
    crate::guard! {
        /// A single session: either permission (Genesys `get_journey_session`).
        SessionView => [JourneySessionView, ExternalContactsSessionView];
        /// A contact's journey sessions; the whole Customer Journey view.
        ContactSessionView => [ExternalContactsSessionView];
        EventView => [JourneyEventView];
        OutcomeScoresView => [JourneyOutcomeScoresView];
        SegmentView => [JourneySegmentView];
        SegmentAdd => [JourneySegmentAdd];
        SegmentEdit => [JourneySegmentEdit];
        SegmentDelete => [JourneySegmentDelete];
        OutcomeView => [JourneyOutcomeView];
        OutcomeAdd => [JourneyOutcomeAdd];
        OutcomeEdit => [JourneyOutcomeEdit];
        OutcomeDelete => [JourneyOutcomeDelete];
        ActionMapView => [JourneyActionMapView];
        ActionMapAdd => [JourneyActionMapAdd];
        ActionMapEdit => [JourneyActionMapEdit];
        ActionMapDelete => [JourneyActionMapDelete];
        DeploymentView => [JourneyDeploymentView];
        DeploymentAdd => [JourneyDeploymentAdd];
        DeploymentEdit => [JourneyDeploymentEdit];
        DeploymentDelete => [JourneyDeploymentDelete];
        OauthClientView => [OauthClientView, OauthClientEdit];
        OauthClientEdit => [OauthClientEdit];
        DivisionView => [AuthorizationDivisionView, AuthorizationDivisionEdit];
        DivisionEdit => [AuthorizationDivisionEdit];
        ConversationEventAdd => [JourneyConversationEventAdd];
        QueueView => [RoutingQueueView, RoutingQueueSearch];
        QueueEdit => [RoutingQueueEdit];
        WrapupCodeView => [RoutingWrapupCodeView];
        WrapupCodeEdit => [RoutingWrapupCodeEdit];
        UserView => [DirectoryUserView];
        UserEdit => [DirectoryUserEdit];
        RoleView => [AuthorizationRoleView];
        RoleEdit => [AuthorizationRoleEdit];
        ContactView => [ExternalContactsSessionView, ExternalContactsView];
    }
    /// Any signed-in caller.
    pub struct SignedIn;
    impl crate::auth::Guard for SignedIn {
        const ANY_OF: &'static [waymark_domain::permission::Permission] = &[];
    }
}

/// A caller that holds the permission `G` requires.
pub struct Authorized<G: Guard> {
    pub caller: Caller,
    _guard: PhantomData<G>,
}

impl<G: Guard> std::ops::Deref for Authorized<G> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<G: Guard> FromRequestParts<AppState> for Authorized<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if !G::ANY_OF.is_empty() && !G::ANY_OF.iter().any(|p| caller.can(*p)) {
            let names: Vec<&str> = G::ANY_OF.iter().map(|p| p.as_str()).collect();
            return Err(ApiError::new(
                ErrorCode::MissingPermission,
                format!(
                    "this needs the permission {}; ask an administrator to add it to one of your roles",
                    names.join(" or ")
                ),
            ));
        }
        Ok(Authorized { caller, _guard: PhantomData })
    }
}

/// Extract the presented token from `Authorization: Bearer …` or the session cookie.
fn presented_token(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some((t.trim().to_string(), false));
        }
    }
    for c in parts.headers.get_all(header::COOKIE) {
        let Ok(s) = c.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Some((v.to_string(), true));
            }
        }
    }
    None
}

/// Resolve the caller of a request.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some((raw, via_cookie)) = presented_token(parts) else {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "sign in or send an API token as 'Authorization: Bearer wm_…'",
        ));
    };
    let caller = resolve_token(state, &raw).await?;
    if via_cookie && !matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
        // Cookie-authenticated writes must come from our own pages (CSRF).
        let origin_ok = match parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(origin) => {
                let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
                origin.split_once("://").map(|(_, h)| h) == Some(host)
            }
            None => parts.headers.get("x-requested-with").is_some(),
        };
        if !origin_ok {
            return Err(ApiError::new(
                ErrorCode::CsrfRejected,
                "cross-site request refused; use the Waymark page or an API token",
            ));
        }
    }
    Ok(Caller { via_cookie, ..caller })
}

/// Look up and verify a token, with a short cache.
pub async fn resolve_token(state: &AppState, raw: &str) -> Result<Caller, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the token is invalid, expired or revoked; sign in again or create a new token",
        )
    };
    let (id, secret) = parse_token(raw).ok_or_else(invalid)?;
    let now = state.clock.now();
    if let Some((caller, hash, expires, at)) = state.auth_cache.lock().get(id).cloned()
        && at.elapsed() < Duration::from_secs(10)
    {
        if !secret_matches(secret, &hash) || expires.is_some_and(|e| e <= now) {
            return Err(invalid());
        }
        return Ok(caller);
    }
    let rec = state.store.get_record(RecordKind::Token, id).await?.ok_or_else(invalid)?;
    let token: Token = rec.decode()?;
    if token.revoked || !secret_matches(secret, &token.secret_sha256) || token.expires.is_some_and(|e| e <= now) {
        return Err(invalid());
    }
    let caller = caller_for_user(state, token.org, token.user_id, &token.id).await?.ok_or_else(invalid)?;
    if token.kind == TokenKind::Session || token.kind == TokenKind::Oauth || token.kind == TokenKind::Api {
        let mut cache = state.auth_cache.lock();
        if cache.len() > 50_000 {
            cache.clear();
        }
        cache.insert(token.id.clone(), (caller.clone(), token.secret_sha256.clone(), token.expires, Instant::now()));
    }
    Ok(caller)
}

/// Build the caller for a user (roles → permissions, divisions). `None` for unknown or inactive users.
pub async fn caller_for_user(
    state: &AppState,
    org: OrgId,
    user_id: UserId,
    token_id: &str,
) -> Result<Option<Caller>, ApiError> {
    let Some(rec) = state.store.get_record(RecordKind::User, &user_id.to_string()).await? else { return Ok(None) };
    let user: User = rec.decode()?;
    if !user.active || user.org != org {
        return Ok(None);
    }
    let mut perms = PermissionSet::EMPTY;
    for rid in &user.role_ids {
        if let Some(r) = state.store.get_record(RecordKind::Role, &rid.to_string()).await? {
            let role: Role = r.decode()?;
            if role.org == org {
                perms = perms.union(role.permission_set());
            }
        }
    }
    Ok(Some(Caller {
        org,
        user_id,
        user_name: user.name.clone(),
        permissions: perms,
        divisions: if user.division_ids.is_empty() { None } else { Some(user.division_ids.clone()) },
        token_id: token_id.to_string(),
        via_cookie: false,
    }))
}

/// Forget cached tokens (after a revocation or a role change).
pub fn forget_tokens(state: &AppState) {
    state.auth_cache.lock().clear();
}

pub type AuthCache =
    parking_lot::Mutex<std::collections::HashMap<String, (Caller, String, Option<waymark_domain::Timestamp>, Instant)>>;

pub fn new_auth_cache() -> Arc<AuthCache> {
    Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()))
}
