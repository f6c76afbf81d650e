//! Contact-center conversations in the journey: the channels the journey shows, the lifecycle events the
//! contact-center platform sends (`POST /api/v2/journey/conversationevents`), and the fold that turns a
//! conversation's events into one Genesys `Session` of `type=conversation` plus timeline events.
//!
//! Events arrive late, twice or out of order. [`ConversationState`] therefore keeps every distinct lifecycle
//! event of a conversation in one canonical order — by timestamp, then lifecycle rank, then id — and
//! [`ConversationState::fold`] derives the session from that order alone: any arrival order of the same events
//! gives the same session. A set of events that cannot describe one conversation (two starts, an agent on a
//! bot-only conversation, activity after the end) is refused event by event with `invalid_transition`, and the
//! rules are chosen so that every subset of a valid lifecycle is valid too — a valid lifecycle is accepted
//! whatever order its events come in.

use crate::event::{ConversationEventBody, Event, EventType};
use crate::identity::{Email, Identifier, Phone};
use crate::ids::ContactId;
use crate::limits::InputLimits;
use crate::session::{ConversationChannel, Session, SessionType, UserDisposition};
use crate::web_event::CookieId;
use crate::wire::{EntityRef, NamedRef};
use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A channel whose conversations the journey shows (the seed's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Channel {
    /// Voice: inbound calls and agent-initiated outbound calls (told apart by the direction).
    Voice,
    WebMessaging,
    WebChat,
    Email,
    Sms,
    /// Agentless notification over WhatsApp.
    AgentlessWhatsApp,
    /// Agentless notification over SMS.
    AgentlessSms,
    WhatsApp,
    Line,
    /// X / Twitter direct messages.
    Twitter,
    FacebookMessenger,
}

impl Channel {
    pub const ALL: [Channel; 11] = [
        Channel::Voice,
        Channel::WebMessaging,
        Channel::WebChat,
        Channel::Email,
        Channel::Sms,
        Channel::AgentlessWhatsApp,
        Channel::AgentlessSms,
        Channel::WhatsApp,
        Channel::Line,
        Channel::Twitter,
        Channel::FacebookMessenger,
    ];

    /// The wire name (`voice`, `webMessaging`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::WebMessaging => "webMessaging",
            Channel::WebChat => "webChat",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::AgentlessWhatsApp => "agentlessWhatsApp",
            Channel::AgentlessSms => "agentlessSms",
            Channel::WhatsApp => "whatsApp",
            Channel::Line => "line",
            Channel::Twitter => "twitter",
            Channel::FacebookMessenger => "facebookMessenger",
        }
    }

    /// Agentless notifications are sent by the platform: always outbound, never handled by an agent.
    pub fn is_agentless(self) -> bool {
        matches!(self, Channel::AgentlessWhatsApp | Channel::AgentlessSms)
    }

    /// The Genesys `ConversationChannel` of this channel.
    pub fn wire(self) -> ConversationChannel {
        let (t, m, p) = match self {
            Channel::Voice => ("Call", None, "Edge"),
            Channel::WebMessaging => ("Messaging", Some("WebMessaging"), "PureCloud Messaging"),
            Channel::WebChat => ("Webchat", None, "PureCloud Chat"),
            Channel::Email => ("Email", None, "PureCloud Email"),
            Channel::Sms => ("Messaging", Some("Sms"), "PureCloud Messaging"),
            Channel::AgentlessWhatsApp => ("Messaging", Some("WhatsApp"), "Agentless Notification"),
            Channel::AgentlessSms => ("Messaging", Some("Sms"), "Agentless Notification"),
            Channel::WhatsApp => ("Messaging", Some("WhatsApp"), "PureCloud Messaging"),
            Channel::Line => ("Messaging", Some("Line"), "PureCloud Messaging"),
            Channel::Twitter => ("Messaging", Some("Twitter"), "PureCloud Messaging"),
            Channel::FacebookMessenger => ("Messaging", Some("Facebook"), "PureCloud Messaging"),
        };
        ConversationChannel {
            channel_type: t.to_string(),
            message_type: m.map(str::to_string),
            platform: Some(p.to_string()),
        }
    }
}

/// Channels the journey does not show (seed: "not yet available"). Conversations on them are refused and
/// stored nowhere.
pub const EXCLUDED_CHANNELS: [&str; 7] =
    ["knowledge", "supportCenter", "agentlessEmail", "campaign", "callback", "cobrowse", "instagram"];

/// What a channel name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelName {
    Shown(Channel),
    /// A real channel the journey does not show.
    Excluded,
    Unknown,
}

/// Read a channel name: case-insensitive, ignoring `-`, `_` and spaces (`web_messaging`, `WhatsApp`).
pub fn parse_channel(raw: &str) -> ChannelName {
    let key: String = raw.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    if let Some(c) = Channel::ALL.iter().find(|c| c.as_str().to_ascii_lowercase() == key) {
        return ChannelName::Shown(*c);
    }
    let alias = match key.as_str() {
        "call" | "phone" => Some(Channel::Voice),
        "chat" => Some(Channel::WebChat),
        "x" | "xdm" | "twitterdm" => Some(Channel::Twitter),
        "facebook" | "messenger" => Some(Channel::FacebookMessenger),
        _ => None,
    };
    if let Some(c) = alias {
        return ChannelName::Shown(c);
    }
    match key.as_str() {
        "knowledge"
        | "supportcenter"
        | "knowledgesupportcenter"
        | "agentlessemail"
        | "campaign"
        | "campaigns"
        | "outboundcampaign"
        | "callback"
        | "callbacks"
        | "cobrowse"
        | "instagram"
        | "instagramdm" => ChannelName::Excluded,
        _ => ChannelName::Unknown,
    }
}

/// What happened in the conversation. The declaration order is the lifecycle rank used to order events that
/// share a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleType {
    Started,
    Queued,
    Connected,
    Transferred,
    BotOnly,
    Disconnected,
    Wrapup,
    Ended,
}

