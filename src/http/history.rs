//! History endpoints for agents: search past conversations, open one read-only, and export
//! a search as CSV. Each needs an agent's bearer token.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::agent::authorize;
use super::{ApiResult, AppState, Bearer, Json, Path, Query};
use crate::service::{HistoryPage, HistoryRequest, HistoryView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/history", get(search))
        .route("/agent/history.csv", get(export))
        .route("/agent/history/{id}", get(view))
}

async fn search(State(s): State<AppState>, bearer: Bearer, Query(r): Query<HistoryRequest>) -> ApiResult<Json<HistoryPage>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.history(&r).await?))
}

async fn export(State(s): State<AppState>, bearer: Bearer, Query(r): Query<HistoryRequest>) -> ApiResult<impl IntoResponse> {
    authorize(&s, &bearer).await?;
    let csv = s.service.history_csv(&r).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"kefu-history.csv\"")],
        csv,
    ))
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<HistoryView>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.history_view(&id).await?))
}
