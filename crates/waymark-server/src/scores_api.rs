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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `GET /api/v2/journey/sessions/{sessionId}/outcomescores`.
#[utoipa::path(get, path = "/api/v2/journey/sessions/{session_id}/outcomescores", tag = "journey",
    description = "A web session's live outcome predictions (Genesys `OutcomeScoresResult`): `probability`, \
        `sessionMaxProbability`, `quantile`, `sessionMaxQuantile` per outcome, plus `learning` and `topFeatures`. \
        Needs `journey:outcomeScores:view`.",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Genesys `OutcomeScoresResult`", body = serde_json::Value),
        (status = 401, description = "No valid token"), (status = 403, description = "Missing permission"),
        (status = 404, description = "No such session")),
    security(("bearer" = []), ("session_cookie" = [])))]
pub async fn get_outcome_scores(
    auth: Authorized<OutcomeScoresView>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rec = visible_session(&state, &auth, &id).await?;
    Ok(Json(state.predictions.scores(&state, &rec).await?))
}

/// The outcome scores route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_outcome_scores))
}