impl LifecycleType {
    pub const ALL: [LifecycleType; 8] = [
        LifecycleType::Started,
        LifecycleType::Queued,
        LifecycleType::Connected,
        LifecycleType::Transferred,
        LifecycleType::BotOnly,
        LifecycleType::Disconnected,
        LifecycleType::Wrapup,
        LifecycleType::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleType::Started => "started",
            LifecycleType::Queued => "queued",
            LifecycleType::Connected => "connected",
            LifecycleType::Transferred => "transferred",
            LifecycleType::BotOnly => "botOnly",
            LifecycleType::Disconnected => "disconnected",
            LifecycleType::Wrapup => "wrapup",
            LifecycleType::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<LifecycleType> {
        LifecycleType::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Who started the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// `originatingDirection` on the wire.
    pub fn wire(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        }
    }
}

/// Who hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DisconnectBy {
    Customer,
    Agent,
    System,
}

impl DisconnectBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectBy::Customer => "customer",
            DisconnectBy::Agent => "agent",
            DisconnectBy::System => "system",
        }
    }

    /// `lastUserDisconnectType`, seen from the agent (the "user"): the agent's side hung up = `Client`, the
    /// customer = `Peer`.
    pub fn wire(self) -> &'static str {
        match self {
            DisconnectBy::Customer => "Peer",
            DisconnectBy::Agent => "Client",
            DisconnectBy::System => "System",
        }
    }
}

/// A queue, agent or wrap-up code as an event names it: by id, by name, or both. The server resolves it to
/// an organisation record before the event is stored, so stored events carry record ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl RoutingRef {
    /// The wire reference, with `selfUri` under `prefix` (`/api/v2/routing/queues`).
    pub fn named_ref(&self, prefix: &str) -> NamedRef {
        let id = self.id.clone().or_else(|| self.name.clone()).unwrap_or_default();
        NamedRef { self_uri: Some(format!("{prefix}/{id}")), id, name: self.name.clone() }
    }
}

/// The customer's address: how the conversation finds its external contact (and web customer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// `platform:id`, e.g. `line:U123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_id: Option<String>,
    /// The tracker cookie id, when the chat came from a web offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_id: Option<CookieId>,
    /// An external contact the platform already verified the customer as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<ContactId>,
}

impl Address {
    /// Email, phone and messaging ids, for contact linking.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut v = Vec::new();
        if let Some(e) = &self.email {
            v.push(Identifier::Email(e.clone()));
        }
        if let Some(p) = &self.phone {
            v.push(Identifier::Phone(p.clone()));
        }
        if let Some(m) = &self.messaging_id {
            v.push(Identifier::Messaging(m.clone()));
        }
        v
    }

    /// The session's `customerId` and `customerIdType`.
    pub fn customer_id(&self) -> Option<(String, &'static str)> {
        if let Some(c) = &self.cookie_id {
            return Some((c.as_str().to_string(), "cookie"));
        }
        if let Some(p) = &self.phone {
            return Some((p.as_str().to_string(), "phone"));
        }
        if let Some(e) = &self.email {
            return Some((e.as_str().to_string(), "email"));
        }
        self.messaging_id.as_ref().map(|m| (m.clone(), "messaging"))
    }
}

/// One validated lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEvent {
    /// The sender's idempotency id: a retry with the same id is a duplicate.
    pub id: String,
    pub conversation_id: String,
    #[serde(rename = "type")]
    pub kind: LifecycleType,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<RoutingRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<RoutingRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_code: Option<RoutingRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_type: Option<DisconnectBy>,
}

impl ConversationEvent {
    fn order_key(&self) -> (Timestamp, LifecycleType, &str) {
        (self.at, self.kind, self.id.as_str())
    }
}

// ------------------------------------------------------------------------------------------------------------
// Wire input
// ------------------------------------------------------------------------------------------------------------

/// A lifecycle event as the contact-center platform sends it. Every field is optional here so that a missing
/// one gets a precise message from [`parse_conversation_event`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEventRequest {
    /// Idempotency id, unique per event.
    pub id: Option<String>,
    pub conversation_id: Option<String>,
    /// `started`, `queued`, `connected`, `transferred`, `botOnly`, `disconnected`, `wrapup`, `ended`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// ISO-8601 UTC.
    pub timestamp: Option<String>,
    pub channel: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    pub address: Option<RequestAddress>,
    pub subject: Option<String>,
    pub queue: Option<RequestRef>,
    pub agent: Option<RequestRef>,
    pub wrapup_code: Option<RequestRef>,
    pub notes: Option<String>,
    /// `customer`, `agent` or `system`.
    pub disconnect_type: Option<String>,
}

/// `address` on the wire: one or more of phone, email, messaging id (with its platform), tracker cookie id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAddress {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub messaging_id: Option<String>,
    /// `whatsapp`, `line`, `twitter`, `facebook`, `sms`, `webmessaging`, …
    pub platform: Option<String>,
    pub cookie_id: Option<String>,
    /// An external contact id (the contact the agent verified).
    pub contact_id: Option<String>,
}

/// `{id, name}` of a queue, agent or wrap-up code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// What became of one event of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedEvent {
    Accepted(Box<ConversationEvent>),
    /// A `started` event on a channel the journey does not show: the whole conversation is refused, and
    /// anything already stored for it is dropped.
    Refused {
        conversation_id: String,
        at: Timestamp,
        rejection: Rejection,
    },
    Rejected(Rejection),
}

/// A decoded request body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// The body was one event object (not an array or `{events: [...]}`).
    pub single: bool,
    pub events: Vec<DecodedEvent>,
}

/// How far back and forward event timestamps may lie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    pub now: Timestamp,
    /// Oldest accepted event, in seconds before `now` (the journey window: older data is purged anyway).
    pub max_age_secs: i64,
    pub max_skew_secs: i64,
}

