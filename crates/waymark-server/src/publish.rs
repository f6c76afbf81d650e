//! After a commit: tell the live hub what changed (this node's commits, and other nodes' read back from the
//! store's change feed), and score the web sessions that moved.

use crate::live::LiveChange;
use crate::state::AppState;
use std::sync::Arc;
use waymark_domain::ids::OrgId;
use waymark_store::{ItemResult, RemoteChange, RemoteItem};

/// Publish the sessions and events a committed batch produced.
pub async fn publish_results(state: &AppState, org: OrgId, results: &[ItemResult]) {
    for r in results {
        match r {
            ItemResult::Web(stored) => {
                if let Some(closed) = &stored.closed {
                    state.hub.publish(org, LiveChange::Session(Arc::new(closed.clone())));
                }
                let record = Arc::new(stored.session.clone());
                state
                    .hub
                    .publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event.clone()) });
                for d in &stored.derived {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(d.clone()) });
                }
                state.hub.publish(org, LiveChange::Session(record));
                state.predictions.after_web_event(state, org, stored).await;
            }
            ItemResult::Conversation(stored) => {
                let record = Arc::new(stored.session.clone());
                state
                    .hub
                    .publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event.clone()) });
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Pinged { session: Some(s) } => {
                state.hub.publish(org, LiveChange::Session(Arc::new(s.clone())));
            }
            _ => {}
        }
    }
}

/// Publish the changes another node committed (from [`waymark_store::Store::remote_changes`]).
pub fn publish_remote(state: &AppState, change: &RemoteChange) {
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
