//! Visitor endpoints: start a conversation, send messages, read history, ask for a human,
//! rate, give answer feedback, leave a message. Every call but the first needs the
//! conversation's token.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{ws, ApiError, ApiResult, AppState, Bearer, Json, Path, Query};
use crate::codes::Code;
use crate::service::{Exchange, StartRequest, Started, VisitorView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations", post(start))
        .route("/conversations/{id}", get(view))
        .route("/conversations/{id}/messages", get(history).post(send))
        .route("/conversations/{id}/handoff", post(handoff))
        .route("/conversations/{id}/rating", post(rate))
        .route("/conversations/{id}/feedback", post(feedback))
        .route("/conversations/{id}/ticket", post(ticket))
        .route("/conversations/{id}/ws", get(ws::visitor))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    page: Option<String>,
    /// A logged-in customer's id and its HMAC-SHA256 signature.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

/// A JSON body that may be left out entirely.
fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    super::json_object(bytes)
}

async fn start(State(s): State<AppState>, body: Bytes) -> ApiResult<impl IntoResponse> {
    let b: StartBody = optional_body(&body)?;
    let identity = match (b.user_id, b.signature) {
        (Some(u), Some(sig)) => Some((u, sig)),
        (None, None) => None,
        _ => return Err(ApiError::new(Code::BadRequest, "user_id and signature go together")),
    };
    let channel = b.channel.unwrap_or_else(|| "web".into());
    if !matches!(channel.as_str(), "web" | "app") {
        return Err(ApiError::new(Code::BadRequest, format!("unknown channel {channel:?} (web or app)")));
    }
    let started: Started = s.service.start(StartRequest { channel, name: b.name, page: b.page, identity }).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<VisitorView>> {
    let conv = s.service.authorize_visitor(&id, bearer.token()?).await?;
    Ok(Json(s.service.visitor_view(&conv, u64::MAX).await?))
}

async fn history(State(s): State<AppState>, Path(id): Path<String>, Query(q): Query<After>, bearer: Bearer) -> ApiResult<Json<VisitorView>> {
    let conv = s.service.authorize_visitor(&id, bearer.token()?).await?;
    Ok(Json(s.service.visitor_view(&conv, q.after).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendBody {
    pub text: String,
    /// The client's own id for the message: a resend with the same id is stored once.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The per-conversation rate limit, then the service.
pub(super) async fn send_message(s: &AppState, id: &str, token: &str, body: SendBody) -> ApiResult<Exchange> {
    s.limits.check_conversation(id).map_err(|wait| {
        s.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        ApiError::too_many(wait, "in this conversation")
    })?;
    let exchange = s.service.visitor_message(id, token, &body.text, body.client_id).await?;
    if !exchange.duplicate {
        s.metrics.visitor_messages.fetch_add(1, Ordering::Relaxed);
        s.metrics.bot_replies.fetch_add(exchange.replies.len() as u64, Ordering::Relaxed);
    }
    Ok(exchange)
}

async fn send(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(body): Json<SendBody>) -> ApiResult<Json<Exchange>> {
    let token = bearer.token()?;
    Ok(Json(send_message(&s, &id, token, body).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HandoffBody {
    #[serde(default)]
    client_id: Option<String>,
}

async fn handoff(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, body: Bytes) -> ApiResult<Json<Exchange>> {
    let client_id = optional_body::<HandoffBody>(&body)?.client_id;
    Ok(Json(s.service.request_human(&id, bearer.token()?, client_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    score: u8,
    #[serde(default)]
    comment: Option<String>,
}

async fn rate(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<RateBody>) -> ApiResult<StatusCode> {
    s.service.rate(&id, bearer.token()?, b.score, b.comment).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    seq: u64,
    helpful: bool,
}

async fn feedback(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<FeedbackBody>) -> ApiResult<StatusCode> {
    s.service.feedback(&id, bearer.token()?, b.seq, b.helpful).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    contact: String,
    message: String,
}

async fn ticket(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TicketBody>) -> ApiResult<impl IntoResponse> {
    let t = s.service.leave_ticket(&id, bearer.token()?, &b.contact, &b.message).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": t.id}))))
}
