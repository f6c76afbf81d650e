//! Writes of the PostgreSQL store.
//!
//! [`PgTx`] is the [`JourneyTx`] of one group transaction. It locks the group's customers up front
//! ([`PgTx::prefetch`]), serves customer states and sessions from memory, buffers the event,
//! session and customer rows the journey logic writes, and writes them with one multi-row statement per table
//! ([`PgTx::flush`]). Contact writes (rare: only identified events) go to the database at once; before a
//! statement that updates rows by customer or contact, the buffers are flushed so it sees them.

use super::feed::Note;
use super::read::{self, execute, query, query_opt};
use super::{Shared, pg_err, pool_err};
use crate::ingest::{
    EventBody, JourneyTx, decode_session, decode_state, encode_session, encode_state, with_contact_ref,
};
use crate::types::*;
use crate::{Record, StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use uuid::Uuid;
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::identity::{Identifier, TraitIdentity};
use waymark_domain::ids::{ContactId, CustomerId, OrgId, SessionId};
use waymark_domain::journey::{CustomerState, SessionRules, expire};
use waymark_domain::session::Session;
use waymark_domain::web_event::CookieId;

type Key = (OrgId, String);

struct EventRow {
    org: Uuid,
    session_id: String,
    created: i64,
    id: String,
    ty: &'static str,
    body: String,
}

pub(crate) struct PgTx<'a> {
    t: &'a Transaction<'a>,
    shared: &'a Shared,
    /// Customer states of this group: locked and read (`None`: no customer yet), then as written.
    states: HashMap<Key, Option<CustomerState>>,
    /// Customer rows this group reserved to lock a customer that did not exist.
    reserved: HashSet<Key>,
    /// Customers this group saved.
    saved: HashSet<Key>,
    /// Conversations of this group: locked and read (`None`: not stored yet), then as written.
    conversations: HashMap<Key, Option<StoredConversation>>,
    reserved_conversations: HashSet<Key>,
    saved_conversations: HashSet<Key>,
    /// Customers saved since the last flush; their states are in `states`.
    pending_customers: HashSet<Key>,
    pending_sessions: HashMap<Key, Arc<SessionRecord>>,
    pending_events: Vec<EventRow>,
    /// Event partitions found missing while flushing; the group is retried after creating them.
    pub missing_days: BTreeSet<i64>,
}

impl<'a> PgTx<'a> {
    pub(crate) fn new(t: &'a Transaction<'a>, shared: &'a Shared) -> Self {
        PgTx {
            t,
            shared,
            states: HashMap::new(),
            reserved: HashSet::new(),
            saved: HashSet::new(),
            conversations: HashMap::new(),
            reserved_conversations: HashSet::new(),
            saved_conversations: HashSet::new(),
            pending_customers: HashSet::new(),
            pending_sessions: HashMap::new(),
            pending_events: Vec::new(),
            missing_days: BTreeSet::new(),
        }
    }

    /// Lock every customer the batches touch (in key order, so two nodes cannot deadlock on them) and read
    /// their states: two round trips per organisation, whatever the size.
    pub(crate) async fn prefetch(&mut self, batches: impl Iterator<Item = &IngestBatch>) -> StoreResult<()> {
        let mut by_org: BTreeMap<OrgId, BTreeSet<String>> = BTreeMap::new();
        for b in batches {
            let cookies = by_org.entry(b.org).or_default();
            for item in &b.items {
                if let IngestItem::Web(w) = item {
                    cookies.insert(w.event.cookie_id.as_str().to_string());
                } else if let IngestItem::Ping { cookie, .. } = item {
                    cookies.insert(cookie.as_str().to_string());
                }
            }
        }
        for (org, cookies) in by_org {
            self.lock_customers(org, cookies.into_iter().collect()).await?;
        }
        Ok(())
    }

