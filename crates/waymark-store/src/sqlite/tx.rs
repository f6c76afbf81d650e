//! Writes of the embedded store, run on the writer thread inside its group transaction.
//!
//! [`SqliteTx`] is the [`JourneyTx`] of one run of ingest jobs. Event rows are written at once; session and
//! customer rows are buffered and written once per key when the run ends ([`SqliteTx::flush`]), so a visitor's
//! 20 events in one batch rewrite its session and state once, not 20 times. Reads of a buffered session are
//! served from the buffer; statements that update sessions or customers by contact or customer flush first.
//! Most events leave the customer row alone: their session row carries what they changed ([`customer_row`]).

use super::customer_row::{self, load_state};
use super::{StateCache, sql_err};
use crate::ingest::{
    EventBody, JourneyTx, decode_session, encode_session, encode_state_sessions_apart, with_contact_ref,
};
use crate::types::*;
use crate::{Record, RecordKind, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::identity::{Identifier, TraitIdentity};
use waymark_domain::ids::{ContactId, CustomerId, OrgId, SessionId};
use waymark_domain::journey::{CustomerState, SessionRules, expire};
use waymark_domain::session::Session;
use waymark_domain::web_event::CookieId;

type Key = (OrgId, String);

pub(crate) struct SqliteTx<'a> {
    conn: &'a Connection,
    /// Committed states. [`JourneyTx::load_customer`] moves a state out of this cache (or out of `written` or
    /// `states`) instead of copying it, since its row holds the same state: the journey path gives it back
    /// through `states`, and a run that fails loses nothing a reload from the table cannot restore.
    cache: &'a mut StateCache,
    /// States written by earlier runs of this transaction.
    written: &'a mut HashMap<Key, CustomerState>,
    /// States saved by this run (the writer moves them into `written` when the run is released).
    states: &'a mut HashMap<Key, CustomerState>,
    /// Keys of `states` not yet written to the table.
    dirty_customers: HashSet<Key>,
    /// The state of the last [`JourneyTx::save_customer`], not yet written, outside `states`: a visitor's
    /// consecutive events (a tracker's batch) load and save it without a key to allocate and hash into the maps
    /// each time (4 % of the writer's time in batches). [`SqliteTx::spill_last`] moves it into `states`.
    last: Option<(Key, CustomerState)>,
    /// The key of the state [`JourneyTx::load_customer`] took from `last`: the journey path holds it, unwritten,
    /// until it saves or keeps it again.
    taken: Option<Key>,
    pending_sessions: HashMap<Key, Arc<SessionRecord>>,
}

fn org_key(org: OrgId) -> String {
    org.to_text()
}

/// How far a customer's `updated_ms` may lag behind its last activity: the column is indexed for retention,
/// and moving it on every event would rewrite an index entry per event. Retention allows for the lag.
pub(crate) const CUSTOMER_UPDATED_SLACK_MS: i64 = 3_600_000;

impl<'a> SqliteTx<'a> {
    pub(crate) fn new(
        conn: &'a Connection,
        cache: &'a mut StateCache,
        written: &'a mut HashMap<Key, CustomerState>,
        states: &'a mut HashMap<Key, CustomerState>,
    ) -> Self {
        SqliteTx {
            conn,
            cache,
            written,
            states,
            dirty_customers: HashSet::new(),
            last: None,
            taken: None,
            pending_sessions: HashMap::new(),
        }
    }

    /// Move the last saved state into `states`, marked to be written.
    fn spill_last(&mut self) {
        if let Some((key, state)) = self.last.take() {
            self.dirty_customers.insert(key.clone());
            self.states.insert(key, state);
        }
    }

    /// Keep `state` as the last saved one (spilling the one kept before), reusing the key taken with it.
    fn hold_last(&mut self, org: OrgId, state: CustomerState) {
        let key = match self.taken.take() {
            Some(k) if k.0 == org && k.1 == state.cookie_id.as_str() => k,
            other => {
                self.taken = other;
                (org, state.cookie_id.as_str().to_string())
            }
        };
        self.spill_last();
        self.last = Some((key, state));
    }

    /// Whether `taken` is the key of `state`.
    fn is_taken(&self, org: OrgId, cookie: &str) -> bool {
        self.taken.as_ref().is_some_and(|k| k.0 == org && k.1 == cookie)
    }

