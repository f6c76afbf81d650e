//! Inputs and outputs of the [`crate::Store`] trait.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waymark_domain::action_map::ActionMap;
use waymark_domain::conversation::{ConversationEvent, ConversationState};
use waymark_domain::event::{Event, EventType};
use waymark_domain::identity::TraitIdentity;
use waymark_domain::ids::{ContactId, CustomerId, OrgId, SessionId};
use waymark_domain::journey::{Enrichment, SessionRules};
use waymark_domain::offer::{ActionState, OfferPolicy, OfferRecord};
use waymark_domain::rules::RuleSet;
use waymark_domain::session::Session;
use waymark_domain::web_event::{CookieId, WebEvent};
use waymark_domain::{Rejection, Timestamp};

/// The organisation's journey rules in force for a batch: sessionization, and its segments and outcomes
/// compiled once per configuration.
#[derive(Debug, Clone, Default)]
pub struct JourneyConfig {
    pub session: SessionRules,
    pub rules: Arc<RuleSet>,
    /// Active and inactive action maps of the organisation, evaluated by the offer engine.
    pub action_maps: Vec<ActionMap>,
    /// The organisation's offer frequency caps.
    pub offer_policy: OfferPolicy,
    /// How long (in event time) a customer's `clientEventId`s are remembered to recognise retries: the oldest
    /// accepted event age plus the accepted clock skew. `None`: [`DEFAULT_CLIENT_EVENT_WINDOW_SECS`].
    pub client_event_window_secs: Option<i64>,
}

/// The default retry-recognition window: one hour of accepted event age, plus clock skew, with margin.
pub const DEFAULT_CLIENT_EVENT_WINDOW_SECS: i64 = 2 * 3600;

/// A batch of journey inputs for one organisation.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub org: OrgId,
    pub config: Arc<JourneyConfig>,
    pub items: Vec<IngestItem>,
}

/// One journey input.
#[derive(Debug, Clone)]
pub enum IngestItem {
    /// A validated, enriched web event.
    Web(Box<WebItem>),
    /// A tracker ping: the visitor is still there (on `page_url`, when the tracker said).
    Ping {
        cookie: CookieId,
        at: Timestamp,
        page_url: Option<String>,
        /// The open session's live outcome quantiles (for outcome quantile triggers of action maps).
        scores: Vec<waymark_domain::offer::OutcomeScoreFact>,
    },
    /// The tracker reports a new state of an offer (`actionevent`).
    Action(Box<ActionItem>),
    /// A contact-center conversation lifecycle event, or the refusal of a whole conversation.
    Conversation(Box<ConversationItem>),
}

/// An offer state change reported by the tracker.
#[derive(Debug, Clone)]
pub struct ActionItem {
    pub session_id: SessionId,
    pub action_id: String,
    pub state: ActionState,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub at: Timestamp,
}

/// A recorded offer state change.
#[derive(Debug, Clone)]
pub struct ActionStored {
    /// The `WebActionEvent`; `None` when the offer already was in that state (a retry).
    pub event: Option<Event>,
    pub session: SessionRecord,
}

/// One conversation input.
#[derive(Debug, Clone)]
pub enum ConversationItem {
    /// A validated lifecycle event whose queue, agent and wrap-up code name organisation records.
    Event(Box<ConversationEvent>),
    /// A conversation on a channel the journey does not show: remember its id (tombstone) so that none of its
    /// events is ever stored, and drop whatever was stored for it before the refusal arrived.
    Refuse { conversation_id: String, at: Timestamp, rejection: Rejection },
}

/// What the store keeps per conversation: every distinct lifecycle event (so a late event re-folds the
/// session), the session it folds into, or the tombstone of a refused conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversation {
    pub conversation_id: String,
    pub session_id: Option<SessionId>,
    /// A tombstone: the conversation is on a channel the journey does not show.
    pub refused: bool,
    pub state: ConversationState,
    /// Latest event or refusal time (retention).
    pub updated: Timestamp,
}

