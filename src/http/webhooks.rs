//! The admin's webhook endpoints (admins only: the admin gate in `http/mod.rs` checks): the event types, the endpoints (add,
//! change, remove), the delivery log, and "send again".

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState, Json, Path, Query};
use crate::service::ServiceError;
use crate::webhook::{Delivery, Endpoint, EventKind, WebhookError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(list).post(add))
        .route("/admin/webhooks/{id}", put(update).delete(remove))
        .route("/admin/webhooks/deliveries", get(deliveries))
        .route("/admin/webhooks/deliveries/{id}/resend", post(resend))
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match (e.code(), e) {
            (Some(code), e) => ApiError::new(code, e.to_string()),
            (None, WebhookError::Store(e)) => ServiceError::from(e).into(),
            (None, e) => ServiceError::Internal(e.to_string()).into(),
        }
    }
}


async fn list(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let events: Vec<serde_json::Value> = EventKind::ALL.iter().map(|k| serde_json::json!({ "name": k.name(), "when": k.when() })).collect();
    Ok(Json(serde_json::json!({ "events": events, "endpoints": s.service.webhooks().endpoints() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: String,
    events: Vec<String>,
}

async fn add(State(s): State<AppState>, Json(b): Json<EndpointBody>) -> ApiResult<Json<Endpoint>> {
    Ok(Json(s.service.webhooks().add(&b.url, b.events, crate::service::now_ms()).await?))
}

async fn update(State(s): State<AppState>, Path(id): Path<String>, Json(b): Json<EndpointBody>) -> ApiResult<Json<Endpoint>> {
    Ok(Json(s.service.webhooks().update(&id, &b.url, b.events).await?))
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    s.service.webhooks().remove(&id).await?;
    Ok(Json(serde_json::json!({ "removed": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    endpoint: Option<String>,
    limit: Option<usize>,
}

async fn deliveries(State(s): State<AppState>, Query(q): Query<LogQuery>) -> ApiResult<Json<Vec<Delivery>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(crate::codes::Code::BadRequest, format!("limit is 1 to 500, not {limit}")));
    }
    Ok(Json(s.service.webhooks().deliveries(q.endpoint.as_deref(), limit).await?))
}

async fn resend(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Delivery>> {
    Ok(Json(s.service.webhooks().resend(&id, crate::service::now_ms()).await?))
}
