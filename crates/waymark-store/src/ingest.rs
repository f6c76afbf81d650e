//! The journey write path shared by every backend.
//!
//! A backend opens a transaction and hands it to [`apply_batch`] as a [`JourneyTx`]; this module decides
//! what to read and write by calling the pure domain functions (sessionization, identity linking). Keeping the
//! orchestration here means SQLite and PostgreSQL cannot drift apart in behaviour.

use crate::packed_event::{PackedFields, PackedHeader, pack_web_event, unpack_web_event};
use crate::types::*;
use crate::{StoreError, StoreResult};
use std::collections::HashMap;
use std::sync::Arc;
use waymark_domain::conversation::{Inserted, journey_event};
use waymark_domain::event::{Event, EventType};
use waymark_domain::identity::{Identifier, LinkPlan, TraitIdentity, plan_link};
use waymark_domain::ids::{ContactId, CustomerId, EventId, OrgId, SessionId};
use waymark_domain::journey::{CustomerState, OpenSession, place_web_event};
use waymark_domain::offer::{OfferContext, OfferEngine, OutcomeScoreFact, action_event_body};
use waymark_domain::session::{SESSION_URI_PREFIX, Session};
use waymark_domain::web_event::{CookieId, WebEvent};
use waymark_domain::{ErrorCode, Rejection, Timestamp};

/// The reads and writes the journey logic needs inside one transaction.
#[allow(async_fn_in_trait)]
pub trait JourneyTx {
    /// The customer's state. A backend may move it out of its own buffer rather than copy it: the caller gives
    /// it back with [`JourneyTx::save_customer`] (changed) or [`JourneyTx::keep_customer`] (unchanged), unless
    /// it fails the transaction.
    async fn load_customer(&mut self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerState>>;
    /// Keep `state` as the customer's state (moved: the journey path has no use for it afterwards).
    async fn save_customer(&mut self, org: OrgId, state: CustomerState) -> StoreResult<()>;
    /// Give back a state [`JourneyTx::load_customer`] returned, unchanged. A state saved since (a merge of
    /// contacts saves the customers it relinks) is newer and stays.
    async fn keep_customer(&mut self, org: OrgId, state: CustomerState) -> StoreResult<()> {
        let _ = (org, state);
        Ok(())
    }
    /// `look` at the customer's state as the transaction holds it, without taking it (`None`: no such customer).
    /// By default [`JourneyTx::load_customer`] and [`JourneyTx::keep_customer`]; a backend whose
    /// `load_customer` copies the state looks at its own instead.
    async fn peek_customer<R: Send>(
        &mut self,
        org: OrgId,
        cookie: &CookieId,
        look: impl FnOnce(&CustomerState) -> R + Send,
    ) -> StoreResult<Option<R>> {
        let Some(state) = self.load_customer(org, cookie).await? else { return Ok(None) };
        let seen = look(&state);
        self.keep_customer(org, state).await?;
        Ok(Some(seen))
    }
    async fn load_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>>;
    async fn identifier_owner(&mut self, org: OrgId, id: &Identifier) -> StoreResult<Option<ContactId>>;
    async fn create_contact(
        &mut self,
        org: OrgId,
        id: ContactId,
        at: Timestamp,
        identity: &TraitIdentity,
        identifiers: &[Identifier],
    ) -> StoreResult<()>;
    /// Attach identifiers to a contact and fill in names it lacks.
    async fn update_contact(
        &mut self,
        org: OrgId,
        id: ContactId,
        at: Timestamp,
        identity: &TraitIdentity,
        attach: &[Identifier],
    ) -> StoreResult<()>;
    /// Fold `merged` contacts into `target`: identifiers, customers and sessions move; the merged are marked.
    async fn merge_contacts(
        &mut self,
        org: OrgId,
        target: ContactId,
        merged: &[ContactId],
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Point a customer and all its sessions at a contact.
    async fn link_customer(&mut self, org: OrgId, customer: CustomerId, contact: ContactId) -> StoreResult<()>;
    /// Store `event`, whose row body is `body` (its JSON, [`encode_event`] or [`encode_web_event`], or its
    /// compact body, [`encode_compact_web_event`], if this backend [`JourneyTx::stores_compact_web_events`]).
    async fn insert_event_row(&mut self, org: OrgId, event: &Event, body: EventBody) -> StoreResult<()>;
    /// Whether this backend stores web events compactly ([`encode_compact_web_event`]) and expands them on
    /// read ([`expand_web_event`]).
    fn stores_compact_web_events(&self) -> bool {
        false
    }
    /// Store `event`.
    async fn insert_event(&mut self, org: OrgId, event: &Event) -> StoreResult<()> {
        let body = encode_event(event)?;
        self.insert_event_row(org, event, EventBody::Json(body)).await
    }
    /// Insert or replace a session row. The record is shared, not copied: the web path hands the same record
    /// to its result (the session is written without `externalContact`, which is the `contact_id` column).
    async fn upsert_session(&mut self, record: Arc<SessionRecord>) -> StoreResult<()>;
    /// A conversation's stored events and session, or its tombstone.
    async fn load_conversation(&mut self, org: OrgId, conversation_id: &str)
    -> StoreResult<Option<StoredConversation>>;
    /// Insert or replace a conversation's record (keyed by organisation and conversation id).
    async fn save_conversation(&mut self, org: OrgId, conversation: &StoredConversation) -> StoreResult<()>;
    /// Delete a session and its events (a conversation refused after some of its events were stored).
    async fn delete_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<()>;
}

/// Fresh time-ordered ids.
pub fn new_uuid(at: Timestamp) -> uuid::Uuid {
    // Ids carry the event time only to the millisecond; randomness makes them unique.
    let _ = at;
    uuid::Uuid::now_v7()
}

/// Apply one item inside the caller's transaction (web results wait for [`apply_batch`]'s session snapshot).
async fn apply_item<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    config: &JourneyConfig,
    item: &IngestItem,
) -> StoreResult<ItemResult> {
    // Each arm's future lives on the heap: inline, the largest (a web event's, kilobytes of sessions and events
    // held across awaits) would be copied whole every time the caller moved this future.
    match item {
        IngestItem::Web(web) => Box::pin(apply_web(tx, org, config, web)).await,
        IngestItem::Ping { cookie, at, page_url, scores } => {
            Box::pin(apply_ping(tx, org, config, cookie, *at, page_url.as_deref(), scores)).await
        }
        IngestItem::Action(item) => Box::pin(apply_action(tx, org, item)).await,
        IngestItem::Conversation(c) => Box::pin(apply_conversation(tx, org, c)).await,
    }
}

async fn apply_web<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    config: &JourneyConfig,
    item: &WebItem,
) -> StoreResult<ItemResult> {
    let ev = &item.event;
    let mut state = match tx.load_customer(org, &ev.cookie_id).await? {
        Some(s) => s,
        None => CustomerState::new(CustomerId(new_uuid(ev.created)), ev.cookie_id.clone(), ev.created),
    };
    // A retried event (same `clientEventId` from the same cookie) is answered with the visitor's session.
    if let Some(cid) = &ev.client_event_id {
        if state.recent_client_events.contains(cid) {
            let session = state.current.as_ref().map(|c| {
                Box::new(SessionRecord {
                    org,
                    customer_id: Some(state.customer_id),
                    contact_id: state.contact_id,
                    session: with_contact_ref(c.session.clone(), state.contact_id),
                })
            });
            tx.keep_customer(org, state).await?;
            return Ok(ItemResult::Duplicate { session });
        }
        let window = config.client_event_window_secs.unwrap_or(DEFAULT_CLIENT_EVENT_WINDOW_SECS);
        state.recent_client_events.remember(cid, ev.created, window);
    }
    let mut placed =
        place_web_event(&mut state, ev, &item.enrichment, &config.session, item.identity.clone(), new_uuid);

    let mut merged = Vec::new();
    if !item.identity.is_empty() {
        let linked = link_identity(tx, org, &mut state, &item.identity, ev.created).await?;
        merged = linked;
    }
    let contact = state.contact_id;
    let body = match &item.fields {
        Some(fields) if tx.stores_compact_web_events() => encode_compact_web_event(&mut placed.event, fields)?,
        Some(fields) => EventBody::Json(encode_web_event(&mut placed.event, &fields.json()?)?),
        None => EventBody::Json(encode_event(&placed.event)?),
    };
    tx.insert_event_row(org, &placed.event, body).await?;
    let mut derived = match_rules(&mut state, &placed.event, config, ev.created);
    for e in &derived {
        tx.insert_event(org, e).await?;
    }
    // Offers are decided for the visitor's current session only (a late event for an older one decides nothing).
    if state.current.as_ref().is_some_and(|c| c.session.id == placed.event.session.id) {
        derived.extend(
            run_offers(
                tx,
                org,
                config,
                &mut state,
                OfferRun { event: Some(&placed.event), page_url: None, scores: &[], at: ev.created },
            )
            .await?,
        );
    }
    let (customer_id, total_events) = (state.customer_id, state.total_events);
    let closed = placed.closed.map(|mut c| {
        c.external_contact = None;
        Arc::new(SessionRecord { org, customer_id: Some(customer_id), contact_id: contact, session: c })
    });
    if let Some(c) = &closed {
        tx.upsert_session(c.clone()).await?;
    }
    let counts = state
        .open_session(&placed.event.session.id)
        .map(|o| SessionCounts::of(&o.session))
        .ok_or_else(|| StoreError::Internal("the event's session is not open after placing it".into()))?;
    tx.save_customer(org, state).await?;

    // The session itself is written, and its snapshot shared, by `apply_batch` after the batch's last event.
    Ok(ItemResult::Web(Box::new(WebStored {
        customer_id,
        contact_id: contact,
        event: placed.event,
        session: SessionRecord::pending(),
        counts,
        closed,
        new_session: placed.new_session,
        derived,
        merged,
        total_events,
    })))
}

