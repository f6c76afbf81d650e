//! Reads of the embedded store. Every hot query is an index range scan: a session by primary key, a session's
//! events by `(org, session, time)`, a contact's or customer's sessions by `(org, contact|customer, created)`.

use super::sql_err;
use crate::ingest::{decode_event, decode_session, expand_web_event, with_contact_ref};
use crate::packed_event::unpack_web_event;
use crate::types::*;
use crate::{JourneyReads, Record, RecordKind, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, CustomerId, OrgId, SessionId};
use waymark_domain::web_event::CookieId;

impl super::SqliteStore {
    /// Run a journey read on a pooled connection (see [`super::ReaderPool`] for how reads are bounded).
    async fn journey_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.read(f).await
    }
}

#[async_trait]
impl JourneyReads for super::SqliteStore {
    async fn session_with_events_json(
        &self,
        org: OrgId,
        id: SessionId,
        page: &EventPage,
    ) -> StoreResult<Option<(SessionRecord, Vec<StoredEventJson>)>> {
        let page = page.clone();
        self.journey_read(move |c| {
            let Some(s) = session(c, org, id)? else { return Ok(None) };
            Ok(Some((s, session_events_json(c, org, id, &page)?)))
        })
        .await
    }

    async fn contact_sessions_json(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Option<Vec<StoredSessionJson>>> {
        let page = page.clone();
        self.journey_read(move |c| contact_sessions_json(c, org, contact, &page)).await
    }

    async fn customer_sessions_json(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<StoredSessionJson>> {
        let (page, cookie) = (page.clone(), cookie.clone());
        self.journey_read(move |c| customer_sessions_json(c, org, &cookie, &page)).await
    }
}

fn org_key(org: OrgId) -> String {
    org.to_text()
}

fn session_row(org: OrgId, r: &Row<'_>) -> rusqlite::Result<(Option<String>, Option<String>, String)> {
    let _ = org;
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn to_record(
    org: OrgId,
    (customer, contact, body): (Option<String>, Option<String>, String),
) -> StoreResult<SessionRecord> {
    let contact_id = contact.as_deref().and_then(ContactId::parse);
    Ok(SessionRecord {
        org,
        customer_id: customer.as_deref().and_then(CustomerId::parse),
        contact_id,
        session: with_contact_ref(decode_session(&body)?, contact_id),
    })
}

pub(crate) fn session(c: &Connection, org: OrgId, id: SessionId) -> StoreResult<Option<SessionRecord>> {
    let mut stmt = c
        .prepare_cached("SELECT customer_id, contact_id, body FROM sessions WHERE org_id = ?1 AND id = ?2")
        .map_err(sql_err)?;
    let row =
        stmt.query_row(params![org_key(org), id.to_string()], |r| session_row(org, r)).optional().map_err(sql_err)?;
    row.map(|r| to_record(org, r)).transpose()
}

pub(crate) fn session_events(
    c: &Connection,
    org: OrgId,
    session: SessionId,
    page: &EventPage,
) -> StoreResult<Vec<Event>> {
    session_events_json(c, org, session, page)?.iter().map(|e| decode_event(&e.body)).collect()
}

/// An event row's body as JSON: text as it is, a packed web event ([`crate::packed_event`]) as the compact
/// body it packs.
fn stored_body(value: rusqlite::types::ValueRef<'_>) -> StoreResult<String> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|e| StoreError::Corrupt(format!("event body: {e}"))),
        ValueRef::Blob(b) => unpack_web_event(b),
        other => Err(StoreError::Corrupt(format!("event body of type {:?}", other.data_type()))),
    }
}

/// A page of a session's events as stored.
pub(crate) fn session_events_json(
    c: &Connection,
    org: OrgId,
    session: SessionId,
    page: &EventPage,
) -> StoreResult<Vec<StoredEventJson>> {
    let (after_ms, after_id) = match &page.after {
        Some((t, id)) => (t.unix_millis(), id.clone()),
        None => (i64::MIN, String::new()),
    };
    let types: Vec<&str> = page.types.iter().map(|t| t.as_str()).collect();
    let limit = page.limit.clamp(1, 10_000) as i64;
    let mut out = Vec::new();
    let mut stmt = c
        .prepare_cached(
            "SELECT type, created_ms, id, body FROM events
             WHERE org_id = ?1 AND session_id = ?2 AND (created_ms, id) > (?3, ?4)
             ORDER BY created_ms, id LIMIT ?5",
        )
        .map_err(sql_err)?;
    let (org, session) = (org_key(org), session.to_string());
    // Filtering by type happens after the range scan; fetch in chunks until the page is full.
    let mut cursor = (after_ms, after_id);
    loop {
        let chunk_limit = if types.is_empty() { limit } else { limit.max(200) };
        let mut rows = stmt.query(params![org, session, cursor.0, cursor.1, chunk_limit]).map_err(sql_err)?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(sql_err)? {
            n += 1;
            let mut e = StoredEventJson {
                event_type: r.get(0).map_err(sql_err)?,
                created_ms: r.get(1).map_err(sql_err)?,
                id: r.get(2).map_err(sql_err)?,
                body: stored_body(r.get_ref(3).map_err(sql_err)?)?,
            };
            cursor = (e.created_ms, e.id.clone());
            if types.is_empty() || types.contains(&e.event_type.as_str()) {
                if let Some(whole) = expand_web_event(&e.body, &e.id, &session, e.created_ms) {
                    e.body = whole;
                }
                out.push(e);
                if out.len() as i64 >= limit {
                    return Ok(out);
                }
            }
        }
        if n < chunk_limit {
            return Ok(out);
        }
    }
}

const SESSION_JSON_COLS: &str = "contact_id, created_ms, id, body";

fn stored_session(r: &Row<'_>) -> rusqlite::Result<(Option<String>, i64, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_stored((contact, created_ms, id, body): (Option<String>, i64, String, String)) -> StoredSessionJson {
    StoredSessionJson { contact_id: contact.as_deref().and_then(ContactId::parse), created_ms, id, body }
}

pub(crate) fn contact_sessions(
    c: &Connection,
    org: OrgId,
    contact: ContactId,
    page: &SessionPage,
) -> StoreResult<Vec<SessionRecord>> {
    let (before_ms, before_id) = before(page);
    let mut stmt = c
        .prepare_cached(
            "SELECT customer_id, contact_id, body FROM sessions INDEXED BY sessions_by_contact
             WHERE org_id = ?1 AND contact_id = ?2 AND contact_id IS NOT NULL
               AND (created_ms, id) < (?3, ?4) AND last_ms >= ?5
             ORDER BY created_ms DESC, id DESC LIMIT ?6",
        )
        .map_err(sql_err)?;
    let rows: Vec<_> = stmt
        .query_map(
            params![
                org_key(org),
                contact.to_string(),
                before_ms,
                before_id,
                page.since.unix_millis(),
                page.limit.clamp(1, 1000) as i64
            ],
            |r| session_row(org, r),
        )
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    rows.into_iter().map(|r| to_record(org, r)).collect()
}

/// A contact's sessions as stored, following merges; `None` when there is no such contact.
pub(crate) fn contact_sessions_json(
    c: &Connection,
    org: OrgId,
    contact: ContactId,
    page: &SessionPage,
) -> StoreResult<Option<Vec<StoredSessionJson>>> {
    let Some(contact) = surviving_contact(c, org, contact)? else { return Ok(None) };
    let (before_ms, before_id) = before(page);
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {SESSION_JSON_COLS} FROM sessions INDEXED BY sessions_by_contact
             WHERE org_id = ?1 AND contact_id = ?2 AND contact_id IS NOT NULL
               AND (created_ms, id) < (?3, ?4) AND last_ms >= ?5
             ORDER BY created_ms DESC, id DESC LIMIT ?6"
        ))
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(
            params![
                org_key(org),
                contact.to_string(),
                before_ms,
                before_id,
                page.since.unix_millis(),
                page.limit.clamp(1, 1000) as i64
            ],
            stored_session,
        )
        .map_err(sql_err)?
        .map(|r| r.map(to_stored))
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    Ok(Some(rows))
}