    /// Reserve rows for customers that do not exist yet, then lock all of them and read their states.
    async fn lock_customers(&mut self, org: OrgId, cookies: Vec<String>) -> StoreResult<()> {
        if cookies.is_empty() {
            return Ok(());
        }
        let reserved = query(
            self.t,
            "INSERT INTO customers (org_id, cookie_id, created_ms, updated_ms, version)
             SELECT $1, c, 0, 0, 0 FROM unnest($2::text[]) AS c ORDER BY c
             ON CONFLICT (org_id, cookie_id) DO NOTHING RETURNING cookie_id",
            &[&org.0, &cookies],
        )
        .await?;
        for r in reserved {
            self.reserved.insert((org, r.get(0)));
        }
        let rows = query(
            self.t,
            "SELECT cookie_id, state FROM customers WHERE org_id = $1 AND cookie_id = ANY($2)
             ORDER BY cookie_id FOR UPDATE",
            &[&org.0, &cookies],
        )
        .await?;
        for c in cookies {
            self.states.entry((org, c)).or_insert(None);
        }
        for r in rows {
            let state: Option<&[u8]> = r.get(1);
            if let Some(bytes) = state {
                self.states.insert((org, r.get(0)), Some(decode_state(bytes)?));
            }
        }
        Ok(())
    }

    /// Write every buffered row: one statement per table.
    pub(crate) async fn flush(&mut self) -> StoreResult<()> {
        if !self.pending_events.is_empty() {
            let days: BTreeSet<i64> = self.pending_events.iter().map(|e| e.created.div_euclid(86_400_000)).collect();
            for d in days {
                if !self.shared.partitions.has(d) {
                    self.missing_days.insert(d);
                }
            }
            if !self.missing_days.is_empty() {
                return Err(StoreError::Internal("event partitions are missing".into()));
            }
        }
        if !self.pending_customers.is_empty() {
            let rows = std::mem::take(&mut self.pending_customers);
            let n = rows.len();
            let (mut orgs, mut cookies, mut ids, mut contacts) =
                (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut created, mut updated, mut versions, mut states) =
                (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for key in rows {
                let Some(Some(st)) = self.states.get(&key) else {
                    return Err(StoreError::Internal("a saved customer's state is missing".into()));
                };
                let (org, cookie) = key;
                orgs.push(org.0);
                cookies.push(cookie);
                ids.push(st.customer_id.0);
                contacts.push(st.contact_id.map(|c| c.0));
                created.push(st.created.unix_millis());
                updated.push(st.current.as_ref().map_or(st.created, |c| c.last_at).unix_millis());
                versions.push(st.version);
                states.push(encode_state(st)?);
            }
            execute(
                self.t,
                "INSERT INTO customers (org_id, cookie_id, id, contact_id, created_ms, updated_ms, version, state)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], $6::int8[], $7::int8[], $8::bytea[])
                 ON CONFLICT (org_id, cookie_id) DO UPDATE SET id = excluded.id, contact_id = excluded.contact_id,
                   created_ms = excluded.created_ms,
                   updated_ms = CASE WHEN excluded.updated_ms > customers.updated_ms + 3600000
                     THEN excluded.updated_ms ELSE customers.updated_ms END,
                   version = excluded.version, state = excluded.state",
                &[&orgs, &cookies, &ids, &contacts, &created, &updated, &versions, &states],
            )
            .await?;
        }
        if !self.pending_sessions.is_empty() {
            let rows = std::mem::take(&mut self.pending_sessions);
            let n = rows.len();
            let (mut orgs, mut ids, mut customers, mut contacts, mut types) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut created, mut last, mut ended, mut bodies) =
                (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let mut external = Vec::with_capacity(n);
            for ((org, id), row) in rows {
                let s = &row.session;
                orgs.push(org.0);
                ids.push(id);
                customers.push(row.customer_id.map(|c| c.0));
                contacts.push(row.contact_id.map(|c| c.0));
                types.push(s.session_type.as_str());
                created.push(s.created_date.unix_millis());
                last.push(s.last_activity_date.unwrap_or(s.created_date).unix_millis());
                ended.push(s.ended_date.is_some());
                bodies.push(encode_session(s)?);
                // A conversation session is keyed by its conversation id too (unique per organisation).
                external.push(s.conversation.as_ref().map(|c| c.id.clone()));
            }
            execute(
                self.t,
                "INSERT INTO sessions (org_id, id, customer_id, contact_id, type, created_ms, last_ms, ended, body, external_key)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::int8[], $7::int8[], $8::bool[], $9::text[], $10::text[])
                 ON CONFLICT (org_id, id) DO UPDATE SET customer_id = excluded.customer_id, contact_id = excluded.contact_id,
                   created_ms = excluded.created_ms, last_ms = excluded.last_ms, ended = excluded.ended, body = excluded.body",
                &[&orgs, &ids, &customers, &contacts, &types, &created, &last, &ended, &bodies, &external],
            )
            .await?;
        }
        if !self.pending_events.is_empty() {
            let rows = std::mem::take(&mut self.pending_events);
            let n = rows.len();
            let (mut orgs, mut sessions, mut created, mut ids, mut types, mut bodies) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in rows {
                orgs.push(e.org);
                sessions.push(e.session_id);
                created.push(e.created);
                ids.push(e.id);
                types.push(e.ty);
                bodies.push(e.body);
            }
            let st = self
                .t
                .prepare_cached(
                    "INSERT INTO events (org_id, session_id, created_ms, id, type, body)
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[])",
                )
                .await
                .map_err(pg_err)?;
            if let Err(e) = self.t.execute(&st, &[&orgs, &sessions, &created, &ids, &types, &bodies]).await {
                if e.code() == Some(&SqlState::CHECK_VIOLATION) {
                    // A partition this node believed in is gone (dropped by another node): recreate and retry.
                    for day in created.iter().map(|c| c.div_euclid(86_400_000)) {
                        self.shared.partitions.forget(day);
                        self.missing_days.insert(day);
                    }
                }
                return Err(pg_err(e));
            }
        }
        Ok(())
    }

