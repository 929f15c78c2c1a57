//! WebSockets: live events for a visitor's widget and for agents' consoles. Browsers cannot
//! set headers on a WebSocket, so the token comes in the query string.
//!
//! A visitor socket first replays history after `after` (the last sequence number the
//! client has), then streams events; the client drops anything it has already seen by
//! sequence number, so a reconnect never shows a message twice. Both sockets run one loop,
//! [`pump`], generic over the socket's `Sink` and `Stream` so tests drive it with channels.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::visitor::{send_message, SendBody};
use super::connections::Held;
use super::{json_object, ApiError, ApiResult, AppState, Path, Query};
use crate::codes::Code;
use crate::service::{AgentEvent, SessionEnded, VisitorEvent};

use crate::service::RESYNC_EVENT as RESYNC;

/// One socket's life: the backlog, then hub events out and the client's commands in, until
/// either side ends or `stop` resolves (shutdown, or the agent's session ended). Commands are JSON objects (an array is refused as
/// on HTTP bodies); `on_command` answers each with at most one text. Ends with a close frame.
pub(crate) async fn pump<S, E, C, F, Fut>(
    socket: S,
    backlog: Vec<String>,
    mut events: broadcast::Receiver<Arc<str>>,
    stop: impl Future<Output = ()>,
    mut on_command: F,
) where
    S: Sink<WsMessage> + Stream<Item = Result<WsMessage, E>> + Unpin,
    C: DeserializeOwned,
    F: FnMut(Result<C, ApiError>) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let (mut tx, mut rx) = socket.split();
    tokio::pin!(stop);
    for text in backlog {
        if tx.send(WsMessage::Text(text.into())).await.is_err() {
            return;
        }
    }
    loop {
        let out: Utf8Bytes = tokio::select! {
            _ = &mut stop => break,
            event = events.recv() => match event {
                Ok(text) => Utf8Bytes::from(&*text),
                Err(broadcast::error::RecvError::Lagged(_)) => RESYNC.into(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = rx.next() => {
                let Some(Ok(msg)) = incoming else { break };
                let WsMessage::Text(text) = msg else { continue };
                match on_command(json_object::<C>(text.as_bytes())).await {
                    Some(reply) => reply.into(),
                    None => continue,
                }
            }
        };
        if tx.send(WsMessage::Text(out)).await.is_err() {
            break;
        }
    }
    let _ = tx.send(WsMessage::Close(None)).await;
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

/// Resolves when the server begins to shut down.
async fn shutdown(mut closing: watch::Receiver<bool>) {
    // An error means the sender is gone: the server is stopping too.
    let _ = closing.wait_for(|c| *c).await;
}

pub async fn visitor(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<VisitorQuery>,
    held: Option<Extension<Held>>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let conv = s.service.authorize_visitor(&id, &q.token).await?;
    let max = s.config.limits.sockets_per_conversation;
    let slot = s.limits.enter_socket(&id, max).ok_or_else(|| {
        ApiError::new(Code::TooManySockets, format!("conversation {id} already has {max} WebSockets open; close one first"))
    })?;
    // Subscribe before reading history, so nothing falls between the two.
    let events = s.service.hub().subscribe_visitor(&id);
    let view = s.service.visitor_view(&conv, q.after).await?;
    let mut backlog: Vec<String> = view
        .messages
        .iter()
        .map(|m| serde_json::to_string(&VisitorEvent::Message { message: m.clone() }).expect("serialises"))
        .collect();
    let state = VisitorEvent::State {
        state: view.state,
        queue_position: view.queue_position,
        estimated_wait_ms: view.estimated_wait_ms,
        agent: view.agent.clone(),
        rating_requested: view.rating_requested,
    };
    backlog.push(serde_json::to_string(&state).expect("serialises"));
    // Visitors send short texts: a small read buffer keeps thousands of idle sockets cheap
    // (tungstenite's default is 128 KiB each).
    let upgrade = upgrade.max_message_size(s.config.limits.max_body_bytes).read_buffer_size(8 * 1024);
    Ok(upgrade.on_upgrade(move |socket| async move {
        s.metrics.websockets.fetch_add(1, Ordering::Relaxed);
        let token = q.token;
        pump(socket, backlog, events, shutdown(s.closing.clone()), |command| visitor_command(&s, &id, &token, command)).await;
        drop((slot, held));
        s.service.hub().release_visitor(&id);
        s.metrics.websockets.fetch_sub(1, Ordering::Relaxed);
    }))
}

async fn visitor_command(s: &AppState, id: &str, token: &str, command: Result<VisitorCommand, ApiError>) -> Option<String> {
    let reply = match command {
        Ok(VisitorCommand::Message { text, client_id }) => {
            match send_message(s, id, token, SendBody { text, client_id: client_id.clone() }).await {
                // Replies arrive as events; the ack ties the client's id to a sequence.
                Ok(x) => json!({"type": "ack", "client_id": client_id, "seq": x.message.seq}),
                Err(e) => {
                    // No request layer sees a socket's frames: a server fault is logged here.
                    if let Some(detail) = &e.detail {
                        tracing::error!(conversation = id, error = %detail, "a WebSocket message failed");
                    }
                    json!({"type": "error", "client_id": client_id, "error": e.body()})
                }
            }
        }
        Ok(VisitorCommand::Typing) => {
            s.service.hub().to_agents(&AgentEvent::Typing { conversation: id.to_string() });
            return None;
        }
        Ok(VisitorCommand::Ping) => json!({"type": "pong"}),
        Err(e) => json!({"type": "error", "error": e.body()}),
    };
    Some(reply.to_string())
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
    /// Input in the console (sent at most every few seconds): the agent is not idle.
    Active,
    Ping,
}

pub async fn agent(State(s): State<AppState>, Query(q): Query<AgentQuery>, held: Option<Extension<Held>>, upgrade: WebSocketUpgrade) -> ApiResult<Response> {
    // Watch for the session's end before checking it, so an end between the two is seen.
    let ended = s.service.sessions_ended();
    let (me, session) = s.service.agent_session(&q.token).await?;
    let events = s.service.hub().subscribe_agents();
    let stop = session_over(s.clone(), q.token, me.id.clone(), session.expires_ms, ended);
    Ok(upgrade.on_upgrade(move |socket| async move {
        s.metrics.websockets.fetch_add(1, Ordering::Relaxed);
        // Counted open from here until the loop ends: the last close starts the away grace.
        let console = s.service.console_opened(&me.id);
        pump(socket, vec![], events, stop, |command| agent_command(&s, &me.id, command)).await;
        drop(console);
        drop(held);
        s.metrics.websockets.fetch_sub(1, Ordering::Relaxed);
    }))
}

/// Resolves when an agent's socket must close: shutdown, logout, a password reset or a
/// disabling of the agent, or the session's expiry. The socket streams every visitor's
/// messages, so it must not outlive the token that opened it.
pub(crate) async fn session_over(s: AppState, token: String, agent: String, expires_ms: u64, mut ended: broadcast::Receiver<SessionEnded>) {
    let hash = crate::auth::token_hash(&token);
    let left = Duration::from_millis(expires_ms.saturating_sub(crate::service::now_ms()));
    let expiry = tokio::time::sleep(left);
    tokio::pin!(expiry);
    let closing = shutdown(s.closing.clone());
    tokio::pin!(closing);
    loop {
        tokio::select! {
            _ = &mut closing => return,
            _ = &mut expiry => return,
            end = ended.recv() => match end {
                Ok(e) if e.ends(&agent, &hash) => return,
                Ok(_) => {}
                // Missed some: ask the store whether this session still stands.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if s.service.agent_session(&token).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

async fn agent_command(s: &AppState, me: &str, command: Result<AgentCommand, ApiError>) -> Option<String> {
    match command {
        Ok(AgentCommand::Typing { conversation }) => {
            s.service.agent_active(me);
            // Only the owner's typing reaches the visitor; a store error is logged, not guessed.
            match s.service.store().conversation(&conversation).await {
                Ok(Some(c)) if c.state == (crate::dialogue::State::WithAgent { agent: me.to_string() }) => {
                    s.service.hub().to_visitor(&conversation, &VisitorEvent::Typing);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, conversation, "typing not forwarded"),
            }
            None
        }
        Ok(AgentCommand::Active) => {
            s.service.agent_active(me);
            None
        }
        Ok(AgentCommand::Ping) => Some(r#"{"type":"pong"}"#.to_string()),
        // The console sends nothing else; anything unreadable is ignored.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_channel::mpsc;

    use super::*;

    /// A socket made of two channels: what the loop sends, and what the "client" sends.
    struct Socket {
        out: mpsc::UnboundedSender<WsMessage>,
        incoming: mpsc::UnboundedReceiver<Result<WsMessage, Infallible>>,
    }

    impl Sink<WsMessage> for Socket {
        type Error = mpsc::SendError;
        fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.out).poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
            Pin::new(&mut self.out).start_send(item)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.out).poll_flush(cx)
        }
        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.out).poll_close(cx)
        }
    }

    impl Stream for Socket {
        type Item = Result<WsMessage, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.incoming).poll_next(cx)
        }
    }

    #[derive(Deserialize)]
    struct Echo {
        say: String,
    }

    struct Harness {
        client: mpsc::UnboundedSender<Result<WsMessage, Infallible>>,
        server: mpsc::UnboundedReceiver<WsMessage>,
        events: broadcast::Sender<Arc<str>>,
        close: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    /// The loop over channels, answering `{"say": …}` with the text and errors with their code.
    fn start(backlog: &[&str], capacity: usize) -> Harness {
        let (out, server) = mpsc::unbounded();
        let (client, incoming) = mpsc::unbounded();
        let (events, rx) = broadcast::channel(capacity);
        let (close, closing) = watch::channel(false);
        let backlog = backlog.iter().map(|s| s.to_string()).collect();
        let task = tokio::spawn(pump(Socket { out, incoming }, backlog, rx, shutdown(closing), |c: Result<Echo, ApiError>| async move {
            Some(match c {
                Ok(e) => e.say,
                Err(e) => e.code.name().to_string(),
            })
        }));
        Harness { client, server, events, close, task }
    }

    impl Harness {
        async fn next(&mut self) -> String {
            match self.server.next().await.expect("the loop sent something") {
                WsMessage::Text(t) => t.to_string(),
                other => format!("{other:?}"),
            }
        }
        fn say(&self, text: &str) {
            self.client.unbounded_send(Ok(WsMessage::Text(text.into()))).unwrap();
        }
    }

    #[tokio::test]
    async fn backlog_then_events_and_answers() {
        let mut h = start(&["one", "two"], 8);
        assert_eq!((h.next().await, h.next().await), ("one".into(), "two".into()));
        h.events.send("event".into()).unwrap();
        assert_eq!(h.next().await, "event");
        h.say(r#"{"say": "hi"}"#);
        assert_eq!(h.next().await, "hi");
        h.client.unbounded_send(Ok(WsMessage::Binary(vec![1, 2].into()))).unwrap();
        h.say(r#"{"say": "after binary"}"#);
        assert_eq!(h.next().await, "after binary", "binary frames are skipped");
    }

    #[tokio::test]
    async fn arrays_and_broken_json_are_refused_like_http_bodies() {
        let mut h = start(&[], 8);
        h.say(r#"["hi"]"#);
        assert_eq!(h.next().await, "invalid_json");
        h.say("{not json");
        assert_eq!(h.next().await, "invalid_json");
    }

    #[tokio::test]
    async fn a_lagging_receiver_is_told_to_resync() {
        let mut h = start(&[], 2);
        for i in 0..5 {
            h.events.send(format!("e{i}").into()).unwrap();
        }
        assert_eq!(h.next().await, RESYNC);
        assert_eq!(h.next().await, "e3");
    }

    #[tokio::test]
    async fn shutdown_and_a_gone_client_end_the_loop_with_a_close() {
        let mut h = start(&[], 8);
        h.close.send(true).unwrap();
        assert!(matches!(h.server.next().await, Some(WsMessage::Close(None))));
        h.task.await.unwrap();
        let mut h = start(&[], 8);
        drop(h.client);
        assert!(matches!(h.server.next().await, Some(WsMessage::Close(None))));
        h.task.await.unwrap();
    }
}
