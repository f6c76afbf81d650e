//! Administrative records: organisations, deployments, users, roles, tokens, routing records, segment,
//! outcome and action-map definitions, model snapshots. They are few, read through caches, and stored as
//! JSON bodies keyed by kind and id with a name index.

use serde::{Deserialize, Serialize};
use waymark_domain::Timestamp;
use waymark_domain::ids::OrgId;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordKind {
    Org,
    Deployment,
    User,
    Role,
    Token,
    OauthClient,
    Division,
    Queue,
    WrapupCode,
    Segment,
    Outcome,
    ActionMap,
    Model,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Org => "org",
            RecordKind::Deployment => "deployment",
            RecordKind::User => "user",
            RecordKind::Role => "role",
            RecordKind::Token => "token",
            RecordKind::OauthClient => "oauthClient",
            RecordKind::Division => "division",
            RecordKind::Queue => "queue",
            RecordKind::WrapupCode => "wrapupCode",
            RecordKind::Segment => "segment",
            RecordKind::Outcome => "outcome",
            RecordKind::ActionMap => "actionMap",
            RecordKind::Model => "model",
        }
    }
}

/// One administrative record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: RecordKind,
    /// `None` for global records (organisations themselves, users' login names are global).
    pub org: Option<OrgId>,
    pub id: String,
    /// Unique per kind and organisation when written with `unique_name`; matched case-insensitively.
    pub name: String,
    pub body: serde_json::Value,
    pub version: i64,
    pub updated: Timestamp,
}

impl Record {
    pub fn new(
        kind: RecordKind,
        org: Option<OrgId>,
        id: impl Into<String>,
        name: impl Into<String>,
        body: serde_json::Value,
        now: Timestamp,
    ) -> Self {
        Record { kind, org, id: id.into(), name: name.into(), body, version: 1, updated: now }
    }

    /// Decode the body as `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::StoreError> {
        serde_json::from_value(self.body.clone())
            .map_err(|e| crate::StoreError::Corrupt(format!("{} {}: {e}", self.kind.as_str(), self.id)))
    }
}