    /// Flush, release unused reservations and queue the change notification for the other nodes; the
    /// caller commits.
    pub(crate) async fn finish(
        &mut self,
        results: &[Vec<ItemResult>],
        orgs: impl Iterator<Item = OrgId>,
    ) -> StoreResult<()> {
        self.flush().await?;
        let mut unused: BTreeMap<OrgId, Vec<String>> = BTreeMap::new();
        for key in self.reserved.difference(&self.saved) {
            unused.entry(key.0).or_default().push(key.1.clone());
        }
        for (org, cookies) in unused {
            execute(
                self.t,
                "DELETE FROM customers WHERE org_id = $1 AND cookie_id = ANY($2) AND state IS NULL",
                &[&org.0, &cookies],
            )
            .await?;
        }
        let mut unused: BTreeMap<OrgId, Vec<String>> = BTreeMap::new();
        for key in self.reserved_conversations.difference(&self.saved_conversations) {
            unused.entry(key.0).or_default().push(key.1.clone());
        }
        for (org, ids) in unused {
            execute(
                self.t,
                "DELETE FROM conversations WHERE org_id = $1 AND conversation_id = ANY($2) AND state IS NULL",
                &[&org.0, &ids],
            )
            .await?;
        }
        let mut notes: BTreeMap<OrgId, Note> = BTreeMap::new();
        for (org, results) in orgs.zip(results) {
            for r in results {
                let note = notes.entry(org).or_insert_with(|| Note::new(&self.shared.node, org));
                match r {
                    ItemResult::Web(w) => {
                        if let Some(c) = &w.closed {
                            note.s.push(c.session.id.clone());
                        }
                        for e in std::iter::once(&w.event).chain(w.derived.iter()) {
                            note.e.push((e.session.id.clone(), e.created_date.unix_millis(), e.id.clone()));
                        }
                    }
                    ItemResult::Conversation(c) => {
                        let e = &c.event;
                        note.e.push((e.session.id.clone(), e.created_date.unix_millis(), e.id.clone()));
                    }
                    ItemResult::Pinged { session: Some(s), derived, .. } => {
                        note.s.push(s.session.id.clone());
                        for e in derived {
                            note.e.push((e.session.id.clone(), e.created_date.unix_millis(), e.id.clone()));
                        }
                    }
                    ItemResult::Action(a) => {
                        note.s.push(a.session.session.id.clone());
                        if let Some(e) = &a.event {
                            note.e.push((e.session.id.clone(), e.created_date.unix_millis(), e.id.clone()));
                        }
                    }
                    _ => {}
                }
            }
        }
        let payloads: Vec<String> = notes.into_values().flat_map(|n| n.into_payloads()).collect();
        notify(self.t, &self.shared.channel, &payloads).await
    }
}