/// Apply a batch's items in order inside the caller's transaction.
///
/// The web results of one session share one snapshot of it, taken after the batch's last event of that session
/// and written once (each result keeps its own [`SessionCounts`]): a copy of the session per event, made on the
/// single writer and freed on the request's thread, was ~6 % of the writer's and ~3 % of the request threads'
/// time in batches of 100.
pub async fn apply_batch<T: JourneyTx>(tx: &mut T, batch: &IngestBatch) -> StoreResult<Vec<ItemResult>> {
    let org = batch.org;
    let mut out = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        out.push(apply_item(tx, org, &batch.config, item).await?);
    }
    // Latest first: the first result met of a session takes the snapshot; a session no longer open in its
    // customer's state (closed, then pushed out by newer sessions) ended as a later event's `closed` record.
    let mut snapshots: HashMap<String, Arc<SessionRecord>> = HashMap::new();
    for (item, result) in batch.items.iter().zip(out.iter_mut()).rev() {
        let (IngestItem::Web(item), ItemResult::Web(stored)) = (item, result) else { continue };
        if let Some(c) = &stored.closed {
            snapshots.entry(c.session.id.clone()).or_insert_with(|| c.clone());
        }
        let sid = &stored.event.session.id;
        if let Some(s) = snapshots.get(sid) {
            stored.session = s.clone();
            continue;
        }
        let record = tx
            .peek_customer(org, &item.event.cookie_id, |state| {
                state.open_session(sid).map(|o| {
                    let mut session = o.session.clone();
                    session.external_contact = None;
                    Arc::new(SessionRecord {
                        org,
                        customer_id: Some(state.customer_id),
                        contact_id: state.contact_id,
                        session,
                    })
                })
            })
            .await?
            .ok_or_else(|| StoreError::Internal(format!("customer state of session {sid} is gone")))?;
        let record = record.ok_or_else(|| StoreError::Internal(format!("session {sid} is neither open nor closed")))?;
        tx.upsert_session(record.clone()).await?;
        stored.session = record.clone();
        snapshots.insert(sid.clone(), record);
    }
    Ok(out)
}

/// Run the segment/outcome matcher on the placed event, against the rule state of the session it joined and
/// of its customer. Assignments and achievements are recorded on the session in `state` and returned as
/// journey events, timed with the event that caused them.
fn match_rules(state: &mut CustomerState, event: &Event, config: &JourneyConfig, at: Timestamp) -> Vec<Event> {
    let Some(open) = state
        .current
        .as_deref_mut()
        .filter(|c| c.session.id == event.session.id)
        .or_else(|| state.previous.as_deref_mut().filter(|p| p.session.id == event.session.id))
    else {
        return Vec::new();
    };
    let derived = config.rules.on_event(&mut open.rules, &mut state.rules, &open.session, event, at);
    derived
        .iter()
        .map(|d| {
            d.apply_to(&mut open.session);
            d.to_event(&open.session, EventId(new_uuid(at)).to_string(), event.id.clone())
        })
        .collect()
}

/// Link the customer to the contact its identifiers name, creating or merging contacts as the domain's
/// [`plan_link`] decides. Returns the contacts merged away.
async fn link_identity<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    state: &mut CustomerState,
    identity: &TraitIdentity,
    at: Timestamp,
) -> StoreResult<Vec<ContactId>> {
    let known: Vec<ContactId> = state.contact_id.into_iter().collect();
    let (target, merged) = resolve_contact(tx, org, &known, identity, at).await?;
    if let Some(target) = target
        && state.contact_id != Some(target)
    {
        tx.link_customer(org, state.customer_id, target).await?;
        state.contact_id = Some(target);
    }
    Ok(merged)
}