impl StoredConversation {
    pub fn new(conversation_id: &str, at: Timestamp) -> Self {
        StoredConversation {
            conversation_id: conversation_id.to_string(),
            session_id: None,
            refused: false,
            state: ConversationState::default(),
            updated: at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebItem {
    pub event: WebEvent,
    pub enrichment: Enrichment,
    pub identity: TraitIdentity,
    /// The stored body's fields that come from the request alone, already encoded ([`WebItem::new`]).
    pub fields: Option<crate::ingest::RequestFields>,
}

impl WebItem {
    /// An item for `event`, its request-side fields encoded here (on the request's thread, not the writer's) in
    /// `form`, the one its store keeps ([`crate::Store::web_fields_form`]).
    pub fn new(event: WebEvent, enrichment: Enrichment, identity: TraitIdentity, form: WebFieldsForm) -> WebItem {
        let fields = crate::ingest::RequestFields::of(&event, form);
        WebItem { event, enrichment, identity, fields }
    }
}

/// The form in which a store wants a web event's request-side fields ([`crate::ingest::RequestFields`]): any
/// form is stored correctly, the store's own saves its writer the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebFieldsForm {
    #[default]
    Json,
    /// Compressed for packed rows ([`crate::packed_event`]).
    Packed,
}

/// What happened to one item. Sessions are boxed: the writer moves results by value, and an inline session
/// made every result a kilobyte to copy.
#[derive(Debug, Clone)]
pub enum ItemResult {
    /// Stored; with everything the hub and the models need.
    Web(Box<WebStored>),
    /// A retry of an event already stored (same `clientEventId`); nothing was written.
    Duplicate { session: Option<Box<SessionRecord>> },
    /// The ping touched this session (or none was open). `offers` are due for the tracker to show; `derived`
    /// are the offer decisions this ping made, already stored.
    Pinged { session: Option<Box<SessionRecord>>, offers: Vec<OfferRecord>, derived: Vec<Event> },
    /// An offer state change (`actionevent`).
    Action(Box<ActionStored>),
    /// Refused by a journey rule; the rest of the batch is unaffected.
    Rejected(Rejection),
    /// A conversation event stored and folded into its session.
    Conversation(Box<ConversationStored>),
}

#[derive(Debug, Clone)]
pub struct ConversationStored {
    /// The conversation's session after the event (`externalContact` filled).
    pub session: SessionRecord,
    /// The timeline event stored for the lifecycle event.
    pub event: Event,
    pub new_session: bool,
    /// Contacts merged into the session's contact by this event's address.
    pub merged: Vec<ContactId>,
}

#[derive(Debug, Clone)]
pub struct WebStored {
    pub customer_id: CustomerId,
    pub contact_id: Option<ContactId>,
    pub event: Event,
    /// The session as written: as the batch's last event of it left it, shared by that session's results in
    /// the batch, with the store's write buffer, and then with the live messages.
    pub session: Arc<SessionRecord>,
    /// The session's figures right after this event.
    pub counts: SessionCounts,
    pub closed: Option<Arc<SessionRecord>>,
    pub new_session: bool,
    /// Events derived from this one (segment assignments, outcome achievements), already stored.
    pub derived: Vec<Event>,
    /// Contacts merged into `contact_id` by this event's identity traits.
    pub merged: Vec<ContactId>,
    pub total_events: i64,
}

/// A session with the keys that locate it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub org: OrgId,
    pub customer_id: Option<CustomerId>,
    pub contact_id: Option<ContactId>,
    /// The wire session; `externalContact` is filled from `contact_id` when read.
    pub session: Session,
}

impl SessionRecord {
    /// The stand-in a web result holds until its batch's snapshot of the session replaces it
    /// ([`crate::ingest::apply_batch`]); one shared record, no allocation.
    pub(crate) fn pending() -> Arc<SessionRecord> {
        static PENDING: std::sync::LazyLock<Arc<SessionRecord>> = std::sync::LazyLock::new(|| {
            Arc::new(SessionRecord {
                org: OrgId(uuid::Uuid::nil()),
                customer_id: None,
                contact_id: None,
                session: Session::new(
                    String::new(),
                    waymark_domain::session::SessionType::Web,
                    Timestamp::from_unix_millis(0),
                ),
            })
        });
        PENDING.clone()
    }
}

/// A session's figures at one moment (a web event's answer in a batch gives them as of that event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounts {
    pub event_count: i64,
    pub pageview_count: i64,
    pub duration_in_seconds: i64,
    pub created_date: Timestamp,
}

