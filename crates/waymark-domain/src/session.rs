//! Sessions: one web visit or one contact-center conversation, in the Genesys `Session` wire shape, and the
//! live status an agent sees (Active → Idle after 45 s → Inactive after 60 s).

use crate::Timestamp;
use crate::wire::{Attributes, Browser, Campaign, Device, EntityRef, Geolocation, NamedRef, Page, Referrer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Seconds without activity before a web visitor shows as idle (yellow).
pub const IDLE_AFTER_SECS: i64 = 45;
/// Seconds without activity before a web visitor shows as inactive.
pub const AWAY_AFTER_SECS: i64 = 60;

/// `web` or `conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    Web,
    Conversation,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Web => "web",
            SessionType::Conversation => "conversation",
        }
    }
}

/// `SessionLastEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastEvent {
    pub id: String,
    pub event_name: String,
    pub created_date: Timestamp,
}

/// `SessionSegmentAssignment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentAssignment {
    pub segment: EntityRef,
    pub assigned_date: Timestamp,
}

/// `OutcomeAchievement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeAchievement {
    pub outcome: EntityRef,
    pub achieved_date: Timestamp,
}

/// `ConversationChannel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationChannel {
    #[serde(rename = "type")]
    pub channel_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// `ConversationUserDisposition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDisposition {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityRef>,
}

/// A session in the Genesys `Session` wire shape, plus a few Waymark fields (marked). Absent values are
/// omitted on the wire.
///
/// The enrichment values (browser, device, geolocation, campaign, referrer, last page) are shared (`Arc`) with
/// the events that carried them: every event stores a snapshot of its session for its answer and the live
/// messages, and a snapshot then points at those values instead of copying them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    #[serde(rename = "type")]
    pub session_type: SessionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact: Option<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome_achievements: Vec<OutcomeAchievement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_assignments: Vec<SegmentAssignment>,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Arc<Browser>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Arc<Device>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geolocation: Option<Arc<Geolocation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_page: Option<Arc<Page>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mkt_campaign: Option<Arc<Campaign>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Arc<Referrer>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_terms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_string: Option<String>,
    pub duration_in_seconds: i64,
    pub event_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pageview_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<LastEvent>,
    // --- conversation sessions ---
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connected_queue: Option<NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connected_user: Option<NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_disposition: Option<UserDisposition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_channels: Vec<ConversationChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_user_disconnect_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_acd_outcome: Option<String>,
    /// Waymark: `waiting`, `connected`, `endedByCustomer`, `endedByAgent`, `abandoned`, `wrapup`, `ended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_state: Option<String>,
    /// Waymark: a conversation handled by a bot only (no agent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bot_only: bool,
    // --- common ---
    pub authenticated: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    pub created_date: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_date: Option<Timestamp>,
    /// Waymark: the last sign of life (event or ping); idle/away dates derive from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_date: Option<Timestamp>,
}

/// The path of a session resource: a session's `selfUri` is it followed by the session's id.
pub const SESSION_URI_PREFIX: &str = "/api/v2/journey/sessions/";

impl Session {
    /// An empty session of `session_type` starting at `created`.
    pub fn new(id: String, session_type: SessionType, created: Timestamp) -> Session {
        Session {
            self_uri: Some(format!("{SESSION_URI_PREFIX}{id}")),
            id,
            session_type,
            external_contact: None,
            customer_id: None,
            customer_id_type: None,
            external_id: None,
            short_id: None,
            outcome_achievements: Vec::new(),
            segment_assignments: Vec::new(),
            attributes: Attributes::new(),
            browser: None,
            device: None,
            geolocation: None,
            ip_address: None,
            ip_organization: None,
            last_page: None,
            mkt_campaign: None,
            referrer: None,
            search_terms: Vec::new(),
            user_agent_string: None,
            duration_in_seconds: 0,
            event_count: 0,
            pageview_count: None,
            last_event: None,
            conversation: None,
            last_connected_queue: None,
            last_connected_user: None,
            last_user_disposition: None,
            conversation_channels: Vec::new(),
            originating_direction: None,
            conversation_subject: None,
            last_user_disconnect_type: None,
            last_acd_outcome: None,
            conversation_state: None,
            bot_only: false,
            authenticated: false,
            division_ids: Vec::new(),
            created_date: created,
            ended_date: None,
            away_date: None,
            idle_date: None,
            last_activity_date: None,
        }
    }

    /// Record a sign of life at `at`: moves the idle and away dates.
    pub fn touch(&mut self, at: Timestamp) {
        let last = self.last_activity_date.map_or(at, |l| l.max(at));
        self.last_activity_date = Some(last);
        self.idle_date = Some(last.plus_secs(IDLE_AFTER_SECS));
        self.away_date = Some(last.plus_secs(AWAY_AFTER_SECS));
        self.duration_in_seconds = last.millis_since(self.created_date).max(0) / 1000;
    }

    /// The live status at `now`.
    pub fn status(&self, now: Timestamp) -> SessionStatus {
        SessionStatus::of(self, now)
    }
}

/// What the status dot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Green.
    Active,
    /// Yellow: 45 s without activity.
    Idle,
    /// Grey: 60 s without activity, or the conversation ended.
    Inactive,
}

impl SessionStatus {
    pub fn of(s: &Session, now: Timestamp) -> SessionStatus {
        match s.session_type {
            SessionType::Conversation => {
                if s.ended_date.is_some() {
                    SessionStatus::Inactive
                } else {
                    SessionStatus::Active
                }
            }
            SessionType::Web => {
                if s.ended_date.is_some() {
                    return SessionStatus::Inactive;
                }
                match (s.idle_date, s.away_date) {
                    (_, Some(away)) if now >= away => SessionStatus::Inactive,
                    (Some(idle), _) if now >= idle => SessionStatus::Idle,
                    _ => SessionStatus::Active,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_turns_yellow_at_45s_and_grey_at_60s_and_green_on_activity() {
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut s = Session::new("s".into(), SessionType::Web, t0);
        s.touch(t0);
        assert_eq!(s.status(t0.plus_secs(44)), SessionStatus::Active);
        assert_eq!(s.status(t0.plus_secs(45)), SessionStatus::Idle);
        assert_eq!(s.status(t0.plus_secs(59)), SessionStatus::Idle);
        assert_eq!(s.status(t0.plus_secs(60)), SessionStatus::Inactive);
        s.touch(t0.plus_secs(300));
        assert_eq!(s.status(t0.plus_secs(301)), SessionStatus::Active);
        assert_eq!(s.duration_in_seconds, 300);
    }

    #[test]
    fn absent_values_are_omitted_on_the_wire() {
        let s = Session::new("s".into(), SessionType::Web, Timestamp::from_unix_millis(0));
        let v = serde_json::to_value(&s).unwrap();
        let text = v.to_string();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(v["type"], "web");
        assert_eq!(v["createdDate"], "1970-01-01T00:00:00.000Z");
    }
}
