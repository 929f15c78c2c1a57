//! Agent endpoints: log in, presence, the queue, claiming, chatting, notes, resolving,
//! transferring and returning to the bot. Every call but login needs the agent's bearer token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{ws, ApiResult, AppState, Bearer, Json, Path};
use crate::dialogue::Message;
use crate::handoff::{Agent, AgentStatus, Handoff};
use crate::service::{AgentInfo, AgentView, QueueEntry};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/login", post(login))
        .route("/agent/logout", post(logout))
        .route("/agent/me", get(me))
        .route("/agent/status", post(status))
        .route("/agent/queue", get(queue))
        .route("/agent/conversations", get(mine))
        .route("/agent/agents", get(agents))
        .route("/agent/conversations/{id}", get(view))
        .route("/agent/conversations/{id}/claim", post(claim))
        .route("/agent/conversations/{id}/messages", post(send))
        .route("/agent/conversations/{id}/notes", post(note))
        .route("/agent/conversations/{id}/resolve", post(resolve))
        .route("/agent/conversations/{id}/transfer", post(transfer))
        .route("/agent/conversations/{id}/return", post(return_to_bot))
        .route("/agent/ws", get(ws::agent))
}

pub(super) fn authorize(s: &AppState, bearer: &Bearer) -> ApiResult<Agent> {
    Ok(s.service.authorize_agent(bearer.token()?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    id: String,
    password: String,
}

async fn login(State(s): State<AppState>, Json(b): Json<LoginBody>) -> ApiResult<Json<serde_json::Value>> {
    let (token, agent) = s.service.login(&b.id, &b.password).await?;
    Ok(Json(serde_json::json!({"token": token, "agent": agent})))
}

async fn logout(State(s): State<AppState>, bearer: Bearer) -> ApiResult<StatusCode> {
    authorize(&s, &bearer)?;
    s.service.logout(bearer.token()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<AgentInfo>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.agents()?.into_iter().find(|a| a.id == agent.id).expect("an authorised agent exists")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: AgentStatus,
}

async fn status(State(s): State<AppState>, bearer: Bearer, Json(b): Json<StatusBody>) -> ApiResult<Json<AgentInfo>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.set_status(&agent, b.status).await?))
}

async fn queue(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<QueueEntry>>> {
    authorize(&s, &bearer)?;
    Ok(Json(s.service.queue()?))
}

async fn mine(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<Handoff>>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.mine(&agent)?))
}

async fn agents(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<AgentInfo>>> {
    authorize(&s, &bearer)?;
    Ok(Json(s.service.agents()?))
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<AgentView>> {
    authorize(&s, &bearer)?;
    Ok(Json(s.service.agent_view(&id)?))
}

async fn claim(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<AgentView>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.claim(&agent, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

async fn send(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TextBody>) -> ApiResult<Json<Message>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.agent_message(&agent, &id, &b.text).await?))
}

async fn note(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TextBody>) -> ApiResult<Json<Message>> {
    let agent = authorize(&s, &bearer)?;
    Ok(Json(s.service.note(&agent, &id, &b.text).await?))
}

async fn resolve(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer)?;
    s.service.resolve(&agent, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: String,
}

async fn transfer(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TransferBody>) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer)?;
    s.service.transfer(&agent, &id, &b.to).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn return_to_bot(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer)?;
    s.service.return_to_bot(&agent, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
