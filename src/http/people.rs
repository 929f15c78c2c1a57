//! People endpoints under `/agent` (an agent's session; some need the supervisor role, which
//! the service checks): changing one's own password, the supervisor's list of every live
//! conversation and taking one over, the quality-review rubric, and reviews (质检) — a
//! supervisor scores, an agent reads their own.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::agent::authorize;
use super::{ApiResult, AppState, Bearer, Json, Path, Query};
use crate::service::{AgentInfo, AgentView, LiveConversation, QualityConfig, Review, ReviewRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/password", post(change_password))
        .route("/agent/supervision", get(live))
        .route("/agent/conversations/{id}/takeover", post(take_over))
        .route("/agent/rubric", get(rubric))
        .route("/agent/reviews", get(reviews).post(review))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current: String,
    new: String,
}

/// The agent's own password: the session it is changed from goes on, every other ends.
async fn change_password(State(s): State<AppState>, bearer: Bearer, Json(b): Json<PasswordBody>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.change_password(bearer.token()?, &b.current, &b.new).await?))
}

async fn live(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<LiveConversation>>> {
    let me = authorize(&s, &bearer).await?;
    Ok(Json(s.service.live(&me).await?))
}

async fn take_over(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<AgentView>> {
    let me = authorize(&s, &bearer).await?;
    Ok(Json(s.service.take_over(&me, &id).await?))
}

async fn rubric(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<QualityConfig>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.rubric().clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewsQuery {
    agent: Option<String>,
}

async fn reviews(State(s): State<AppState>, Query(q): Query<ReviewsQuery>, bearer: Bearer) -> ApiResult<Json<Vec<Review>>> {
    let me = authorize(&s, &bearer).await?;
    Ok(Json(s.service.reviews(&me, q.agent.as_deref()).await?))
}

async fn review(State(s): State<AppState>, bearer: Bearer, Json(b): Json<ReviewRequest>) -> ApiResult<Json<Review>> {
    let me = authorize(&s, &bearer).await?;
    Ok(Json(s.service.review(&me, b).await?))
}