/// Queue notifications; PostgreSQL delivers them when (and only if) the transaction commits.
pub(crate) async fn notify<C: GenericClient>(c: &C, channel: &str, payloads: &[String]) -> StoreResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    query(c, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", &[&channel, &payloads]).await.map(|_| ())
}

impl JourneyTx for PgTx<'_> {
    async fn load_customer(&mut self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerState>> {
        let key = (org, cookie.as_str().to_string());
        if !self.states.contains_key(&key) {
            self.lock_customers(org, vec![key.1.clone()]).await?;
        }
        Ok(self.states.get(&key).cloned().flatten())
    }

    async fn peek_customer<R: Send>(
        &mut self,
        org: OrgId,
        cookie: &CookieId,
        look: impl FnOnce(&CustomerState) -> R + Send,
    ) -> StoreResult<Option<R>> {
        let key = (org, cookie.as_str().to_string());
        if !self.states.contains_key(&key) {
            self.lock_customers(org, vec![key.1.clone()]).await?;
        }
        Ok(self.states.get(&key).and_then(|s| s.as_ref()).map(look))
    }

    async fn save_customer(&mut self, org: OrgId, state: CustomerState) -> StoreResult<()> {
        let key = (org, state.cookie_id.as_str().to_string());
        self.saved.insert(key.clone());
        self.pending_customers.insert(key.clone());
        self.states.insert(key, Some(state));
        Ok(())
    }

    async fn load_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        let sid = id.to_string();
        if let Some(row) = self.pending_sessions.get(&(org, sid.clone())) {
            return Ok(Some(SessionRecord {
                org,
                customer_id: row.customer_id,
                contact_id: row.contact_id,
                session: with_contact_ref(row.session.clone(), row.contact_id),
            }));
        }
        read::session(self.t, org, &sid).await
    }

    async fn identifier_owner(&mut self, org: OrgId, id: &Identifier) -> StoreResult<Option<ContactId>> {
        // Serialise nodes resolving the same identifier, so it never ends up creating two contacts.
        let lock = format!("waymark-identifier:{}:{}:{}", org, id.kind(), id.value());
        query(self.t, "SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock]).await?;
        let row = query_opt(
            self.t,
            "SELECT contact_id FROM contact_identifiers WHERE org_id = $1 AND kind = $2 AND value = $3",
            &[&org.0, &id.kind(), &id.value()],
        )
        .await?;
        Ok(row.map(|r| ContactId(r.get(0))))
    }

    async fn create_contact(
        &mut self,
        org: OrgId,
        id: ContactId,
        at: Timestamp,
        identity: &TraitIdentity,
        identifiers: &[Identifier],
    ) -> StoreResult<()> {
        let contact = crate::ingest::new_contact(org, id, at, identity, identifiers);
        write_contact(self.t, &contact).await?;
        insert_identifiers(self.t, org, id, identifiers).await
    }

    async fn update_contact(
        &mut self,
        org: OrgId,
        id: ContactId,
        at: Timestamp,
        identity: &TraitIdentity,
        attach: &[Identifier],
    ) -> StoreResult<()> {
        let Some(mut contact) = read::contact_exact(self.t, org, id).await? else {
            return Err(StoreError::Corrupt(format!("contact {id} is referenced but missing")));
        };
        if crate::ingest::merge_identity_into(&mut contact, identity, attach, at) {
            write_contact(self.t, &contact).await?;
        }
        insert_identifiers(self.t, org, id, attach).await
    }

    async fn merge_contacts(
        &mut self,
        org: OrgId,
        target: ContactId,
        merged: &[ContactId],
        at: Timestamp,
    ) -> StoreResult<()> {
        self.flush().await?;
        let Some(mut into) = read::contact_exact(self.t, org, target).await? else {
            return Err(StoreError::Corrupt(format!("contact {target} is referenced but missing")));
        };
        for m in merged {
            if let Some(from) = read::contact_exact(self.t, org, *m).await? {
                crate::ingest::absorb_contact(&mut into, &from, at);
            }
            execute(
                self.t,
                "UPDATE contact_identifiers SET contact_id = $1 WHERE org_id = $2 AND contact_id = $3",
                &[&target.0, &org.0, &m.0],
            )
            .await?;
            execute(
                self.t,
                "UPDATE sessions SET contact_id = $1 WHERE org_id = $2 AND contact_id = $3",
                &[&target.0, &org.0, &m.0],
            )
            .await?;
            // Customers hold the contact id in their state too: lock and rewrite those states.
            let rows = query(
                self.t,
                "SELECT cookie_id, state FROM customers WHERE org_id = $1 AND contact_id = $2 AND state IS NOT NULL
                 ORDER BY cookie_id FOR UPDATE",
                &[&org.0, &m.0],
            )
            .await?;
            for r in rows {
                let key = (org, r.get::<_, String>(0));
                let mut st = match self.states.get(&key).cloned().flatten() {
                    Some(s) => s,
                    None => decode_state(r.get::<_, &[u8]>(1))?,
                };
                st.contact_id = Some(target);
                st.version += 1;
                self.save_customer(org, st).await?;
            }
            execute(
                self.t,
                "UPDATE contacts SET merged_into = $1, updated_ms = $2 WHERE org_id = $3 AND id = $4",
                &[&target.0, &at.unix_millis(), &org.0, &m.0],
            )
            .await?;
        }
        write_contact(self.t, &into).await
    }

    async fn link_customer(&mut self, org: OrgId, customer: CustomerId, contact: ContactId) -> StoreResult<()> {
        self.flush().await?;
        execute(
            self.t,
            "UPDATE sessions SET contact_id = $1 WHERE org_id = $2 AND customer_id = $3",
            &[&contact.0, &org.0, &customer.0],
        )
        .await?;
        execute(
            self.t,
            "UPDATE customers SET contact_id = $1 WHERE org_id = $2 AND id = $3",
            &[&contact.0, &org.0, &customer.0],
        )
        .await?;
        Ok(())
    }

    async fn insert_event_row(&mut self, org: OrgId, event: &Event, body: EventBody) -> StoreResult<()> {
        // This store keeps whole JSON bodies (it does not `stores_compact_web_events`).
        let body = body.into_whole_json(event)?;
        let created = event.created_date.unix_millis();
        self.pending_events.push(EventRow {
            org: org.0,
            session_id: event.session.id.clone(),
            created,
            id: event.id.clone(),
            ty: event.event_type.as_str(),
            body,
        });
        Ok(())
    }

    async fn upsert_session(&mut self, record: Arc<SessionRecord>) -> StoreResult<()> {
        self.pending_sessions.insert((record.org, record.session.id.clone()), record);
        Ok(())
    }

    async fn load_conversation(
        &mut self,
        org: OrgId,
        conversation_id: &str,
    ) -> StoreResult<Option<StoredConversation>> {
        let key = (org, conversation_id.to_string());
        if let Some(c) = self.conversations.get(&key) {
            return Ok(c.clone());
        }
        // Reserve a row if the conversation is new, then lock it: two nodes folding one conversation take turns.
        let reserved = query(
            self.t,
            "INSERT INTO conversations (org_id, conversation_id, updated_ms) VALUES ($1, $2, 0)
             ON CONFLICT (org_id, conversation_id) DO NOTHING RETURNING conversation_id",
            &[&org.0, &conversation_id],
        )
        .await?;
        if !reserved.is_empty() {
            self.reserved_conversations.insert(key.clone());
        }
        let row = query_opt(
            self.t,
            "SELECT session_id, refused, updated_ms, state FROM conversations
             WHERE org_id = $1 AND conversation_id = $2 FOR UPDATE",
            &[&org.0, &conversation_id],
        )
        .await?;
        let found = match row {
            Some(r) if r.get::<_, Option<&str>>(3).is_some() => {
                let session: Option<String> = r.get(0);
                let session_id = match session {
                    Some(s) => Some(
                        SessionId::parse(&s)
                            .ok_or_else(|| StoreError::Corrupt(format!("conversation session id {s:?}")))?,
                    ),
                    None => None,
                };
                let state: &str = r.get(3);
                Some(StoredConversation {
                    conversation_id: conversation_id.to_string(),
                    session_id,
                    refused: r.get(1),
                    state: serde_json::from_str(state)
                        .map_err(|e| StoreError::Corrupt(format!("conversation {conversation_id}: {e}")))?,
                    updated: Timestamp::from_unix_millis(r.get(2)),
                })
            }
            _ => None,
        };
        self.conversations.insert(key, found.clone());
        Ok(found)
    }

    async fn save_conversation(&mut self, org: OrgId, c: &StoredConversation) -> StoreResult<()> {
        let state =
            serde_json::to_string(&c.state).map_err(|e| StoreError::Internal(format!("encode conversation: {e}")))?;
        execute(
            self.t,
            "INSERT INTO conversations (org_id, conversation_id, session_id, refused, updated_ms, state)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org_id, conversation_id) DO UPDATE SET session_id = excluded.session_id,
               refused = excluded.refused, updated_ms = excluded.updated_ms, state = excluded.state",
            &[
                &org.0,
                &c.conversation_id,
                &c.session_id.map(|s| s.to_string()),
                &c.refused,
                &c.updated.unix_millis(),
                &state,
            ],
        )
        .await?;
        let key = (org, c.conversation_id.clone());
        self.saved_conversations.insert(key.clone());
        self.conversations.insert(key, Some(c.clone()));
        Ok(())
    }

    async fn delete_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<()> {
        let sid = id.to_string();
        self.pending_sessions.remove(&(org, sid.clone()));
        self.pending_events.retain(|e| !(e.org == org.0 && e.session_id == sid));
        execute(self.t, "DELETE FROM events WHERE org_id = $1 AND session_id = $2", &[&org.0, &sid]).await?;
        execute(self.t, "DELETE FROM sessions WHERE org_id = $1 AND id = $2", &[&org.0, &sid]).await?;
        Ok(())
    }
}

