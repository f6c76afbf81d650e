//! The live hub: journey changes fan out to connected agents by server push (SSE), without polling the
//! database. One broadcast channel per organisation carries [`LiveMessage`]s from the ingest path (and, with
//! several nodes, from the store's change feed); each stream filters them for the customer it watches and the
//! caller's permissions. A short replay ring per organisation lets a reconnecting browser resume from its
//! `Last-Event-ID`; when it fell too far behind it is told to `resync`.

use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::broadcast;
use waymark_domain::event::Event;
use waymark_domain::ids::{ContactId, OrgId};
use waymark_store::SessionRecord;

/// What changed.
#[derive(Debug, Clone)]
pub enum LiveChange {
    /// A session's new state.
    Session(Arc<SessionRecord>),
    /// A new event on a session (with the session's keys).
    Event { record: Arc<SessionRecord>, event: Arc<Event> },
    /// New outcome scores of a session (OutcomeScoresResult JSON, already built).
    Scores { record: Arc<SessionRecord>, scores: Arc<serde_json::Value> },
}

/// One message on an organisation's channel.
#[derive(Debug, Clone)]
pub struct LiveMessage {
    /// Increasing per node; the SSE `id`.
    pub seq: u64,
    pub change: LiveChange,
}

impl LiveMessage {
    pub fn record(&self) -> &SessionRecord {
        match &self.change {
            LiveChange::Session(r) => r,
            LiveChange::Event { record, .. } => record,
            LiveChange::Scores { record, .. } => record,
        }
    }

    /// Whether the message concerns a watched contact or customer cookie.
    pub fn concerns(&self, contact: Option<ContactId>, cookie: Option<&str>) -> bool {
        let r = self.record();
        (contact.is_some() && r.contact_id == contact)
            || (cookie.is_some() && r.session.customer_id.as_deref() == cookie)
    }
}

const REPLAY: usize = 2048;

struct OrgChannel {
    tx: broadcast::Sender<Arc<LiveMessage>>,
    replay: Mutex<VecDeque<Arc<LiveMessage>>>,
}

/// Per-organisation fan-out with replay.
pub struct LiveHub {
    orgs: RwLock<HashMap<OrgId, Arc<OrgChannel>>>,
    seq: AtomicU64,
    connections: AtomicUsize,
    max_connections: usize,
    /// `waymark_live_messages_total`, looked up once: by name it was a registry lookup per message.
    messages: metrics::Counter,
}

/// An owned slot for streams that outlive the borrow.
pub struct OwnedSlot {
    hub: Arc<LiveHub>,
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("waymark_live_connections").decrement(1.0);
    }
}

impl LiveHub {
    pub fn new(max_connections: usize) -> Self {
        LiveHub {
            orgs: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            max_connections,
            messages: metrics::counter!("waymark_live_messages_total"),
        }
    }

    fn channel(&self, org: OrgId) -> Arc<OrgChannel> {
        if let Some(c) = self.orgs.read().get(&org) {
            return c.clone();
        }
        self.orgs
            .write()
            .entry(org)
            .or_insert_with(|| {
                Arc::new(OrgChannel {
                    tx: broadcast::channel(4096).0,
                    replay: Mutex::new(VecDeque::with_capacity(REPLAY)),
                })
            })
            .clone()
    }

    /// Whether anyone on this node watches the organisation's changes.
    pub fn watched(&self, org: OrgId) -> bool {
        self.orgs.read().get(&org).is_some_and(|c| c.tx.receiver_count() > 0)
    }

    /// Changes to `org` happened that this hub did not publish (another node's, read back only while someone
    /// here watches): a stream resuming from before now must be told of the gap, so the replay restarts.
    pub fn skipped(&self, org: OrgId) {
        if let Some(c) = self.orgs.read().get(&org) {
            c.replay.lock().clear();
            self.seq.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publish a change to an organisation's listeners.
    pub fn publish(&self, org: OrgId, change: LiveChange) {
        let msg = Arc::new(LiveMessage { seq: self.seq.fetch_add(1, Ordering::Relaxed), change });
        let ch = self.channel(org);
        {
            let mut r = ch.replay.lock();
            if r.len() == REPLAY {
                r.pop_front();
            }
            r.push_back(msg.clone());
        }
        // No receivers is fine: nobody is watching.
        let _ = ch.tx.send(msg);
        self.messages.increment(1);
    }

    /// Subscribe to an organisation; returns messages after `last_seen` still in the replay ring, and whether
    /// `last_seen` was too old to replay completely.
    pub fn subscribe(
        &self,
        org: OrgId,
        last_seen: Option<u64>,
    ) -> (broadcast::Receiver<Arc<LiveMessage>>, Vec<Arc<LiveMessage>>, bool) {
        let ch = self.channel(org);
        let replay = ch.replay.lock();
        let rx = ch.tx.subscribe();
        let Some(last) = last_seen else { return (rx, Vec::new(), false) };
        let oldest = replay.front().map(|m| m.seq);
        let gap =
            oldest.is_some_and(|o| o > last + 1) || (oldest.is_none() && last + 1 < self.seq.load(Ordering::Relaxed));
        let missed = replay.iter().filter(|m| m.seq > last).cloned().collect();
        (rx, missed, gap)
    }

    /// Take a connection slot, or `None` when the node is at its limit.
    pub fn try_connect(self: &Arc<Self>) -> Option<OwnedSlot> {
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_connections {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        metrics::gauge!("waymark_live_connections").increment(1.0);
        Some(OwnedSlot { hub: self.clone() })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_domain::session::{Session, SessionType};

    fn change(org: OrgId) -> LiveChange {
        let session = Session::new("s".into(), SessionType::Web, waymark_domain::Timestamp::from_unix_millis(0));
        LiveChange::Session(Arc::new(SessionRecord { org, customer_id: None, contact_id: None, session }))
    }

    #[test]
    fn a_skipped_remote_change_is_a_gap_for_a_resuming_stream() {
        let hub = LiveHub::new(10);
        let org = OrgId(uuid::Uuid::new_v4());
        assert!(!hub.watched(org), "nobody subscribed yet");
        let (rx, _, _) = hub.subscribe(org, None);
        assert!(hub.watched(org));
        hub.publish(org, change(org));
        hub.publish(org, change(org));
        let last = hub.seq.load(Ordering::Relaxed) - 1;
        drop(rx);
        assert!(!hub.watched(org), "the only stream went away");
        // Resuming right away: nothing missed.
        let (rx, missed, gap) = hub.subscribe(org, Some(last));
        assert!(missed.is_empty() && !gap);
        drop(rx);
        // Another node changed the organisation while nobody here watched: resuming must resync.
        hub.skipped(org);
        let (_rx, missed, gap) = hub.subscribe(org, Some(last));
        assert!(missed.is_empty());
        assert!(gap, "a stream resuming across a skipped change is told of the gap");
        // And still after this node publishes again.
        hub.publish(org, change(org));
        let (_rx2, missed, gap) = hub.subscribe(org, Some(last));
        assert_eq!(missed.len(), 1);
        assert!(gap);
    }
}
