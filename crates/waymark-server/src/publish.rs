//! After a commit: tell the live hub what changed (this node's commits, and other nodes' read back from the
//! store's change feed), and score the web sessions that moved.

use crate::live::LiveChange;
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::Arc;
use waymark_domain::ids::OrgId;
use waymark_store::{ItemResult, RemoteChange, RemoteItem, SessionRecord};

/// Publish the sessions and events a committed batch produced.
pub async fn publish_results(state: &AppState, org: OrgId, results: &[ItemResult]) {
    publish_owned_results(state, org, results.to_vec()).await
}

/// [`publish_results`] for results the caller no longer needs: their sessions and events move into the live
/// messages instead of being copied (the web event path, where this is per event).
///
/// Web events of one session in one request (a tracker's batch) share that session's last state: each event
/// goes out with it, and the session itself once, after its last event. The states in between are superseded
/// within the same commit; sending each (and keeping each in the replay ring) cost a message and a session
/// snapshot per event.
pub async fn publish_owned_results(state: &AppState, org: OrgId, results: Vec<ItemResult>) {
    let last = last_web_states(&results);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            ItemResult::Web(stored) => {
                state.predictions.after_web_event(state, org, &stored).await;
                let stored = *stored;
                if let Some(closed) = stored.closed {
                    state.hub.publish(org, LiveChange::Session(closed));
                }
                let (record, is_last) = match last.get(stored.session.session.id.as_str()) {
                    Some((at, record)) if *at != i => (record.clone(), false),
                    _ => (stored.session, true),
                };
                state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event) });
                for d in stored.derived {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(d) });
                }
                if is_last {
                    state.hub.publish(org, LiveChange::Session(record));
                }
            }
            ItemResult::Conversation(stored) => {
                let stored = *stored;
                let record = Arc::new(stored.session);
                state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event) });
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Pinged { session: Some(s), derived, .. } => {
                let record = Arc::new(*s);
                for d in derived {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(d) });
                }
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Action(stored) => {
                let stored = *stored;
                let record = Arc::new(stored.session);
                if let Some(e) = stored.event {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(e) });
                }
                state.hub.publish(org, LiveChange::Session(record));
            }
            _ => {}
        }
    }
}

/// For each web session in `results`, the position of its last web result and that result's session state.
fn last_web_states(results: &[ItemResult]) -> HashMap<String, (usize, Arc<SessionRecord>)> {
    let mut last = HashMap::new();
    if results.len() < 2 {
        return last;
    }
    for (i, r) in results.iter().enumerate() {
        if let ItemResult::Web(stored) = r {
            last.insert(stored.session.session.id.clone(), (i, stored.session.clone()));
        }
    }
    last
}

/// Publish the changes another node committed (from [`waymark_store::Store::remote_changes`]).
pub fn publish_remote(state: &AppState, change: &RemoteChange) {
    if change.skipped {
        state.hub.skipped(change.org);
        return;
    }
    for item in &change.items {
        match item {
            RemoteItem::Session(r) => state.hub.publish(change.org, LiveChange::Session(Arc::new((**r).clone()))),
            RemoteItem::Event { record, event } => state.hub.publish(
                change.org,
                LiveChange::Event { record: Arc::new((**record).clone()), event: Arc::new((**event).clone()) },
            ),
        }
    }
}