pub(crate) async fn upsert_session_row<C: GenericClient>(
    c: &C,
    org: OrgId,
    customer: Option<CustomerId>,
    contact: Option<ContactId>,
    s: &Session,
    external_key: Option<&str>,
) -> StoreResult<()> {
    let body = encode_session(s)?;
    let last = s.last_activity_date.unwrap_or(s.created_date).unix_millis();
    execute(
        c,
        "INSERT INTO sessions (org_id, id, customer_id, contact_id, type, created_ms, last_ms, ended, external_key, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (org_id, id) DO UPDATE SET customer_id = excluded.customer_id, contact_id = excluded.contact_id,
           created_ms = excluded.created_ms, last_ms = excluded.last_ms, ended = excluded.ended, body = excluded.body",
        &[
            &org.0,
            &s.id,
            &customer.map(|c| c.0),
            &contact.map(|c| c.0),
            &s.session_type.as_str(),
            &s.created_date.unix_millis(),
            &last,
            &s.ended_date.is_some(),
            &external_key,
            &body,
        ],
    )
    .await
    .map(|_| ())
}

async fn write_contact<C: GenericClient>(c: &C, contact: &Contact) -> StoreResult<()> {
    let body = serde_json::to_string(contact).map_err(|e| StoreError::Internal(e.to_string()))?;
    execute(
        c,
        "INSERT INTO contacts (org_id, id, merged_into, created_ms, updated_ms, search, body)
         VALUES ($1, $2, NULL, $3, $4, $5, $6)
         ON CONFLICT (org_id, id) DO UPDATE SET updated_ms = excluded.updated_ms, search = excluded.search, body = excluded.body",
        &[
            &contact.org.0,
            &contact.id.0,
            &contact.created.unix_millis(),
            &contact.modified.unix_millis(),
            &crate::ingest::search_text(contact),
            &body,
        ],
    )
    .await
    .map(|_| ())
}

