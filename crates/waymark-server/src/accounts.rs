//! Organisations, users, roles, API tokens and OAuth clients: what they are and how they are stored (as
//! administrative records), plus the secrets rules: passwords hashed with Argon2id, tokens 256-bit random and
//! stored as SHA-256, compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use waymark_domain::Timestamp;
use waymark_domain::ids::{OrgId, RoleId, UserId};
use waymark_domain::permission::{Permission, PermissionSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub org: OrgId,
    /// Sign-in name (an email address), unique across Waymark.
    pub email: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub role_ids: Vec<RoleId>,
    /// Divisions the user may see; empty = every division.
    #[serde(default)]
    pub division_ids: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    pub created: Timestamp,
    /// The identity of an OAuth client (never signs in with a password; not listed among people).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: RoleId,
    pub org: OrgId,
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub builtin: bool,
}

impl Role {
    pub fn permission_set(&self) -> PermissionSet {
        self.permissions.iter().flat_map(|p| Permission::expand(p)).collect()
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenKind {
    /// A long-lived integration token created by an admin.
    Api,
    /// A browser sign-in session.
    Session,
    /// An access token issued by the OAuth client-credentials grant.
    Oauth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub org: OrgId,
    pub user_id: UserId,
    pub kind: TokenKind,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    #[serde(default)]
    pub revoked: bool,
    pub created: Timestamp,
    #[serde(default)]
    pub description: String,
}

/// An OAuth client for the client-credentials grant. It acts as its own service user, whose roles and
/// divisions apply to every token it obtains; deleting the client deletes that user, which voids its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthClient {
    /// The client id (public).
    pub id: String,
    pub org: OrgId,
    /// The identity the client acts as (its roles apply).
    pub user_id: UserId,
    /// Argon2id PHC string of the client secret.
    pub secret_hash: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Lifetime of the access tokens it obtains, in seconds.
    pub token_ttl_secs: i64,
    pub created: Timestamp,
}

/// Default lifetime of OAuth access tokens (Genesys: 86,400 s).
pub const OAUTH_TOKEN_TTL_SECS: i64 = 86_400;
/// Lifetime of a browser sign-in session.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// A freshly minted secret: what to give the user once, and what to store.
pub struct Minted {
    /// `wm_<id>_<secret>`: shown once.
    pub token: String,
    pub id: String,
    pub secret_sha256: String,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

/// A new random token `wm_<id>_<secret>` (id: 16 hex chars; secret: 256 bits, base64url).
pub fn mint_token() -> Minted {
    let id: String = random_bytes::<8>().iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    Minted { token: format!("wm_{id}_{secret}"), secret_sha256: sha256_hex(&secret), id }
}

/// A new OAuth client id (32 hex chars) and secret (256 bits, base64url). Hash the secret with
/// [`hash_password`] before storing it.
pub fn mint_client_credentials() -> (String, String) {
    let id: String = random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect();
    (id, URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// An Argon2id hash of nothing in particular, verified against when the account is unknown so that unknown
/// and known accounts take the same time to refuse.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password for unknown accounts").unwrap_or_default())
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Split `wm_<id>_<secret>` into its parts.
pub fn parse_token(raw: &str) -> Option<(&str, &str)> {
    let rest = raw.strip_prefix("wm_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() || secret.len() > 128 {
        return None;
    }
    Some((id, secret))
}

/// Constant-time check of a presented secret against a stored SHA-256.
pub fn secret_matches(presented: &str, stored_sha256: &str) -> bool {
    sha256_hex(presented).as_bytes().ct_eq(stored_sha256.as_bytes()).into()
}

/// Hash a password with Argon2id (slow by design: call from a blocking thread).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    let salt = random_bytes::<16>();
    let hash: argon2::password_hash::phc::PasswordHash =
        argon2::Argon2::default().hash_password_with_salt(password.as_bytes(), &salt).map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

/// Verify a password against an Argon2 hash (slow by design: call from a blocking thread).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_compare() {
        let m = mint_token();
        let (id, secret) = parse_token(&m.token).unwrap();
        assert_eq!(id, m.id);
        assert!(secret_matches(secret, &m.secret_sha256));
        assert!(!secret_matches("nope", &m.secret_sha256));
        assert!(parse_token("wm_short_x").is_none());
        assert!(parse_token("Bearer x").is_none());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