/// The contact that `identity` and the already `known` contacts of one person resolve to: found, created, or
/// the oldest of several, into which the others are merged. Returns it (if any) and the contacts merged away.
async fn resolve_contact<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    known: &[ContactId],
    identity: &TraitIdentity,
    at: Timestamp,
) -> StoreResult<(Option<ContactId>, Vec<ContactId>)> {
    let mut known = known.to_vec();
    known.sort();
    known.dedup();
    let mut owners: HashMap<Identifier, ContactId> = HashMap::new();
    for id in &identity.identifiers {
        if let Some(c) = tx.identifier_owner(org, id).await? {
            owners.insert(id.clone(), c);
        }
    }
    let current = known.first().copied();
    let plan = plan_link(&identity.identifiers, current, |i| owners.get(i).copied());
    let (target, mut merged, attach) = match plan {
        LinkPlan::Nothing => match current {
            // Names alone update the contact the person already has.
            Some(c) => (c, Vec::new(), Vec::new()),
            None => return Ok((None, Vec::new())),
        },
        LinkPlan::Create { identifiers } => {
            let id = ContactId(new_uuid(at));
            tx.create_contact(org, id, at, identity, &identifiers).await?;
            return Ok((Some(id), Vec::new()));
        }
        LinkPlan::Use { target, merge, attach } => (target, merge, attach),
    };
    // Other contacts this person is already known by are the same person too.
    for k in known.iter().skip(1) {
        if *k != target && !merged.contains(k) {
            merged.push(*k);
        }
    }
    if !merged.is_empty() {
        tx.merge_contacts(org, target, &merged, at).await?;
    }
    tx.update_contact(org, target, at, identity, &attach).await?;
    Ok((Some(target), merged))
}

async fn apply_conversation<T: JourneyTx>(tx: &mut T, org: OrgId, item: &ConversationItem) -> StoreResult<ItemResult> {
    match item {
        ConversationItem::Refuse { conversation_id, at, rejection } => {
            let mut conv = match tx.load_conversation(org, conversation_id).await? {
                Some(c) => c,
                None => StoredConversation::new(conversation_id, *at),
            };
            if let Some(sid) = conv.session_id.take() {
                tx.delete_session(org, sid).await?;
            }
            conv.refused = true;
            conv.state = Default::default();
            conv.updated = conv.updated.max(*at);
            tx.save_conversation(org, &conv).await?;
            Ok(ItemResult::Rejected(rejection.clone()))
        }
        ConversationItem::Event(ev) => apply_conversation_event(tx, org, ev).await,
    }
}

async fn apply_conversation_event<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    ev: &waymark_domain::conversation::ConversationEvent,
) -> StoreResult<ItemResult> {
    let mut conv = match tx.load_conversation(org, &ev.conversation_id).await? {
        Some(c) => c,
        None => StoredConversation::new(&ev.conversation_id, ev.at),
    };
    if conv.refused {
        return Ok(ItemResult::Rejected(Rejection::at(
            ErrorCode::ChannelNotInJourney,
            "conversationId",
            format!(
                "conversation {} is on a channel the customer journey does not show; none of its events is stored",
                ev.conversation_id
            ),
        )));
    }
    match conv.state.insert(ev.clone()) {
        Err(r) => return Ok(ItemResult::Rejected(r)),
        Ok(Inserted::Duplicate) => {
            let session = match conv.session_id {
                Some(sid) => tx.load_session(org, sid).await?.map(Box::new),
                None => None,
            };
            return Ok(ItemResult::Duplicate { session });
        }
        Ok(Inserted::Added) => {}
    }
    let new_session = conv.session_id.is_none();
    let sid = *conv.session_id.get_or_insert_with(|| SessionId(new_uuid(ev.at)));
    let prior = if new_session { None } else { tx.load_session(org, sid).await? };
    let mut customer = prior.as_ref().and_then(|p| p.customer_id);
    let mut contact = prior.as_ref().and_then(|p| p.contact_id);

    // Linking: the address's phone, email and messaging id find or create the external contact; a tracker
    // cookie id (a chat from a web offer) joins the web customer and its contact.
    let address = ev.address.clone().unwrap_or_default();
    let identity = TraitIdentity { identifiers: address.identifiers(), ..Default::default() };
    let mut known: Vec<ContactId> = contact.into_iter().chain(address.contact_id).collect();
    let web_customer = match &address.cookie_id {
        Some(cookie) => Some(match tx.load_customer(org, cookie).await? {
            Some(s) => (s, false),
            None => (CustomerState::new(CustomerId(new_uuid(ev.at)), cookie.clone(), ev.at), true),
        }),
        None => None,
    };
    if let Some((state, _)) = &web_customer {
        known.extend(state.contact_id);
    }
    let (target, merged) = resolve_contact(tx, org, &known, &identity, ev.at).await?;
    if let Some((mut state, created)) = web_customer {
        let relink = target.is_some() && state.contact_id != target;
        if let (true, Some(t)) = (relink, target) {
            tx.link_customer(org, state.customer_id, t).await?;
            state.contact_id = Some(t);
        }
        customer = Some(state.customer_id);
        if relink || created {
            state.version += 1;
            tx.save_customer(org, state).await?;
        } else {
            tx.keep_customer(org, state).await?;
        }
    }
    contact = target.or(contact);

    let Some(session) = conv.state.fold(&sid.to_string()) else {
        return Err(StoreError::Internal("a conversation with an event folded to nothing".into()));
    };
    let event = journey_event(ev, &session, EventId(new_uuid(ev.at)).to_string());
    tx.insert_event(org, &event).await?;
    let row = SessionRecord { org, customer_id: customer, contact_id: contact, session: session.clone() };
    tx.upsert_session(Arc::new(row)).await?;
    conv.updated = conv.updated.max(ev.at);
    tx.save_conversation(org, &conv).await?;
    Ok(ItemResult::Conversation(Box::new(ConversationStored {
        session: SessionRecord {
            org,
            customer_id: customer,
            contact_id: contact,
            session: with_contact_ref(session, contact),
        },
        event,
        new_session,
        merged,
    })))
}