async fn insert_identifiers<C: GenericClient>(
    c: &C,
    org: OrgId,
    contact: ContactId,
    ids: &[Identifier],
) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = ids.iter().map(|i| i.kind()).collect();
    let values: Vec<&str> = ids.iter().map(|i| i.value()).collect();
    execute(
        c,
        "INSERT INTO contact_identifiers (org_id, kind, value, contact_id)
         SELECT $1, k, v, $2 FROM unnest($3::text[], $4::text[]) AS x(k, v) ON CONFLICT DO NOTHING",
        &[&org.0, &contact.0, &kinds, &values],
    )
    .await
    .map(|_| ())
}

pub(crate) async fn put_record(
    t: &Transaction<'_>,
    r: &Record,
    expect_version: Option<i64>,
    unique_name: bool,
) -> StoreResult<()> {
    let org = r.org.map(|o| o.to_string()).unwrap_or_default();
    let name_key = r.name.to_lowercase();
    if unique_name {
        // Two nodes naming two records alike at once: the second waits and then sees the first.
        let lock = format!("waymark-record-name:{}:{org}:{name_key}", r.kind.as_str());
        query(t, "SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock]).await?;
        let taken = query_opt(
            t,
            "SELECT id FROM records WHERE kind = $1 AND org_id = $2 AND name_key = $3 AND id <> $4 LIMIT 1",
            &[&r.kind.as_str(), &org, &name_key, &r.id],
        )
        .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a {} named {:?} already exists", r.kind.as_str(), r.name)));
        }
    }
    if let Some(v) = expect_version {
        let current = query_opt(
            t,
            "SELECT version FROM records WHERE kind = $1 AND id = $2 FOR UPDATE",
            &[&r.kind.as_str(), &r.id],
        )
        .await?
        .map(|row| row.get::<_, i64>(0));
        if current != Some(v) {
            return Err(StoreError::Conflict(format!(
                "{} {} is at version {:?}, not {v}; reload it and apply your change again",
                r.kind.as_str(),
                r.id,
                current
            )));
        }
    }
    let body = serde_json::to_string(&r.body).map_err(|e| StoreError::Internal(e.to_string()))?;
    execute(
        t,
        "INSERT INTO records (kind, id, org_id, name, name_key, body, version, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (kind, id) DO UPDATE SET org_id = excluded.org_id, name = excluded.name, name_key = excluded.name_key,
           body = excluded.body, version = excluded.version, updated_ms = excluded.updated_ms",
        &[&r.kind.as_str(), &r.id, &org, &r.name, &name_key, &body, &r.version, &r.updated.unix_millis()],
    )
    .await
    .map(|_| ())
}