pub(crate) fn customer_sessions(
    c: &Connection,
    org: OrgId,
    cookie: &CookieId,
    page: &SessionPage,
) -> StoreResult<Vec<SessionRecord>> {
    let Some(customer) = customer(c, org, cookie)? else { return Ok(Vec::new()) };
    let (before_ms, before_id) = before(page);
    let mut stmt = c
        .prepare_cached(
            "SELECT customer_id, contact_id, body FROM sessions
             WHERE org_id = ?1 AND customer_id = ?2 AND (created_ms, id) < (?3, ?4) AND last_ms >= ?5
             ORDER BY created_ms DESC, id DESC LIMIT ?6",
        )
        .map_err(sql_err)?;
    let rows: Vec<_> = stmt
        .query_map(
            params![
                org_key(org),
                customer.id.to_string(),
                before_ms,
                before_id,
                page.since.unix_millis(),
                page.limit.clamp(1, 1000) as i64
            ],
            |r| session_row(org, r),
        )
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    rows.into_iter().map(|r| to_record(org, r)).collect()
}

/// A customer's sessions as stored.
pub(crate) fn customer_sessions_json(
    c: &Connection,
    org: OrgId,
    cookie: &CookieId,
    page: &SessionPage,
) -> StoreResult<Vec<StoredSessionJson>> {
    let mut stmt =
        c.prepare_cached("SELECT id FROM customers WHERE org_id = ?1 AND cookie_id = ?2").map_err(sql_err)?;
    let customer: Option<String> =
        stmt.query_row(params![org_key(org), cookie.as_str()], |r| r.get(0)).optional().map_err(sql_err)?;
    let Some(customer) = customer else { return Ok(Vec::new()) };
    let (before_ms, before_id) = before(page);
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {SESSION_JSON_COLS} FROM sessions
             WHERE org_id = ?1 AND customer_id = ?2 AND (created_ms, id) < (?3, ?4) AND last_ms >= ?5
             ORDER BY created_ms DESC, id DESC LIMIT ?6"
        ))
        .map_err(sql_err)?;
    stmt.query_map(
        params![
            org_key(org),
            customer,
            before_ms,
            before_id,
            page.since.unix_millis(),
            page.limit.clamp(1, 1000) as i64
        ],
        stored_session,
    )
    .map_err(sql_err)?
    .map(|r| r.map(to_stored))
    .collect::<Result<_, _>>()
    .map_err(sql_err)
}