/// Decode a request body: one event, an array of events, or `{ "events": [...] }`. Batch-level problems
/// (not JSON events, empty, too many) fail the whole request; each event's problems are its own.
pub fn decode_conversation_batch(
    body: Value,
    limits: &InputLimits,
    window: TimeWindow,
    default_region: Option<&str>,
) -> Result<DecodedBatch, Rejection> {
    let (single, raw) = match body {
        Value::Array(items) => (false, items),
        Value::Object(mut o) if o.get("events").is_some_and(Value::is_array) => match o.remove("events") {
            Some(Value::Array(items)) => (false, items),
            _ => (false, Vec::new()),
        },
        v @ Value::Object(_) => (true, vec![v]),
        _ => {
            return Err(Rejection::new(
                ErrorCode::MalformedJson,
                "send a conversation event object, an array of them, or {\"events\": [...]}",
            ));
        }
    };
    if raw.is_empty() {
        return Err(Rejection::new(ErrorCode::EmptyBatch, "the batch holds no events"));
    }
    if raw.len() > limits.max_events_per_batch {
        return Err(Rejection::new(
            ErrorCode::TooManyEvents,
            format!(
                "a batch holds at most {} events; this one has {}; split it",
                limits.max_events_per_batch,
                raw.len()
            ),
        ));
    }
    let events = raw
        .into_iter()
        .map(|v| match serde_path_to_error::deserialize::<_, ConversationEventRequest>(v) {
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." || path.is_empty() { None } else { Some(path) };
                let message = match &field {
                    Some(f) => format!("{f}: {}", e.inner()),
                    None => format!("the event is not a ConversationEventRequest object: {}", e.inner()),
                };
                DecodedEvent::Rejected(Rejection { code: ErrorCode::InvalidField, message, field })
            }
            Ok(req) => parse_conversation_event(req, limits, window, default_region),
        })
        .collect();
    Ok(DecodedBatch { single, events })
}

fn missing(field: &str, why: &str) -> Rejection {
    Rejection::at(ErrorCode::MissingField, field, format!("{field} is required {why}"))
}

fn invalid(field: &str, message: impl Into<String>) -> Rejection {
    Rejection::at(ErrorCode::InvalidField, field, message)
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// An id: 1–128 printable characters without spaces.
fn parse_id(field: &str, raw: Option<String>, why: &str) -> Result<String, Rejection> {
    let s = raw.ok_or_else(|| missing(field, why))?;
    let s = s.trim();
    if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, format!("{field} must be 1-128 characters without spaces, got {:?}", clip(s, 40))));
    }
    Ok(s.to_string())
}

fn parse_text(field: &str, raw: Option<String>, max: usize) -> Result<Option<String>, Rejection> {
    match raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > max || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            Err(invalid(field, format!("{field} must be at most {max} bytes of text")))
        }
        other => Ok(other),
    }
}

fn parse_ref(field: &str, raw: Option<RequestRef>) -> Result<Option<RoutingRef>, Rejection> {
    let Some(r) = raw else { return Ok(None) };
    let id = match r.id {
        Some(id) => Some(parse_id(&format!("{field}.id"), Some(id), "")?),
        None => None,
    };
    let name = parse_text(&format!("{field}.name"), r.name, 256)?;
    if id.is_none() && name.is_none() {
        return Err(missing(&format!("{field}.id"), &format!("(or {field}.name): say which one")));
    }
    Ok(Some(RoutingRef { id, name }))
}

fn parse_address(raw: RequestAddress, region: Option<&str>) -> Result<Address, Rejection> {
    let mut a = Address::default();
    if let Some(p) = raw.phone.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        a.phone = Some(Phone::parse(p, region).ok_or_else(|| {
            invalid(
                "address.phone",
                format!("address.phone {:?} is not a valid phone number; send E.164 (+4420…)", clip(p, 40)),
            )
        })?);
    }
    if let Some(e) = raw.email.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        a.email = Some(Email::parse(e).ok_or_else(|| {
            invalid("address.email", format!("address.email {:?} is not an email address", clip(e, 60)))
        })?);
    }
    if let Some(m) = raw.messaging_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let platform = raw.platform.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
            missing("address.platform", "with address.messagingId (whatsapp, line, twitter, facebook, …)")
        })?;
        let platform: String =
            platform.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
        if platform.is_empty() || platform.len() > 32 {
            return Err(invalid("address.platform", "address.platform must name the messaging platform, e.g. line"));
        }
        if m.len() > 128 || m.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("address.messagingId", "address.messagingId must be 1-128 characters without spaces"));
        }
        a.messaging_id = Some(format!("{platform}:{m}"));
    }
    if let Some(c) = raw.cookie_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        a.cookie_id = Some(CookieId::parse(c).map_err(|_| {
            invalid(
                "address.cookieId",
                "address.cookieId must be the tracker's customer cookie id (letters, digits, '-', '_', '.')",
            )
        })?);
    }
    if let Some(c) = raw.contact_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        a.contact_id = Some(ContactId::parse(c).ok_or_else(|| {
            invalid("address.contactId", "address.contactId must be an external contact id (a UUID)")
        })?);
    }
    if a == Address::default() {
        return Err(missing("address", "to hold a phone, email, messagingId, cookieId or contactId"));
    }
    Ok(a)
}

/// Validate one event. Never panics on input.
pub fn parse_conversation_event(
    req: ConversationEventRequest,
    limits: &InputLimits,
    window: TimeWindow,
    region: Option<&str>,
) -> DecodedEvent {
    match parse_inner(req, limits, window, region) {
        Ok(ev) => DecodedEvent::Accepted(Box::new(ev)),
        Err(e) => e,
    }
}

