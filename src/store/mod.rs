//! Durable storage of conversations, messages, handoffs, tickets, agents and ratings.
//!
//! The dialogue and handoff code see only the narrow [`Store`] trait, so a server database
//! can replace sled later. Every change of one step is a [`Change`], applied atomically and
//! made durable before [`Store::commit`] resolves; nothing is acknowledged to a client before
//! that.

mod sled_store;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dialogue::{Conversation, Message, Millis, NewMessage};
use crate::handoff::{Agent, Handoff, Rating, Ticket};
pub use sled_store::SledStore;

/// A logged-in agent's session, keyed by the SHA-256 of its bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub agent: String,
    pub created_ms: Millis,
    pub expires_ms: Millis,
}

/// A visitor's "did this answer help?" on one bot message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub conversation: String,
    pub seq: u64,
    pub article: Option<String>,
    pub helpful: bool,
    pub at_ms: Millis,
}

/// Everything one step writes, applied all together or not at all.
#[derive(Debug, Default)]
pub struct Change {
    /// The conversation after the step; `messages` are appended to it and its `last_seq`
    /// advanced.
    pub conversation: Option<Conversation>,
    pub messages: Vec<NewMessage>,
    /// A handoff and its queue entry, written together: queued handoffs are in the queue,
    /// others are not.
    pub handoffs: Vec<Handoff>,
    pub ticket: Option<Ticket>,
    pub rating: Option<Rating>,
    pub feedback: Option<Feedback>,
    pub agent: Option<Agent>,
    /// A session to store (`Some`) or end (`None`), by token hash.
    pub session: Option<(String, Option<Session>)>,
    /// Links a verified visitor id to their conversation.
    pub identity: Option<(String, String)>,
    /// Questions the bot could not answer (normalised), counted.
    pub unanswered: Vec<String>,
    /// When the step happened (for counters and message times).
    pub at_ms: Millis,
}

/// Counters kept for the statistics page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Visitor messages per hour, keyed by hours since the epoch.
    pub messages_per_hour: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("conversation {0} changed under a step (a concurrent writer)")]
    Conflict(String),
    #[error("the storage writer has stopped")]
    WriterGone,
}

impl StoreError {
    /// Whether the disk refused the write (full, read-only): the service answers 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(_)) | StoreError::WriterGone)
    }
}

pub type Durable = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A commit in flight: the messages it stored, once applied and durable.
pub type Committed = Pin<Box<dyn Future<Output = Result<Vec<Message>, StoreError>> + Send>>;

/// Says that a commit is on its way (its step is being worked out): while any are announced,
/// the store may hold a flush briefly so that they share it. Dropping the hint, just before
/// committing or on giving up, withdraws the announcement.
pub struct CommitHint(Arc<AtomicUsize>);

impl CommitHint {
    pub fn new(announced: Arc<AtomicUsize>) -> CommitHint {
        announced.fetch_add(1, Ordering::SeqCst);
        CommitHint(announced)
    }
}

impl Drop for CommitHint {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the rest of kefu needs from storage.
pub trait Store: Send + Sync + 'static {
    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;
    /// Messages with `seq > after`, oldest first, at most `limit`.
    fn messages(&self, conversation: &str, after: u64, limit: usize) -> Result<Vec<Message>, StoreError>;
    /// The stored message a client sent under `client_id`, if any (resends are stored once).
    fn message_by_client_id(&self, conversation: &str, client_id: &str) -> Result<Option<Message>, StoreError>;
    /// The conversation of a verified visitor id.
    fn conversation_of_user(&self, user_id: &str) -> Result<Option<String>, StoreError>;
    fn handoff(&self, id: u64) -> Result<Option<Handoff>, StoreError>;
    /// Queued handoffs, by priority then waiting time.
    fn queue(&self) -> Result<Vec<Handoff>, StoreError>;
    /// How many handoffs are queued ahead of `key` (a [`Handoff::queue_key`]). Reads keys
    /// only: positions are asked for on every queued visitor's message and every queue change,
    /// and loading every queued handoff (transcripts included) each time was quadratic.
    fn queue_rank(&self, key: &[u8]) -> Result<usize, StoreError>;
    /// Queued handoffs from `key` on, in queue order: the ones whose position a change at
    /// `key` moved.
    fn queue_from(&self, key: &[u8]) -> Result<Vec<Handoff>, StoreError>;
    fn handoffs(&self) -> Result<Vec<Handoff>, StoreError>;
    fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError>;
    fn agents(&self) -> Result<Vec<Agent>, StoreError>;
    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    fn tickets(&self) -> Result<Vec<Ticket>, StoreError>;
    fn ratings(&self) -> Result<Vec<Rating>, StoreError>;
    fn feedback(&self) -> Result<Vec<Feedback>, StoreError>;
    /// Unanswered questions with their counts, most frequent first.
    fn unanswered(&self, limit: usize) -> Result<Vec<(String, u64)>, StoreError>;
    fn counters(&self) -> Result<Counters, StoreError>;
    fn conversations(&self) -> Result<Vec<Conversation>, StoreError>;
    fn conversation_count(&self) -> Result<usize, StoreError>;
    /// A fresh id for handoffs and tickets, unique for the life of the store.
    fn next_id(&self) -> Result<u64, StoreError>;
    /// Applies a change atomically and resolves, once it is on disk, with the messages it
    /// stored. Concurrent commits share one transaction and one flush.
    fn commit(&self, change: Change) -> Committed;
    /// Announces a commit to come; see [`CommitHint`].
    fn expect_commit(&self) -> CommitHint;
    /// Resolves once everything written before the call (a channel's keyspace records
    /// included) is on disk. Concurrent callers share one flush.
    fn durable(&self) -> Durable;
    /// A keyspace of its own, in the same database, for a channel's records (WeChat's
    /// deliveries, users and outbox), so that [`Store::durable`] covers them too. Channels
    /// must not flush sled themselves: a sled flush holds its process-wide concurrency lock
    /// while it waits, and extra flushes beside the service's transactions deadlocked the
    /// server under load.
    fn keyspace(&self, name: &str) -> Result<sled::Tree, StoreError>;
}