fn before(page: &SessionPage) -> (i64, String) {
    match &page.before {
        Some((t, id)) => (t.unix_millis(), id.clone()),
        None => (i64::MAX, String::new()),
    }
}

pub(crate) fn customer(c: &Connection, org: OrgId, cookie: &CookieId) -> StoreResult<Option<CustomerRecord>> {
    let mut stmt = c
        .prepare_cached("SELECT id, contact_id, created_ms, state FROM customers WHERE org_id = ?1 AND cookie_id = ?2")
        .map_err(sql_err)?;
    let row: Option<(String, Option<String>, i64, Vec<u8>)> = stmt
        .query_row(params![org_key(org), cookie.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .map_err(sql_err)?;
    let Some((id, contact, created, state)) = row else { return Ok(None) };
    let state = super::customer_row::load_state(c, org, &state)?;
    Ok(Some(CustomerRecord {
        org,
        id: CustomerId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("customer id {id}")))?,
        cookie_id: cookie.clone(),
        contact_id: contact.as_deref().and_then(ContactId::parse),
        created: Timestamp::from_unix_millis(created),
        total_events: state.total_events,
    }))
}

pub(crate) fn conversation_session(
    c: &Connection,
    org: OrgId,
    conversation_id: &str,
) -> StoreResult<Option<SessionId>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT session_id FROM conversations WHERE org_id = ?1 AND conversation_id = ?2 AND refused = 0",
        )
        .map_err(sql_err)?;
    let sid: Option<Option<String>> =
        stmt.query_row(params![org_key(org), conversation_id], |r| r.get(0)).optional().map_err(sql_err)?;
    match sid.flatten() {
        None => Ok(None),
        Some(s) => {
            SessionId::parse(&s).map(Some).ok_or_else(|| StoreError::Corrupt(format!("conversation session id {s:?}")))
        }
    }
}