async fn apply_ping<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    config: &JourneyConfig,
    cookie: &CookieId,
    at: Timestamp,
    page_url: Option<&str>,
    scores: &[OutcomeScoreFact],
) -> StoreResult<ItemResult> {
    let nothing = || ItemResult::Pinged { session: None, offers: Vec::new(), derived: Vec::new() };
    let Some(mut state) = tx.load_customer(org, cookie).await? else {
        return Ok(nothing());
    };
    let timeout_ms = config.session.inactivity_timeout_secs * 1000;
    let live = state.current.as_ref().is_some_and(|open| {
        open.session.ended_date.is_none() && at.millis_since(open.last_at) <= timeout_ms && at >= open.first_at
    });
    let Some(open) = state.current.as_mut().filter(|_| live) else {
        tx.keep_customer(org, state).await?;
        return Ok(nothing());
    };
    open.last_at = open.last_at.max(at);
    open.session.touch(at);
    let session = open.session.clone();
    state.version += 1;
    let derived = run_offers(tx, org, config, &mut state, OfferRun { event: None, page_url, scores, at }).await?;
    let offers = state.current.as_ref().map(|c| c.offers.deliverable(at).cloned().collect()).unwrap_or_default();
    let (customer_id, contact_id) = (state.customer_id, state.contact_id);
    let row = SessionRecord { org, customer_id: Some(customer_id), contact_id, session: session.clone() };
    tx.upsert_session(Arc::new(row)).await?;
    tx.save_customer(org, state).await?;
    Ok(ItemResult::Pinged {
        session: Some(Box::new(SessionRecord { org, customer_id: Some(customer_id), contact_id, session })),
        offers,
        derived,
    })
}

/// Segment ids assigned to the customer's open session or to the customer.
fn assigned_segments(state: &CustomerState) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    if let Some(open) = &state.current {
        ids.extend(open.session.segment_assignments.iter().map(|a| a.segment.id.clone()));
        ids.extend(open.rules.assigned.iter().map(|a| a.segment_id.clone()));
    }
    ids.extend(state.rules.assigned.iter().map(|a| a.segment_id.clone()));
    ids.sort();
    ids.dedup();
    ids
}

/// What prompted an offer-engine run.
struct OfferRun<'a> {
    /// The web event that triggered the run (none for a ping).
    event: Option<&'a Event>,
    page_url: Option<&'a str>,
    /// The session's live outcome quantiles (pings carry them).
    scores: &'a [OutcomeScoreFact],
    at: Timestamp,
}

/// Run the offer engine for the customer's open session at `at` and store its decisions as
/// `WebActionEvent`s. `event` is the web event that triggered the run (none for a ping); `scores` are the
/// session's live outcome quantiles (the ping carries them; an event runs with the quantile triggers unmet).
async fn run_offers<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    config: &JourneyConfig,
    state: &mut CustomerState,
    run: OfferRun<'_>,
) -> StoreResult<Vec<Event>> {
    let OfferRun { event, page_url, scores, at } = run;
    if config.action_maps.is_empty() && state.offers.is_empty() {
        return Ok(Vec::new());
    }
    let segments = assigned_segments(state);
    let Some(open) = state.current.as_mut() else { return Ok(Vec::new()) };
    let web = event.and_then(|e| e.web_event.as_ref());
    let url = page_url
        .or(web.map(|w| w.page.url.as_str()))
        .or(open.session.last_page.as_ref().map(|p| p.url.as_str()))
        .map(str::to_string);
    let ctx = OfferContext {
        now: at,
        session_id: &open.session.id,
        page_url: url.as_deref(),
        event: web.map(|w| &**w),
        segments: &segments,
        outcome_scores: scores,
    };
    let engine = OfferEngine { maps: &config.action_maps, policy: &config.offer_policy };
    let outcomes = engine.decide(&mut open.offers, &mut state.offers, &ctx, || new_uuid(at).to_string());
    let mut events = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let id = new_uuid(at).to_string();
        let correlation = event.map_or_else(|| id.clone(), |e| e.id.clone());
        let mut e = Event::envelope(id, correlation, &open.session, EventType::WebAction, at);
        e.web_action_event = Some(Box::new(o.event_body()));
        tx.insert_event(org, &e).await?;
        events.push(e);
    }
    if !events.is_empty() {
        state.version += 1;
    }
    Ok(events)
}

/// Record an offer state the tracker reports, on the session that received the offer.
async fn apply_action<T: JourneyTx>(tx: &mut T, org: OrgId, item: &ActionItem) -> StoreResult<ItemResult> {
    let unknown_session = || {
        ItemResult::Rejected(Rejection::at(
            ErrorCode::NotFound,
            "sessionId",
            "no such web session; use the sessionId the ping returned with the action",
        ))
    };
    let Some(record) = tx.load_session(org, item.session_id).await? else { return Ok(unknown_session()) };
    let Some(cookie) = record.session.customer_id.as_deref().and_then(|c| CookieId::parse(c).ok()) else {
        return Ok(unknown_session());
    };
    let Some(mut state) = tx.load_customer(org, &cookie).await? else { return Ok(unknown_session()) };
    let (event, session) = match report_action(tx, org, item, &mut state).await? {
        Ok(reported) => reported,
        Err(refused) => {
            tx.keep_customer(org, state).await?;
            return Ok(refused);
        }
    };
    state.version += 1;
    let (customer_id, contact_id) = (state.customer_id, state.contact_id);
    let row = SessionRecord { org, customer_id: Some(customer_id), contact_id, session: session.clone() };
    tx.upsert_session(Arc::new(row)).await?;
    tx.save_customer(org, state).await?;
    Ok(ItemResult::Action(Box::new(ActionStored {
        event,
        session: SessionRecord { org, customer_id: Some(customer_id), contact_id, session },
    })))
}

/// Record the offer state in `state`'s session that received the offer, and store the `WebActionEvent` when
/// the state changed. Returns that event and the session, or the answer refusing the report.
async fn report_action<T: JourneyTx>(
    tx: &mut T,
    org: OrgId,
    item: &ActionItem,
    state: &mut CustomerState,
) -> StoreResult<Result<(Option<Event>, Session), ItemResult>> {
    let sid = item.session_id.to_string();
    let is_current = state.current.as_ref().is_some_and(|c| c.session.id == sid);
    let open = if is_current { state.current.as_mut() } else { state.previous.as_mut() };
    let Some(open) = open.filter(|o| o.session.id == sid) else {
        return Ok(Err(ItemResult::Rejected(Rejection::at(
            ErrorCode::NotFound,
            "sessionId",
            "no such web session; use the sessionId the ping returned with the action",
        ))));
    };
    let reported = match open.offers.report(&item.action_id, item.state, item.at) {
        Ok(r) => r,
        Err(r) => return Ok(Err(ItemResult::Rejected(r))),
    };
    let mut event = None;
    if reported.changed {
        let o = &reported.offer;
        let mut body = action_event_body(
            &o.id,
            item.state,
            o.action.media_type,
            &o.action.prompt(),
            item.at,
            (&o.map_id, o.map_version, &o.map_name),
            reported.time_to_disposition,
            None,
        );
        body.error_code = item.error_code.clone();
        body.error_message = item.error_message.clone();
        let id = new_uuid(item.at).to_string();
        let mut e = Event::envelope(id, o.id.clone(), &open.session, EventType::WebAction, item.at);
        e.web_action_event = Some(Box::new(body));
        tx.insert_event(org, &e).await?;
        event = Some(e);
        // The visitor answering an offer is a sign of life on an open session.
        if is_current && open.session.ended_date.is_none() {
            open.last_at = open.last_at.max(item.at);
            open.session.touch(item.at);
        }
    }
    Ok(Ok((event, open.session.clone())))
}

