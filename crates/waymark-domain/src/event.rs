//! Journey events: immutable, ordered within their session, in the Genesys `Event` envelope that carries
//! exactly one body (`webEvent`, `webActionEvent`, `segmentAssignmentEvent`, `outcomeAchievedEvent`, or
//! Waymark's `conversationEvent`).
//!
//! Stored web events leave out what is the same for the whole session (browser, device, geolocation,
//! User-Agent, campaign, referrer); [`Event::with_session_context`] puts it back when the event is read.

use crate::Timestamp;
use crate::session::{Session, SessionType};
use crate::wire::{Attributes, Browser, Campaign, Device, EntityRef, Geolocation, Page, Referrer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `Event.eventType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "com.genesys.journey.WebEvent")]
    Web,
    #[serde(rename = "com.genesys.journey.WebActionEvent")]
    WebAction,
    #[serde(rename = "com.genesys.journey.SegmentAssignmentEvent")]
    SegmentAssignment,
    #[serde(rename = "com.genesys.journey.OutcomeAchievedEvent")]
    OutcomeAchieved,
    #[serde(rename = "com.waymark.journey.ConversationEvent")]
    Conversation,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Web,
        EventType::WebAction,
        EventType::SegmentAssignment,
        EventType::OutcomeAchieved,
        EventType::Conversation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Web => "com.genesys.journey.WebEvent",
            EventType::WebAction => "com.genesys.journey.WebActionEvent",
            EventType::SegmentAssignment => "com.genesys.journey.SegmentAssignmentEvent",
            EventType::OutcomeAchieved => "com.genesys.journey.OutcomeAchievedEvent",
            EventType::Conversation => "com.waymark.journey.ConversationEvent",
        }
    }

    /// Accepts the full name or the short one used in notifications (`WebEvent`).
    pub fn parse(s: &str) -> Option<EventType> {
        let s = s.trim();
        EventType::ALL.into_iter().find(|t| t.as_str() == s || t.as_str().rsplit('.').next() == Some(s))
    }
}

/// `EventSession`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSession {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    #[serde(rename = "type")]
    pub session_type: SessionType,
}

/// `WebEvent` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebEventBody {
    pub event_name: String,
    pub total_event_count: i64,
    pub total_pageview_count: i64,
    pub page: Arc<Page>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_string: Option<String>,
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
    pub mkt_campaign: Option<Arc<Campaign>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Arc<Referrer>>,
    /// Shared with the request's [`crate::web_event::WebEvent`]: copying the maps for every event was 3 % of
    /// the store writer's time in batches.
    #[serde(default)]
    pub attributes: Arc<Attributes>,
    #[serde(default)]
    pub traits: Arc<Attributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_query: Option<String>,
    pub authenticated: bool,
}

/// `EventAction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventAction {
    pub id: String,
    pub state: String,
    pub media_type: String,
    #[serde(default)]
    pub prompt: String,
    pub created_date: Timestamp,
}

/// `ActionEventActionMap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionEventActionMap {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    pub version: i64,
    pub display_name: String,
}

/// `WebActionEvent` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebActionEventBody {
    pub action: EventAction,
    pub action_map: ActionEventActionMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_disposition: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Waymark: why a qualified action was not offered (frequency cap, URL condition, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Arc<Browser>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Arc<Device>>,
}

/// `SegmentAssignmentEvent` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentAssignmentEventBody {
    pub segment: EntityRef,
    /// Waymark: display fields so the journey map can draw the dot without another lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `OutcomeAchievedEventOutcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AchievedOutcomeRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    pub display_name: String,
    pub version: i64,
}

/// `OutcomeAchievedEvent` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeAchievedEventBody {
    pub outcome: AchievedOutcomeRef,
    /// Waymark: the associated value (e.g. order total) when the outcome defines one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_positive: Option<bool>,
}

/// Waymark's conversation lifecycle event body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEventBody {
    /// `started`, `queued`, `connected`, `transferred`, `botOnly`, `disconnected`, `wrapup`, `ended`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::wire::NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::wire::NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_code: Option<crate::wire::NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_type: Option<String>,
}

