//! `GET /api/v2/journey/sessions/{sessionId}/outcomescores`: a web session's live outcome predictions in the
//! Genesys `OutcomeScoresResult` shape, plus Waymark's `learning` flag and the `topFeatures` that drove each
//! score. The scores themselves are owned by [`crate::predictions`].

use crate::auth::Authorized;
use crate::auth::guards::OutcomeScoresView;
use crate::error::ApiResult;
use crate::journey_api::visible_session;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

/// `GET /api/v2/journey/sessions/{sessionId}/outcomescores`.
pub async fn get_outcome_scores(
    auth: Authorized<OutcomeScoresView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rec = visible_session(&state, &auth, &id).await?;
    Ok(Json(state.predictions.scores(&state, &rec).await?))
}

/// The outcome scores route.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v2/journey/sessions/{session_id}/outcomescores", axum::routing::get(get_outcome_scores))
}