/// A contact row exactly as stored (no merge following).
pub(crate) fn contact_exact(c: &Connection, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
    let mut stmt = c.prepare_cached("SELECT body FROM contacts WHERE org_id = ?1 AND id = ?2").map_err(sql_err)?;
    let body: Option<String> =
        stmt.query_row(params![org_key(org), id.to_string()], |r| r.get(0)).optional().map_err(sql_err)?;
    body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(format!("contact {id}: {e}")))).transpose()
}

/// The contact `id` was merged into (through any chain of merges), `id` itself when it was not merged, `None`
/// when there is no such contact.
fn surviving_contact(c: &Connection, org: OrgId, id: ContactId) -> StoreResult<Option<ContactId>> {
    let mut stmt =
        c.prepare_cached("SELECT merged_into FROM contacts WHERE org_id = ?1 AND id = ?2").map_err(sql_err)?;
    let mut current = id;
    for _ in 0..16 {
        let merged: Option<Option<String>> =
            stmt.query_row(params![org_key(org), current.to_string()], |r| r.get(0)).optional().map_err(sql_err)?;
        match merged {
            None => return Ok(None),
            Some(Some(next)) => match ContactId::parse(&next) {
                Some(n) => current = n,
                None => return Err(StoreError::Corrupt(format!("contact {current} merged into {next:?}"))),
            },
            Some(None) => break,
        }
    }
    Ok(Some(current))
}

