//! Reads of the PostgreSQL store (the same queries as the embedded store's). Every hot query is an index
//! range scan: a session by primary key `(org_id, id)`, a session's events by `(org_id, session_id,
//! created_ms, id)` (pruned to the partitions of the requested time), a contact's or customer's sessions by
//! `(org_id, contact_id | customer_id, created_ms DESC, id DESC)`.

use super::pg_err;
use crate::ingest::{decode_event, decode_session, with_contact_ref};
use crate::types::*;
use crate::{JourneyReads, Record, RecordKind, StoreError, StoreResult};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use waymark_domain::Timestamp;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, CustomerId, OrgId, SessionId};
use waymark_domain::web_event::CookieId;

#[async_trait]
impl JourneyReads for super::PgStore {
    async fn session_with_events_json(
        &self,
        org: OrgId,
        id: SessionId,
        page: &EventPage,
    ) -> StoreResult<Option<(SessionRecord, Vec<StoredEventJson>)>> {
        let c = self.client().await?;
        let Some(s) = session(&c, org, &id.to_string()).await? else { return Ok(None) };
        Ok(Some((s, session_events_json(&c, org, id, page).await?)))
    }

    async fn contact_sessions_json(
        &self,
        org: OrgId,
        contact: ContactId,
        page: &SessionPage,
    ) -> StoreResult<Option<Vec<StoredSessionJson>>> {
        contact_sessions_json(&self.client().await?, org, contact, page).await
    }

    async fn customer_sessions_json(
        &self,
        org: OrgId,
        cookie: &CookieId,
        page: &SessionPage,
    ) -> StoreResult<Vec<StoredSessionJson>> {
        customer_sessions_json(&self.client().await?, org, cookie, page).await
    }
}

pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Run a query through the connection's prepared-statement cache.
pub(crate) async fn query<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query(&st, params).await.map_err(pg_err)
}

pub(crate) async fn query_opt<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query_opt(&st, params).await.map_err(pg_err)
}

pub(crate) async fn execute<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    let st = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.execute(&st, params).await.map_err(pg_err)
}

pub(crate) fn session_from_row(org: OrgId, r: &Row) -> StoreResult<SessionRecord> {
    let customer: Option<Uuid> = r.get("customer_id");
    let contact: Option<Uuid> = r.get("contact_id");
    let body: &str = r.get("body");
    let contact_id = contact.map(ContactId);
    Ok(SessionRecord {
        org,
        customer_id: customer.map(CustomerId),
        contact_id,
        session: with_contact_ref(decode_session(body)?, contact_id),
    })
}

pub(crate) async fn session<C: GenericClient>(c: &C, org: OrgId, id: &str) -> StoreResult<Option<SessionRecord>> {
    let row = query_opt(
        c,
        "SELECT customer_id, contact_id, body FROM sessions WHERE org_id = $1 AND id = $2",
        &[&org.0, &id],
    )
    .await?;
    row.map(|r| session_from_row(org, &r)).transpose()
}

pub(crate) async fn session_events<C: GenericClient>(
    c: &C,
    org: OrgId,
    session: SessionId,
    page: &EventPage,
) -> StoreResult<Vec<Event>> {
    session_events_json(c, org, session, page).await?.iter().map(|e| decode_event(&e.body)).collect()
}

/// A page of a session's events as stored.
pub(crate) async fn session_events_json<C: GenericClient>(
    c: &C,
    org: OrgId,
    session: SessionId,
    page: &EventPage,
) -> StoreResult<Vec<StoredEventJson>> {
    let (mut after_ms, mut after_id) = match &page.after {
        Some((t, id)) => (t.unix_millis(), id.clone()),
        None => (i64::MIN, String::new()),
    };
    let types: Vec<&str> = page.types.iter().map(|t| t.as_str()).collect();
    let limit = page.limit.clamp(1, 10_000) as i64;
    let sid = session.to_string();
    let mut out = Vec::new();
    // Filtering by type happens after the range scan; fetch in chunks until the page is full.
    loop {
        let chunk = if types.is_empty() { limit } else { limit.max(200) };
        let rows = query(
            c,
            "SELECT type, created_ms, id, body FROM events
             WHERE org_id = $1 AND session_id = $2 AND (created_ms, id) > ($3, $4)
             ORDER BY created_ms, id LIMIT $5",
            &[&org.0, &sid, &after_ms, &after_id, &chunk],
        )
        .await?;
        let n = rows.len() as i64;
        for r in rows {
            let e = StoredEventJson { event_type: r.get(0), created_ms: r.get(1), id: r.get(2), body: r.get(3) };
            after_ms = e.created_ms;
            after_id = e.id.clone();
            if types.is_empty() || types.contains(&e.event_type.as_str()) {
                out.push(e);
                if out.len() as i64 >= limit {
                    return Ok(out);
                }
            }
        }
        if n < chunk {
            return Ok(out);
        }
    }
}