/// `Event`. Its body is one of the boxed variants, so that an event is small to move whatever its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id_type: Option<String>,
    pub session: EventSession,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_event: Option<Box<WebEventBody>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_action_event: Option<Box<WebActionEventBody>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_assignment_event: Option<Box<SegmentAssignmentEventBody>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_achieved_event: Option<Box<OutcomeAchievedEventBody>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_event: Option<Box<ConversationEventBody>>,
    pub created_date: Timestamp,
}

impl Event {
    /// An envelope for `session` with no body yet.
    pub fn envelope(
        id: String,
        correlation_id: String,
        session: &Session,
        event_type: EventType,
        at: Timestamp,
    ) -> Event {
        Event {
            id,
            correlation_id,
            customer_id: session.customer_id.clone(),
            customer_id_type: session.customer_id_type.clone(),
            session: EventSession {
                id: session.id.clone(),
                // The session's own `selfUri` is this one (`Session::new`): a copy, not a `format!` per event.
                self_uri: Some(match session.self_uri.as_deref() {
                    Some(uri) if uri.strip_prefix(crate::session::SESSION_URI_PREFIX) == Some(session.id.as_str()) => {
                        uri.to_string()
                    }
                    _ => format!("{}{}", crate::session::SESSION_URI_PREFIX, session.id),
                }),
                session_type: session.session_type,
            },
            event_type,
            web_event: None,
            web_action_event: None,
            segment_assignment_event: None,
            outcome_achieved_event: None,
            conversation_event: None,
            created_date: at,
        }
    }

    /// Re-attach the session-wide context that stored web events leave out.
    pub fn with_session_context(mut self, s: &Session) -> Event {
        if let Some(w) = self.web_event.as_mut() {
            w.user_agent_string = w.user_agent_string.take().or_else(|| s.user_agent_string.clone());
            w.browser = w.browser.take().or_else(|| s.browser.clone());
            w.device = w.device.take().or_else(|| s.device.clone());
            w.geolocation = w.geolocation.take().or_else(|| s.geolocation.clone());
            w.ip_address = w.ip_address.take().or_else(|| s.ip_address.clone());
            w.ip_organization = w.ip_organization.take().or_else(|| s.ip_organization.clone());
            w.mkt_campaign = w.mkt_campaign.take().or_else(|| s.mkt_campaign.clone());
            w.referrer = w.referrer.take().or_else(|| s.referrer.clone());
        }
        if let Some(a) = self.web_action_event.as_mut() {
            a.user_agent_string = a.user_agent_string.take().or_else(|| s.user_agent_string.clone());
            a.browser = a.browser.take().or_else(|| s.browser.clone());
            a.device = a.device.take().or_else(|| s.device.clone());
        }
        self
    }

    /// The short name shown on a journey map (`page_viewed`, `segment_assigned`, `offer_accepted`, …).
    pub fn display_name(&self) -> String {
        if let Some(w) = &self.web_event {
            return w.event_name.clone();
        }
        if let Some(a) = &self.web_action_event {
            return format!("action_{}", a.action.state);
        }
        if self.segment_assignment_event.is_some() {
            return "segment_assigned".into();
        }
        if self.outcome_achieved_event.is_some() {
            return "outcome_achieved".into();
        }
        if let Some(c) = &self.conversation_event {
            return format!("conversation_{}", c.kind);
        }
        "event".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelopes_session_uri_is_the_sessions_own_path() {
        use crate::session::{Session, SessionType};
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut session = Session::new("s-1".into(), SessionType::Web, at);
        let uri = |s: &Session| Event::envelope("e".into(), "e".into(), s, EventType::Web, at).session.self_uri;
        assert_eq!(uri(&session).as_deref(), Some("/api/v2/journey/sessions/s-1"));
        for odd in [None, Some("/api/v2/journey/sessions/other".to_string()), Some("x".to_string())] {
            session.self_uri = odd;
            assert_eq!(uri(&session).as_deref(), Some("/api/v2/journey/sessions/s-1"));
        }
    }

    #[test]
    fn event_types_parse_long_and_short_names() {
        assert_eq!(EventType::parse("com.genesys.journey.WebEvent"), Some(EventType::Web));
        assert_eq!(EventType::parse("SegmentAssignmentEvent"), Some(EventType::SegmentAssignment));
        assert_eq!(EventType::parse("nope"), None);
    }
}