    /// Write the buffered session and customer rows, once per key. A customer whose current session's row is
    /// written too, and whose state changed only in what that row can carry, leaves its own row as it is
    /// ([`customer_row::save`]).
    pub(crate) fn flush(&mut self) -> StoreResult<()> {
        self.spill_last();
        let mut carried: HashMap<Key, Vec<u8>> = HashMap::new();
        for key in std::mem::take(&mut self.dirty_customers) {
            let Some(state) = self.states.get_mut(&key) else { continue };
            let session = state.current.as_ref().map(|c| (key.0, c.session.id.clone()));
            let session_row_written = session.as_ref().is_some_and(|k| self.pending_sessions.contains_key(k));
            if let (Some(part), Some(session)) =
                (customer_row::save(self.conn, key.0, state, session_row_written)?, session)
            {
                carried.insert(session, part);
            }
        }
        for (key, row) in std::mem::take(&mut self.pending_sessions) {
            let external_key = row.session.conversation.as_ref().map(|c| c.id.as_str());
            let part = carried.remove(&key);
            upsert_session_row(
                self.conn,
                key.0,
                row.customer_id,
                row.contact_id,
                &row.session,
                external_key,
                part.as_deref(),
            )?;
        }
        Ok(())
    }
}

impl JourneyTx for SqliteTx<'_> {
    async fn load_customer(&mut self, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerState>> {
        if let Some((key, _)) = &self.last
            && key.0 == org
            && key.1 == cookie.as_str()
            && let Some((key, state)) = self.last.take()
        {
            self.taken = Some(key);
            return Ok(Some(state));
        }
        let key = (org, cookie.as_str().to_string());
        if let Some(s) =
            self.states.remove(&key).or_else(|| self.written.remove(&key)).or_else(|| self.cache.take(&key))
        {
            return Ok(Some(s));
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state FROM customers WHERE org_id = ?1 AND cookie_id = ?2")
            .map_err(sql_err)?;
        let blob: Option<Vec<u8>> =
            stmt.query_row(params![org_key(org), cookie.as_str()], |r| r.get(0)).optional().map_err(sql_err)?;
        blob.map(|b| load_state(self.conn, org, &b)).transpose()
    }

    async fn save_customer(&mut self, org: OrgId, state: CustomerState) -> StoreResult<()> {
        self.hold_last(org, state);
        Ok(())
    }

    async fn keep_customer(&mut self, org: OrgId, state: CustomerState) -> StoreResult<()> {
        if self.is_taken(org, state.cookie_id.as_str()) {
            // Taken from `last`, so not written yet: it goes back unchanged, still to be written.
            self.hold_last(org, state);
            return Ok(());
        }
        // Not dirty: the row already holds it (unless a save since made a newer one, which stays).
        self.states.entry((org, state.cookie_id.as_str().to_string())).or_insert(state);
        Ok(())
    }

    async fn load_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        if let Some(p) = self.pending_sessions.get(&(org, id.to_string())) {
            return Ok(Some(SessionRecord {
                org,
                customer_id: p.customer_id,
                contact_id: p.contact_id,
                session: with_contact_ref(p.session.clone(), p.contact_id),
            }));
        }
        super::read::session(self.conn, org, id)
    }

    async fn identifier_owner(&mut self, org: OrgId, id: &Identifier) -> StoreResult<Option<ContactId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT contact_id FROM contact_identifiers WHERE org_id = ?1 AND kind = ?2 AND value = ?3")
            .map_err(sql_err)?;
        let c: Option<String> =
            stmt.query_row(params![org_key(org), id.kind(), id.value()], |r| r.get(0)).optional().map_err(sql_err)?;
        Ok(c.and_then(|s| ContactId::parse(&s)))
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
        write_contact(self.conn, &contact)?;
        insert_identifiers(self.conn, org, id, identifiers)
    }

    async fn update_contact(
        &mut self,
        org: OrgId,
        id: ContactId,
        at: Timestamp,
        identity: &TraitIdentity,
        attach: &[Identifier],
    ) -> StoreResult<()> {
        let Some(mut contact) = super::read::contact_exact(self.conn, org, id)? else {
            return Err(StoreError::Corrupt(format!("contact {id} is referenced but missing")));
        };
        if crate::ingest::merge_identity_into(&mut contact, identity, attach, at) {
            write_contact(self.conn, &contact)?;
        }
        insert_identifiers(self.conn, org, id, attach)
    }

    async fn merge_contacts(
        &mut self,
        org: OrgId,
        target: ContactId,
        merged: &[ContactId],
        at: Timestamp,
    ) -> StoreResult<()> {
        // The updates below select sessions and customers by contact: buffered rows must be in the tables.
        self.flush()?;
        let Some(mut into) = super::read::contact_exact(self.conn, org, target)? else {
            return Err(StoreError::Corrupt(format!("contact {target} is referenced but missing")));
        };
        let o = org_key(org);
        for m in merged {
            if let Some(from) = super::read::contact_exact(self.conn, org, *m)? {
                crate::ingest::absorb_contact(&mut into, &from, at);
            }
            let (t, ms) = (target.to_string(), m.to_string());
            self.conn
                .execute(
                    "UPDATE contact_identifiers SET contact_id = ?1 WHERE org_id = ?2 AND contact_id = ?3",
                    params![t, o, ms],
                )
                .map_err(sql_err)?;
            self.conn
                .execute("UPDATE sessions SET contact_id = ?1 WHERE org_id = ?2 AND contact_id = ?3", params![t, o, ms])
                .map_err(sql_err)?;
            // Customers hold the contact id in their state too: rewrite those states.
            let mut stmt = self
                .conn
                .prepare("SELECT cookie_id, state FROM customers WHERE org_id = ?1 AND contact_id = ?2")
                .map_err(sql_err)?;
            let rows: Vec<(String, Vec<u8>)> = stmt
                .query_map(params![o, ms], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql_err)?
                .collect::<Result<_, _>>()
                .map_err(sql_err)?;
            for (cookie, blob) in rows {
                let key = (org, cookie.clone());
                let mut st = match self.states.get(&key).or_else(|| self.written.get(&key)) {
                    Some(s) => s.clone(),
                    None => load_state(self.conn, org, &blob)?,
                };
                st.contact_id = Some(target);
                st.version += 1;
                self.save_customer(org, st).await?;
            }
            // States cached from earlier jobs in this transaction also point at the merged contact.
            let stale: Vec<(OrgId, String)> = self
                .written
                .iter()
                .filter(|(k, s)| k.0 == org && s.contact_id == Some(*m))
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                if let Some(mut st) = self.written.get(&key).cloned() {
                    st.contact_id = Some(target);
                    self.states.insert(key.clone(), st);
                    self.dirty_customers.insert(key);
                }
            }
            self.conn
                .execute(
                    "UPDATE contacts SET merged_into = ?1, updated_ms = ?2 WHERE org_id = ?3 AND id = ?4",
                    params![t, at.unix_millis(), o, ms],
                )
                .map_err(sql_err)?;
        }
        write_contact(self.conn, &into)
    }

    async fn link_customer(&mut self, org: OrgId, customer: CustomerId, contact: ContactId) -> StoreResult<()> {
        self.flush()?;
        let o = org_key(org);
        self.conn
            .prepare_cached("UPDATE sessions SET contact_id = ?1 WHERE org_id = ?2 AND customer_id = ?3")
            .map_err(sql_err)?
            .execute(params![contact.to_string(), o, customer.to_string()])
            .map_err(sql_err)?;
        self.conn
            .prepare_cached("UPDATE customers SET contact_id = ?1 WHERE org_id = ?2 AND id = ?3")
            .map_err(sql_err)?
            .execute(params![contact.to_string(), o, customer.to_string()])
            .map_err(sql_err)?;
        Ok(())
    }

    fn stores_compact_web_events(&self) -> bool {
        true
    }

    async fn insert_event_row(&mut self, org: OrgId, event: &Event, body: EventBody) -> StoreResult<()> {
        let o = org_key(org);
        // A packed body is a BLOB in the TEXT-declared column (SQLite keeps a value's own type); readers tell
        // the two apart by the value's type.
        use rusqlite::types::{ToSqlOutput, ValueRef};
        let body = match &body {
            EventBody::Json(j) => ToSqlOutput::Borrowed(ValueRef::Text(j.as_bytes())),
            EventBody::Packed(p) => ToSqlOutput::Borrowed(ValueRef::Blob(p)),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO events (org_id, session_id, created_ms, id, type, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(sql_err)?
            .execute(params![
                o,
                event.session.id,
                event.created_date.unix_millis(),
                event.id,
                event.event_type.as_str(),
                body
            ])
            .map_err(sql_err)?;
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
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT session_id, refused, updated_ms, state FROM conversations WHERE org_id = ?1 AND conversation_id = ?2",
            )
            .map_err(sql_err)?;
        let row: Option<(Option<String>, bool, i64, String)> = stmt
            .query_row(params![org_key(org), conversation_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
            .map_err(sql_err)?;
        let Some((session, refused, updated, state)) = row else { return Ok(None) };
        let session_id = match session {
            Some(s) => Some(
                SessionId::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("conversation session id {s:?}")))?,
            ),
            None => None,
        };
        Ok(Some(StoredConversation {
            conversation_id: conversation_id.to_string(),
            session_id,
            refused,
            state: serde_json::from_str(&state)
                .map_err(|e| StoreError::Corrupt(format!("conversation {conversation_id}: {e}")))?,
            updated: Timestamp::from_unix_millis(updated),
        }))
    }

    async fn save_conversation(&mut self, org: OrgId, c: &StoredConversation) -> StoreResult<()> {
        let state =
            serde_json::to_string(&c.state).map_err(|e| StoreError::Internal(format!("encode conversation: {e}")))?;
        self.conn
            .prepare_cached(
                "INSERT INTO conversations (org_id, conversation_id, session_id, refused, updated_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (org_id, conversation_id) DO UPDATE SET session_id = excluded.session_id,
                   refused = excluded.refused, updated_ms = excluded.updated_ms, state = excluded.state",
            )
            .map_err(sql_err)?
            .execute(params![
                org_key(org),
                c.conversation_id,
                c.session_id.map(|s| s.to_string()),
                c.refused,
                c.updated.unix_millis(),
                state
            ])
            .map_err(sql_err)?;
        Ok(())
    }

    async fn delete_session(&mut self, org: OrgId, id: SessionId) -> StoreResult<()> {
        self.flush()?;
        let (o, sid) = (org_key(org), id.to_string());
        self.conn
            .prepare_cached("DELETE FROM events WHERE org_id = ?1 AND session_id = ?2")
            .map_err(sql_err)?
            .execute(params![o, sid])
            .map_err(sql_err)?;
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE org_id = ?1 AND id = ?2")
            .map_err(sql_err)?
            .execute(params![o, sid])
            .map_err(sql_err)?;
        Ok(())
    }
}