/// Close web sessions idle since before `idle_before`. Runs on one node at a time (advisory lock); the
/// closed sessions are announced to the other nodes.
pub(crate) async fn close_idle(
    shared: &Shared,
    idle_before: Timestamp,
    limit: usize,
) -> StoreResult<Vec<SessionRecord>> {
    let mut client = shared.pool.get().await.map_err(pool_err)?;
    let t = client.transaction().await.map_err(pg_err)?;
    let lock = format!("waymark-close-idle:{}", shared.schema);
    let got: bool = query_opt(&t, "SELECT pg_try_advisory_xact_lock(hashtext($1))", &[&lock])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !got {
        return Ok(Vec::new());
    }
    let idle_ms = idle_before.unix_millis();
    let candidates = query(
        &t,
        "SELECT org_id, id, customer_id FROM sessions WHERE NOT ended AND type = 'web' AND idle_bucket <= $1::int8 / 300000
           AND last_ms < $1 ORDER BY idle_bucket LIMIT $2",
        &[&idle_ms, &(limit as i64)],
    )
    .await?;
    let mut closed = Vec::with_capacity(candidates.len());
    for c in candidates {
        let org = OrgId(c.get(0));
        let sid: String = c.get(1);
        let customer: Option<Uuid> = c.get(2);
        // Customer first, then session: the same order as the ingest path.
        let cust = match customer {
            Some(cid) => query_opt(
                &t,
                "SELECT cookie_id, state FROM customers WHERE org_id = $1 AND id = $2 AND state IS NOT NULL FOR UPDATE",
                &[&org.0, &cid],
            )
            .await?,
            None => None,
        };
        let Some(srow) = query_opt(
            &t,
            "SELECT customer_id, contact_id, body FROM sessions
             WHERE org_id = $1 AND id = $2 AND NOT ended AND last_ms < $3 FOR UPDATE",
            &[&org.0, &sid, &idle_ms],
        )
        .await?
        else {
            continue;
        };
        let customer_id = srow.get::<_, Option<Uuid>>(0).map(CustomerId);
        let contact_id = srow.get::<_, Option<Uuid>>(1).map(ContactId);
        let mut session = decode_session(srow.get(2))?;
        let last = session.last_activity_date.unwrap_or(session.created_date);
        session.ended_date = Some(last);
        upsert_session_row(&t, org, customer_id, contact_id, &session, None).await?;
        if let Some(row) = cust {
            let cookie: String = row.get(0);
            let mut st = decode_state(row.get::<_, &[u8]>(1))?;
            if st.current.as_ref().is_some_and(|c| c.session.id == session.id) {
                // Any timeout shorter than the idle horizon closes it; the horizon already passed.
                let rules = SessionRules { inactivity_timeout_secs: 0 };
                let _ = expire(&mut st, &rules, idle_before.plus_millis(1).max(last.plus_millis(1)));
                execute(
                    &t,
                    "UPDATE customers SET state = $1, version = $2 WHERE org_id = $3 AND cookie_id = $4",
                    &[&encode_state(&st)?, &st.version, &org.0, &cookie],
                )
                .await?;
            }
        }
        closed.push(SessionRecord { org, customer_id, contact_id, session: with_contact_ref(session, contact_id) });
    }
    let mut notes: BTreeMap<OrgId, Note> = BTreeMap::new();
    for c in &closed {
        notes.entry(c.org).or_insert_with(|| Note::new(&shared.node, c.org)).s.push(c.session.id.clone());
    }
    let payloads: Vec<String> = notes.into_values().flat_map(|n| n.into_payloads()).collect();
    notify(&t, &shared.channel, &payloads).await?;
    t.commit().await.map_err(pg_err)?;
    Ok(closed)
}