/// First byte of a compressed customer state (a JSON state starts with `{`).
const STATE_LZ4: u8 = 0x01;
/// First byte of a compressed customer state whose open sessions are stubs (id, type, creation time): their
/// bodies are the rows of the sessions table, written in the same transaction (the embedded store's layout).
const STATE_LZ4_SESSIONS_APART: u8 = 0x02;

/// Encode a customer state for storage: JSON, LZ4-compressed (the state is rewritten on every commit that
/// touches the customer, and its repetitive JSON shrinks to about a third).
pub fn encode_state(state: &CustomerState) -> StoreResult<Vec<u8>> {
    encode_tagged(state, STATE_LZ4)
}

/// Serialized JSON is built in a buffer this large from the start (sessions, events and states are 0.5-2 KB):
/// grown from serde_json's default 128 bytes, each took four reallocations.
const JSON_CAPACITY: usize = 2048;

fn encode_tagged(state: &CustomerState, tag: u8) -> StoreResult<Vec<u8>> {
    thread_local! {
        /// The state's JSON is only an input to the compressor: one buffer per thread is reused.
        static JSON: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JSON_CAPACITY));
    }
    JSON.with_borrow_mut(|json| {
        json.clear();
        serde_json::to_writer(&mut *json, state)
            .map_err(|e| StoreError::Internal(format!("encode customer state: {e}")))?;
        // The tag, the JSON's length (little-endian u32, as `decompress_size_prepended` reads it), the block.
        let len = u32::try_from(json.len())
            .map_err(|_| StoreError::Internal("encode customer state: larger than 4 GiB".into()))?;
        let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
        out[0] = tag;
        out[1..5].copy_from_slice(&len.to_le_bytes());
        let n = lz4_flex::block::compress_into(json, &mut out[5..])
            .map_err(|e| StoreError::Internal(format!("compress customer state: {e}")))?;
        out.truncate(5 + n);
        if json.capacity() > 16 * JSON_CAPACITY {
            // One unusually large state does not keep its buffer's memory for the thread's life.
            *json = Vec::with_capacity(JSON_CAPACITY);
        }
        Ok(out)
    })
}

/// JSON of a row body, in a buffer sized for it.
fn to_json_string<T: serde::Serialize>(value: &T, what: &str) -> StoreResult<String> {
    let mut out = Vec::with_capacity(JSON_CAPACITY);
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Internal(format!("encode {what}: {e}")))?;
    String::from_utf8(out).map_err(|e| StoreError::Internal(format!("encode {what}: {e}")))
}

/// [`encode_state`] without the bodies of the open sessions, which the caller stores as session rows: the
/// state then shrinks to less than half. [`decode_state`] gives such a state back with stub sessions, which
/// [`StoredState::rehydrate`] replaces by the rows.
pub fn encode_state_sessions_apart(state: &mut CustomerState) -> StoreResult<Vec<u8>> {
    with_sessions_stubbed(state, |s| encode_tagged(s, STATE_LZ4_SESSIONS_APART))
}

/// Run `f` on `state` with its open sessions' bodies swapped for stubs (id, type and start only), then put the
/// bodies back.
pub fn with_sessions_stubbed<T>(state: &mut CustomerState, f: impl FnOnce(&CustomerState) -> T) -> T {
    let stub = |o: &mut Box<OpenSession>| {
        let stub = Session::new(o.session.id.clone(), o.session.session_type, o.session.created_date);
        std::mem::replace(&mut o.session, stub)
    };
    let current = state.current.as_mut().map(stub);
    let previous = state.previous.as_mut().map(stub);
    let out = f(state);
    if let (Some(o), Some(s)) = (state.current.as_mut(), current) {
        o.session = s;
    }
    if let (Some(o), Some(s)) = (state.previous.as_mut(), previous) {
        o.session = s;
    }
    out
}

/// A decoded customer state, and whether its open sessions are stubs to replace by their rows.
pub struct StoredState {
    pub state: CustomerState,
    pub sessions_apart: bool,
}

impl StoredState {
    /// Replace stub sessions by their stored bodies (`row` reads a session row's body). A session whose row
    /// is gone (retention removed it) is dropped from the state: it ended long ago.
    pub fn rehydrate(self, mut row: impl FnMut(&str) -> StoreResult<Option<Session>>) -> StoreResult<CustomerState> {
        let StoredState { mut state, sessions_apart } = self;
        if !sessions_apart {
            return Ok(state);
        }
        let contact = state.contact_id;
        for slot in [&mut state.current, &mut state.previous] {
            let Some(open) = slot.as_mut() else { continue };
            match row(&open.session.id)? {
                Some(mut body) => {
                    body.external_contact =
                        contact.map(|c| waymark_domain::wire::EntityRef::new(c, "/api/v2/externalcontacts/contacts"));
                    open.session = body;
                }
                None => *slot = None,
            }
        }
        Ok(state)
    }
}

/// Decode a stored customer state (compressed, or plain JSON as written before compression). A state stored
/// with its sessions apart comes back with stub sessions: use [`decode_stored_state`] where they matter.
pub fn decode_state(bytes: &[u8]) -> StoreResult<CustomerState> {
    decode_stored_state(bytes).map(|s| s.state)
}

/// Decode a stored customer state, saying whether its sessions must be read from their rows.
pub fn decode_stored_state(bytes: &[u8]) -> StoreResult<StoredState> {
    let corrupt = |e: String| StoreError::Corrupt(format!("customer state: {e}"));
    let (json, sessions_apart) = match bytes.split_first() {
        Some((&tag @ (STATE_LZ4 | STATE_LZ4_SESSIONS_APART), packed)) => (
            std::borrow::Cow::Owned(lz4_flex::decompress_size_prepended(packed).map_err(|e| corrupt(e.to_string()))?),
            tag == STATE_LZ4_SESSIONS_APART,
        ),
        _ => (std::borrow::Cow::Borrowed(bytes), false),
    };
    let state = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredState { state, sessions_apart })
}

/// Encode a session body for storage (without the contact reference, which is a column).
pub fn encode_session(s: &Session) -> StoreResult<String> {
    to_json_string(s, "session")
}

pub fn decode_session(text: &str) -> StoreResult<Session> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("session: {e}")))
}

pub fn encode_event(e: &Event) -> StoreResult<String> {
    to_json_string(e, "event")
}

/// The members of a stored `webEvent` body that come from the request alone (name, page, internal referrer,
/// attributes, traits, search query), encoded on the request's thread ([`WebItem::new`]), so that the store's
/// single writer only adds the envelope and the session's counts ([`encode_web_event`]): encoding whole events
/// was 15 % of the writer's time in batches. In the form its backend stores ([`WebFieldsForm`]).
#[derive(Debug, Clone)]
pub enum RequestFields {
    /// JSON members without the braces.
    Json(Box<str>),
    /// The same, compressed for the embedded store's packed rows ([`crate::packed_event`]).
    Packed(PackedFields),
}

