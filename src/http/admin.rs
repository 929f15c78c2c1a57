//! Admin endpoints (the admin token or an admin's session, checked for every `/admin/` path
//! by `http::admin_gate` before a handler runs): reload knowledge and intents (and the last
//! reload's outcome), statistics, the questions the bot could not answer (and adding one to
//! an article, picked from the article list), people (create, replace, edit skills, capacity
//! and role, reset a password, disable, enable, unlock after failed logins), tickets.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use axum::Extension;

use super::{ApiResult, AppState, Json, Path};
use crate::handoff::Ticket;
use crate::handoff::Role;
use crate::service::{Admin, AgentInfo, AgentUpdate, ReloadStatus, Stats};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/reload", get(reload_status).post(reload))
        .route("/admin/stats", get(stats))
        .route("/admin/unanswered", get(unanswered))
        .route("/admin/similar", post(add_similar))
        .route("/admin/articles", get(articles))
        .route("/admin/agents", get(agents).post(put_agent))
        .route("/admin/agents/{id}", post(update_agent))
        .route("/admin/agents/{id}/password", post(reset_password))
        .route("/admin/agents/{id}/disable", post(disable))
        .route("/admin/agents/{id}/enable", post(enable))
        .route("/admin/agents/{id}/unlock", post(unlock))
        .route("/admin/tickets", get(tickets))
}

async fn reload(State(s): State<AppState>) -> ApiResult<Json<ReloadStatus>> {
    let status = s.service.reload().await;
    match &status.error {
        None => Ok(Json(status)),
        Some(e) => Err(super::ApiError::new(crate::codes::Code::InvalidKnowledge, super::redact(&s.config, e))),
    }
}

/// The last reload's outcome, a failure's error included: the admin page shows it, since a
/// reload the file watcher started is otherwise seen only in the log and `/readyz`.
async fn reload_status(State(s): State<AppState>) -> ApiResult<Json<ReloadStatus>> {
    let mut status = s.service.reload_status();
    // As everywhere a reload error leaves the server: files by their place in the folders.
    status.error = status.error.map(|e| super::redact(&s.config, &e));
    Ok(Json(status))
}

async fn stats(State(s): State<AppState>) -> ApiResult<Json<Stats>> {
    Ok(Json(s.service.stats().await?))
}

async fn unanswered(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let list = s.service.store().unanswered(200).await.map_err(crate::service::ServiceError::from)?;
    let items: Vec<_> = list.into_iter().map(|(q, n)| serde_json::json!({"question": q, "count": n})).collect();
    Ok(Json(serde_json::json!({"questions": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarBody {
    article: String,
    question: String,
}

async fn add_similar(State(s): State<AppState>, Json(b): Json<SimilarBody>) -> ApiResult<Json<ReloadStatus>> {
    match s.service.add_similar(&b.article, &b.question).await {
        Ok(status) => Ok(Json(status)),
        Err(e) => {
            let mut e = super::ApiError::from(e);
            e.message = super::redact(&s.config, &e.message);
            Err(e)
        }
    }
}


/// Every article's id, title and category: the picker for "add as a similar question".
async fn articles(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let brain = s.service.brain();
    let list: Vec<_> =
        brain.engine.articles().iter().map(|a| serde_json::json!({"id": a.id, "title": a.title, "category": a.category})).collect();
    Ok(Json(serde_json::json!({"articles": list})))
}

async fn agents(State(s): State<AppState>) -> ApiResult<Json<Vec<AgentInfo>>> {
    Ok(Json(s.service.agents().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentBody {
    id: String,
    name: String,
    password: String,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default = "five")]
    max_concurrent: u32,
    /// `agent` for a new account unless given; a replaced one keeps its role.
    #[serde(default)]
    role: Option<Role>,
}

fn five() -> u32 {
    5
}

async fn put_agent(State(s): State<AppState>, Json(b): Json<AgentBody>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.put_person(&b.id, &b.name, &b.password, b.skills, b.max_concurrent, b.role).await?))
}

/// Edits an account's name, skills, capacity or role (absent fields stay as they are).
async fn update_agent(State(s): State<AppState>, Path(id): Path<String>, Extension(by): Extension<Admin>, Json(b): Json<AgentUpdate>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.update_agent(&id, b, &by).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// Sets a new password: the account's sessions and sockets end at once.
async fn reset_password(State(s): State<AppState>, Path(id): Path<String>, Json(b): Json<PasswordBody>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.reset_password(&id, &b.password).await?))
}

async fn tickets(State(s): State<AppState>) -> ApiResult<Json<Vec<Ticket>>> {
    Ok(Json(s.service.tickets().await?))
}

/// Disables an agent: its sessions and sockets end at once and it cannot log in.
async fn disable(State(s): State<AppState>, Path(id): Path<String>, Extension(by): Extension<Admin>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.set_disabled_by(&id, true, &by).await?))
}

async fn enable(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AgentInfo>> {
    Ok(Json(s.service.set_disabled(&id, false).await?))
}

/// Lifts the lockout that failed logins put on an account.
async fn unlock(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    if s.service.store().agent(&id).await.map_err(crate::service::ServiceError::from)?.is_none() {
        return Err(super::ApiError::new(crate::codes::Code::AgentNotFound, format!("agent {} not found", id.chars().take(64).collect::<String>())));
    }
    let was_locked = s.limits.logins.unlock(&id) | s.service.clear_shared_failures(&id).await?;
    Ok(Json(serde_json::json!({"agent": id, "was_locked": was_locked})))
}