fn before(page: &SessionPage) -> (i64, String) {
    match &page.before {
        Some((t, id)) => (t.unix_millis(), id.clone()),
        None => (i64::MAX, String::new()),
    }
}

pub(crate) async fn contact_sessions<C: GenericClient>(
    c: &C,
    org: OrgId,
    contact: ContactId,
    page: &SessionPage,
) -> StoreResult<Vec<SessionRecord>> {
    let (before_ms, before_id) = before(page);
    let since = page.since.unix_millis();
    let limit = page.limit.clamp(1, 1000) as i64;
    let rows = query(
        c,
        "SELECT customer_id, contact_id, body FROM sessions
         WHERE org_id = $1 AND contact_id = $2 AND (created_ms, id) < ($3, $4) AND last_ms >= $5
         ORDER BY created_ms DESC, id DESC LIMIT $6",
        &[&org.0, &contact.0, &before_ms, &before_id, &since, &limit],
    )
    .await?;
    rows.iter().map(|r| session_from_row(org, r)).collect()
}

fn stored_session(r: &Row) -> StoredSessionJson {
    StoredSessionJson {
        contact_id: r.get::<_, Option<Uuid>>(0).map(ContactId),
        created_ms: r.get(1),
        id: r.get(2),
        body: r.get(3),
    }
}

/// A contact's sessions as stored, following merges; `None` when there is no such contact.
pub(crate) async fn contact_sessions_json<C: GenericClient>(
    c: &C,
    org: OrgId,
    contact: ContactId,
    page: &SessionPage,
) -> StoreResult<Option<Vec<StoredSessionJson>>> {
    let Some(contact) = surviving_contact(c, org, contact).await? else { return Ok(None) };
    let (before_ms, before_id) = before(page);
    let since = page.since.unix_millis();
    let limit = page.limit.clamp(1, 1000) as i64;
    let rows = query(
        c,
        "SELECT contact_id, created_ms, id, body FROM sessions
         WHERE org_id = $1 AND contact_id = $2 AND (created_ms, id) < ($3, $4) AND last_ms >= $5
         ORDER BY created_ms DESC, id DESC LIMIT $6",
        &[&org.0, &contact.0, &before_ms, &before_id, &since, &limit],
    )
    .await?;
    Ok(Some(rows.iter().map(stored_session).collect()))
}

/// A customer's sessions as stored.
pub(crate) async fn customer_sessions_json<C: GenericClient>(
    c: &C,
    org: OrgId,
    cookie: &CookieId,
    page: &SessionPage,
) -> StoreResult<Vec<StoredSessionJson>> {
    let row = query_opt(
        c,
        "SELECT id FROM customers WHERE org_id = $1 AND cookie_id = $2 AND state IS NOT NULL",
        &[&org.0, &cookie.as_str()],
    )
    .await?;
    let Some(customer) = row.and_then(|r| r.get::<_, Option<Uuid>>(0)) else { return Ok(Vec::new()) };
    let (before_ms, before_id) = before(page);
    let since = page.since.unix_millis();
    let limit = page.limit.clamp(1, 1000) as i64;
    let rows = query(
        c,
        "SELECT contact_id, created_ms, id, body FROM sessions
         WHERE org_id = $1 AND customer_id = $2 AND (created_ms, id) < ($3, $4) AND last_ms >= $5
         ORDER BY created_ms DESC, id DESC LIMIT $6",
        &[&org.0, &customer, &before_ms, &before_id, &since, &limit],
    )
    .await?;
    Ok(rows.iter().map(stored_session).collect())
}

pub(crate) async fn customer_sessions<C: GenericClient>(
    c: &C,
    org: OrgId,
    cookie: &CookieId,
    page: &SessionPage,
) -> StoreResult<Vec<SessionRecord>> {
    let Some(cust) = customer(c, org, cookie).await? else { return Ok(Vec::new()) };
    let (before_ms, before_id) = before(page);
    let since = page.since.unix_millis();
    let limit = page.limit.clamp(1, 1000) as i64;
    let rows = query(
        c,
        "SELECT customer_id, contact_id, body FROM sessions
         WHERE org_id = $1 AND customer_id = $2 AND (created_ms, id) < ($3, $4) AND last_ms >= $5
         ORDER BY created_ms DESC, id DESC LIMIT $6",
        &[&org.0, &cust.id.0, &before_ms, &before_id, &since, &limit],
    )
    .await?;
    rows.iter().map(|r| session_from_row(org, r)).collect()
}