/// What [`RequestFields`] holds: the request-side fields of the body [`place_web_event`] builds, named and
/// skipped as `WebEventBody` serializes them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldsView<'a> {
    event_name: &'a str,
    page: &'a waymark_domain::wire::Page,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<&'a waymark_domain::wire::Referrer>,
    attributes: &'a waymark_domain::wire::Attributes,
    traits: &'a waymark_domain::wire::Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    search_query: Option<&'a str>,
}

impl RequestFields {
    /// `None` if the fields do not encode (they always do: string keys, no custom serializers) or are too long
    /// to pack ([`PackedFields::of`]); the writer then encodes the whole event.
    pub fn of(ev: &WebEvent, form: WebFieldsForm) -> Option<RequestFields> {
        let fields = FieldsView {
            event_name: ev.event_name.as_str(),
            page: &ev.page,
            referrer: stored_referrer(ev),
            attributes: &ev.attributes,
            traits: &ev.traits,
            search_query: ev.search_query.as_deref(),
        };
        thread_local! {
            static JSON: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(JSON_CAPACITY));
        }
        JSON.with(|json| {
            let mut json = json.borrow_mut();
            json.clear();
            serde_json::to_writer(&mut *json, &fields).ok()?;
            // `{…}` → `…` (at least `"eventName":…` is inside).
            let inner = std::str::from_utf8(json.get(1..json.len().checked_sub(1)?)?).ok()?;
            let fields = match form {
                WebFieldsForm::Json => RequestFields::Json(inner.into()),
                WebFieldsForm::Packed => RequestFields::Packed(PackedFields::of(inner).ok()?),
            };
            if json.capacity() > 16 * JSON_CAPACITY {
                *json = Vec::with_capacity(JSON_CAPACITY);
            }
            Some(fields)
        })
    }

    /// The fields as JSON members.
    pub fn json(&self) -> StoreResult<std::borrow::Cow<'_, str>> {
        Ok(match self {
            RequestFields::Json(j) => std::borrow::Cow::Borrowed(j),
            RequestFields::Packed(p) => std::borrow::Cow::Owned(p.json()?),
        })
    }
}

/// A stored event's row body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// JSON: the whole event, or a web event's compact body ([`encode_compact_web_event`]).
    Json(String),
    /// A web event's compact body packed ([`crate::packed_event`]).
    Packed(Vec<u8>),
}

impl EventBody {
    /// The whole event's JSON, for a backend that stores only whole bodies (`event` is the event stored).
    pub fn into_whole_json(self, event: &Event) -> StoreResult<String> {
        let compact = match self {
            EventBody::Json(j) => j,
            EventBody::Packed(p) => unpack_web_event(&p)?,
        };
        Ok(expand_web_event(&compact, &event.id, &event.session.id, event.created_date.unix_millis())
            .unwrap_or(compact))
    }
}

/// The referrer a stored web event keeps (an internal one; an external referrer belongs to the session).
fn stored_referrer(ev: &WebEvent) -> Option<&waymark_domain::wire::Referrer> {
    ev.referrer.as_deref().filter(|r| r.medium == waymark_domain::wire::ReferrerMedium::Internal)
}

/// [`encode_event`] for the web event [`place_web_event`] placed for the request whose fields are `fields`:
/// the envelope and the body's session counts are encoded here, the request's fields spliced in. The result
/// decodes to the same event (checked on every event in debug builds).
pub fn encode_web_event(event: &mut Event, fields: &str) -> StoreResult<String> {
    // Stored bodies leave the session-wide context out; one that has any is encoded whole.
    if !event.web_event.as_deref().is_some_and(is_context_free) {
        return encode_event(event);
    }
    let body = event.web_event.take();
    let envelope = to_json_string(&*event, "event");
    event.web_event = body;
    let mut json = envelope?;
    // The envelope always has members (`id`, …): its closing brace is replaced by the body's member.
    json.pop();
    json.push(',');
    push_web_event_member(&mut json, event, fields);
    #[cfg(debug_assertions)]
    {
        let spliced: serde_json::Value = serde_json::from_str(&json).expect("spliced event is JSON");
        let whole = serde_json::to_value(&*event).expect("event encodes");
        assert_eq!(spliced, whole, "the request's fields do not match the event they were spliced into");
    }
    Ok(json)
}

/// Whether a stored web event body leaves the session-wide context out (the reader re-attaches it).
fn is_context_free(b: &waymark_domain::event::WebEventBody) -> bool {
    b.user_agent_string.is_none()
        && b.browser.is_none()
        && b.device.is_none()
        && b.geolocation.is_none()
        && b.ip_address.is_none()
        && b.ip_organization.is_none()
        && b.mkt_campaign.is_none()
}

/// Append `"webEvent":{…}}` (closing the event object too): the session's counts, then the request's `fields`.
fn push_web_event_member(json: &mut String, event: &Event, fields: &str) {
    use std::fmt::Write as _;
    if let Some(body) = event.web_event.as_deref() {
        let _ = write!(
            json,
            r#""webEvent":{{"totalEventCount":{},"totalPageviewCount":{},"authenticated":{},"#,
            body.total_event_count, body.total_pageview_count, body.authenticated
        );
    }
    json.push_str(fields);
    json.push_str("}}");
}

