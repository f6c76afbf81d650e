//! After a commit: tell the live hub what changed.

use crate::live::LiveChange;
use crate::state::AppState;
use std::sync::Arc;
use waymark_domain::ids::OrgId;
use waymark_store::ItemResult;

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
            }
            ItemResult::Conversation(stored) => {
                let record = Arc::new(stored.session.clone());
                state
                    .hub
                    .publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(stored.event.clone()) });
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Pinged { session: Some(s), derived, .. } => {
                let record = Arc::new(s.clone());
                for d in derived {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(d.clone()) });
                }
                state.hub.publish(org, LiveChange::Session(record));
            }
            ItemResult::Action(stored) => {
                let record = Arc::new(stored.session.clone());
                if let Some(e) = &stored.event {
                    state.hub.publish(org, LiveChange::Event { record: record.clone(), event: Arc::new(e.clone()) });
                }
                state.hub.publish(org, LiveChange::Session(record));
            }
            _ => {}
        }
    }
}
