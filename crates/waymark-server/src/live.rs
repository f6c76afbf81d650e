//! The live hub: journey changes fan out to connected agents by server push (SSE), without polling the
//! database. One broadcast channel per organisation carries [`LiveMessage`]s from the ingest path (and, with
//! several nodes, from the store's change feed); each stream filters them for the customer it watches and the
//! caller's permissions. A short replay ring per organisation lets a reconnecting browser resume from its
//! `Last-Event-ID`; when it fell too far behind it is told to `resync`. An organisation nobody has watched on
//! this node for [`REPLAY_GRACE`] gets no messages at all: its changes only move the sequence and empty the
//! ring, so a stream resuming from before them resyncs.

use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
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

/// How long an organisation's changes are still kept for replay after its last stream on this node went away:
/// a browser that reconnects within it (EventSource retries after a few seconds) resumes from its
/// `Last-Event-ID`. Past it, and for an organisation never watched here, changes are not turned into messages.
pub const REPLAY_GRACE: Duration = Duration::from_secs(60);

/// `OrgChannel::watched_ms` of an organisation nobody has watched on this node.
const NEVER: u64 = u64::MAX;

struct OrgChannel {
    tx: broadcast::Sender<Arc<LiveMessage>>,
    /// Also held while a stream subscribes, so that a publish sees either the stream or none of it.
    replay: Mutex<VecDeque<Arc<LiveMessage>>>,
    /// When someone last watched (milliseconds since the hub started), or [`NEVER`].
    watched_ms: AtomicU64,
}

impl OrgChannel {
    fn kept_for_replay(&self, now_ms: u64, grace: Duration) -> bool {
        let w = self.watched_ms.load(Ordering::Relaxed);
        w != NEVER && u128::from(now_ms.saturating_sub(w)) < grace.as_millis()
    }
}

/// Per-organisation fan-out with replay.
pub struct LiveHub {
    orgs: RwLock<HashMap<OrgId, Arc<OrgChannel>>>,
    seq: AtomicU64,
    connections: AtomicUsize,
    max_connections: usize,
    /// `waymark_live_messages_total`, looked up once: by name it was a registry lookup per message.
    messages: metrics::Counter,
    started: Instant,
    /// [`REPLAY_GRACE`] (tests shorten it).
    replay_grace: Duration,
}

/// Held by a live stream; see [`LiveHub::watching`].
pub struct Watching {
    hub: Arc<LiveHub>,
    org: OrgId,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.hub.unwatch(self.org);
    }
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
            started: Instant::now(),
            replay_grace: REPLAY_GRACE,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
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
                    replay: Mutex::new(VecDeque::new()),
                    watched_ms: AtomicU64::new(NEVER),
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
        let ch = self.channel(org);
        let now = self.now_ms();
        let msg = {
            let mut r = ch.replay.lock();
            if ch.tx.receiver_count() > 0 {
                ch.watched_ms.store(now, Ordering::Relaxed);
            } else if !ch.kept_for_replay(now, self.replay_grace) {
                // Nobody to send it to or to replay it for. The sequence moves and the ring empties, so that a
                // stream resuming from before this change is told of the gap.
                self.seq.fetch_add(1, Ordering::Relaxed);
                if !r.is_empty() {
                    r.clear();
                }
                return;
            }
            let msg = Arc::new(LiveMessage { seq: self.seq.fetch_add(1, Ordering::Relaxed), change });
            if r.len() == REPLAY {
                r.pop_front();
            }
            r.push_back(msg.clone());
            msg
        };
        // No receivers is fine: a stream that went away within the grace period replays from the ring.
        let _ = ch.tx.send(msg);
        self.messages.increment(1);
    }

    /// A stream of `org` ends now: its changes stay replayable for [`REPLAY_GRACE`] from now.
    fn unwatch(&self, org: OrgId) {
        if let Some(c) = self.orgs.read().get(&org) {
            c.watched_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A guard for a stream watching `org`: dropping it marks the moment the stream went away.
    pub fn watching(self: &Arc<Self>, org: OrgId) -> Watching {
        Watching { hub: self.clone(), org }
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
        ch.watched_ms.store(self.now_ms(), Ordering::Relaxed);
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

    #[test]
    fn an_organisation_nobody_watches_gets_no_messages_and_a_resume_resyncs() {
        let hub = Arc::new(LiveHub::new(10));
        let org = OrgId(uuid::Uuid::new_v4());
        let before = hub.seq.load(Ordering::Relaxed);
        hub.publish(org, change(org));
        hub.publish(org, change(org));
        assert_eq!(hub.seq.load(Ordering::Relaxed), before + 2, "the sequence still moves");
        assert!(hub.channel(org).replay.lock().is_empty(), "nothing is kept for nobody");
        let (_rx, missed, gap) = hub.subscribe(org, Some(before - 1));
        assert!(missed.is_empty());
        assert!(gap, "a stream resuming from before the unwatched changes resyncs");
    }

    #[test]
    fn changes_after_the_last_stream_left_replay_within_the_grace_period_only() {
        // The stream left just now: a change is kept, and a reconnect replays it without a gap.
        let hub = Arc::new(LiveHub::new(10));
        let org = OrgId(uuid::Uuid::new_v4());
        let last = left_after_one_change(&hub, org);
        hub.publish(org, change(org));
        let (_rx, missed, gap) = hub.subscribe(org, Some(last));
        assert_eq!(missed.len(), 1);
        assert!(!gap);

        // Past the grace period (here none at all), changes are dropped and a reconnect resyncs.
        let mut hub = LiveHub::new(10);
        hub.replay_grace = Duration::ZERO;
        let hub = Arc::new(hub);
        let last = left_after_one_change(&hub, org);
        hub.publish(org, change(org));
        assert!(hub.channel(org).replay.lock().is_empty());
        let (_rx, missed, gap) = hub.subscribe(org, Some(last));
        assert!(missed.is_empty());
        assert!(gap);
    }

    /// A stream watches `org`, hears one change and goes away; returns that change's sequence number.
    fn left_after_one_change(hub: &Arc<LiveHub>, org: OrgId) -> u64 {
        let watching = hub.watching(org);
        let (rx, _, _) = hub.subscribe(org, None);
        hub.publish(org, change(org));
        drop(rx);
        drop(watching);
        hub.seq.load(Ordering::Relaxed) - 1
    }
}