fn parse_inner(
    req: ConversationEventRequest,
    limits: &InputLimits,
    window: TimeWindow,
    region: Option<&str>,
) -> Result<ConversationEvent, DecodedEvent> {
    let reject = DecodedEvent::Rejected;
    let id = parse_id("id", req.id, "(a unique id per event makes retries safe)").map_err(reject)?;
    let conversation_id = parse_id("conversationId", req.conversation_id, "").map_err(reject)?;
    let kind_raw = req.kind.ok_or_else(|| reject(missing("type", "")))?;
    let kind = LifecycleType::parse(&kind_raw).ok_or_else(|| {
        reject(invalid(
            "type",
            format!(
                "type {:?} is not one of {}",
                clip(&kind_raw, 40),
                LifecycleType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ))
    })?;
    let ts_raw = req.timestamp.ok_or_else(|| reject(missing("timestamp", "")))?;
    let at = Timestamp::parse(&ts_raw).ok_or_else(|| {
        reject(Rejection::at(
            ErrorCode::InvalidDate,
            "timestamp",
            format!(
                "timestamp must be an ISO-8601 date-time such as 2026-11-24T10:00:00.000Z, got {:?}",
                clip(&ts_raw, 40)
            ),
        ))
    })?;
    if at < window.now.minus_secs(window.max_age_secs) {
        return Err(reject(Rejection::at(
            ErrorCode::EventTooOld,
            "timestamp",
            format!("event from {at} is older than the journey window of {} days", window.max_age_secs / 86_400),
        )));
    }
    if at > window.now.plus_secs(window.max_skew_secs) {
        return Err(reject(Rejection::at(
            ErrorCode::EventInFuture,
            "timestamp",
            format!(
                "event from {at} is more than {} seconds in the future; check the sender's clock",
                window.max_skew_secs
            ),
        )));
    }
    let channel = match req.channel.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None if kind == LifecycleType::Started => {
            return Err(reject(missing("channel", "on a started event")));
        }
        None => None,
        Some(raw) => match parse_channel(raw) {
            ChannelName::Shown(c) => Some(c),
            ChannelName::Excluded => {
                let rejection = Rejection::at(
                    ErrorCode::ChannelNotInJourney,
                    "channel",
                    format!(
                        "channel {:?} is not shown in the customer journey (not shown: knowledge/support center, \
                         agentless email notifications, campaigns including callbacks, co-browse, Instagram DM); \
                         nothing is stored for it",
                        clip(raw, 40)
                    ),
                );
                return Err(if kind == LifecycleType::Started {
                    DecodedEvent::Refused { conversation_id, at, rejection }
                } else {
                    reject(rejection)
                });
            }
            ChannelName::Unknown => {
                return Err(reject(invalid(
                    "channel",
                    format!(
                        "channel {:?} is unknown; use one of {}",
                        clip(raw, 40),
                        Channel::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )));
            }
        },
    };
    let direction = match req.direction.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(d) if d.eq_ignore_ascii_case("inbound") => Some(Direction::Inbound),
        Some(d) if d.eq_ignore_ascii_case("outbound") => Some(Direction::Outbound),
        Some(d) => {
            return Err(reject(invalid(
                "direction",
                format!("direction must be inbound or outbound, got {:?}", clip(d, 40)),
            )));
        }
    };
    if channel.is_some_and(Channel::is_agentless) && direction == Some(Direction::Inbound) {
        return Err(reject(invalid("direction", "agentless notifications are outbound")));
    }
    let address = match req.address {
        Some(a) => Some(parse_address(a, region).map_err(reject)?),
        None if kind == LifecycleType::Started => {
            return Err(reject(missing("address", "on a started event (phone, email, messagingId or cookieId)")));
        }
        None => None,
    };
    let subject = parse_text("subject", req.subject, limits.max_text_bytes).map_err(reject)?;
    let notes = parse_text("notes", req.notes, limits.max_text_bytes).map_err(reject)?;
    let queue = parse_ref("queue", req.queue).map_err(reject)?;
    let agent = parse_ref("agent", req.agent).map_err(reject)?;
    let wrapup_code = parse_ref("wrapupCode", req.wrapup_code).map_err(reject)?;
    let disconnect_type = match req.disconnect_type.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(d) => Some(match d.to_ascii_lowercase().as_str() {
            "customer" => DisconnectBy::Customer,
            "agent" => DisconnectBy::Agent,
            "system" => DisconnectBy::System,
            _ => {
                return Err(reject(invalid(
                    "disconnectType",
                    format!("disconnectType must be customer, agent or system, got {:?}", clip(d, 40)),
                )));
            }
        }),
    };
    let need = |ok: bool, field: &str, why: &str| if ok { Ok(()) } else { Err(reject(missing(field, why))) };
    match kind {
        LifecycleType::Queued => need(queue.is_some(), "queue", "on a queued event")?,
        LifecycleType::Connected => need(agent.is_some(), "agent", "on a connected event")?,
        LifecycleType::Transferred => {
            need(queue.is_some() || agent.is_some(), "queue", "(or agent) on a transferred event")?
        }
        LifecycleType::Disconnected => {
            need(disconnect_type.is_some(), "disconnectType", "on a disconnected event (customer, agent or system)")?
        }
        LifecycleType::Wrapup => need(wrapup_code.is_some(), "wrapupCode", "on a wrapup event")?,
        LifecycleType::Started | LifecycleType::BotOnly | LifecycleType::Ended => {}
    }
    Ok(ConversationEvent {
        id,
        conversation_id,
        kind,
        at,
        channel,
        direction,
        address,
        subject,
        queue,
        agent,
        wrapup_code,
        notes,
        disconnect_type,
    })
}

// ------------------------------------------------------------------------------------------------------------
// The fold
// ------------------------------------------------------------------------------------------------------------

/// The distinct lifecycle events of one conversation, in canonical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    pub events: Vec<ConversationEvent>,
}

/// The result of [`ConversationState::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Added,
    /// An event with this id is already held; nothing changed.
    Duplicate,
}

/// The conversation's state as the card shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationPhase {
    /// In queue (or not yet queued), waiting for an agent.
    Waiting,
    /// With an agent or a bot.
    Connected,
    /// A participant disconnected; the agent is wrapping up.
    Wrapup,
    EndedByCustomer,
    EndedByAgent,
    /// Ended by the system or without a disconnect reason.
    Ended,
    /// Ended before any agent connected.
    Abandoned,
}

