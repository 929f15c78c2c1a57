//! Live events: to each visitor's open connections, and to every connected agent, on this
//! node and (through the store's notes) on every other node sharing the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::dialogue::{Message, StateName};
use crate::handoff::{AgentStatus, Handoff, HandoffStatus, TicketSummary};

/// An event for a visitor's widget.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// A ticket was made (`created`: announce it like a handoff) or changed.
    Ticket { ticket: TicketSummary, created: bool },
    /// A supervisor took a conversation over from `from` (who is told so in the console).
    TakenOver { conversation: String, from: String, by: String, by_name: String },
    /// A supervisor reviewed (质检) a conversation of `agent`'s.
    Reviewed { conversation: String, agent: String },
}

/// What this node tells the other nodes about an event it published: small events as they
/// are, messages and handoffs by id (the receiver reads them from the store, which has them:
/// events are published after their commit). Fits PostgreSQL's 8000-byte notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "n", rename_all = "snake_case")]
pub enum Note {
    Visitor { c: String, event: VisitorEvent },
    VisitorMessage { c: String, seq: u64 },
    Agents { event: AgentEvent },
    AgentMessage { c: String, seq: u64 },
    Handoff { id: u64 },
    /// A ticket by id (its message may be long): the receiver reads it from the store.
    Ticket { id: u64, created: bool },
    /// The shared knowledge has a new generation (see `shared_knowledge`).
    Knowledge { generation: u64 },
}

impl Note {
    fn of_visitor(c: &str, event: &VisitorEvent) -> Note {
        match event {
            VisitorEvent::Message { message } => Note::VisitorMessage { c: c.into(), seq: message.seq },
            other => Note::Visitor { c: c.into(), event: other.clone() },
        }
    }

    fn of_agents(event: &AgentEvent) -> Note {
        match event {
            AgentEvent::Handoff { handoff } => Note::Handoff { id: handoff.id },
            AgentEvent::Message { conversation, message } => Note::AgentMessage { c: conversation.clone(), seq: message.seq },
            AgentEvent::Ticket { ticket, created } => Note::Ticket { id: ticket.id, created: *created },
            other => Note::Agents { event: other.clone() },
        }
    }
}

/// Hands this node's notes to the other nodes (the store's [`crate::store::Store::announce`]).
pub type Announce = Box<dyn Fn(String) + Send + Sync>;

/// Channels of serialised events. Events are serialised once, whatever the audience.
pub struct Hub {
    visitors: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    agents: broadcast::Sender<Arc<str>>,
    /// A channel that delivers visitors' messages itself (WeChat) gets every message meant
    /// for a visitor, unbounded so that none is skipped.
    tap: Mutex<Option<mpsc::UnboundedSender<(String, Message)>>>,
    /// Set when other nodes share the store.
    announce: std::sync::OnceLock<Announce>,
}

/// What a receiver that fell behind (or whose node missed other nodes' notes) gets instead
/// of the events it missed: it reloads history from its last sequence number.
pub const RESYNC_EVENT: &str = r#"{"type":"resync"}"#;

/// How many events a slow connection may fall behind before it skips ahead (it then reloads
/// history from its last sequence number, so nothing is lost).
const BACKLOG: usize = 256;

impl Default for Hub {
    fn default() -> Self {
        Hub {
            visitors: Mutex::new(HashMap::new()),
            agents: broadcast::channel(BACKLOG * 4).0,
            tap: Mutex::new(None),
            announce: std::sync::OnceLock::new(),
        }
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

    /// Tells the other nodes about every event published here from now on.
    pub fn announce_with(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    fn announce(&self, note: impl FnOnce() -> Note) {
        if let Some(a) = self.announce.get() {
            a(serde_json::to_string(&note()).expect("notes always serialise"));
        }
    }

    pub fn to_visitor(&self, conversation: &str, event: &VisitorEvent) {
        if let VisitorEvent::Message { message } = event {
            if let Some(tap) = &*self.tap.lock().expect("hub lock poisoned") {
                let _ = tap.send((conversation.to_string(), message.clone()));
            }
        }
        self.announce(|| Note::of_visitor(conversation, event));
        self.local_visitor(conversation, event);
    }

    /// An event to this node's sockets of a visitor only: one another node published (its
    /// channel tap ran there).
    pub fn local_visitor(&self, conversation: &str, event: &VisitorEvent) {
        let mut map = self.visitors.lock().expect("hub lock poisoned");
        if let Some(tx) = map.get(conversation) {
            if tx.send(json(event)).is_err() {
                // Nobody listens any more: forget the channel so the map stays bounded.
                map.remove(conversation);
            }
        }
    }

    pub fn to_agents(&self, event: &AgentEvent) {
        self.announce(|| Note::of_agents(event));
        self.local_agents(event);
    }

    /// An event to this node's agents only (another node published it).
    pub fn local_agents(&self, event: &AgentEvent) {
        let _ = self.agents.send(json(event));
    }

    /// Whether a visitor has sockets on this node (else a note about them needs no read).
    pub fn has_visitor(&self, conversation: &str) -> bool {
        self.visitors.lock().expect("hub lock poisoned").contains_key(conversation)
    }

    /// Whether any agent's console listens on this node.
    pub fn has_agents(&self) -> bool {
        self.agents.receiver_count() > 0
    }

    /// Tells every socket on this node to reload from the store (notes may have been
    /// missed while the connection to the other nodes was down).
    pub fn resync_all(&self, resync: &Arc<str>) {
        for tx in self.visitors.lock().expect("hub lock poisoned").values() {
            let _ = tx.send(resync.clone());
        }
        let _ = self.agents.send(resync.clone());
    }

    /// Open visitor channels (for /metrics).
    pub fn visitor_channels(&self) -> usize {
        self.visitors.lock().expect("hub lock poisoned").len()
    }
}
