//! WebSockets: live events for a visitor's widget and for agents' consoles. Browsers cannot
//! set headers on a WebSocket, so the token comes in the query string.
//!
//! A visitor socket first replays history after `after` (the last sequence number the
//! client has), then streams events; the client drops anything it has already seen by
//! sequence number, so a reconnect never shows a message twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::visitor::{send_message, SendBody};
use super::{agent, ApiResult, AppState, Bearer, Path, Query};
use crate::service::{AgentEvent, VisitorEvent};

/// Sends one hub event to the socket; false when the connection is done. A receiver that fell
/// behind gets `resync` instead: it reloads history from its last sequence number.
async fn forward(socket: &mut WebSocket, event: Result<Arc<str>, broadcast::error::RecvError>) -> bool {
    let text = match event {
        Ok(text) => Utf8Bytes::from(&*text),
        Err(broadcast::error::RecvError::Lagged(_)) => r#"{"type":"resync"}"#.into(),
        Err(broadcast::error::RecvError::Closed) => return false,
    };
    socket.send(WsMessage::Text(text)).await.is_ok()
}

#[derive(Deserialize)]
pub struct VisitorQuery {
    /// Missing means unauthorised (401), not a malformed query (400).
    #[serde(default)]
    token: String,
    #[serde(default)]
    after: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum VisitorCommand {
    Message { text: String, #[serde(default)] client_id: Option<String> },
    Typing,
    Ping,
}

pub async fn visitor(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<VisitorQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let conv = s.service.authorize_visitor(&id, &q.token)?;
    // Subscribe before reading history, so nothing falls between the two.
    let events = s.service.hub().subscribe_visitor(&id);
    let view = s.service.visitor_view(&conv, q.after)?;
    let mut backlog: Vec<String> = view
        .messages
        .iter()
        .map(|m| serde_json::to_string(&VisitorEvent::Message { message: m.clone() }).expect("serialises"))
        .collect();
    let state = VisitorEvent::State {
        state: view.state,
        queue_position: view.queue_position,
        agent: view.agent.clone(),
        rating_requested: view.rating_requested,
    };
    backlog.push(serde_json::to_string(&state).expect("serialises"));
    // Visitors send short texts: a small read buffer keeps thousands of idle sockets cheap
    // (tungstenite's default is 128 KiB each).
    let upgrade = upgrade.max_message_size(s.service.config().limits.max_body_bytes).read_buffer_size(8 * 1024);
    Ok(upgrade.on_upgrade(move |socket| async move {
        s.metrics.websockets.fetch_add(1, Ordering::Relaxed);
        visitor_loop(socket, s.clone(), id.clone(), q.token, backlog, events).await;
        s.service.hub().release_visitor(&id);
        s.metrics.websockets.fetch_sub(1, Ordering::Relaxed);
    }))
}

async fn visitor_loop(
    mut socket: WebSocket,
    s: AppState,
    id: String,
    token: String,
    backlog: Vec<String>,
    mut events: broadcast::Receiver<Arc<str>>,
) {
    for text in backlog {
        if socket.send(WsMessage::Text(text.into())).await.is_err() {
            return;
        }
    }
    let mut closing = s.closing.clone();
    loop {
        tokio::select! {
            _ = closing.changed() => break,
            event = events.recv() => if !forward(&mut socket, event).await {
                break;
            },
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let WsMessage::Text(text) = msg else { continue };
                let reply = match serde_json::from_str::<VisitorCommand>(&text) {
                    Ok(VisitorCommand::Message { text, client_id }) => {
                        match send_message(&s, &id, &token, SendBody { text, client_id: client_id.clone() }).await {
                            // Replies arrive as events; the ack ties the client's id to a sequence.
                            Ok(x) => serde_json::json!({"type": "ack", "client_id": client_id, "seq": x.message.seq}),
                            Err(e) => serde_json::json!({"type": "error", "client_id": client_id, "error": {"code": e.code, "message": e.message}}),
                        }
                    }
                    Ok(VisitorCommand::Typing) => {
                        s.service.hub().to_agents(&AgentEvent::Typing { conversation: id.clone() });
                        continue;
                    }
                    Ok(VisitorCommand::Ping) => serde_json::json!({"type": "pong"}),
                    Err(e) => serde_json::json!({"type": "error", "error": {"code": "invalid_json", "message": e.to_string()}}),
                };
                if socket.send(WsMessage::Text(reply.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

#[derive(Deserialize)]
pub struct AgentQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AgentCommand {
    Typing { conversation: String },
    Ping,
}

pub async fn agent(State(s): State<AppState>, Query(q): Query<AgentQuery>, upgrade: WebSocketUpgrade) -> ApiResult<Response> {
    let me = agent::authorize(&s, &Bearer(Some(q.token)))?;
    let events = s.service.hub().subscribe_agents();
    Ok(upgrade.on_upgrade(move |socket| async move {
        s.metrics.websockets.fetch_add(1, Ordering::Relaxed);
        agent_loop(socket, s.clone(), me.id, events).await;
        s.metrics.websockets.fetch_sub(1, Ordering::Relaxed);
    }))
}

async fn agent_loop(mut socket: WebSocket, s: AppState, me: String, mut events: broadcast::Receiver<Arc<str>>) {
    let mut closing = s.closing.clone();
    loop {
        tokio::select! {
            _ = closing.changed() => break,
            event = events.recv() => if !forward(&mut socket, event).await {
                break;
            },
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let WsMessage::Text(text) = msg else { continue };
                match serde_json::from_str::<AgentCommand>(&text) {
                    Ok(AgentCommand::Typing { conversation }) => {
                        let owns = s.service.store().conversation(&conversation).ok().flatten()
                            .is_some_and(|c| c.state == (crate::dialogue::State::WithAgent { agent: me.clone() }));
                        if owns {
                            s.service.hub().to_visitor(&conversation, &VisitorEvent::Typing);
                        }
                    }
                    Ok(AgentCommand::Ping) => {
                        if socket.send(WsMessage::Text(r#"{"type":"pong"}"#.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