/// The compact body of a stored web event: [`encode_web_event`]'s JSON without the envelope members that the
/// event row's columns and its session give back (`id`, `correlationId`, `session`, `eventType`,
/// `createdDate`): `{"customerId":…,"customerIdType":…,"webEvent":{…}}`, packed when the request's fields
/// were ([`crate::packed_event`]). The envelope was ~45 % of a stored web event, and encoding it ~7 % of the
/// SQLite writer's time in batches. [`expand_web_event`] restores the whole body on read. An event whose
/// envelope the columns cannot give back is encoded whole.
pub fn encode_compact_web_event(event: &mut Event, fields: &RequestFields) -> StoreResult<EventBody> {
    let derivable = event.event_type == EventType::Web
        && event.correlation_id == event.id
        && event.session.session_type == waymark_domain::session::SessionType::Web
        && event
            .session
            .self_uri
            .as_deref()
            .is_some_and(|u| u.strip_prefix(SESSION_URI_PREFIX).is_some_and(|id| id == event.session.id));
    let Some(body) = event.web_event.as_deref().filter(|b| derivable && is_context_free(b)) else {
        return Ok(EventBody::Json(encode_web_event(event, &fields.json()?)?));
    };
    let json_string = |v: &Option<String>| {
        v.as_ref()
            .map(|v| serde_json::to_string(v).map_err(|e| StoreError::Internal(format!("encode event: {e}"))))
            .transpose()
    };
    let (customer_id, customer_id_type) = (json_string(&event.customer_id)?, json_string(&event.customer_id_type)?);
    let packed = match fields {
        RequestFields::Packed(p) => pack_web_event(
            &PackedHeader {
                total_event_count: body.total_event_count,
                total_pageview_count: body.total_pageview_count,
                authenticated: body.authenticated,
                customer_id_json: customer_id.as_deref(),
                customer_id_type_json: customer_id_type.as_deref(),
            },
            p,
        ),
        RequestFields::Json(_) => None,
    };
    let stored = match packed {
        Some(p) => EventBody::Packed(p),
        None => {
            let fields = fields.json()?;
            let mut json = String::with_capacity(64 + fields.len());
            json.push('{');
            for (name, value) in [("customerId", &customer_id), ("customerIdType", &customer_id_type)] {
                if let Some(v) = value {
                    json.push('"');
                    json.push_str(name);
                    json.push_str("\":");
                    json.push_str(v);
                    json.push(',');
                }
            }
            push_web_event_member(&mut json, event, &fields);
            EventBody::Json(json)
        }
    };
    #[cfg(debug_assertions)]
    {
        let whole = stored.clone().into_whole_json(event).expect("a compact body expands");
        let expanded: serde_json::Value = serde_json::from_str(&whole).expect("expanded event is JSON");
        let original = serde_json::to_value(&*event).expect("event encodes");
        assert_eq!(expanded, original, "the compact event does not expand to the event it was made from");
    }
    Ok(stored)
}

/// The whole body of a web event stored by [`encode_compact_web_event`], from its row's `id`, `session_id` and
/// `created_ms`; `None` for a body stored whole (it starts with its `id`).
pub fn expand_web_event(body: &str, id: &str, session_id: &str, created_ms: i64) -> Option<String> {
    if body.starts_with("{\"id\":") {
        return None;
    }
    // Only the customer's id and id type (JSON strings, whose quotes inside are escaped) come before the body.
    let at = body.find("\"webEvent\":{")?;
    let created = Timestamp::from_unix_millis(created_ms).to_iso();
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let (id, sid) = (quoted(id), quoted(session_id));
    let sid_bare = &sid[1..sid.len() - 1];
    let mut out = String::with_capacity(body.len() + 300);
    out.push_str("{\"id\":");
    out.push_str(&id);
    out.push_str(",\"correlationId\":");
    out.push_str(&id);
    out.push(',');
    out.push_str(&body[1..at]);
    out.push_str("\"session\":{\"id\":");
    out.push_str(&sid);
    out.push_str(",\"selfUri\":\"");
    out.push_str(SESSION_URI_PREFIX);
    out.push_str(sid_bare);
    out.push_str("\",\"type\":\"web\"},\"eventType\":\"");
    out.push_str(EventType::Web.as_str());
    out.push_str("\",\"createdDate\":\"");
    out.push_str(&created);
    out.push_str("\",");
    out.push_str(&body[at..]);
    Some(out)
}

pub fn decode_event(text: &str) -> StoreResult<Event> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("event: {e}")))
}

/// Fill the wire `externalContact` from the contact column.
pub fn with_contact_ref(mut s: Session, contact: Option<ContactId>) -> Session {
    s.external_contact = contact.map(|c| waymark_domain::wire::EntityRef::new(c, "/api/v2/externalcontacts/contacts"));
    s
}

/// A new contact holding `identity`'s names and `identifiers` (what every backend's `create_contact` writes).
pub fn new_contact(
    org: OrgId,
    id: ContactId,
    at: Timestamp,
    identity: &TraitIdentity,
    identifiers: &[Identifier],
) -> Contact {
    let mut contact = Contact {
        id,
        org,
        first_name: None,
        last_name: None,
        display_name: None,
        emails: Vec::new(),
        phones: Vec::new(),
        messaging_ids: Vec::new(),
        cookie_ids: Vec::new(),
        created: at,
        modified: at,
    };
    merge_identity_into(&mut contact, identity, identifiers, at);
    contact
}

/// Fold identity traits and identifiers into a contact. Returns whether anything changed.
pub fn merge_identity_into(
    c: &mut Contact,
    identity: &TraitIdentity,
    identifiers: &[Identifier],
    at: Timestamp,
) -> bool {
    let before = c.clone();
    if c.first_name.is_none() {
        c.first_name = identity.given_name.clone();
    }
    if c.last_name.is_none() {
        c.last_name = identity.family_name.clone();
    }
    if c.display_name.is_none() {
        c.display_name = identity.display_name.clone();
    }
    for id in identifiers.iter().chain(identity.identifiers.iter()) {
        let list = match id {
            Identifier::Email(_) => &mut c.emails,
            Identifier::Phone(_) => &mut c.phones,
            Identifier::Messaging(_) => &mut c.messaging_ids,
        };
        if !list.iter().any(|v| v == id.value()) {
            list.push(id.value().to_string());
        }
    }
    let changed = *c != before;
    if changed {
        c.modified = at;
    }
    changed
}

/// Absorb a merged contact's details into the survivor.
pub fn absorb_contact(into: &mut Contact, from: &Contact, at: Timestamp) {
    if into.first_name.is_none() {
        into.first_name = from.first_name.clone();
    }
    if into.last_name.is_none() {
        into.last_name = from.last_name.clone();
    }
    if into.display_name.is_none() {
        into.display_name = from.display_name.clone();
    }
    for (dst, src) in [
        (&mut into.emails, &from.emails),
        (&mut into.phones, &from.phones),
        (&mut into.messaging_ids, &from.messaging_ids),
    ] {
        for v in src {
            if !dst.contains(v) {
                dst.push(v.clone());
            }
        }
    }
    into.created = into.created.min(from.created);
    into.modified = at;
}

