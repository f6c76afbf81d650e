//! After a commit: tell the live hub what changed (this node's commits, and other nodes' read back from the
//! store's change feed), and score the web sessions that moved.

use crate::live::LiveChange;
use crate::state::AppState;
use std::sync::Arc;
use waymark_domain::ids::OrgId;
use waymark_store::{ItemResult, RemoteChange, RemoteItem};

/// Publish the sessions and events a committed batch produced.
pub async fn publish_results(state: &AppState, org: OrgId, results: &[ItemResult]) {
    publish_owned_results(state, org, results.to_vec()).await
}

/// [`publish_results`] for results the caller no longer needs: their sessions and events move into the live
/// messages instead of being copied (the web event path, where this is per event).
pub async fn publish_owned_results(state: &AppState, org: OrgId, results: Vec<ItemResult>) {
    for r in results {
        match r {
            ItemResult::Web(stored) => {
                state.predictions.after_web_event(state, org, &stored).await;
                let stored = *stored;
                if let Some(closed) = stored.closed {
                    state.hub.publish(org, LiveChange::Session(closed));
                }
                let record = stored.session;
                state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event) });
                for d in stored.derived {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(d) });
                }
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Conversation(stored) => {
                let stored = *stored;
                let record = Arc::new(stored.session);
                state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event) });
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Pinged { session: Some(s), derived, .. } => {
                let record = Arc::new(s);
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
