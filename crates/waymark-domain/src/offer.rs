//! The offer engine: which action map acts for a web session, now, and the life of each offer it makes.
//!
//! [`OfferEngine::decide`] runs on every web event and every ping of a session (inside the write transaction
//! that holds the customer's state). It finds the active action maps whose triggers are met, and either makes
//! one offer ([`ActionState::Qualified`], delivered to the tracker by the ping answer once due) or records
//! why each qualified map was **not** offered ([`BlockReason`]). Caps, per session: at most one web offer
//! per `web_offer_interval_secs` (10 s), no new chat offer after a rejection or after a conversation with an
//! agent, a minimum wait between chat offers, one open offer at a time — each map may skip the frequency caps
//! with `ignoreFrequencyCap`. A map makes at most one offer per session.
//!
//! [`SessionOffers::report`] applies the state changes the tracker reports (offered, accepted, rejected, …),
//! refusing impossible transitions.

use crate::action_map::{ActionMap, ActionMapAction, ActivationType, MediaType};
use crate::event::{ActionEventActionMap, EventAction, WebActionEventBody, WebEventBody};
use crate::{ErrorCode, Rejection, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `EventAction.state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionState {
    Qualified,
    Offered,
    Started,
    Engaged,
    Accepted,
    Rejected,
    Timedout,
    Ignored,
    Errored,
    QualifiedOutsideSchedule,
    OfferedOutsideSchedule,
    Abandoned,
    Completed,
    FrequencyCapReached,
}

impl ActionState {
    pub const ALL: [ActionState; 14] = [
        ActionState::Qualified,
        ActionState::Offered,
        ActionState::Started,
        ActionState::Engaged,
        ActionState::Accepted,
        ActionState::Rejected,
        ActionState::Timedout,
        ActionState::Ignored,
        ActionState::Errored,
        ActionState::QualifiedOutsideSchedule,
        ActionState::OfferedOutsideSchedule,
        ActionState::Abandoned,
        ActionState::Completed,
        ActionState::FrequencyCapReached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Qualified => "qualified",
            ActionState::Offered => "offered",
            ActionState::Started => "started",
            ActionState::Engaged => "engaged",
            ActionState::Accepted => "accepted",
            ActionState::Rejected => "rejected",
            ActionState::Timedout => "timedout",
            ActionState::Ignored => "ignored",
            ActionState::Errored => "errored",
            ActionState::QualifiedOutsideSchedule => "qualifiedOutsideSchedule",
            ActionState::OfferedOutsideSchedule => "offeredOutsideSchedule",
            ActionState::Abandoned => "abandoned",
            ActionState::Completed => "completed",
            ActionState::FrequencyCapReached => "frequencyCapReached",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// An offer in this state still occupies the visitor (no other offer may start).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ActionState::Qualified
                | ActionState::Offered
                | ActionState::OfferedOutsideSchedule
                | ActionState::Accepted
                | ActionState::Started
                | ActionState::Engaged
        )
    }

    /// The states the tracker may move an offer to from this one.
    fn next(self) -> &'static [ActionState] {
        use ActionState::*;
        match self {
            Qualified => &[Offered, OfferedOutsideSchedule, Errored, Ignored, Timedout, Abandoned],
            Offered | OfferedOutsideSchedule => {
                &[Accepted, Rejected, Timedout, Ignored, Errored, Abandoned, Started, Engaged, Completed]
            }
            Accepted => &[Started, Engaged, Completed, Abandoned, Errored],
            Started | Engaged => &[Engaged, Completed, Abandoned, Errored],
            _ => &[],
        }
    }
}

/// Why a qualified action map was not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BlockReason {
    /// The page does not satisfy the map's `pageUrlConditions`.
    PageUrlCondition,
    /// A frequency cap (10 s between web offers, no chat after a rejection or an agent conversation, minimum
    /// wait between chats).
    FrequencyCap,
    /// Another offer is still open for this visitor.
    ExistingOffer,
    /// A higher-priority map qualified at the same time and was chosen.
    HigherPriorityOffer,
    /// Outside `startDate`/`endDate` or the weekly schedule.
    OutsideSchedule,
    /// The map activates on the visitor's next session.
    FutureOffer,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::PageUrlCondition => "pageUrlCondition",
            BlockReason::FrequencyCap => "frequencyCap",
            BlockReason::ExistingOffer => "existingOffer",
            BlockReason::HigherPriorityOffer => "higherPriorityOffer",
            BlockReason::OutsideSchedule => "outsideSchedule",
            BlockReason::FutureOffer => "futureOffer",
        }
    }
}

/// The organisation's frequency caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct OfferPolicy {
    /// At most one web offer per this many seconds per session.
    pub web_offer_interval_secs: i64,
    /// No new chat offer in a session after the visitor rejected one.
    pub no_chat_after_rejection: bool,
    /// No new chat offer in a session after a conversation with an agent.
    pub no_chat_after_agent_conversation: bool,
    /// Minimum seconds between two chat offers in a session (0 = none).
    pub chat_min_wait_secs: i64,
}

impl Default for OfferPolicy {
    fn default() -> Self {
        OfferPolicy {
            web_offer_interval_secs: 10,
            no_chat_after_rejection: true,
            no_chat_after_agent_conversation: true,
            chat_min_wait_secs: 0,
        }
    }
}

/// One offer made in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferRecord {
    pub id: String,
    pub map_id: String,
    pub map_version: i64,
    pub map_name: String,
    pub action: ActionMapAction,
    pub state: ActionState,
    pub qualified_at: Timestamp,
    /// When the tracker may show it (activation delay).
    pub due_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_at: Option<Timestamp>,
}

/// The engine's memory for one web session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOffers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<OfferRecord>,
    /// Event conditions met so far in this session: `<map id>/<condition index>`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub satisfied: BTreeSet<String>,
    /// Blocks already recorded: `<map id>/<reason>` (each is reported once per session).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub blocked: BTreeSet<String>,
    /// Maps carried over from the previous session (`on-next-session` activation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_web_offer_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_chat_offer_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chat_rejected: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_conversation: bool,
}

impl SessionOffers {
    pub fn is_empty(&self) -> bool {
        *self == SessionOffers::default()
    }

    /// Offers the tracker should show now: qualified, due, not yet reported as shown.
    pub fn deliverable(&self, now: Timestamp) -> impl Iterator<Item = &OfferRecord> {
        self.offers.iter().filter(move |o| o.state == ActionState::Qualified && o.due_at <= now)
    }

    fn has_open_offer(&self) -> bool {
        self.offers.iter().any(|o| o.state.is_open())
    }

    /// Apply a state the tracker reports for offer `id` at `at`.
    pub fn report(&mut self, id: &str, state: ActionState, at: Timestamp) -> Result<Reported, Rejection> {
        let Some(o) = self.offers.iter_mut().find(|o| o.id == id) else {
            return Err(Rejection::at(
                ErrorCode::NotFound,
                "actionId",
                "no such action in this session; use the id and sessionId the ping returned",
            ));
        };
        let previous = o.state;
        if previous == state {
            return Ok(Reported { offer: o.clone(), previous, changed: false, time_to_disposition: None });
        }
        if !previous.next().contains(&state) {
            return Err(Rejection::at(
                ErrorCode::InvalidTransition,
                "actionState",
                format!("an action that is {} cannot become {}", previous.as_str(), state.as_str()),
            ));
        }
        o.state = state;
        if matches!(state, ActionState::Offered | ActionState::OfferedOutsideSchedule) {
            o.offered_at = Some(at);
        }
        let time_to_disposition = match state {
            ActionState::Offered | ActionState::OfferedOutsideSchedule => None,
            _ => o.offered_at.map(|t| at.millis_since(t).max(0)),
        };
        let offer = o.clone();
        if offer.action.media_type.is_chat() {
            match state {
                ActionState::Rejected => self.chat_rejected = true,
                // An accepted chat starts a conversation with an agent.
                ActionState::Accepted | ActionState::Engaged | ActionState::Started => self.agent_conversation = true,
                _ => {}
            }
        }
        Ok(Reported { offer, previous, changed: true, time_to_disposition })
    }
}

/// What [`SessionOffers::report`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub offer: OfferRecord,
    pub previous: ActionState,
    /// False when the offer already was in that state (a retried report): nothing to record.
    pub changed: bool,
    pub time_to_disposition: Option<i64>,
}

/// The engine's memory for one customer across sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerOffers {
    /// Maps that qualified with `on-next-session` activation, waiting for the next session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_session: Vec<String>,
}

impl CustomerOffers {
    pub fn is_empty(&self) -> bool {
        self.next_session.is_empty()
    }
}

/// An outcome score of the session, for outcome quantile triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeScoreFact {
    pub outcome_id: String,
    pub quantile: f64,
    pub session_max_quantile: f64,
}

/// What the engine knows about the moment it runs.
#[derive(Debug, Clone)]
pub struct OfferContext<'a> {
    pub now: Timestamp,
    pub session_id: &'a str,
    /// The page the visitor is on.
    pub page_url: Option<&'a str>,
    /// The web event that triggered this run (none on a ping).
    pub event: Option<&'a WebEventBody>,
    /// Segment ids assigned to the session or customer.
    pub segments: &'a [String],
    pub outcome_scores: &'a [OutcomeScoreFact],
}

/// One decision: an offer made, or a qualified map not offered and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    pub action_id: String,
    pub map_id: String,
    pub map_version: i64,
    pub map_name: String,
    pub media_type: MediaType,
    pub prompt: String,
    pub state: ActionState,
    pub blocked: Option<BlockReason>,
    pub at: Timestamp,
}

impl ActionOutcome {
    /// The `WebActionEvent` body recording this decision.
    pub fn event_body(&self) -> WebActionEventBody {
        action_event_body(
            &self.action_id,
            self.state,
            self.media_type,
            &self.prompt,
            self.at,
            (&self.map_id, self.map_version, &self.map_name),
            None,
            self.blocked,
        )
    }
}

/// A `WebActionEvent` body.
#[allow(clippy::too_many_arguments)]
pub fn action_event_body(
    action_id: &str,
    state: ActionState,
    media_type: MediaType,
    prompt: &str,
    created: Timestamp,
    map: (&str, i64, &str),
    time_to_disposition: Option<i64>,
    blocked: Option<BlockReason>,
) -> WebActionEventBody {
    WebActionEventBody {
        action: EventAction {
            id: action_id.to_string(),
            state: state.as_str().to_string(),
            media_type: media_type.as_str().to_string(),
            prompt: prompt.to_string(),
            created_date: created,
        },
        action_map: ActionEventActionMap {
            id: map.0.to_string(),
            self_uri: Some(format!("/api/v2/journey/actionmaps/{}", map.0)),
            version: map.1,
            display_name: map.2.to_string(),
        },
        time_to_disposition,
        error_code: None,
        error_message: None,
        blocked_reason: blocked.map(|b| b.as_str().to_string()),
        user_agent_string: None,
        browser: None,
        device: None,
    }
}

/// The action maps of an organisation and its caps.
#[derive(Debug, Clone, Copy)]
pub struct OfferEngine<'a> {
    pub maps: &'a [ActionMap],
    pub policy: &'a OfferPolicy,
}

/// A cheap, stable hash (FNV-1a) to break ties between equal-priority maps per session.
fn tie_break(session: &str, map: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session.bytes().chain([0u8]).chain(map.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl OfferEngine<'_> {
    /// Whether `map`'s triggers are met (every kind it lists: any segment, all event conditions, all quantile
    /// conditions).
    fn triggered(&self, map: &ActionMap, session: &SessionOffers, ctx: &OfferContext<'_>) -> bool {
        let segments =
            map.trigger_with_segments.is_empty() || map.trigger_with_segments.iter().any(|s| ctx.segments.contains(s));
        let events = (0..map.trigger_with_event_conditions.len())
            .all(|i| session.satisfied.contains(&format!("{}/{i}", map.id)));
        let outcomes = map.trigger_with_outcome_quantile_conditions.iter().all(|c| {
            ctx.outcome_scores.iter().any(|s| {
                s.outcome_id == c.outcome_id
                    && s.session_max_quantile > c.max_quantile_threshold
                    && c.fallback_quantile_threshold.is_none_or(|f| s.quantile < f)
            })
        });
        segments && events && outcomes
    }

    /// Evaluate the maps for a session at `ctx.now`; updates the session's and customer's offer memory and
    /// returns the decisions to record as `WebActionEvent`s. `new_id` yields fresh action ids.
    pub fn decide(
        &self,
        session: &mut SessionOffers,
        customer: &mut CustomerOffers,
        ctx: &OfferContext<'_>,
        mut new_id: impl FnMut() -> String,
    ) -> Vec<ActionOutcome> {
        let now = ctx.now;
        if let Some(ev) = ctx.event {
            for m in self.maps.iter().filter(|m| m.is_active) {
                for (i, c) in m.trigger_with_event_conditions.iter().enumerate() {
                    if c.matches(ev) {
                        session.satisfied.insert(format!("{}/{i}", m.id));
                    }
                }
            }
        }
        // Maps waiting for a new session join this one (the caller gives each session a fresh memory).
        if session.carried.is_empty() && session.offers.is_empty() && !customer.next_session.is_empty() {
            session.carried = std::mem::take(&mut customer.next_session);
        }

        let mut out = Vec::new();
        let mut block =
            |session: &mut SessionOffers, m: &ActionMap, reason: BlockReason, out: &mut Vec<ActionOutcome>| {
                if session.blocked.insert(format!("{}/{}", m.id, reason.as_str())) {
                    let state = match reason {
                        BlockReason::FrequencyCap => ActionState::FrequencyCapReached,
                        BlockReason::OutsideSchedule => ActionState::QualifiedOutsideSchedule,
                        _ => ActionState::Qualified,
                    };
                    out.push(ActionOutcome {
                        action_id: new_id(),
                        map_id: m.id.clone(),
                        map_version: m.version,
                        map_name: m.display_name.clone(),
                        media_type: m.action.media_type,
                        prompt: m.action.prompt(),
                        state,
                        blocked: Some(reason),
                        at: now,
                    });
                }
            };

        let mut candidates: Vec<&ActionMap> = Vec::new();
        for m in self.maps.iter().filter(|m| m.is_active) {
            if session.offers.iter().any(|o| o.map_id == m.id) {
                continue;
            }
            let carried = session.carried.contains(&m.id);
            if !carried && !self.triggered(m, session, ctx) {
                continue;
            }
            if !m.in_schedule(now) {
                block(session, m, BlockReason::OutsideSchedule, &mut out);
                continue;
            }
            if !carried && m.activation.activation_type == ActivationType::OnNextSession {
                if !customer.next_session.contains(&m.id) {
                    customer.next_session.push(m.id.clone());
                }
                block(session, m, BlockReason::FutureOffer, &mut out);
                continue;
            }
            if !m.page_allows(ctx.page_url) {
                block(session, m, BlockReason::PageUrlCondition, &mut out);
                continue;
            }
            candidates.push(m);
        }
        if candidates.is_empty() {
            return out;
        }
        if session.has_open_offer() {
            for m in candidates {
                block(session, m, BlockReason::ExistingOffer, &mut out);
            }
            return out;
        }
        candidates.sort_by(|a, b| {
            b.weight
                .cmp(&a.weight)
                .then_with(|| tie_break(ctx.session_id, &a.id).cmp(&tie_break(ctx.session_id, &b.id)))
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut chosen = None;
        for m in candidates {
            if !m.ignore_frequency_cap && self.capped(session, m, now) {
                block(session, m, BlockReason::FrequencyCap, &mut out);
            } else if chosen.is_some() {
                block(session, m, BlockReason::HigherPriorityOffer, &mut out);
            } else {
                chosen = Some(m);
            }
        }
        if let Some(m) = chosen {
            let id = new_id();
            let due_at = now.plus_millis(m.activation.delay_ms());
            session.offers.push(OfferRecord {
                id: id.clone(),
                map_id: m.id.clone(),
                map_version: m.version,
                map_name: m.display_name.clone(),
                action: m.action.clone(),
                state: ActionState::Qualified,
                qualified_at: now,
                due_at,
                offered_at: None,
            });
            session.last_web_offer_at = Some(session.last_web_offer_at.map_or(due_at, |t| t.max(due_at)));
            if m.action.media_type.is_chat() {
                session.last_chat_offer_at = Some(due_at);
            }
            out.push(ActionOutcome {
                action_id: id,
                map_id: m.id.clone(),
                map_version: m.version,
                map_name: m.display_name.clone(),
                media_type: m.action.media_type,
                prompt: m.action.prompt(),
                state: ActionState::Qualified,
                blocked: None,
                at: now,
            });
        }
        out
    }

    /// Whether a frequency cap forbids offering `m` now.
    fn capped(&self, session: &SessionOffers, m: &ActionMap, now: Timestamp) -> bool {
        let p = self.policy;
        let due = now.plus_millis(m.activation.delay_ms());
        if let Some(last) = session.last_web_offer_at
            && due.millis_since(last).abs() < p.web_offer_interval_secs * 1000
        {
            return true;
        }
        if m.action.media_type.is_chat() {
            if p.no_chat_after_rejection && session.chat_rejected {
                return true;
            }
            if p.no_chat_after_agent_conversation && session.agent_conversation {
                return true;
            }
            if let Some(last) = session.last_chat_offer_at
                && p.chat_min_wait_secs > 0
                && due.millis_since(last).abs() < p.chat_min_wait_secs * 1000
            {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_map::{ActionMapMeta, ActionMapRequest, parse_action_map};
    use crate::wire::Page;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::Arc;

    const T0: i64 = 1_800_000_000_000;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(T0 + ms)
    }

    fn map(id: &str, v: serde_json::Value) -> ActionMap {
        let req: ActionMapRequest = serde_json::from_value(v).unwrap();
        parse_action_map(req, ActionMapMeta { id: id.into(), version: 1, created: t(0), modified: t(0) }).unwrap()
    }

    fn seg_map(id: &str, segment: &str, media: &str, weight: i64) -> ActionMap {
        let action = if media == "contentOffer" {
            json!({"mediaType": "contentOffer", "contentOffer": {"title": "Sale", "displayMode": "Overlay", "layoutMode": "TextOnly"}})
        } else {
            json!({"mediaType": media, "webMessagingOfferFields": {"offerText": "Chat?"}})
        };
        map(id, json!({"displayName": id, "triggerWithSegments": [segment], "weight": weight, "action": action}))
    }

    fn web_event(name: &str, url: &str) -> WebEventBody {
        let u = url::Url::parse(url).unwrap();
        WebEventBody {
            event_name: name.into(),
            total_event_count: 1,
            total_pageview_count: 1,
            page: Arc::new(Page {
                url: url.into(),
                title: "T".into(),
                domain: u.host_str().unwrap_or("").into(),
                fragment: None,
                hostname: u.host_str().unwrap_or("").into(),
                keywords: None,
                lang: None,
                pathname: u.path().into(),
                query_string: u.query().map(str::to_string),
                breadcrumb: Vec::new(),
            }),
            user_agent_string: None,
            browser: None,
            device: None,
            geolocation: None,
            ip_address: None,
            ip_organization: None,
            mkt_campaign: None,
            referrer: None,
            attributes: Default::default(),
            traits: Default::default(),
            search_query: None,
            authenticated: false,
        }
    }

    struct Run {
        maps: Vec<ActionMap>,
        policy: OfferPolicy,
        session: SessionOffers,
        customer: CustomerOffers,
        n: u32,
    }

    impl Run {
        fn new(maps: Vec<ActionMap>) -> Run {
            Run {
                maps,
                policy: OfferPolicy::default(),
                session: SessionOffers::default(),
                customer: CustomerOffers::default(),
                n: 0,
            }
        }

        fn at(&mut self, ms: i64, url: &str, ev: Option<&WebEventBody>, segments: &[&str]) -> Vec<ActionOutcome> {
            let segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            let ctx = OfferContext {
                now: t(ms),
                session_id: "s1",
                page_url: Some(url),
                event: ev,
                segments: &segments,
                outcome_scores: &[],
            };
            let engine = OfferEngine { maps: &self.maps, policy: &self.policy };
            let n = &mut self.n;
            engine.decide(&mut self.session, &mut self.customer, &ctx, || {
                *n += 1;
                format!("a{n}")
            })
        }
    }

    #[test]
    fn a_segment_trigger_offers_once_and_the_ping_delivers_it() {
        let mut r = Run::new(vec![seg_map("m", "vip", "webchat", 2)]);
        assert!(r.at(0, "https://s.example/", None, &[]).is_empty());
        let out = r.at(1000, "https://s.example/", None, &["vip"]);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].state, out[0].blocked), (ActionState::Qualified, None));
        assert_eq!(r.session.deliverable(t(1000)).count(), 1);
        assert!(r.at(2000, "https://s.example/", None, &["vip"]).is_empty(), "a map offers once per session");
    }

    #[test]
    fn event_conditions_url_conditions_and_delay() {
        let m = map(
            "m",
            json!({"displayName": "checkout help",
                "triggerWithEventConditions": [{"key": "page.pathname", "values": ["/checkout"], "operator": "startsWith",
                    "streamType": "Web", "sessionType": "web", "eventName": "page_viewed"}],
                "pageUrlConditions": [{"values": ["/checkout/pay"], "operator": "containsAny"}],
                "activation": {"type": "delay", "delayInSeconds": 5},
                "action": {"mediaType": "webMessagingOffer", "webMessagingOfferFields": {"offerText": "Help?"}}}),
        );
        let mut r = Run::new(vec![m]);
        let home = web_event("page_viewed", "https://s.example/home");
        assert!(r.at(0, &home.page.url.clone(), Some(&home), &[]).is_empty());
        let cart = web_event("page_viewed", "https://s.example/checkout/cart");
        let out = r.at(1000, &cart.page.url.clone(), Some(&cart), &[]);
        assert_eq!(out[0].blocked, Some(BlockReason::PageUrlCondition));
        // The same block is not recorded twice.
        assert!(r.at(1500, "https://s.example/checkout/cart", None, &[]).is_empty());
        // The condition stays met for the session; on the right page the offer is made, due 5 s later.
        let out = r.at(2000, "https://s.example/checkout/pay", None, &[]);
        assert_eq!((out[0].state, out[0].blocked), (ActionState::Qualified, None));
        assert_eq!(r.session.deliverable(t(6999)).count(), 0);
        assert_eq!(r.session.deliverable(t(7000)).count(), 1);
    }

    #[test]
    fn higher_priority_wins_and_the_others_say_why() {
        let mut r = Run::new(vec![seg_map("low", "vip", "contentOffer", 1), seg_map("high", "vip", "webchat", 3)]);
        let out = r.at(0, "https://s.example/", None, &["vip"]);
        let offered: Vec<_> = out.iter().filter(|o| o.blocked.is_none()).collect();
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].map_id, "high");
        let low = out.iter().find(|o| o.map_id == "low").unwrap();
        assert_eq!(low.blocked, Some(BlockReason::HigherPriorityOffer));
    }

    #[test]
    fn caps_existing_offer_rejection_and_ten_seconds() {
        let mut r = Run::new(vec![
            seg_map("chat1", "a", "webchat", 2),
            seg_map("chat2", "b", "webchat", 2),
            seg_map("content", "c", "contentOffer", 2),
        ]);
        let out = r.at(0, "https://s.example/", None, &["a"]);
        let id = out[0].action_id.clone();
        // While chat1 is open, chat2 is blocked as an existing offer.
        let out = r.at(1000, "https://s.example/", None, &["a", "b"]);
        assert_eq!(out[0].blocked, Some(BlockReason::ExistingOffer));
        r.session.report(&id, ActionState::Offered, t(1000)).unwrap();
        let rep = r.session.report(&id, ActionState::Rejected, t(3000)).unwrap();
        assert_eq!(rep.time_to_disposition, Some(2000));
        // Rejected: no new chat, and the content offer waits for the 10 s window.
        let out = r.at(4000, "https://s.example/", None, &["a", "b", "c"]);
        let by = |m: &str| out.iter().find(|o| o.map_id == m).map(|o| (o.state, o.blocked));
        assert_eq!(by("chat2"), Some((ActionState::FrequencyCapReached, Some(BlockReason::FrequencyCap))));
        assert_eq!(by("content"), Some((ActionState::FrequencyCapReached, Some(BlockReason::FrequencyCap))));
        let out = r.at(10_000, "https://s.example/", None, &["a", "b", "c"]);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].map_id.as_str(), out[0].blocked), ("content", None));
    }

    #[test]
    fn ignore_frequency_cap_overrides_the_caps_but_not_an_open_offer() {
        let mut chat2 = seg_map("chat2", "b", "webchat", 2);
        chat2.ignore_frequency_cap = true;
        let mut r = Run::new(vec![seg_map("chat1", "a", "webchat", 2), chat2]);
        let id = r.at(0, "https://s.example/", None, &["a"])[0].action_id.clone();
        r.session.report(&id, ActionState::Offered, t(100)).unwrap();
        r.session.report(&id, ActionState::Rejected, t(200)).unwrap();
        let out = r.at(300, "https://s.example/", None, &["b"]);
        assert_eq!((out[0].map_id.as_str(), out[0].blocked), ("chat2", None));
    }

    #[test]
    fn next_session_activation_waits_for_the_next_session() {
        let mut m = seg_map("later", "vip", "contentOffer", 2);
        m.activation.activation_type = ActivationType::OnNextSession;
        let mut r = Run::new(vec![m]);
        let out = r.at(0, "https://s.example/", None, &["vip"]);
        assert_eq!(out[0].blocked, Some(BlockReason::FutureOffer));
        assert_eq!(r.customer.next_session, vec!["later".to_string()]);
        // A new session: fresh memory; the map is offered without its trigger.
        r.session = SessionOffers::default();
        let out = r.at(60_000, "https://s.example/", None, &[]);
        assert_eq!((out[0].state, out[0].blocked), (ActionState::Qualified, None));
        assert!(r.customer.next_session.is_empty());
    }

    #[test]
    fn schedule_blocks_outside_dates() {
        let mut m = seg_map("m", "vip", "webchat", 2);
        m.start_date = Some(t(10_000));
        let mut r = Run::new(vec![m]);
        let out = r.at(0, "https://s.example/", None, &["vip"]);
        assert_eq!(
            (out[0].state, out[0].blocked),
            (ActionState::QualifiedOutsideSchedule, Some(BlockReason::OutsideSchedule))
        );
        let out = r.at(10_000, "https://s.example/", None, &["vip"]);
        assert_eq!(out[0].blocked, None);
    }

    #[test]
    fn transitions_are_checked_and_retries_are_idempotent() {
        let mut r = Run::new(vec![seg_map("m", "vip", "contentOffer", 2)]);
        let id = r.at(0, "https://s.example/", None, &["vip"])[0].action_id.clone();
        let e = r.session.report(&id, ActionState::Accepted, t(1)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTransition);
        assert!(r.session.report(&id, ActionState::Offered, t(1)).unwrap().changed);
        assert!(!r.session.report(&id, ActionState::Offered, t(2)).unwrap().changed);
        assert!(r.session.report(&id, ActionState::Accepted, t(3)).unwrap().changed);
        assert_eq!(r.session.report("nope", ActionState::Offered, t(4)).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(ActionState::parse("frequencyCapReached"), Some(ActionState::FrequencyCapReached));
        assert_eq!(serde_json::to_value(ActionState::Timedout).unwrap(), "timedout");
    }

    #[test]
    fn quantile_triggers_read_the_session_scores() {
        let m = map(
            "q",
            json!({"displayName": "likely buyer",
                "triggerWithOutcomeQuantileConditions": [{"outcomeId": "buy", "maxQuantileThreshold": 0.8, "fallbackQuantileThreshold": 0.5}],
                "action": {"mediaType": "webchat"}}),
        );
        let maps = vec![m];
        let policy = OfferPolicy::default();
        let engine = OfferEngine { maps: &maps, policy: &policy };
        let run = |max: f64, cur: f64| {
            let scores = [OutcomeScoreFact { outcome_id: "buy".into(), quantile: cur, session_max_quantile: max }];
            let ctx = OfferContext {
                now: t(0),
                session_id: "s",
                page_url: None,
                event: None,
                segments: &[],
                outcome_scores: &scores,
            };
            engine.decide(&mut SessionOffers::default(), &mut CustomerOffers::default(), &ctx, || "x".into())
        };
        assert_eq!(run(0.9, 0.4).len(), 1);
        assert!(run(0.7, 0.4).is_empty());
        assert!(run(0.9, 0.6).is_empty());
    }

    /// A random step of a session: time passes, segments change, the visitor answers an offer.
    #[derive(Debug, Clone)]
    enum Step {
        Tick { ms: i64, segments: Vec<usize> },
        Answer { state: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0i64..15_000, proptest::collection::vec(0usize..4, 0..4))
                .prop_map(|(ms, segments)| Step::Tick { ms, segments }),
            (0usize..ActionState::ALL.len()).prop_map(|state| Step::Answer { state }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever happens: one open offer at most, ≥10 s between offers, no chat after a rejection, each map
        /// offers once, every non-offer says why, and the engine is deterministic.
        #[test]
        fn caps_hold_for_any_session(
            medias in proptest::collection::vec(0usize..3, 1..5),
            weights in proptest::collection::vec(1i64..4, 5),
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let media = ["webchat", "webMessagingOffer", "contentOffer"];
            let maps: Vec<ActionMap> = medias
                .iter()
                .enumerate()
                .map(|(i, m)| seg_map(&format!("m{i}"), &format!("s{}", i % 4), media[*m], weights[i]))
                .collect();
            let play = |maps: Vec<ActionMap>| {
                let mut r = Run::new(maps);
                let mut now = 0i64;
                let mut log = Vec::new();
                let mut rejected_chat_at: Option<i64> = None;
                for s in &steps {
                    match s {
                        Step::Tick { ms, segments } => {
                            now += ms;
                            let segs: Vec<String> = segments.iter().map(|i| format!("s{i}")).collect();
                            let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
                            let open_before = r.session.offers.iter().any(|o| o.state.is_open());
                            let out = r.at(now, "https://s.example/", None, &refs);
                            let made: Vec<_> = out.iter().filter(|o| o.blocked.is_none()).collect();
                            assert!(made.len() <= 1, "one offer per decision");
                            if open_before { assert!(made.is_empty(), "no offer while one is open"); }
                            for o in &out {
                                if o.blocked.is_none() {
                                    assert_eq!(o.state, ActionState::Qualified);
                                    if o.media_type.is_chat() { assert!(rejected_chat_at.is_none(), "no chat after a rejection"); }
                                } else {
                                    assert_ne!(o.state, ActionState::Offered);
                                }
                            }
                            log.extend(out);
                        }
                        Step::Answer { state } => {
                            if let Some(o) = r.session.offers.iter().rev().find(|o| o.state.is_open()).cloned() {
                                let st = ActionState::ALL[*state];
                                if let Ok(rep) = r.session.report(&o.id, st, t(now))
                                    && rep.changed
                                    && st == ActionState::Rejected
                                    && o.action.media_type.is_chat()
                                {
                                    rejected_chat_at = Some(now);
                                }
                            }
                        }
                    }
                }
                // ≥ 10 s between offers made; one per map.
                let mut dues: Vec<i64> = r.session.offers.iter().map(|o| o.due_at.unix_millis()).collect();
                dues.sort();
                for w in dues.windows(2) { assert!(w[1] - w[0] >= 10_000, "offers {dues:?}"); }
                let mut ids: Vec<&str> = r.session.offers.iter().map(|o| o.map_id.as_str()).collect();
                ids.sort();
                let n = ids.len();
                ids.dedup();
                assert_eq!(ids.len(), n, "a map offers once per session");
                (log, r.session)
            };
            let (a, sa) = play(maps.clone());
            let (b, sb) = play(maps);
            prop_assert_eq!(a, b);
            prop_assert_eq!(sa, sb);
        }
    }
}
