//! Background maintenance, run periodically by the server's one maintenance task: close web sessions that
//! timed out (so they show as ended and models can learn from them), purge data past retention, delete access
//! tokens long expired (sign-in sessions and OAuth tokens would pile up otherwise), and trim rate-limiter
//! state. With several nodes on one database, the store's job lease makes one node do the
//! store's part per run.

use crate::accounts::Token;
use crate::live::LiveChange;
use crate::state::AppState;
use std::sync::Arc;
use waymark_domain::Timestamp;
use waymark_store::{RecordKind, StoreResult};

/// How long an expired token's record is kept (it still shows as expired in token listings meanwhile).
pub const EXPIRED_TOKEN_KEPT_SECS: i64 = 86_400;

/// Delete the records of tokens that expired more than [`EXPIRED_TOKEN_KEPT_SECS`] before `now`; returns how
/// many. An expired token is refused whether its record exists or not.
pub async fn purge_expired_tokens(state: &AppState, now: Timestamp) -> StoreResult<usize> {
    let cutoff = now.minus_secs(EXPIRED_TOKEN_KEPT_SECS);
    let mut purged = 0;
    for r in state.store.list_records(RecordKind::Token, None).await? {
        let Ok(token) = r.decode::<Token>() else { continue };
        if token.expires.is_some_and(|e| e < cutoff)
            && state.store.delete_record(RecordKind::Token, Some(token.org), &r.id).await?
        {
            purged += 1;
        }
    }
    Ok(purged)
}

pub async fn run_once(state: &AppState) {
    state.limiters.shrink();
    let lease = match state.store.job_lease("maintenance").await {
        Ok(Some(lease)) => lease,
        Ok(None) => {
            tracing::debug!("another node runs maintenance now");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "maintenance skipped: the store is unavailable");
            return;
        }
    };
    let now = state.clock.now();
    let idle_before = now.minus_secs(state.config.session_timeout_secs);
    match state.store.close_idle_sessions(idle_before, 5_000).await {
        Ok(closed) => {
            for rec in &closed {
                state.hub.publish(rec.org, LiveChange::Session(Arc::new(rec.clone())));
            }
            state.predictions.train(state, closed).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "closing idle sessions failed");
            state.predictions.train(state, Vec::new()).await;
        }
    }
    let cutoff = now.minus_secs(state.config.retention_days * 86_400);
    match state.store.purge_before(cutoff).await {
        Ok(r) if r.events + r.sessions + r.customers > 0 => {
            tracing::info!(
                events = r.events,
                sessions = r.sessions,
                customers = r.customers,
                "purged data past retention"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
    match purge_expired_tokens(state, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(tokens = n, "deleted long-expired access tokens"),
        Err(e) => tracing::warn!(error = %e, "purging expired tokens failed"),
    }
    lease.release().await;
}