impl ConversationPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationPhase::Waiting => "waiting",
            ConversationPhase::Connected => "connected",
            ConversationPhase::Wrapup => "wrapup",
            ConversationPhase::EndedByCustomer => "endedByCustomer",
            ConversationPhase::EndedByAgent => "endedByAgent",
            ConversationPhase::Ended => "ended",
            ConversationPhase::Abandoned => "abandoned",
        }
    }
}

impl ConversationState {
    pub fn contains(&self, id: &str) -> bool {
        self.events.iter().any(|e| e.id == id)
    }

    /// Add an event in its place. A known id is a duplicate; an event that makes the set impossible is
    /// refused (`invalid_transition`) and leaves the state unchanged.
    pub fn insert(&mut self, ev: ConversationEvent) -> Result<Inserted, Rejection> {
        if self.contains(&ev.id) {
            return Ok(Inserted::Duplicate);
        }
        if let Some(first) = self.events.first()
            && first.conversation_id != ev.conversation_id
        {
            return Err(Rejection::at(
                ErrorCode::InvalidField,
                "conversationId",
                "the event belongs to another conversation",
            ));
        }
        let pos = self.events.partition_point(|e| e.order_key() < ev.order_key());
        self.events.insert(pos, ev);
        if let Err(r) = check_transitions(&self.events, pos) {
            self.events.remove(pos);
            return Err(r);
        }
        Ok(Inserted::Added)
    }

    /// The conversation's session, by the canonical order alone. `None` before any event.
    pub fn fold(&self, session_id: &str) -> Option<Session> {
        let first = self.events.first()?;
        let started = self.events.iter().find(|e| e.kind == LifecycleType::Started);
        let ended = self.events.iter().find(|e| e.kind == LifecycleType::Ended);
        let created = started.map_or(first.at, |s| s.at);
        let mut s = Session::new(session_id.to_string(), SessionType::Conversation, created);
        s.conversation = Some(EntityRef::new(&first.conversation_id, "/api/v2/conversations"));
        s.external_id = Some(first.conversation_id.clone());

        let mut channels: Vec<Channel> = Vec::new();
        let mut direction: Option<Direction> = None;
        let mut phase = ConversationPhase::Waiting;
        let mut last_agent: Option<&RoutingRef> = None;
        let mut any_agent = false;
        let mut any_queue = false;
        let mut bot_only = false;
        let mut last_disconnect: Option<DisconnectBy> = None;
        for ev in &self.events {
            if let Some(c) = ev.channel
                && !channels.contains(&c)
            {
                channels.push(c);
            }
            if direction.is_none() || ev.kind == LifecycleType::Started {
                direction = ev.direction.or(direction);
            }
            if s.customer_id.is_none()
                && let Some((id, kind)) = ev.address.as_ref().and_then(Address::customer_id)
            {
                s.customer_id = Some(id);
                s.customer_id_type = Some(kind.to_string());
            }
            if let Some(sub) = &ev.subject {
                s.conversation_subject = Some(sub.clone());
            }
            match ev.kind {
                LifecycleType::Started | LifecycleType::Ended => {}
                LifecycleType::Queued => {
                    any_queue = true;
                    s.last_connected_queue = ev.queue.as_ref().map(|q| q.named_ref("/api/v2/routing/queues"));
                    phase = ConversationPhase::Waiting;
                }
                LifecycleType::Connected => {
                    any_agent = true;
                    last_agent = ev.agent.as_ref();
                    phase = ConversationPhase::Connected;
                }
                LifecycleType::Transferred => {
                    if let Some(q) = &ev.queue {
                        any_queue = true;
                        s.last_connected_queue = Some(q.named_ref("/api/v2/routing/queues"));
                        phase = ConversationPhase::Waiting;
                    }
                    if let Some(a) = &ev.agent {
                        any_agent = true;
                        last_agent = Some(a);
                        phase = ConversationPhase::Connected;
                    }
                }
                LifecycleType::BotOnly => {
                    bot_only = true;
                    phase = ConversationPhase::Connected;
                }
                LifecycleType::Disconnected => {
                    last_disconnect = ev.disconnect_type;
                    phase = ConversationPhase::Wrapup;
                }
                LifecycleType::Wrapup => {
                    if let Some(code) = &ev.wrapup_code {
                        let user = ev.agent.as_ref().or(last_agent).map(|a| {
                            let r = a.named_ref("/api/v2/users");
                            EntityRef { id: r.id, self_uri: r.self_uri }
                        });
                        s.last_user_disposition = Some(UserDisposition {
                            code: code.id.clone().or_else(|| code.name.clone()).unwrap_or_default(),
                            name: code.name.clone(),
                            notes: ev.notes.clone(),
                            user,
                        });
                    }
                    phase = ConversationPhase::Wrapup;
                }
            }
        }
        if direction.is_none() && channels.first().is_some_and(|c| c.is_agentless()) {
            direction = Some(Direction::Outbound);
        }
        let agentless = channels.first().is_some_and(|c| c.is_agentless());
        if let Some(end) = ended {
            s.ended_date = Some(end.at);
            phase = if !any_agent && !bot_only && !agentless {
                ConversationPhase::Abandoned
            } else {
                match last_disconnect {
                    Some(DisconnectBy::Customer) => ConversationPhase::EndedByCustomer,
                    Some(DisconnectBy::Agent) => ConversationPhase::EndedByAgent,
                    _ => ConversationPhase::Ended,
                }
            };
        }
        s.conversation_channels = channels.iter().map(|c| c.wire()).collect();
        s.originating_direction = direction.map(|d| d.wire().to_string());
        s.last_connected_user = last_agent.map(|a| a.named_ref("/api/v2/users"));
        s.last_user_disconnect_type = last_disconnect.map(|d| d.wire().to_string());
        s.last_acd_outcome = if any_agent {
            Some("Answered".into())
        } else if any_queue && ended.is_some() {
            Some("Abandon".into())
        } else {
            None
        };
        s.conversation_state = Some(phase.as_str().to_string());
        s.bot_only = bot_only;
        s.event_count = self.events.len() as i64;
        let last = self.events.last().unwrap_or(first);
        let last_at = self.events.iter().map(|e| e.at).max().unwrap_or(first.at);
        s.last_activity_date = Some(last_at);
        let end = ended.map_or(last_at, |e| e.at.max(created));
        s.duration_in_seconds = end.millis_since(created).max(0) / 1000;
        s.last_event = Some(crate::session::LastEvent {
            id: last.id.clone(),
            event_name: format!("conversation_{}", last.kind.as_str()),
            created_date: last.at,
        });
        Some(s)
    }
}