/// Write a session's row: the body and activity in place, the indexed owner and start time only when they
/// changed. A conversation session is keyed by its conversation id too (`external_key`, unique per organisation).
/// `carried` is its customer's carried state ([`customer_row`]); without it, the row keeps the one it holds.
pub(crate) fn upsert_session_row(
    conn: &Connection,
    org: OrgId,
    customer: Option<CustomerId>,
    contact: Option<ContactId>,
    s: &Session,
    external_key: Option<&str>,
    carried: Option<&[u8]>,
) -> StoreResult<()> {
    let body = encode_session(s)?;
    let o = org_key(org);
    let last = s.last_activity_date.unwrap_or(s.created_date).unix_millis();
    let (customer, contact) = (customer.map(|c| c.to_text()), contact.map(|c| c.to_text()));
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET last_ms = ?3, ended = ?4, body = ?5, carried = COALESCE(?6, carried)
             WHERE org_id = ?1 AND id = ?2",
        )
        .map_err(sql_err)?
        .execute(params![o, s.id, last, s.ended_date.is_some(), body, carried])
        .map_err(sql_err)?;
    if changed == 0 {
        conn.prepare_cached(
            "INSERT INTO sessions (org_id, id, customer_id, contact_id, type, created_ms, last_ms, ended, external_key, body, carried)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(sql_err)?
        .execute(params![
            o,
            s.id,
            customer,
            contact,
            s.session_type.as_str(),
            s.created_date.unix_millis(),
            last,
            s.ended_date.is_some(),
            external_key,
            body,
            carried
        ])
        .map_err(sql_err)?;
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE sessions SET customer_id = ?3, contact_id = ?4, created_ms = ?5
         WHERE org_id = ?1 AND id = ?2 AND (customer_id IS NOT ?3 OR contact_id IS NOT ?4 OR created_ms IS NOT ?5)",
    )
    .map_err(sql_err)?
    .execute(params![o, s.id, customer, contact, s.created_date.unix_millis()])
    .map_err(sql_err)?;
    Ok(())
}

