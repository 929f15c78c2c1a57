//! The conversation service: runs each visitor message through intents, knowledge and the
//! dialogue policy, applies the outcome to the store (durably, before anything is
//! acknowledged), hands off and assigns, and carries agents' actions. Channels (HTTP,
//! WebSocket, WeChat) call it; it knows nothing about them.

mod access;
mod admin;
mod agents;
mod brain;
mod events;
mod nodes;
mod people;
mod quality;
mod supervision;
mod shared_knowledge;
mod history;
mod images;
mod locks;
mod presence;
mod queue;
pub mod reports;
pub mod stats;
mod tickets;
#[cfg(test)]
pub(crate) mod testing;
mod turn;
mod visitor;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::auth;
use crate::codes::Code;
use crate::dialogue::{
    Availability, Conversation, Message, Millis, NewMessage, Outcome, Policy, Rules, Sender, State, StateName, Turn, Visitor,
};
use crate::handoff::{self, Agent, AgentStatus, Assignment, BusinessHours, CandidateView, Handoff, HandoffStatus, Load, Rating, Reason, Role, Ticket};
use crate::knowledge::KnowledgeError;
use crate::store::{Change, Feedback, Session, Store, StoreError};
use crate::text::normalize;
pub use access::SessionEnded;
pub use brain::{fingerprint, Brain, BrainError, Sources};
pub use events::{AgentEvent, Hub, VisitorEvent, RESYNC_EVENT};
pub use images::{ImageBytes, IMAGES, IMAGE_LINKS};
pub use history::{HistoryPage, HistoryRequest, HistoryView, SCAN_BUDGET};
pub use people::{Admin, AgentUpdate};
pub use presence::{AwayReason, ConsoleGuard, PresenceConfig};
pub use quality::{Criterion, QualityConfig, Review, ReviewRequest, Score, ScoreGiven};
pub use supervision::LiveConversation;
pub use reports::{Range, Report};
pub use stats::Stats;
pub use tickets::{NewTicket, TicketFilter, TicketUpdate, TicketView};

/// What can go wrong serving a request. Each has a [`Code`] from the one table in
/// `crate::codes`; the HTTP edge answers with the code's status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request the service refuses: the code says why, the message names the value.
    #[error("{1}")]
    Refused(Code, String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("the conversation is busy; try again shortly")]
    Busy,
    /// Another node (or writer) moved the conversation on while this step was worked out;
    /// nothing was written. A visitor's message is retried on the new state; other steps
    /// answer busy, to be tried again.
    #[error("conversation {0} changed under this step; try again")]
    Moved(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ServiceError::Unavailable(e)
        } else if let StoreError::Conflict(id) = e {
            ServiceError::Moved(id)
        } else if let StoreError::TicketChanged(id) = e {
            ServiceError::refused(Code::TicketChanged, format!("ticket {id} was changed by someone else meanwhile; reload it and try again"))
        } else {
            ServiceError::Internal(e.to_string())
        }
    }
}

impl From<KnowledgeError> for ServiceError {
    fn from(e: KnowledgeError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl ServiceError {
    pub fn refused(code: Code, message: impl Into<String>) -> ServiceError {
        ServiceError::Refused(code, message.into())
    }

    pub fn code(&self) -> Code {
        match self {
            ServiceError::Refused(code, _) => *code,
            ServiceError::Unauthorized => Code::Unauthorized,
            ServiceError::Busy | ServiceError::Moved(_) => Code::Busy,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

pub use crate::dialogue::now_ms;

/// What a visitor starts a conversation with.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub channel: String,
    pub name: Option<String>,
    pub page: Option<String>,
    /// A logged-in customer: (user id, HMAC signature).
    pub identity: Option<(String, String)>,
}

/// A started (or resumed) conversation and the visitor's token for it.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub id: String,
    pub token: String,
    pub resumed: bool,
    pub verified: bool,
    pub messages: Vec<Message>,
}

/// A visitor's message as stored, and the bot's replies.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub message: Message,
    pub replies: Vec<Message>,
    pub state: StateName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// While queued: the estimated wait in milliseconds (see `presence::Presence::estimate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_ms: Option<u64>,
    /// True when this was a resend of an already stored message.
    pub duplicate: bool,
}

/// A channel user's message and the bot's replies; `transferred` when the channel's own
/// agents are to take over.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelExchange {
    #[serde(flatten)]
    pub exchange: Exchange,
    pub transferred: bool,
}

/// A conversation as the visitor sees it.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorView {
    pub id: String,
    pub state: StateName,
    pub queue_position: Option<usize>,
    pub estimated_wait_ms: Option<u64>,
    pub agent: Option<String>,
    pub rating_requested: bool,
    pub messages: Vec<Message>,
}

/// A handed-off conversation as an agent sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// Without the visitor's token hashes: an agent has no use for them.
    #[serde(serialize_with = "without_token_hashes")]
    pub conversation: Conversation,
    pub handoff: Option<Handoff>,
    pub messages: Vec<Message>,
    pub waiting_ms: Option<u64>,
}

fn without_token_hashes<S: serde::Serializer>(c: &Conversation, s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(c).map_err(serde::ser::Error::custom)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("token_hashes");
    }
    value.serialize(s)
}

/// A queued handoff with its waiting time.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    pub position: usize,
    pub waiting_ms: u64,
    #[serde(flatten)]
    pub handoff: Handoff,
}

