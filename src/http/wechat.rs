//! WeChat's side of the HTTP edge: `GET /wechat/{app}` (the URL check) and `POST
//! /wechat/{app}` (pushes), mapped to the channel in `channels::wechat`. Refusals use the
//! API's error shape; WeChat only looks at the status.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, ApiResult, AppState, Path, Query};
use crate::codes::Code;
use crate::channels::wechat::{Params, WeChatError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/wechat/{app}", get(verify).post(deliver))
}

impl From<WeChatError> for ApiError {
    fn from(e: WeChatError) -> Self {
        let code = match &e {
            WeChatError::UnknownApp(_) => Code::NotFound,
            WeChatError::Signature | WeChatError::Stale | WeChatError::Replayed => Code::Unauthorized,
            WeChatError::TooLarge(_) => Code::TooLarge,
            WeChatError::Store(_) => Code::Unavailable,
            WeChatError::MissingParameter(_)
            | WeChatError::PlaintextRefused
            | WeChatError::Message(_)
            | WeChatError::Crypto(_) => Code::BadRequest,
        };
        if code.status() >= 500 {
            // Logged by the request layer; the body says only what to do.
            return ApiError { detail: Some(e.to_string()), ..ApiError::new(code, "the store cannot write now; retry shortly") };
        }
        tracing::info!(error = %e, "refused a WeChat request");
        ApiError::new(code, e.to_string())
    }
}

async fn verify(State(s): State<AppState>, Path(app): Path<String>, Query(p): Query<Params>) -> ApiResult<String> {
    Ok(s.wechat.verify_url(&app, &p)?)
}

async fn deliver(State(s): State<AppState>, Path(app): Path<String>, Query(p): Query<Params>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let limit = s.wechat.max_body(&app)?;
    let too_large = || ApiError::from(WeChatError::TooLarge(limit));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Read at most the limit: a body that goes on is refused without being buffered.
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let reply = s.wechat.deliver(&app, &p, content_type, &bytes).await?;
    Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response())
}