fn write_contact(conn: &Connection, c: &Contact) -> StoreResult<()> {
    let body = serde_json::to_string(c).map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO contacts (org_id, id, merged_into, created_ms, updated_ms, search, body) VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)
         ON CONFLICT (org_id, id) DO UPDATE SET updated_ms = excluded.updated_ms, search = excluded.search, body = excluded.body",
    )
    .map_err(sql_err)?
    .execute(params![org_key(c.org), c.id.to_string(), c.created.unix_millis(), c.modified.unix_millis(), crate::ingest::search_text(c), body])
    .map_err(sql_err)?;
    Ok(())
}

fn insert_identifiers(conn: &Connection, org: OrgId, contact: ContactId, ids: &[Identifier]) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO contact_identifiers (org_id, kind, value, contact_id) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING")
        .map_err(sql_err)?;
    for id in ids {
        stmt.execute(params![org_key(org), id.kind(), id.value(), contact.to_string()]).map_err(sql_err)?;
    }
    Ok(())
}

pub(crate) fn put_record(
    conn: &Connection,
    r: &Record,
    expect_version: Option<i64>,
    unique_name: bool,
) -> StoreResult<()> {
    let org = r.org.map(org_key).unwrap_or_default();
    let name_key = r.name.to_lowercase();
    if unique_name {
        let taken: Option<String> = conn
            .query_row(
                "SELECT id FROM records WHERE kind = ?1 AND org_id = ?2 AND name_key = ?3 AND id <> ?4",
                params![r.kind.as_str(), org, name_key, r.id],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a {} named {:?} already exists", r.kind.as_str(), r.name)));
        }
    }
    if let Some(v) = expect_version {
        let current: Option<i64> = conn
            .query_row(
                "SELECT version FROM records WHERE kind = ?1 AND id = ?2",
                params![r.kind.as_str(), r.id],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_err)?;
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
    conn.prepare_cached(
        "INSERT INTO records (kind, id, org_id, name, name_key, body, version, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (kind, id) DO UPDATE SET org_id = excluded.org_id, name = excluded.name, name_key = excluded.name_key,
           body = excluded.body, version = excluded.version, updated_ms = excluded.updated_ms",
    )
    .map_err(sql_err)?
    .execute(params![r.kind.as_str(), r.id, org, r.name, name_key, body, r.version, r.updated.unix_millis()])
    .map_err(sql_err)?;
    Ok(())
}

pub(crate) fn delete_record(conn: &Connection, kind: RecordKind, org: Option<OrgId>, id: &str) -> StoreResult<bool> {
    let n = conn
        .execute(
            "DELETE FROM records WHERE kind = ?1 AND org_id = ?2 AND id = ?3",
            params![kind.as_str(), org.map(org_key).unwrap_or_default(), id],
        )
        .map_err(sql_err)?;
    Ok(n > 0)
}

pub(crate) fn purge_before(conn: &Connection, cache: &mut StateCache, cutoff: Timestamp) -> StoreResult<PurgeReport> {
    let ms = cutoff.unix_millis();
    let events = conn.execute("DELETE FROM events WHERE created_ms < ?1", [ms]).map_err(sql_err)?;
    // The writer's cached states of customers whose rows or sessions go are dropped (a state holds its open
    // sessions); the others stay: emptying the whole cache at every run (each minute) made every active
    // visitor's next event read its state back from its rows. A purge too large to track clears it all.
    const TRACKED: usize = 100_000;
    let (mut sessions, mut owners) = (0usize, HashSet::new());
    {
        let mut stmt = conn
            .prepare("DELETE FROM sessions WHERE created_ms < ?1 AND last_ms < ?1 RETURNING org_id, customer_id")
            .map_err(sql_err)?;
        let mut rows = stmt.query([ms]).map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            sessions += 1;
            if owners.len() <= TRACKED
                && let Some(customer) = row.get::<_, Option<String>>(1).map_err(sql_err)?
            {
                owners.insert((row.get::<_, String>(0).map_err(sql_err)?, customer));
            }
        }
    }
    // `updated_ms` may lag a customer's last activity by the slack: only customers surely idle since the cutoff.
    let (mut customers, mut gone) = (0usize, HashSet::new());
    {
        let mut stmt =
            conn.prepare("DELETE FROM customers WHERE updated_ms < ?1 RETURNING org_id, cookie_id").map_err(sql_err)?;
        let mut rows = stmt.query([ms - CUSTOMER_UPDATED_SLACK_MS]).map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            customers += 1;
            if gone.len() <= TRACKED {
                gone.insert((row.get::<_, String>(0).map_err(sql_err)?, row.get::<_, String>(1).map_err(sql_err)?));
            }
        }
    }
    conn.execute("DELETE FROM conversations WHERE updated_ms < ?1", [ms]).map_err(sql_err)?;
    if owners.len() > TRACKED || gone.len() > TRACKED {
        cache.clear();
    } else if !owners.is_empty() || !gone.is_empty() {
        cache.retain(|(org, cookie), state| {
            let org = org_key(*org);
            !gone.contains(&(org.clone(), cookie.clone())) && !owners.contains(&(org, state.customer_id.to_string()))
        });
    }
    let _ = conn.execute_batch("PRAGMA incremental_vacuum(2000)");
    Ok(PurgeReport { events: events as u64, sessions: sessions as u64, customers: customers as u64 })
}