pub(crate) async fn customer<C: GenericClient>(
    c: &C,
    org: OrgId,
    cookie: &CookieId,
) -> StoreResult<Option<CustomerRecord>> {
    let row = query_opt(
        c,
        "SELECT id, contact_id, created_ms, state FROM customers
         WHERE org_id = $1 AND cookie_id = $2 AND state IS NOT NULL",
        &[&org.0, &cookie.as_str()],
    )
    .await?;
    let Some(r) = row else { return Ok(None) };
    let id: Option<Uuid> = r.get(0);
    let contact: Option<Uuid> = r.get(1);
    let state = crate::ingest::decode_state(r.get::<_, &[u8]>(3))?;
    Ok(Some(CustomerRecord {
        org,
        id: CustomerId(id.ok_or_else(|| StoreError::Corrupt(format!("customer {} has no id", cookie.as_str())))?),
        cookie_id: cookie.clone(),
        contact_id: contact.map(ContactId),
        created: Timestamp::from_unix_millis(r.get(2)),
        total_events: state.total_events,
    }))
}

/// A contact row exactly as stored (no merge following).
pub(crate) async fn contact_exact<C: GenericClient>(c: &C, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
    let row = query_opt(c, "SELECT body FROM contacts WHERE org_id = $1 AND id = $2", &[&org.0, &id.0]).await?;
    row.map(|r| serde_json::from_str(r.get(0)).map_err(|e| StoreError::Corrupt(format!("contact {id}: {e}"))))
        .transpose()
}

/// The contact `id` was merged into (through any chain of merges), `id` itself when it was not merged, `None`
/// when there is no such contact.
async fn surviving_contact<C: GenericClient>(c: &C, org: OrgId, id: ContactId) -> StoreResult<Option<ContactId>> {
    let mut current = id;
    for _ in 0..16 {
        let row = query_opt(c, "SELECT merged_into FROM contacts WHERE org_id = $1 AND id = $2", &[&org.0, &current.0])
            .await?;
        match row.map(|r| r.get::<_, Option<Uuid>>(0)) {
            None => return Ok(None),
            Some(Some(next)) => current = ContactId(next),
            Some(None) => break,
        }
    }
    Ok(Some(current))
}

/// A contact, following merges to the survivor, with its cookie ids.
pub(crate) async fn contact<C: GenericClient>(c: &C, org: OrgId, id: ContactId) -> StoreResult<Option<Contact>> {
    let Some(current) = surviving_contact(c, org, id).await? else { return Ok(None) };
    let Some(mut contact) = contact_exact(c, org, current).await? else { return Ok(None) };
    let rows = query(
        c,
        "SELECT cookie_id FROM customers WHERE org_id = $1 AND contact_id = $2 AND state IS NOT NULL LIMIT 100",
        &[&org.0, &current.0],
    )
    .await?;
    contact.cookie_ids = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    Ok(Some(contact))
}

async fn identifier_owner<C: GenericClient>(
    c: &C,
    org: OrgId,
    kind: &str,
    value: &str,
) -> StoreResult<Option<ContactId>> {
    let row = query_opt(
        c,
        "SELECT contact_id FROM contact_identifiers WHERE org_id = $1 AND kind = $2 AND value = $3",
        &[&org.0, &kind, &value],
    )
    .await?;
    Ok(row.map(|r| ContactId(r.get(0))))
}