/// A contact, following merges to the survivor, with its cookie ids.
pub(crate) fn contact(c: &Connection, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
    let Some(current) = surviving_contact(c, org, id)? else { return Ok(None) };
    let Some(mut contact) = contact_exact(c, org, current)? else { return Ok(None) };
    let mut stmt = c
        .prepare_cached(
            "SELECT cookie_id FROM customers INDEXED BY customers_by_contact
          WHERE org_id = ?1 AND contact_id = ?2 AND contact_id IS NOT NULL LIMIT 100",
        )
        .map_err(sql_err)?;
    contact.cookie_ids = stmt
        .query_map(params![org_key(org), current.to_string()], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    Ok(Some(contact))
}

pub(crate) fn search_contacts(c: &Connection, org: OrgId, q: &ContactQuery, limit: usize) -> StoreResult<Vec<Contact>> {
    let text = q.text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<ContactId> = Vec::new();
    // Exact identifiers first: email, phone, cookie id, contact id.
    if let Some(e) = waymark_domain::identity::Email::parse(text) {
        ids.extend(identifier_owner(c, org, "email", e.as_str())?);
    }
    if let Some(p) = waymark_domain::identity::Phone::parse(text, None) {
        ids.extend(identifier_owner(c, org, "phone", p.as_str())?);
    }
    if let Ok(cookie) = CookieId::parse(text)
        && let Some(cust) = customer(c, org, &cookie)?
        && let Some(cid) = cust.contact_id
    {
        ids.push(cid);
    }
    if let Some(cid) = ContactId::parse(text) {
        ids.push(cid);
    }
    // Then names, emails and phones containing the text.
    let pattern = format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let mut stmt = c
        .prepare_cached("SELECT id FROM contacts WHERE org_id = ?1 AND merged_into IS NULL AND search LIKE ?2 ESCAPE '\\' ORDER BY updated_ms DESC LIMIT ?3")
        .map_err(sql_err)?;
    let found: Vec<String> = stmt
        .query_map(params![org_key(org), pattern, limit.clamp(1, 200) as i64], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    ids.extend(found.iter().filter_map(|s| ContactId::parse(s)));
    let mut out: Vec<Contact> = Vec::new();
    for id in ids {
        if out.len() >= limit {
            break;
        }
        if let Some(ct) = contact(c, org, id)?
            && !out.iter().any(|o| o.id == ct.id)
        {
            out.push(ct);
        }
    }
    Ok(out)
}

fn identifier_owner(c: &Connection, org: OrgId, kind: &str, value: &str) -> StoreResult<Option<ContactId>> {
    let v: Option<String> = c
        .query_row(
            "SELECT contact_id FROM contact_identifiers WHERE org_id = ?1 AND kind = ?2 AND value = ?3",
            params![org_key(org), kind, value],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    Ok(v.and_then(|s| ContactId::parse(&s)))
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

fn to_rec(
    kind: RecordKind,
    (_, id, org, name, body, version, updated): (String, String, String, String, String, i64, i64),
) -> StoreResult<Record> {
    Ok(Record {
        kind,
        org: if org.is_empty() { None } else { OrgId::parse(&org) },
        id,
        name,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("{} record: {e}", kind.as_str())))?,
        version,
        updated: Timestamp::from_unix_millis(updated),
    })
}

const RECORD_COLS: &str = "kind, id, org_id, name, body, version, updated_ms";

pub(crate) fn record(c: &Connection, kind: RecordKind, id: &str) -> StoreResult<Option<Record>> {
    let mut stmt =
        c.prepare_cached(&format!("SELECT {RECORD_COLS} FROM records WHERE kind = ?1 AND id = ?2")).map_err(sql_err)?;
    let row = stmt.query_row(params![kind.as_str(), id], record_from_row).optional().map_err(sql_err)?;
    row.map(|r| to_rec(kind, r)).transpose()
}

pub(crate) fn record_by_name(
    c: &Connection,
    kind: RecordKind,
    org: Option<OrgId>,
    name: &str,
) -> StoreResult<Option<Record>> {
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLS} FROM records WHERE kind = ?1 AND org_id = ?2 AND name_key = ?3 LIMIT 1"
        ))
        .map_err(sql_err)?;
    let row = stmt
        .query_row(params![kind.as_str(), org.map(org_key).unwrap_or_default(), name.to_lowercase()], record_from_row)
        .optional()
        .map_err(sql_err)?;
    row.map(|r| to_rec(kind, r)).transpose()
}

pub(crate) fn records(c: &Connection, kind: RecordKind, org: Option<OrgId>) -> StoreResult<Vec<Record>> {
    let rows: Vec<_> = match org {
        Some(o) => {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLS} FROM records WHERE kind = ?1 AND org_id = ?2 ORDER BY name_key, id"
                ))
                .map_err(sql_err)?;
            stmt.query_map(params![kind.as_str(), org_key(o)], record_from_row)
                .map_err(sql_err)?
                .collect::<Result<_, _>>()
                .map_err(sql_err)?
        }
        None => {
            let mut stmt = c
                .prepare_cached(&format!("SELECT {RECORD_COLS} FROM records WHERE kind = ?1 ORDER BY name_key, id"))
                .map_err(sql_err)?;
            stmt.query_map(params![kind.as_str()], record_from_row)
                .map_err(sql_err)?
                .collect::<Result<_, _>>()
                .map_err(sql_err)?
        }
    };
    rows.into_iter().map(|r| to_rec(kind, r)).collect()
}

pub(crate) fn stats(c: &Connection) -> StoreResult<StoreStats> {
    let count = |sql: &str| -> StoreResult<u64> {
        c.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(sql_err)
    };
    Ok(StoreStats {
        events: count("SELECT COUNT(*) FROM events")?,
        sessions: count("SELECT COUNT(*) FROM sessions")?,
        customers: count("SELECT COUNT(*) FROM customers")?,
        contacts: count("SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL")?,
    })
}