/// Check the rules that make a set of events one conversation, blaming the event at `new`. Every rule forbids
/// a combination of events, so a subset of a valid lifecycle is always valid.
fn check_transitions(events: &[ConversationEvent], new: usize) -> Result<(), Rejection> {
    let ev = &events[new];
    let conflict = |message: String| Rejection::at(ErrorCode::InvalidTransition, "type", message);
    let others = || events.iter().enumerate().filter(move |(i, _)| *i != new).map(|(_, e)| e);
    let first_of = |k: LifecycleType| others().find(|e| e.kind == k);
    match ev.kind {
        LifecycleType::Started | LifecycleType::Ended => {
            if let Some(o) = first_of(ev.kind) {
                return Err(conflict(format!(
                    "conversation {} already {} (event {}); it cannot be {} twice",
                    ev.conversation_id,
                    ev.kind.as_str(),
                    o.id,
                    ev.kind.as_str()
                )));
            }
        }
        _ => {}
    }
    let started = events.iter().find(|e| e.kind == LifecycleType::Started);
    if let Some(s) = started
        && let Some(early) = events.iter().find(|e| e.at < s.at)
    {
        return Err(conflict(format!(
            "event {} ({}) at {} is before the conversation started at {}",
            early.id,
            early.kind.as_str(),
            early.at,
            s.at
        )));
    }
    let ended = events.iter().find(|e| e.kind == LifecycleType::Ended);
    if let Some(end) = ended
        && let Some(late) = events.iter().find(|e| e.at > end.at && e.kind != LifecycleType::Wrapup)
    {
        return Err(conflict(format!(
            "event {} ({}) at {} is after the conversation ended at {}; only a wrap-up may follow the end",
            late.id,
            late.kind.as_str(),
            late.at,
            end.at
        )));
    }
    let bot = events.iter().any(|e| e.kind == LifecycleType::BotOnly);
    let agent = events.iter().find(|e| {
        e.kind == LifecycleType::Connected
            || e.kind == LifecycleType::Wrapup
            || (e.kind == LifecycleType::Transferred && e.agent.is_some())
    });
    if bot && let Some(a) = agent {
        return Err(conflict(format!(
            "a bot-only conversation has no agent, but event {} ({}) involves one",
            a.id,
            a.kind.as_str()
        )));
    }
    let agentless = events.iter().find_map(|e| e.channel).is_some_and(Channel::is_agentless);
    if agentless && let Some(a) = agent {
        return Err(conflict(format!(
            "an agentless notification has no agent, but event {} ({}) involves one",
            a.id,
            a.kind.as_str()
        )));
    }
    Ok(())
}