pub(crate) async fn search_contacts<C: GenericClient>(
    c: &C,
    org: OrgId,
    q: &ContactQuery,
    limit: usize,
) -> StoreResult<Vec<Contact>> {
    let text = q.text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<ContactId> = Vec::new();
    // Exact identifiers first: email, phone, cookie id, contact id.
    if let Some(e) = waymark_domain::identity::Email::parse(text) {
        ids.extend(identifier_owner(c, org, "email", e.as_str()).await?);
    }
    if let Some(p) = waymark_domain::identity::Phone::parse(text, None) {
        ids.extend(identifier_owner(c, org, "phone", p.as_str()).await?);
    }
    if let Ok(cookie) = CookieId::parse(text)
        && let Some(cust) = customer(c, org, &cookie).await?
        && let Some(cid) = cust.contact_id
    {
        ids.push(cid);
    }
    if let Some(cid) = ContactId::parse(text) {
        ids.push(cid);
    }
    // Then names, emails and phones containing the text.
    let pattern = format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let lim = limit.clamp(1, 200) as i64;
    let rows = query(
        c,
        "SELECT id FROM contacts WHERE org_id = $1 AND merged_into IS NULL AND search LIKE $2
         ORDER BY updated_ms DESC LIMIT $3",
        &[&org.0, &pattern, &lim],
    )
    .await?;
    ids.extend(rows.iter().map(|r| ContactId(r.get(0))));
    let mut out: Vec<Contact> = Vec::new();
    for id in ids {
        if out.len() >= limit {
            break;
        }
        if let Some(ct) = contact(c, org, id).await?
            && !out.iter().any(|o| o.id == ct.id)
        {
            out.push(ct);
        }
    }
    Ok(out)
}

const RECORD_COLS: &str = "id, org_id, name, body, version, updated_ms";

fn to_rec(kind: RecordKind, r: &Row) -> StoreResult<Record> {
    let org: &str = r.get(1);
    Ok(Record {
        kind,
        org: if org.is_empty() { None } else { OrgId::parse(org) },
        id: r.get(0),
        name: r.get(2),
        body: serde_json::from_str(r.get(3))
            .map_err(|e| StoreError::Corrupt(format!("{} record: {e}", kind.as_str())))?,
        version: r.get(4),
        updated: Timestamp::from_unix_millis(r.get(5)),
    })
}

pub(crate) async fn record<C: GenericClient>(c: &C, kind: RecordKind, id: &str) -> StoreResult<Option<Record>> {
    let row =
        query_opt(c, &format!("SELECT {RECORD_COLS} FROM records WHERE kind = $1 AND id = $2"), &[&kind.as_str(), &id])
            .await?;
    row.map(|r| to_rec(kind, &r)).transpose()
}

pub(crate) async fn record_by_name<C: GenericClient>(
    c: &C,
    kind: RecordKind,
    org: Option<OrgId>,
    name: &str,
) -> StoreResult<Option<Record>> {
    let org = org.map(|o| o.to_string()).unwrap_or_default();
    let row = query_opt(
        c,
        &format!("SELECT {RECORD_COLS} FROM records WHERE kind = $1 AND org_id = $2 AND name_key = $3 LIMIT 1"),
        &[&kind.as_str(), &org, &name.to_lowercase()],
    )
    .await?;
    row.map(|r| to_rec(kind, &r)).transpose()
}

pub(crate) async fn records<C: GenericClient>(c: &C, kind: RecordKind, org: Option<OrgId>) -> StoreResult<Vec<Record>> {
    let rows = match org {
        Some(o) => {
            query(
                c,
                &format!("SELECT {RECORD_COLS} FROM records WHERE kind = $1 AND org_id = $2 ORDER BY name_key, id"),
                &[&kind.as_str(), &o.to_string()],
            )
            .await?
        }
        None => {
            query(
                c,
                &format!("SELECT {RECORD_COLS} FROM records WHERE kind = $1 ORDER BY name_key, id"),
                &[&kind.as_str()],
            )
            .await?
        }
    };
    rows.iter().map(|r| to_rec(kind, r)).collect()
}

pub(crate) async fn stats<C: GenericClient>(c: &C) -> StoreResult<StoreStats> {
    let r = query_opt(
        c,
        "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM sessions),
                (SELECT COUNT(*) FROM customers WHERE state IS NOT NULL),
                (SELECT COUNT(*) FROM contacts WHERE merged_into IS NULL)",
        &[],
    )
    .await?
    .ok_or_else(|| StoreError::Internal("stats returned no row".into()))?;
    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    Ok(StoreStats { events: n(0), sessions: n(1), customers: n(2), contacts: n(3) })
}

pub(crate) async fn conversation_session<C: GenericClient>(
    c: &C,
    org: OrgId,
    conversation_id: &str,
) -> StoreResult<Option<SessionId>> {
    let row = query_opt(
        c,
        "SELECT session_id FROM conversations
         WHERE org_id = $1 AND conversation_id = $2 AND NOT refused AND state IS NOT NULL",
        &[&org.0, &conversation_id],
    )
    .await?;
    match row.and_then(|r| r.get::<_, Option<String>>(0)) {
        Some(s) => {
            SessionId::parse(&s).map(Some).ok_or_else(|| StoreError::Corrupt(format!("conversation session id {s:?}")))
        }
        None => Ok(None),
    }
}
