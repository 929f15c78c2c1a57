//! Agent endpoints: log in, presence, the queue, claiming, chatting, notes, resolving,
//! transferring and returning to the bot, canned replies and knowledge search for replies.
//! Every call but login needs the agent's bearer token.

use axum::extract::State;
use axum::Extension;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::limits::Locked;
use super::{ws, ApiError, ApiResult, AppState, Bearer, ClientAddr, Json, Path, Query};
use crate::codes::Code;
use crate::dialogue::Message;
use crate::handoff::{Agent, AgentStatus, Canned, Handoff};
use crate::knowledge::Article;
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
        .route("/agent/canned", get(canned))
        .route("/agent/articles", get(articles))
        .route("/agent/ws", get(ws::agent))
}

pub(super) async fn authorize(s: &AppState, bearer: &Bearer) -> ApiResult<Agent> {
    Ok(s.service.authorize_agent(bearer.token()?).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    id: String,
    password: String,
}

/// Logs in, unless the account or the address has failed too often lately (429 with
/// `Retry-After`, before the password is even checked).
async fn login(State(s): State<AppState>, Extension(ClientAddr(ip)): Extension<ClientAddr>, Json(b): Json<LoginBody>) -> ApiResult<Json<serde_json::Value>> {
    let logins = &s.limits.logins;
    // Several nodes: the account's failures on every node count (the address's stay per node).
    let shared = s.service.shared_lockout(&b.id).await?.map(Locked::Account).map_or(Ok(()), Err);
    if let Err(locked) = shared.and_then(|()| logins.check(ip, &b.id)) {
        let (wait, message) = match locked {
            Locked::Account(d) => (d, format!("too many failed logins for agent {}; retry later or ask an admin to unlock it", b.id.chars().take(64).collect::<String>())),
            Locked::Address(d) => (d, format!("too many failed logins from {ip}; retry later")),
        };
        return Err(ApiError { retry_after: Some(wait.as_secs() + 1), ..ApiError::new(Code::LoginLocked, message) });
    }
    match s.service.login(&b.id, &b.password).await {
        Ok((token, agent)) => {
            logins.succeeded(&b.id);
            s.service.clear_shared_failures(&b.id).await?;
            Ok(Json(serde_json::json!({"token": token, "agent": agent})))
        }
        Err(e) => {
            if matches!(e, crate::service::ServiceError::Unauthorized) {
                if s.service.store().notes().is_some() {
                    logins.failed_from(ip);
                    let l = &s.config.limits;
                    s.service.count_shared_failure(&b.id, l.login_failures_per_account, std::time::Duration::from_secs(l.login_lockout_secs)).await?;
                } else {
                    logins.failed(ip, &b.id);
                }
            }
            Err(e.into())
        }
    }
}

async fn logout(State(s): State<AppState>, bearer: Bearer) -> ApiResult<StatusCode> {
    authorize(&s, &bearer).await?;
    s.service.logout(bearer.token()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<AgentInfo>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.agents().await?.into_iter().find(|a| a.id == agent.id).expect("an authorised agent exists")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: AgentStatus,
}

async fn status(State(s): State<AppState>, bearer: Bearer, Json(b): Json<StatusBody>) -> ApiResult<Json<AgentInfo>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.set_status(&agent, b.status).await?))
}

async fn queue(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<QueueEntry>>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.queue().await?))
}

async fn mine(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<Handoff>>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.mine(&agent).await?))
}

async fn agents(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<AgentInfo>>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.agents().await?))
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<AgentView>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.agent_view(&id).await?))
}

async fn claim(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<AgentView>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.claim(&agent, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

async fn send(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TextBody>) -> ApiResult<Json<Message>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.agent_message(&agent, &id, &b.text).await?))
}

async fn note(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TextBody>) -> ApiResult<Json<Message>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.note(&agent, &id, &b.text).await?))
}

async fn resolve(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer).await?;
    s.service.resolve(&agent, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: String,
}

async fn transfer(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<TransferBody>) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer).await?;
    s.service.transfer(&agent, &id, &b.to).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn return_to_bot(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<StatusCode> {
    let agent = authorize(&s, &bearer).await?;
    s.service.return_to_bot(&agent, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn canned(State(s): State<AppState>, bearer: Bearer) -> ApiResult<Json<Vec<Canned>>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.brain().canned.clone()))
}

#[derive(Deserialize)]
struct ArticleQuery {
    #[serde(default)]
    q: String,
}

/// How many articles a search returns (the console shows a short pick list).
const ARTICLE_RESULTS: usize = 8;

/// Knowledge articles to insert into a reply, found by the bot's own engine (so an agent's
/// search reads questions the way the bot does); without `q`, the first articles.
async fn articles(State(s): State<AppState>, Query(q): Query<ArticleQuery>, bearer: Bearer) -> ApiResult<Json<serde_json::Value>> {
    authorize(&s, &bearer).await?;
    let query = q.q.trim();
    let max = s.config.limits.max_message_chars;
    if query.chars().count() > max {
        return Err(ApiError::new(Code::MessageTooLong, format!("q is longer than {max} characters ({} given); shorten the search", query.chars().count())));
    }
    let brain = s.service.brain();
    let item = |a: &Article, confidence: Option<f32>| {
        serde_json::json!({"id": a.id, "title": a.title, "category": a.category, "answer": a.answer, "confidence": confidence})
    };
    let list: Vec<_> = if query.is_empty() {
        brain.engine.articles().iter().take(ARTICLE_RESULTS).map(|a| item(a, None)).collect()
    } else {
        let reply = brain.ask(query).map_err(crate::service::ServiceError::from)?;
        reply
            .candidates
            .iter()
            .take(ARTICLE_RESULTS)
            .filter_map(|c| brain.article(&c.id).map(|a| item(a, Some(c.confidence))))
            .collect()
    };
    Ok(Json(serde_json::json!({"articles": list})))
}