pub(crate) fn close_idle(
    conn: &Connection,
    cache: &mut StateCache,
    idle_before: Timestamp,
    limit: usize,
) -> StoreResult<Vec<SessionRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT org_id, id, customer_id, contact_id, body FROM sessions
             WHERE ended = 0 AND type = 'web' AND last_ms < ?1 ORDER BY last_ms LIMIT ?2",
        )
        .map_err(sql_err)?;
    type OpenRow = (String, String, Option<String>, Option<String>, String);
    let rows: Vec<OpenRow> = stmt
        .query_map(params![idle_before.unix_millis(), limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    let mut closed = Vec::with_capacity(rows.len());
    for (org_s, _id, customer, contact, body) in rows {
        let Some(org) = OrgId::parse(&org_s) else { continue };
        let mut session = decode_session(&body)?;
        let last = session.last_activity_date.unwrap_or(session.created_date);
        session.ended_date = Some(last);
        let customer_id = customer.as_deref().and_then(CustomerId::parse);
        let contact_id = contact.as_deref().and_then(ContactId::parse);
        // The customer's state first: it reads its open session from the row, which must still be open.
        if let Some(cid) = customer_id {
            let row: Option<(String, Vec<u8>)> = conn
                .query_row(
                    "SELECT cookie_id, state FROM customers WHERE org_id = ?1 AND id = ?2",
                    params![org_s, cid.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql_err)?;
            if let Some((cookie, blob)) = row {
                let mut st = load_state(conn, org, &blob)?;
                let is_current = st.current.as_ref().is_some_and(|c| c.session.id == session.id);
                if is_current {
                    // Any timeout shorter than the idle horizon closes it; the horizon already passed.
                    let rules = SessionRules { inactivity_timeout_secs: 0 };
                    let _ = expire(&mut st, &rules, idle_before.plus_millis(1).max(last.plus_millis(1)));
                    conn.execute(
                        "UPDATE customers SET state = ?1, version = ?2 WHERE org_id = ?3 AND cookie_id = ?4",
                        params![encode_state_sessions_apart(&mut st)?, st.version, org_s, cookie],
                    )
                    .map_err(sql_err)?;
                }
                cache.remove(&(org, cookie));
            }
        }
        upsert_session_row(conn, org, customer_id, contact_id, &session, None, None)?;
        closed.push(SessionRecord { org, customer_id, contact_id, session: with_contact_ref(session, contact_id) });
    }
    Ok(closed)
}
