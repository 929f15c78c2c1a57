//! History endpoints for agents: search past conversations, open one read-only, and export
//! a search as CSV. Each needs an agent's bearer token.

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::agent::authorize;
use super::{ApiError, ApiResult, AppState, Bearer, Json, Path};
use crate::service::{HistoryPage, HistoryRequest, HistoryView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/history", get(search))
        .route("/agent/history.csv", get(export))
        .route("/agent/history/{id}", get(view))
}

/// The search's parameters, read after the token is checked: without a token the answer is
/// 401 whatever the query says.
fn request(uri: &Uri) -> ApiResult<HistoryRequest> {
    Ok(axum::extract::Query::<HistoryRequest>::try_from_uri(uri).map_err(ApiError::from)?.0)
}

async fn search(State(s): State<AppState>, bearer: Bearer, uri: Uri) -> ApiResult<Json<HistoryPage>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.history(&request(&uri)?).await?))
}

async fn export(State(s): State<AppState>, bearer: Bearer, uri: Uri) -> ApiResult<impl IntoResponse> {
    authorize(&s, &bearer).await?;
    let csv = s.service.history_csv(&request(&uri)?).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"kefu-history.csv\"")],
        csv,
    ))
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<HistoryView>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.history_view(&id).await?))
}
