//! Live events: to each visitor's open connections, and to every connected agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::dialogue::{Message, StateName};
use crate::handoff::{AgentStatus, Handoff, HandoffStatus};

/// An event for a visitor's widget.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorEvent {
    Message { message: Message },
    /// The conversation's state, with the queue position or the agent when there is one.
    State {
        state: StateName,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_position: Option<usize>,
        /// While queued: the estimated wait in milliseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        estimated_wait_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        rating_requested: bool,
    },
    /// An agent is typing.
    Typing,
}

/// An event for agents' consoles.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A conversation was handed off (alert every online agent).
    Handoff { handoff: Handoff },
    /// A new message in a handed-off conversation (including internal notes).
    Message { conversation: String, message: Message },
    /// A handoff was taken, transferred, resolved or returned; `agent` holds it now.
    Changed { handoff: u64, conversation: String, status: HandoffStatus, agent: Option<String> },
    /// The visitor is typing.
    Typing { conversation: String },
    /// An agent went online or away (by hand, or sent away by presence).
    Presence { agent: String, status: AgentStatus },
}

/// Channels of serialised events. Events are serialised once, whatever the audience.
pub struct Hub {
    visitors: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    agents: broadcast::Sender<Arc<str>>,
    /// A channel that delivers visitors' messages itself (WeChat) gets every message meant
    /// for a visitor, unbounded so that none is skipped.
    tap: Mutex<Option<mpsc::UnboundedSender<(String, Message)>>>,
}

/// How many events a slow connection may fall behind before it skips ahead (it then reloads
/// history from its last sequence number, so nothing is lost).
const BACKLOG: usize = 256;

impl Default for Hub {
    fn default() -> Self {
        Hub { visitors: Mutex::new(HashMap::new()), agents: broadcast::channel(BACKLOG * 4).0, tap: Mutex::new(None) }
    }
}

fn json<T: Serialize>(event: &T) -> Arc<str> {
    serde_json::to_string(event).expect("events always serialise").into()
}

impl Hub {
    pub fn subscribe_visitor(&self, conversation: &str) -> broadcast::Receiver<Arc<str>> {
        let mut map = self.visitors.lock().expect("hub lock poisoned");
        map.entry(conversation.to_string()).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe()
    }

    /// Forgets a conversation's channel once its last socket has gone. Without this a
    /// channel (and its preallocated backlog, ~12 KiB) outlived every WebSocket visitor who
    /// left quietly: RSS grew ~19 MiB a minute in the soak (docs/reliability.md).
    pub fn release_visitor(&self, conversation: &str) {
        let mut map = self.visitors.lock().expect("hub lock poisoned");
        if map.get(conversation).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(conversation);
        }
    }

    pub fn subscribe_agents(&self) -> broadcast::Receiver<Arc<str>> {
        self.agents.subscribe()
    }

    /// Every message published to a visitor from now on, with its conversation (replaces an
    /// earlier tap).
    pub fn tap(&self) -> mpsc::UnboundedReceiver<(String, Message)> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.tap.lock().expect("hub lock poisoned") = Some(tx);
        rx
    }

    pub fn to_visitor(&self, conversation: &str, event: &VisitorEvent) {
        if let VisitorEvent::Message { message } = event {
            if let Some(tap) = &*self.tap.lock().expect("hub lock poisoned") {
                let _ = tap.send((conversation.to_string(), message.clone()));
            }
        }
        let mut map = self.visitors.lock().expect("hub lock poisoned");
        if let Some(tx) = map.get(conversation) {
            if tx.send(json(event)).is_err() {
                // Nobody listens any more: forget the channel so the map stays bounded.
                map.remove(conversation);
            }
        }
    }

    pub fn to_agents(&self, event: &AgentEvent) {
        let _ = self.agents.send(json(event));
    }

    /// Open visitor channels (for /metrics).
    pub fn visitor_channels(&self) -> usize {
        self.visitors.lock().expect("hub lock poisoned").len()
    }
}