/// An agent's account without its password hash.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
    pub max_concurrent: u32,
    pub status: AgentStatus,
    pub role: Role,
    pub active: u32,
    /// A disabled agent cannot log in (see [`Service::set_disabled`]).
    pub disabled: bool,
}

/// The outcome of a knowledge/intents reload.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReloadStatus {
    pub generation: String,
    pub articles: usize,
    pub intents: usize,
    pub at_ms: Millis,
    /// The last failed reload's error (the previous knowledge keeps serving).
    pub error: Option<String>,
}

/// What the service is configured by: its part of `config::Config`, which the service does
/// not know (the config knows every channel, and the channels call the service).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The per-site secret that signs a logged-in customer's id (HMAC-SHA256).
    pub identity_secret: Option<String>,
    pub assignment: Assignment,
    /// PBKDF2 rounds for new agent passwords.
    pub password_rounds: u32,
    pub max_message_chars: usize,
    /// How long a message waits for its conversation before `Busy`.
    pub conversation_wait_ms: u64,
    /// Agent sessions expire after this many hours.
    pub session_hours: u64,
    /// A visitor's name and page, and a rating's comment, in characters.
    pub max_name_chars: usize,
    pub max_page_chars: usize,
    pub max_comment_chars: usize,
    /// Photos in the chat.
    pub images: crate::images::ImageLimits,
    pub dialogue: Rules,
    pub hours: BusinessHours,
    pub presence: PresenceConfig,
    /// SLA policies for tickets, with the SLA clock's speed.
    pub sla: handoff::SlaPolicies,
    /// The rubric supervisors review resolved conversations on (质检).
    pub quality: QualityConfig,
    pub webhooks: crate::webhook::WebhookConfig,
}

pub struct Service {
    config: ServiceConfig,
    store: Arc<dyn Store>,
    brain: RwLock<Arc<Brain>>,
    sources: Sources,
    locks: locks::ConversationLocks,
    hub: Hub,
    /// Serialises assignment so capacity checks and assignments do not race.
    assigning: tokio::sync::Mutex<()>,
    admin_token_hash: String,
    reload: Mutex<ReloadStatus>,
    reloading: tokio::sync::Mutex<()>,
    /// Serialises starting channel users' conversations (one per user).
    opening: tokio::sync::Mutex<()>,
    /// Sessions that end (logout, password reset, disabling), for their sockets.
    sessions_ended: tokio::sync::broadcast::Sender<SessionEnded>,
    presence: Arc<presence::Presence>,
    /// Wakes the SLA watch when a ticket is written (its due times may be sooner).
    sla_wake: tokio::sync::Notify,
    /// Endpoints subscribed to events, and the outbox steps stage their events into.
    webhooks: Arc<crate::webhook::Webhooks>,
}

const HISTORY_LIMIT: usize = 1000;

impl Service {
    /// Builds the service over an opened store and loaded brain.
    pub fn new(config: ServiceConfig, store: Arc<dyn Store>, brain: Brain, sources: Sources, admin_token_hash: String) -> Service {
        let status = ReloadStatus {
            generation: brain.generation.clone(),
            articles: brain.engine.articles().len(),
            intents: brain.intents.all().len(),
            at_ms: now_ms(),
            error: None,
        };
        let hub = Hub::default();
        if store.notes().is_some() {
            let to_others = store.clone();
            hub.announce_with(Box::new(move |note| to_others.announce(note)));
        }
        let webhooks = Arc::new(crate::webhook::Webhooks::new(store.clone(), config.webhooks.clone()));
        Service {
            webhooks,
            config,
            store,
            brain: RwLock::new(Arc::new(brain)),
            sources,
            locks: Default::default(),
            hub,
            assigning: Default::default(),
            admin_token_hash,
            reload: Mutex::new(status),
            reloading: Default::default(),
            opening: Default::default(),
            sessions_ended: access::channel(),
            presence: Default::default(),
            sla_wake: Default::default(),
        }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn brain(&self) -> Arc<Brain> {
        self.brain.read().expect("brain lock poisoned").clone()
    }

    fn wait(&self) -> Duration {
        Duration::from_millis(self.config.conversation_wait_ms)
    }

    async fn lock(&self, conversation: &str) -> Result<locks::Turn> {
        self.locks.lock(conversation, self.wait()).await.ok_or(ServiceError::Busy)
    }

    /// Commits a change and waits until it is on disk: nothing is acknowledged before.
    async fn commit(&self, change: Change) -> Result<Vec<Message>> {
        let staged = !change.records.is_empty();
        let stored = self.store.commit(change).await?;
        self.webhooks.committed(staged);
        Ok(stored)
    }

    pub fn webhooks(&self) -> &Arc<crate::webhook::Webhooks> {
        &self.webhooks
    }


    /// The conversation `id`, or `NotFound` naming it.
    async fn load_conversation(&self, id: &str) -> Result<Conversation> {
        self.store.conversation(id).await?.ok_or_else(|| ServiceError::refused(Code::ConversationNotFound, format!("conversation {id} not found")))
    }

    /// The conversation's latest handoff, if it was ever handed off. A store error is an
    /// error, never "not handed off".
    async fn handoff_of(&self, conv: &Conversation) -> Result<Option<Handoff>> {
        match conv.handoff {
            Some(h) => Ok(self.store.handoff(h).await?),
            None => Ok(None),
        }
    }
}

/// The messages a change will store, with the sequence numbers they will get (the caller
/// holds the conversation's lock, so the numbers are exact): the store's own numbering.
fn predict(conv: &Conversation, change: &Change) -> Vec<Message> {
    change.number(&mut conv.clone())
}
