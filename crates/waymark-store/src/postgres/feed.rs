//! Live changes across nodes: every group commit queues `NOTIFY`s (delivered only if it commits) naming
//! the sessions and events it wrote; each node keeps one dedicated `LISTEN` connection (reconnecting with
//! back-off), skips its own notes, reads the named rows back and hands them to its subscribers as
//! [`RemoteChange`]s. Payloads stay small (ids only; at most [`IDS_PER_NOTE`] per note) so PostgreSQL's
//! 8000-byte limit is never reached; bodies are fetched, not sent.

use super::read::{query, session_from_row};
use super::{Shared, quote_ident};
use crate::ingest::decode_event;
use crate::types::{RemoteChange, RemoteItem, SessionRecord};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;
use waymark_domain::event::Event;
use waymark_domain::ids::OrgId;

/// Most ids in one notification.
const IDS_PER_NOTE: usize = 40;

/// One change notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Note {
    /// The node that committed it.
    pub n: String,
    /// Organisation.
    pub o: Uuid,
    /// Sessions whose state changed without a new event (closed, pinged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub s: Vec<String>,
    /// New events: (session id, created ms, event id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub e: Vec<(String, i64, String)>,
}

impl Note {
    pub(crate) fn new(node: &str, org: OrgId) -> Self {
        Note { n: node.to_string(), o: org.0, s: Vec::new(), e: Vec::new() }
    }

    /// Split into payloads of at most [`IDS_PER_NOTE`] ids each.
    pub(crate) fn into_payloads(self) -> Vec<String> {
        let mut out = Vec::new();
        let mut s = self.s.into_iter().peekable();
        let mut e = self.e.into_iter().peekable();
        while s.peek().is_some() || e.peek().is_some() {
            let part = Note {
                n: self.n.clone(),
                o: self.o,
                s: s.by_ref().take(IDS_PER_NOTE).collect(),
                e: e.by_ref().take(IDS_PER_NOTE).collect(),
            };
            if let Ok(p) = serde_json::to_string(&part) {
                out.push(p);
            }
        }
        out
    }
}

/// Keep a `LISTEN` connection open for as long as the store lives, reconnecting after failures.
pub(crate) async fn listen(shared: Arc<Shared>, pg: tokio_postgres::Config) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match pg.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_string()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the PostgreSQL change listener lost its connection");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {}", quote_ident(&shared.channel))).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        tracing::debug!(channel = %shared.channel, "listening for other nodes' changes");
                        while let Some(payload) = rx.recv().await {
                            handle(&shared, &payload).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                }
                driver.abort();
                drop(client);
            }
            Err(e) => tracing::warn!(error = %e, "the PostgreSQL change listener cannot connect; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn handle(shared: &Shared, payload: &str) {
    let note: Note = match serde_json::from_str(payload) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed change notification");
            return;
        }
    };
    if note.n == shared.node || shared.feed.receiver_count() == 0 {
        return;
    }
    let org = OrgId(note.o);
    let watched = shared.interest.read().as_ref().is_none_or(|watched| watched(org));
    if !watched {
        // Reading the rows back would cost this node as much as writing them cost the other one.
        metrics::counter!("waymark_remote_changes_skipped_total").increment(1);
        let _ = shared.feed.send(Arc::new(RemoteChange { org, items: Vec::new(), skipped: true }));
        return;
    }
    match fetch(shared, &note).await {
        Ok(change) => {
            metrics::counter!("waymark_remote_changes_total").increment(change.items.len() as u64);
            let _ = shared.feed.send(Arc::new(change));
        }
        Err(e) => tracing::warn!(error = %e, "could not read another node's changes"),
    }
}

/// Read the sessions and events a note names, in the order the other node published them.
async fn fetch(shared: &Shared, note: &Note) -> crate::StoreResult<RemoteChange> {
    let client = shared.pool.get().await.map_err(super::pool_err)?;
    let org = OrgId(note.o);
    let mut ids: Vec<&str> = note.s.iter().map(String::as_str).collect();
    ids.extend(note.e.iter().map(|e| e.0.as_str()));
    ids.sort_unstable();
    ids.dedup();
    let rows = query(
        &client,
        "SELECT id, customer_id, contact_id, body FROM sessions WHERE org_id = $1 AND id = ANY($2)",
        &[&org.0, &ids],
    )
    .await?;
    let mut sessions: HashMap<String, SessionRecord> = HashMap::new();
    for r in rows {
        sessions.insert(r.get(0), session_from_row(org, &r)?);
    }
    let mut events: HashMap<String, Event> = HashMap::new();
    if !note.e.is_empty() {
        let sids: Vec<&str> = note.e.iter().map(|e| e.0.as_str()).collect();
        let times: Vec<i64> = note.e.iter().map(|e| e.1).collect();
        let eids: Vec<&str> = note.e.iter().map(|e| e.2.as_str()).collect();
        let (lo, hi) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
        let rows = query(
            &client,
            "SELECT body FROM events WHERE org_id = $1 AND created_ms BETWEEN $5 AND $6
               AND (session_id, created_ms, id) IN (SELECT * FROM unnest($2::text[], $3::int8[], $4::text[]))",
            &[&org.0, &sids, &times, &eids, &lo, &hi],
        )
        .await?;
        for r in rows {
            let ev = decode_event(r.get(0))?;
            events.insert(ev.id.clone(), ev);
        }
    }
    let mut items = Vec::new();
    for s in &note.s {
        if let Some(rec) = sessions.get(s) {
            items.push(RemoteItem::Session(Box::new(rec.clone())));
        }
    }
    let mut touched: Vec<&str> = Vec::new();
    for (sid, _, eid) in &note.e {
        if let (Some(rec), Some(ev)) = (sessions.get(sid), events.remove(eid)) {
            items.push(RemoteItem::Event { record: Box::new(rec.clone()), event: Box::new(ev) });
            if !touched.contains(&sid.as_str()) {
                touched.push(sid);
            }
        }
    }
    for sid in touched {
        if let Some(rec) = sessions.get(sid) {
            items.push(RemoteItem::Session(Box::new(rec.clone())));
        }
    }
    Ok(RemoteChange { org, items, skipped: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_split_into_small_payloads() {
        let mut n = Note::new("node", OrgId(Uuid::nil()));
        for i in 0..100 {
            n.e.push((format!("{:036}", i), 1_700_000_000_000 + i, format!("{:036}", i)));
        }
        n.s.push("closed".into());
        let parts = n.clone().into_payloads();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() < 8000), "every payload fits PostgreSQL's limit");
        let back: Vec<Note> = parts.iter().map(|p| serde_json::from_str(p).unwrap()).collect();
        assert_eq!(back.iter().map(|b| b.e.len()).sum::<usize>(), 100);
        assert_eq!(back[0].s, vec!["closed".to_string()]);
        assert_eq!(back.iter().flat_map(|b| b.e.clone()).collect::<Vec<_>>(), n.e);
    }
}