impl SessionCounts {
    pub fn of(s: &Session) -> SessionCounts {
        SessionCounts {
            event_count: s.event_count,
            pageview_count: s.pageview_count.unwrap_or(0),
            duration_in_seconds: s.duration_in_seconds,
            created_date: s.created_date,
        }
    }
}

/// A customer (cookie-keyed visitor).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    pub org: OrgId,
    pub id: CustomerId,
    pub cookie_id: CookieId,
    pub contact_id: Option<ContactId>,
    pub created: Timestamp,
    pub total_events: i64,
}

/// An external contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: ContactId,
    pub org: OrgId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    /// Other identifiers (`line:U123`).
    #[serde(default)]
    pub messaging_ids: Vec<String>,
    #[serde(default)]
    pub cookie_ids: Vec<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// A contact search.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactQuery {
    pub text: String,
}

/// Cursor paging over a session's events (time order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// Exclusive: events strictly after (created, id).
    pub after: Option<(Timestamp, String)>,
    pub limit: usize,
    /// Empty = every type.
    pub types: Vec<EventType>,
}

/// A session row's JSON body exactly as stored (the wire `Session`; its `externalContact` is whatever was stored,
/// the contact column is the truth) with the keys that order it. See [`crate::JourneyReads`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSessionJson {
    pub contact_id: Option<ContactId>,
    pub created_ms: i64,
    pub id: String,
    pub body: String,
}

/// An event row's JSON body exactly as stored (the wire `Event`, web events without the session-wide context)
/// with its type and the keys that order it. See [`crate::JourneyReads`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEventJson {
    /// `Event.eventType` (the `type` column).
    pub event_type: String,
    pub created_ms: i64,
    pub id: String,
    pub body: String,
}

/// Cursor paging over sessions (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// Only sessions whose last activity is at or after this (the 60-day window).
    pub since: Timestamp,
    /// Exclusive: sessions strictly before (created, id) in newest-first order.
    pub before: Option<(Timestamp, String)>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PurgeReport {
    pub events: u64,
    pub sessions: u64,
    pub customers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    pub events: u64,
    pub sessions: u64,
    pub customers: u64,
    pub contacts: u64,
}

/// Changes another node committed, read back from the store for the live hub.
#[derive(Debug, Clone)]
pub struct RemoteChange {
    pub org: OrgId,
    pub items: Vec<RemoteItem>,
    /// The changes were not read back: nobody on this node watches the organisation (see
    /// [`crate::Store::watch_remote`]). Whoever keeps a replay of the organisation's changes must treat it
    /// as a gap.
    pub skipped: bool,
}

/// Whether this node has anyone watching an organisation's live changes; other nodes' changes to an
/// organisation nobody watches here are not read back.
pub type RemoteInterest = std::sync::Arc<dyn Fn(OrgId) -> bool + Send + Sync>;

#[derive(Debug, Clone)]
pub enum RemoteItem {
    /// A session's new state.
    Session(Box<SessionRecord>),
    /// A new event on a session.
    Event { record: Box<SessionRecord>, event: Box<Event> },
}

/// Permission to run a background job now (see [`crate::Store::job_lease`]). [`JobLease::release`] gives the
/// lock back at once; a lease dropped without it releases the lock when what backs it is dropped (for
/// PostgreSQL: when its connection is closed, which another node may see a moment later).
pub struct JobLease {
    release: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl JobLease {
    /// A lease that needs no lock (a store with one node).
    pub fn local() -> Self {
        JobLease { release: None }
    }

    /// A lease given back by running `release`, which owns whatever holds the lock.
    pub fn releasing(release: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        JobLease { release: Some(Box::pin(release)) }
    }

    /// Give the lease back now, so that the next run (on any node) can take it at once.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl std::fmt::Debug for JobLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.release.is_some() { "JobLease(held)" } else { "JobLease(local)" })
    }
}