/// The lower-cased text a contact search matches against.
pub fn search_text(c: &Contact) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(c.first_name.iter().cloned());
    parts.extend(c.last_name.iter().cloned());
    parts.extend(c.display_name.iter().cloned());
    if let (Some(f), Some(l)) = (&c.first_name, &c.last_name) {
        parts.push(format!("{f} {l}"));
    }
    parts.extend(c.emails.iter().cloned());
    parts.extend(c.phones.iter().cloned());
    parts.join("\n").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_domain::deployment::Deployment;
    use waymark_domain::ids::DeploymentId;
    use waymark_domain::journey::SessionRules;
    use waymark_domain::limits::InputLimits;
    use waymark_domain::web_event::{WebEventRequest, parse_web_event};

    /// A customer with a closed session (previous) and an open one (current).
    fn customer_with_two_sessions() -> CustomerState {
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        let d = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t");
        let mut state = CustomerState::new(CustomerId(uuid::Uuid::nil()), CookieId::parse("c").unwrap(), at);
        for (t, referrer) in [(0, None), (1_000, Some("https://news.example/a"))] {
            let req: WebEventRequest = serde_json::from_value(serde_json::json!({
                "customerCookieId": "c", "eventName": "page_viewed", "referrerUrl": referrer,
                "page": {"url": "https://shop.example/p", "title": "P"}, "createdDate": at.plus_millis(t).to_iso(),
            }))
            .unwrap();
            let ev = parse_web_event(req, &d, &InputLimits::default(), at.plus_millis(t), None, None).unwrap();
            place_web_event(
                &mut state,
                &ev,
                &Default::default(),
                &SessionRules::default(),
                TraitIdentity::default(),
                new_uuid,
            );
        }
        assert!(state.current.is_some() && state.previous.is_some());
        state
    }

    proptest::proptest! {
        /// A web event stored compactly expands, from its row's columns, to the whole event; a body stored
        /// whole is left as it is. The customer id is any text, even one holding the member names the
        /// expansion looks for.
        #[test]
        fn a_compact_web_event_expands_to_the_whole_event(
            customer in proptest::prop_oneof![
                proptest::strategy::Strategy::boxed("[a-zA-Z0-9 \"\\\\{}:,é]{0,40}"),
                proptest::strategy::Strategy::boxed(proptest::strategy::Just("x\",\"webEvent\":{\"id\":".to_string())),
            ],
            title in "[a-zA-Z \"\\\\{}:,]{0,30}",
            with_type in proptest::bool::ANY,
            packed in proptest::bool::ANY,
        ) {
            let at = Timestamp::from_unix_millis(1_800_000_000_123);
            let d = Deployment::new(OrgId(uuid::Uuid::nil()), DeploymentId(uuid::Uuid::nil()), "t");
            let req: WebEventRequest = serde_json::from_value(serde_json::json!({
                "customerCookieId": "c", "eventName": "page_viewed",
                "page": {"url": "https://shop.example/p?q=a", "title": title}, "createdDate": at.to_iso(),
                "attributes": {"cart": {"dataType": "number", "value": 2}},
            }))
            .unwrap();
            let ev = parse_web_event(req, &d, &InputLimits::default(), at, None, None).unwrap();
            let form = if packed { WebFieldsForm::Packed } else { WebFieldsForm::Json };
            let fields = RequestFields::of(&ev, form).unwrap();
            let mut state = CustomerState::new(CustomerId(uuid::Uuid::nil()), ev.cookie_id.clone(), at);
            let mut placed =
                place_web_event(&mut state, &ev, &Default::default(), &SessionRules::default(), TraitIdentity::default(), new_uuid);
            placed.event.customer_id = Some(customer);
            if !with_type {
                placed.event.customer_id_type = None;
            }
            let event = placed.event.clone();
            let stored = encode_compact_web_event(&mut placed.event, &fields).unwrap();
            let compact = match &stored {
                EventBody::Json(j) => {
                    proptest::prop_assert!(!packed);
                    j.clone()
                }
                EventBody::Packed(p) => {
                    proptest::prop_assert!(packed);
                    proptest::prop_assert!(p.len() + 100 < encode_event(&event).unwrap().len() / 2, "{} bytes", p.len());
                    unpack_web_event(p).unwrap()
                }
            };
            proptest::prop_assert!(compact.len() + 250 < encode_event(&event).unwrap().len(), "{compact}");
            let whole = expand_web_event(&compact, &event.id, &event.session.id, event.created_date.unix_millis());
            let whole: serde_json::Value = serde_json::from_str(&whole.unwrap()).unwrap();
            proptest::prop_assert_eq!(&whole, &serde_json::to_value(&event).unwrap());
            let via_body: serde_json::Value = serde_json::from_str(&stored.into_whole_json(&event).unwrap()).unwrap();
            proptest::prop_assert_eq!(via_body, whole);
            let stored_whole = encode_event(&event).unwrap();
            proptest::prop_assert!(expand_web_event(&stored_whole, &event.id, &event.session.id, 0).is_none());
        }
    }

    #[test]
    fn a_state_stored_with_its_sessions_apart_comes_back_whole_from_the_session_rows() {
        let mut state = customer_with_two_sessions();
        let before = state.clone();
        let rows: HashMap<String, Session> = [&state.current, &state.previous]
            .into_iter()
            .flatten()
            .map(|o| (o.session.id.clone(), o.session.clone()))
            .collect();
        let blob = encode_state_sessions_apart(&mut state).unwrap();
        assert_eq!(state, before, "encoding leaves the state as it was");
        assert!(blob.len() < encode_state(&state).unwrap().len());
        let stored = decode_stored_state(&blob).unwrap();
        assert!(stored.sessions_apart);
        assert_eq!(stored.state.current.as_ref().unwrap().session.id, before.current.as_ref().unwrap().session.id);
        assert_ne!(stored.state, before, "the sessions are stubs until rehydrated");
        let back = stored.rehydrate(|id| Ok(rows.get(id).cloned())).unwrap();
        assert_eq!(back, before);
        // A full state (the PostgreSQL layout, and SQLite rows written before) needs no rows.
        let full = decode_stored_state(&encode_state(&before).unwrap()).unwrap();
        assert!(!full.sessions_apart);
        assert_eq!(full.rehydrate(|_| panic!("no row is read")).unwrap(), before);
    }

    #[test]
    fn a_stub_session_whose_row_is_gone_is_dropped() {
        let mut state = customer_with_two_sessions();
        let current = state.current.as_ref().unwrap().session.clone();
        let blob = encode_state_sessions_apart(&mut state).unwrap();
        let back = decode_stored_state(&blob)
            .unwrap()
            .rehydrate(|id| Ok((id == current.id).then(|| current.clone())))
            .unwrap();
        assert_eq!(back.current.unwrap().session, current);
        assert!(back.previous.is_none(), "retention removed the previous session's row");
    }

    #[test]
    fn a_state_is_encoded_byte_for_byte_as_before_the_reused_buffer() {
        let state = customer_with_two_sessions();
        // What the encoder wrote before it compressed into a buffer of its own: the tag, then lz4_flex's
        // size-prepended block. Rows written either way must read the same.
        let mut before = vec![STATE_LZ4];
        before.extend_from_slice(&lz4_flex::compress_prepend_size(&serde_json::to_vec(&state).unwrap()));
        assert_eq!(encode_state(&state).unwrap(), before);
        // The reused buffer holds no trace of a larger state encoded before.
        let mut small = CustomerState::new(
            CustomerId(uuid::Uuid::nil()),
            CookieId::parse("s").unwrap(),
            Timestamp::from_unix_millis(0),
        );
        small.version = 3;
        assert_eq!(decode_state(&encode_state(&small).unwrap()).unwrap(), small);
        assert_eq!(decode_state(&encode_state(&state).unwrap()).unwrap(), state);
    }
}
