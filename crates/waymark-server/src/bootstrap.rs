//! First-run administration: create (if absent) an organisation with the built-in roles, an admin user with
//! an API token, and a deployment for a website. Used by `waymark admin bootstrap` and the demo.

use crate::accounts::{Org, Role, Token, TokenKind, User, hash_password, mint_token};
use serde::Serialize;
use waymark_domain::Timestamp;
use waymark_domain::deployment::Deployment;
use waymark_domain::ids::{DeploymentId, OrgId, RoleId, UserId};
use waymark_domain::permission::PermissionSet;
use waymark_store::{Record, RecordKind, Store, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub org_name: String,
    pub admin_email: String,
    /// Set a password for the admin (sign-in to the UI); `None` keeps an existing one or leaves it unset.
    pub admin_password: Option<String>,
    /// Allowed domain of the first deployment (`*` = all).
    pub domain: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapResult {
    pub org_id: OrgId,
    pub org_name: String,
    pub user_id: UserId,
    pub admin_email: String,
    pub admin_role_id: RoleId,
    pub user_role_id: RoleId,
    pub deployment_id: DeploymentId,
    /// A new API token for the admin (shown once).
    pub token: String,
    pub created: bool,
}

/// The built-in roles of an organisation, created if missing: (Admin, User).
pub async fn ensure_roles(store: &dyn Store, org: OrgId, now: Timestamp) -> StoreResult<(Role, Role)> {
    let mut out = Vec::new();
    // Admin holds `*`, so permissions added by later versions reach existing organisations' admins too.
    let admin: Vec<String> = vec!["*".into()];
    let user: Vec<String> = PermissionSet::user_role().iter().map(|p| p.as_str().to_string()).collect();
    for (name, perms) in [("Admin", admin), ("User", user)] {
        let role = match store.find_record(RecordKind::Role, Some(org), name).await? {
            Some(r) => r.decode::<Role>()?,
            None => {
                let role = Role { id: RoleId::new_v7(now), org, name: name.into(), permissions: perms, builtin: true };
                put(store, RecordKind::Role, Some(org), &role.id.to_string(), name, &role, now, true).await?;
                role
            }
        };
        out.push(role);
    }
    let user = out.pop().ok_or_else(|| StoreError::Internal("roles".into()))?;
    let admin = out.pop().ok_or_else(|| StoreError::Internal("roles".into()))?;
    Ok((admin, user))
}

#[allow(clippy::too_many_arguments)]
pub async fn put<T: Serialize>(
    store: &dyn Store,
    kind: RecordKind,
    org: Option<OrgId>,
    id: &str,
    name: &str,
    body: &T,
    now: Timestamp,
    unique: bool,
) -> StoreResult<()> {
    let body = serde_json::to_value(body).map_err(|e| StoreError::Internal(e.to_string()))?;
    store.put_record(&Record::new(kind, org, id, name, body, now), None, unique).await
}

/// Create a user in `org` with the given roles and optional password; returns the user.
pub async fn create_user(
    store: &dyn Store,
    org: OrgId,
    email: &str,
    name: &str,
    password: Option<&str>,
    roles: Vec<RoleId>,
    now: Timestamp,
) -> StoreResult<User> {
    let password_hash = match password {
        Some(p) => {
            let p = p.to_string();
            Some(
                tokio::task::spawn_blocking(move || hash_password(&p))
                    .await
                    .map_err(|e| StoreError::Internal(e.to_string()))?
                    .map_err(StoreError::Internal)?,
            )
        }
        None => None,
    };
    let user = User {
        id: UserId::new_v7(now),
        org,
        email: email.trim().to_lowercase(),
        name: name.to_string(),
        password_hash,
        role_ids: roles,
        division_ids: Vec::new(),
        active: true,
        created: now,
        service: false,
    };
    put(store, RecordKind::User, None, &user.id.to_string(), &user.email, &user, now, true).await?;
    Ok(user)
}

/// Issue an API token for a user (returns the full token once).
pub async fn issue_token(
    store: &dyn Store,
    org: OrgId,
    user: UserId,
    kind: TokenKind,
    expires: Option<Timestamp>,
    description: &str,
    now: Timestamp,
) -> StoreResult<(Token, String)> {
    let minted = mint_token();
    let token = Token {
        id: minted.id.clone(),
        org,
        user_id: user,
        kind,
        secret_sha256: minted.secret_sha256,
        expires,
        revoked: false,
        created: now,
        description: description.to_string(),
    };
    put(store, RecordKind::Token, Some(org), &token.id, &token.id, &token, now, false).await?;
    Ok((token, minted.token))
}

/// Create what is missing and return the ids (and a fresh admin token).
pub async fn bootstrap(store: &dyn Store, req: &BootstrapRequest, now: Timestamp) -> StoreResult<BootstrapResult> {
    let mut created = false;
    let org = match store.find_record(RecordKind::Org, None, &req.org_name).await? {
        Some(r) => r.decode::<Org>()?,
        None => {
            created = true;
            let org = Org { id: OrgId::new_v7(now), name: req.org_name.clone(), created: now };
            put(store, RecordKind::Org, None, &org.id.to_string(), &org.name, &org, now, true).await?;
            org
        }
    };
    let (admin_role, user_role) = ensure_roles(store, org.id, now).await?;
    let email = req.admin_email.trim().to_lowercase();
    let user = match store.find_record(RecordKind::User, None, &email).await? {
        Some(r) => {
            let mut u: User = r.decode()?;
            if u.org != org.id {
                return Err(StoreError::Conflict(format!("{email} already belongs to another organisation")));
            }
            if let Some(p) = &req.admin_password {
                let p = p.clone();
                u.password_hash = Some(
                    tokio::task::spawn_blocking(move || hash_password(&p))
                        .await
                        .map_err(|e| StoreError::Internal(e.to_string()))?
                        .map_err(StoreError::Internal)?,
                );
                put(store, RecordKind::User, None, &u.id.to_string(), &u.email, &u, now, true).await?;
            }
            u
        }
        None => {
            create_user(store, org.id, &email, "Administrator", req.admin_password.as_deref(), vec![admin_role.id], now)
                .await?
        }
    };
    let domain = req.domain.trim().to_lowercase();
    let deployments = store.list_records(RecordKind::Deployment, Some(org.id)).await?;
    let existing = deployments.iter().filter_map(|r| r.decode::<Deployment>().ok()).find(|d| {
        (domain == "*" && d.allow_all_domains) || d.allowed_domains.iter().any(|x| x.eq_ignore_ascii_case(&domain))
    });
    let deployment = match existing {
        Some(d) => d,
        None => {
            let mut d = Deployment::new(org.id, DeploymentId::new_v7(now), domain.clone());
            if domain == "*" {
                d.allow_all_domains = true;
            } else {
                d.allowed_domains = vec![domain.clone()];
            }
            put(store, RecordKind::Deployment, Some(org.id), &d.id.to_string(), &d.name, &d, now, false).await?;
            d
        }
    };
    let (_, token) = issue_token(store, org.id, user.id, TokenKind::Api, None, "bootstrap", now).await?;
    Ok(BootstrapResult {
        org_id: org.id,
        org_name: org.name,
        user_id: user.id,
        admin_email: user.email,
        admin_role_id: admin_role.id,
        user_role_id: user_role.id,
        deployment_id: deployment.id,
        token,
        created,
    })
}