/// The timeline event for one lifecycle event of `session` (stored once, when the lifecycle event arrives).
pub fn journey_event(ev: &ConversationEvent, session: &Session, event_id: String) -> Event {
    let mut e = Event::envelope(event_id, ev.id.clone(), session, EventType::Conversation, ev.at);
    e.conversation_event = Some(Box::new(ConversationEventBody {
        kind: ev.kind.as_str().to_string(),
        channel: ev.channel.map(|c| c.as_str().to_string()),
        queue: ev.queue.as_ref().map(|q| q.named_ref("/api/v2/routing/queues")),
        user: ev.agent.as_ref().map(|a| a.named_ref("/api/v2/users")),
        wrapup_code: ev.wrapup_code.as_ref().map(|w| w.named_ref("/api/v2/routing/wrapupcodes")),
        disconnect_type: ev.disconnect_type.map(|d| d.as_str().to_string()),
    }));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + s * 1000)
    }

    fn window() -> TimeWindow {
        TimeWindow { now: t(10_000), max_age_secs: 60 * 86_400, max_skew_secs: 120 }
    }

    fn decode(v: Value) -> Vec<DecodedEvent> {
        decode_conversation_batch(v, &InputLimits::default(), window(), Some("US")).unwrap().events
    }

    fn one(v: Value) -> DecodedEvent {
        decode(v).pop().unwrap()
    }

    fn ev(id: &str, kind: LifecycleType, at: i64) -> ConversationEvent {
        ConversationEvent {
            id: id.into(),
            conversation_id: "conv-1".into(),
            kind,
            at: t(at),
            channel: None,
            direction: None,
            address: None,
            subject: None,
            queue: None,
            agent: None,
            wrapup_code: None,
            notes: None,
            disconnect_type: None,
        }
    }

    fn named(n: &str) -> Option<RoutingRef> {
        Some(RoutingRef { id: Some(format!("id-{n}")), name: Some(n.into()) })
    }

    fn started(at: i64, channel: Channel) -> ConversationEvent {
        let mut e = ev("s", LifecycleType::Started, at);
        e.channel = Some(channel);
        e.direction = Some(Direction::Inbound);
        e.address = Some(Address { phone: Phone::parse("+12025550143", None), ..Default::default() });
        e
    }

    #[test]
    fn channels_shown_excluded_and_unknown() {
        assert_eq!(Channel::ALL.len(), 11);
        for c in Channel::ALL {
            assert_eq!(parse_channel(c.as_str()), ChannelName::Shown(c));
        }
        assert_eq!(parse_channel("web_messaging"), ChannelName::Shown(Channel::WebMessaging));
        assert_eq!(parse_channel("WhatsApp"), ChannelName::Shown(Channel::WhatsApp));
        for x in EXCLUDED_CHANNELS.iter().chain(["co-browse", "Instagram DM", "callbacks"].iter()) {
            assert_eq!(parse_channel(x), ChannelName::Excluded, "{x}");
        }
        assert_eq!(parse_channel("pigeon"), ChannelName::Unknown);
    }

    #[test]
    fn a_started_event_decodes_with_normalised_address() {
        let d = one(json!({
            "id": "e1", "conversationId": "c1", "type": "started", "timestamp": t(0).to_iso(),
            "channel": "voice", "direction": "inbound", "address": {"phone": "(202) 555-0143"}, "subject": "Billing"
        }));
        let DecodedEvent::Accepted(e) = d else { panic!("{d:?}") };
        assert_eq!(e.address.unwrap().phone.unwrap().as_str(), "+12025550143");
        assert_eq!(e.channel, Some(Channel::Voice));
        assert_eq!(e.subject.as_deref(), Some("Billing"));
    }

    #[test]
    fn bad_events_get_precise_codes_and_fields() {
        let base = json!({"id": "e1", "conversationId": "c1", "type": "started", "timestamp": t(0).to_iso(),
                          "channel": "email", "address": {"email": "a@b.example"}});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let check = |v: Value, code: ErrorCode, field: &str| match one(v) {
            DecodedEvent::Rejected(r) => {
                assert_eq!((r.code, r.field.as_deref()), (code, Some(field)), "{}", r.message)
            }
            DecodedEvent::Refused { rejection, .. } => {
                assert_eq!((rejection.code, rejection.field.as_deref()), (code, Some(field)))
            }
            other => panic!("{other:?}"),
        };
        check(with("timestamp", json!(5)), ErrorCode::InvalidField, "timestamp");
        check(with("queue", json!({"name": 3})), ErrorCode::InvalidField, "queue.name");
        check(with("channel", json!("pigeon")), ErrorCode::InvalidField, "channel");
        check(with("channel", json!("cobrowse")), ErrorCode::ChannelNotInJourney, "channel");
        check(with("type", json!("exploded")), ErrorCode::InvalidField, "type");
        check(with("timestamp", json!("yesterday")), ErrorCode::InvalidDate, "timestamp");
        check(with("timestamp", json!(t(-61 * 86_400).to_iso())), ErrorCode::EventTooOld, "timestamp");
        check(with("timestamp", json!(t(20_000).to_iso())), ErrorCode::EventInFuture, "timestamp");
        check(with("address", json!({"phone": "12"})), ErrorCode::InvalidField, "address.phone");
        check(with("address", json!({})), ErrorCode::MissingField, "address");
        check(with("address", json!({"messagingId": "U1"})), ErrorCode::MissingField, "address.platform");
        check(with("direction", json!("sideways")), ErrorCode::InvalidField, "direction");
        check(with("address", json!({"contactId": "nope"})), ErrorCode::InvalidField, "address.contactId");
        let mut no_addr = base.clone();
        no_addr.as_object_mut().unwrap().remove("address");
        check(no_addr, ErrorCode::MissingField, "address");
        let mut queued = base.clone();
        queued["type"] = json!("queued");
        check(queued, ErrorCode::MissingField, "queue");
        let mut disc = base.clone();
        disc["type"] = json!("disconnected");
        check(disc, ErrorCode::MissingField, "disconnectType");
        // Excluded channel on a started event refuses the whole conversation.
        assert!(matches!(one(with("channel", json!("instagram"))), DecodedEvent::Refused { .. }));
    }

    #[test]
    fn batch_shapes() {
        let e = json!({"id": "e1", "conversationId": "c1", "type": "ended", "timestamp": t(0).to_iso()});
        let lim = InputLimits::default();
        assert!(decode_conversation_batch(e.clone(), &lim, window(), None).unwrap().single);
        assert_eq!(decode_conversation_batch(json!([e.clone(), 7]), &lim, window(), None).unwrap().events.len(), 2);
        assert!(!decode_conversation_batch(json!({"events": [e.clone()]}), &lim, window(), None).unwrap().single);
        assert_eq!(decode_conversation_batch(json!([]), &lim, window(), None).unwrap_err().code, ErrorCode::EmptyBatch);
        assert_eq!(
            decode_conversation_batch(json!("x"), &lim, window(), None).unwrap_err().code,
            ErrorCode::MalformedJson
        );
        let many = Value::Array(vec![e; 101]);
        assert_eq!(decode_conversation_batch(many, &lim, window(), None).unwrap_err().code, ErrorCode::TooManyEvents);
    }

    #[test]
    fn transfers_keep_the_last_queue_and_agent() {
        let mut st = ConversationState::default();
        let mut q1 = ev("q1", LifecycleType::Queued, 1);
        q1.queue = named("Sales");
        let mut c1 = ev("c1", LifecycleType::Connected, 2);
        c1.agent = named("Ann");
        let mut tr = ev("t1", LifecycleType::Transferred, 3);
        tr.queue = named("Billing");
        let mut c2 = ev("c2", LifecycleType::Connected, 4);
        c2.agent = named("Bob");
        let mut d = ev("d", LifecycleType::Disconnected, 5);
        d.disconnect_type = Some(DisconnectBy::Agent);
        let mut w = ev("w", LifecycleType::Wrapup, 7);
        w.wrapup_code = named("Resolved");
        for e in [started(0, Channel::Voice), q1, c1, tr, c2, d, ev("end", LifecycleType::Ended, 6), w] {
            assert_eq!(st.insert(e).unwrap(), Inserted::Added);
        }
        let s = st.fold("sess").unwrap();
        assert_eq!(s.last_connected_queue.unwrap().name.as_deref(), Some("Billing"));
        assert_eq!(s.last_connected_user.unwrap().name.as_deref(), Some("Bob"));
        let disp = s.last_user_disposition.unwrap();
        assert_eq!((disp.code.as_str(), disp.name.as_deref()), ("id-Resolved", Some("Resolved")));
        assert_eq!(disp.user.unwrap().id, "id-Bob");
        assert_eq!(s.conversation_state.as_deref(), Some("endedByAgent"));
        assert_eq!(s.last_user_disconnect_type.as_deref(), Some("Client"));
        assert_eq!(s.last_acd_outcome.as_deref(), Some("Answered"));
        assert_eq!(s.originating_direction.as_deref(), Some("Inbound"));
        assert_eq!(s.conversation_channels[0].channel_type, "Call");
        assert_eq!(s.ended_date, Some(t(6)));
        assert_eq!(s.duration_in_seconds, 6);
        assert_eq!(s.customer_id_type.as_deref(), Some("phone"));
    }

    #[test]
    fn ended_before_connected_is_abandoned_and_states_follow_the_lifecycle() {
        let mut st = ConversationState::default();
        st.insert(started(0, Channel::WebChat)).unwrap();
        assert_eq!(st.fold("s").unwrap().conversation_state.as_deref(), Some("waiting"));
        let mut q = ev("q", LifecycleType::Queued, 1);
        q.queue = named("Chat");
        st.insert(q).unwrap();
        st.insert(ev("e", LifecycleType::Ended, 30)).unwrap();
        let s = st.fold("s").unwrap();
        assert_eq!(s.conversation_state.as_deref(), Some("abandoned"));
        assert_eq!(s.last_acd_outcome.as_deref(), Some("Abandon"));
        // A duplicate changes nothing.
        assert_eq!(st.insert(ev("e", LifecycleType::Ended, 30)).unwrap(), Inserted::Duplicate);
        assert_eq!(st.events.len(), 3);
    }

    #[test]
    fn impossible_transitions_are_refused_and_leave_the_state_alone() {
        let mut st = ConversationState::default();
        st.insert(started(10, Channel::Voice)).unwrap();
        let before = st.clone();
        let mut s2 = started(20, Channel::Voice);
        s2.id = "s2".into();
        assert_eq!(st.insert(s2).unwrap_err().code, ErrorCode::InvalidTransition);
        assert_eq!(st.insert(ev("early", LifecycleType::Ended, 5)).unwrap_err().code, ErrorCode::InvalidTransition);
        st.insert(ev("bot", LifecycleType::BotOnly, 11)).unwrap();
        let mut c = ev("c", LifecycleType::Connected, 12);
        c.agent = named("Ann");
        assert_eq!(st.insert(c).unwrap_err().code, ErrorCode::InvalidTransition);
        st.insert(ev("end", LifecycleType::Ended, 13)).unwrap();
        let mut late = ev("late", LifecycleType::Queued, 14);
        late.queue = named("Q");
        assert_eq!(st.insert(late).unwrap_err().code, ErrorCode::InvalidTransition);
        assert_eq!(st.events.len(), before.events.len() + 2);
        let s = st.fold("x").unwrap();
        assert!(s.bot_only);
        assert_eq!(s.conversation_state.as_deref(), Some("ended"));
    }

    /// A valid lifecycle: started, optional bot or queue/agent path with transfers, disconnect, end, wrap-up.
    fn lifecycle(
        channel: usize,
        bot: bool,
        transfers: usize,
        abandon: bool,
        wrapup: bool,
        ties: bool,
    ) -> Vec<ConversationEvent> {
        let channel = Channel::ALL[channel % Channel::ALL.len()];
        let mut at = 0i64;
        let mut step = || {
            if !ties {
                at += 7;
            }
            at
        };
        let mut v = vec![started(0, channel)];
        let mut n = 0;
        let mut id = |p: &str| {
            n += 1;
            format!("{p}{n}")
        };
        let agentless = channel.is_agentless();
        if bot || agentless {
            if bot {
                v.push(ev(&id("b"), LifecycleType::BotOnly, step()));
            }
        } else {
            let mut q = ev(&id("q"), LifecycleType::Queued, step());
            q.queue = named("Q0");
            v.push(q);
            if !abandon {
                let mut c = ev(&id("c"), LifecycleType::Connected, step());
                c.agent = named("A0");
                v.push(c);
                for i in 0..transfers {
                    let mut tr = ev(&id("t"), LifecycleType::Transferred, step());
                    tr.queue = named(&format!("Q{}", i + 1));
                    v.push(tr);
                    let mut c = ev(&id("c"), LifecycleType::Connected, step());
                    c.agent = named(&format!("A{}", i + 1));
                    v.push(c);
                }
            }
        }
        let mut d = ev(&id("d"), LifecycleType::Disconnected, step());
        d.disconnect_type = Some(if abandon { DisconnectBy::Customer } else { DisconnectBy::Agent });
        v.push(d);
        let end_at = step();
        v.push(ev(&id("e"), LifecycleType::Ended, end_at));
        if wrapup && !bot && !abandon && !agentless {
            let mut w = ev(&id("w"), LifecycleType::Wrapup, end_at + 5);
            w.wrapup_code = named("Done");
            v.push(w);
        }
        v
    }

    proptest! {
        /// Any permutation of a lifecycle's events, with duplicates mixed in, gives the same session; every
        /// event is accepted whatever order it arrives in.
        #[test]
        fn any_arrival_order_gives_the_same_session(
            channel in 0usize..11, bot in any::<bool>(), transfers in 0usize..3, abandon in any::<bool>(),
            wrapup in any::<bool>(), ties in any::<bool>(), seed in any::<u64>(), dups in 0usize..4,
        ) {
            let events = lifecycle(channel, bot, transfers, abandon, wrapup, ties);
            let mut ordered = ConversationState::default();
            for e in &events { prop_assert_eq!(ordered.insert(e.clone()), Ok(Inserted::Added)); }
            let mut shuffled = events.clone();
            for i in 0..dups { shuffled.push(events[i % events.len()].clone()); }
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut st = ConversationState::default();
            for e in shuffled { prop_assert!(st.insert(e).is_ok()); }
            prop_assert_eq!(&st, &ordered);
            prop_assert_eq!(st.fold("s"), ordered.fold("s"));
        }
    }
}
