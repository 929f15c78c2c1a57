//! Ticket endpoints for agents: the list with filters and search, one ticket, making one
//! from a conversation, changing it, replying to the customer and noting. Every call needs
//! the agent's bearer token.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::agent::authorize;
use super::{ApiError, ApiResult, AppState, Bearer, Json, Path, Query};
use crate::codes::Code;
use crate::handoff::TicketSummary;
use crate::service::{NewTicket, TicketFilter, TicketUpdate, TicketView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agent/tickets", get(list).post(create))
        .route("/agent/tickets/{id}", get(view).patch(update))
        .route("/agent/tickets/{id}/replies", post(reply))
        .route("/agent/tickets/{id}/notes", post(note))
}

/// A ticket id from the path, read after the token is checked (so ids cannot be probed).
fn ticket_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::new(Code::TicketNotFound, format!("ticket {:?} not found: a ticket id is a number", id.chars().take(40).collect::<String>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    assignee: Option<String>,
    breached: Option<bool>,
    q: Option<String>,
}

async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>, bearer: Bearer) -> ApiResult<Json<Vec<TicketSummary>>> {
    authorize(&s, &bearer).await?;
    let filter = TicketFilter { status: q.status, priority: q.priority, category: q.category, assignee: q.assignee, breached: q.breached, q: q.q };
    Ok(Json(s.service.ticket_list(&filter).await?))
}

async fn view(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer) -> ApiResult<Json<TicketView>> {
    authorize(&s, &bearer).await?;
    Ok(Json(s.service.ticket_view(ticket_id(&id)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    conversation: String,
    message: String,
    contact: Option<String>,
    category: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    complaint: bool,
    assignee: Option<String>,
}

async fn create(State(s): State<AppState>, bearer: Bearer, Json(b): Json<CreateBody>) -> ApiResult<Json<TicketView>> {
    let agent = authorize(&s, &bearer).await?;
    let req = NewTicket { message: b.message, contact: b.contact, category: b.category, priority: b.priority, tags: b.tags, complaint: b.complaint, assignee: b.assignee };
    Ok(Json(s.service.create_ticket(&agent, &b.conversation, req).await?))
}

/// A field that may be given as `null` (meaning: clear it), told apart from a missing one.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    /// `null` unassigns.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    complaint: Option<bool>,
    complaint_step: Option<String>,
}

async fn update(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<UpdateBody>) -> ApiResult<Json<TicketView>> {
    let agent = authorize(&s, &bearer).await?;
    let u = TicketUpdate {
        status: b.status,
        priority: b.priority,
        category: b.category,
        tags: b.tags,
        assignee: b.assignee,
        complaint: b.complaint,
        complaint_step: b.complaint_step,
    };
    Ok(Json(s.service.update_ticket(&agent, ticket_id(&id)?, u).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
    /// `channel` (the default), `phone` or `mail`.
    via: Option<String>,
}

async fn reply(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<ReplyBody>) -> ApiResult<Json<TicketView>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.ticket_reply(&agent, ticket_id(&id)?, &b.text, b.via.as_deref()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn note(State(s): State<AppState>, Path(id): Path<String>, bearer: Bearer, Json(b): Json<NoteBody>) -> ApiResult<Json<TicketView>> {
    let agent = authorize(&s, &bearer).await?;
    Ok(Json(s.service.ticket_note(&agent, ticket_id(&id)?, &b.text).await?))
}
