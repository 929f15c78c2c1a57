//! Photo endpoints: visitors and agents upload an image as the raw request body (the bytes
//! decide what it is, not `Content-Type` or a file name), and fetch a conversation's images
//! with their bearer token. These routes take bodies up to `limits.max_image_bytes`.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{agent, ApiError, ApiResult, AppState, Bearer, Json, Path, Query};
use crate::codes::Code;
use crate::dialogue::Message;
use crate::service::{Exchange, ImageBytes};

pub fn routes(max_image_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/conversations/{id}/images", post(visitor_upload))
        .route("/conversations/{id}/images/{hash}", get(visitor_image))
        .route("/agent/conversations/{id}/images", post(agent_upload))
        .route("/agent/conversations/{id}/images/{hash}", get(agent_image))
        // Inside the app's own (smaller) limit, so it wins on these routes.
        .layer(DefaultBodyLimit::max(max_image_bytes))
}

/// Whether a request path is an image upload (the request guard lets its declared length
/// reach `limits.max_image_bytes`).
pub fn is_upload(path: &str) -> bool {
    path.strip_prefix("/api/v1/").is_some_and(|p| {
        let p = p.strip_prefix("agent/").unwrap_or(p);
        p.strip_prefix("conversations/").and_then(|p| p.split_once('/')).is_some_and(|(_, rest)| rest == "images")
    })
}

/// The upload's bytes, or the API's error for a body over the limit.
fn body(s: &AppState, body: Result<Bytes, BytesRejection>) -> ApiResult<Vec<u8>> {
    let max = s.config.limits.max_image_bytes;
    match body {
        Ok(b) => Ok(b.to_vec()),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(Code::TooLarge, format!("the image is larger than {max} bytes, the most accepted")))
        }
        Err(r) => Err(ApiError::new(Code::BadRequest, r.body_text())),
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    #[serde(default)]
    client_id: Option<String>,
}

async fn visitor_upload(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    bearer: Bearer,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Exchange>> {
    let token = bearer.token()?;
    s.limits.check_conversation(&id).map_err(|wait| {
        s.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        ApiError::too_many(wait, "in this conversation")
    })?;
    let bytes = body(&s, bytes)?;
    let exchange = s.service.visitor_image(&id, Some(token), bytes, q.client_id).await?;
    if !exchange.duplicate {
        s.metrics.visitor_messages.fetch_add(1, Ordering::Relaxed);
        s.metrics.bot_replies.fetch_add(exchange.replies.len() as u64, Ordering::Relaxed);
    }
    Ok(Json(exchange))
}

async fn agent_upload(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, bytes: Result<Bytes, BytesRejection>) -> ApiResult<Json<Message>> {
    let agent = agent::authorize(&s, &bearer).await?;
    let bytes = body(&s, bytes)?;
    Ok(Json(s.service.agent_image(&agent, &id, bytes).await?))
}

async fn visitor_image(State(s): State<AppState>, Path((id, hash)): Path<(String, String)>, bearer: Bearer, headers: HeaderMap) -> ApiResult<Response> {
    Ok(serve(s.service.image_for_visitor(&id, bearer.token()?, &hash).await?, &hash, &headers))
}

async fn agent_image(State(s): State<AppState>, Path((id, hash)): Path<(String, String)>, bearer: Bearer, headers: HeaderMap) -> ApiResult<Response> {
    agent::authorize(&s, &bearer).await?;
    Ok(serve(s.service.image_for_agent(&id, &hash).await?, &hash, &headers))
}

/// The image with the type its bytes were checked to be. The browser must not guess another
/// type (`nosniff`), and the response is no document (`default-src 'none'`). Cached by this
/// browser only and revalidated on every use (`private, no-cache` with the hash as `ETag`):
/// a browser's cache keys on the URL, not the token, so a fresh copy could otherwise be
/// handed to another visitor's token on the same computer. Revalidation runs after the token
/// check, so an unchanged image costs a 304 and no bytes.
fn serve(image: ImageBytes, hash: &str, request: &HeaderMap) -> Response {
    let etag = format!("\"{hash}\"");
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { image.bytes.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(image.format.mime()));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("a hash is a valid header value"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    response
}

#[cfg(test)]
mod tests {
    use super::is_upload;

    #[test]
    fn uploads_are_told_from_other_paths() {
        assert!(is_upload("/api/v1/conversations/abc/images"));
        assert!(is_upload("/api/v1/agent/conversations/abc/images"));
        assert!(!is_upload("/api/v1/conversations/abc/images/ff"));
        assert!(!is_upload("/api/v1/conversations/abc/messages"));
        assert!(!is_upload("/api/v1/agent/history/images"));
    }
}
