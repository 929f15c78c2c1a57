//! Durable storage of conversations, messages, handoffs, tickets, agents and ratings.
//!
//! The dialogue and handoff code see only the narrow [`Store`] trait, with two backends:
//! sled on the local disk (one node, the default) and PostgreSQL (several nodes sharing one
//! database). Both pass one conformance suite (`tests/it/store`). Every change of one step is a [`Change`], applied atomically and
//! made durable before [`Store::commit`] resolves; nothing is acknowledged to a client before
//! that.

pub mod history;
pub mod lease;
mod postgres;
pub mod report;
mod sled_store;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dialogue::{Conversation, Message, Millis, NewMessage};
use crate::handoff::{Agent, Handoff, Rating, Ticket};
pub use history::{HistoryQuery, Hits, Outcome, Summary};
pub use postgres::{redact as redact_url, PgStore};
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
    /// A ticket, new or changed: its `version` must be one more than the stored one's (a
    /// new ticket's is 1), else the change is refused with [`StoreError::TicketChanged`].
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
    /// Questions (normalised) the bot answered, or an admin taught it: they leave the
    /// unanswered lists (see [`report`]).
    pub answered: Vec<String>,
    /// Records of the generic API ([`Store::record`]) stored in the step's own transaction:
    /// what must exist exactly when the step does (the webhook outbox: an event is never
    /// lost, nor sent for a step that was refused).
    pub records: Vec<RecordWrite>,
    /// When the step happened (for counters and message times).
    pub at_ms: Millis,
}

/// One record a [`Change`] stores (over any record under the key), or deletes (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    pub space: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

impl Change {
    /// The messages this change stores in `conv`, numbered on from its `last_seq` (which
    /// moves on), as both backends write them.
    pub(crate) fn number(&self, conv: &mut Conversation) -> Vec<Message> {
        self.messages
            .iter()
            .map(|m| {
                conv.last_seq += 1;
                Message {
                    conversation: conv.id.clone(),
                    seq: conv.last_seq,
                    at_ms: self.at_ms,
                    from: m.from.clone(),
                    text: m.text.clone(),
                    internal: m.internal,
                    bot: m.bot.clone(),
                    client_id: m.client_id.clone(),
                    image: m.image.clone(),
                }
            })
            .collect()
    }
}

/// Counters kept for the statistics page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Visitor messages per hour, keyed by hours since the epoch.
    pub messages_per_hour: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage cannot take writes or answer now (disk full or read-only, the database
    /// unreachable or restarting): the service answers 503 and the client retries.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Failed(String),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("conversation {0} changed under a step (a concurrent writer)")]
    Conflict(String),
    /// A ticket written from an older copy: someone else changed it since it was read.
    #[error("ticket {0} changed under a step (a concurrent writer)")]
    TicketChanged(u64),
    #[error("the storage writer has stopped")]
    WriterGone,
}

impl StoreError {
    /// Whether the storage refused for now (the service answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::WriterGone)
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

/// The note a node's listener hands on after reconnecting to the database: notes sent in
/// between were missed, so live views should reload from the store.
pub const RESYNC: &str = "resync";

/// An atomic read-modify-write of one record: given the stored bytes (if any), the bytes to
/// store (`None` deletes). An error leaves the record as it was.
pub type Update<'a> = &'a (dyn Fn(Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError> + Send + Sync);

/// What the rest of kefu needs from storage.
///
/// Reads are async: on a server database each is a network round trip, and a blocking read
/// would hold a tokio worker (and every conversation queued on it) for that long. sled
/// answers from memory, so its futures are ready at once and cost one allocation.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;
    /// Messages with `seq > after`, oldest first, at most `limit`.
    async fn messages(&self, conversation: &str, after: u64, limit: usize) -> Result<Vec<Message>, StoreError>;
    /// The stored message a client sent under `client_id`, if any (resends are stored once).
    async fn message_by_client_id(&self, conversation: &str, client_id: &str) -> Result<Option<Message>, StoreError>;
    /// The conversation of a verified visitor id.
    async fn conversation_of_user(&self, user_id: &str) -> Result<Option<String>, StoreError>;
    async fn handoff(&self, id: u64) -> Result<Option<Handoff>, StoreError>;
    /// Queued handoffs, by priority then waiting time (then id).
    async fn queue(&self) -> Result<Vec<Handoff>, StoreError>;
    /// How many handoffs are queued ahead of `handoff`'s place (whether or not it is queued
    /// itself). Counts only: positions are asked for on every queued visitor's message and
    /// every queue change, and loading every queued handoff each time was quadratic.
    async fn queue_ahead(&self, handoff: &Handoff) -> Result<usize, StoreError>;
    /// Queued handoffs from `handoff`'s place on, in queue order: the ones whose position a
    /// change there moved.
    async fn queue_from(&self, handoff: &Handoff) -> Result<Vec<Handoff>, StoreError>;
    /// Handoffs assigned now, to `agent` or (with `None`) to anyone; read from an index, not
    /// by loading every handoff.
    async fn assigned(&self, agent: Option<&str>) -> Result<Vec<Handoff>, StoreError>;
    async fn handoffs(&self) -> Result<Vec<Handoff>, StoreError>;
    async fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError>;
    async fn agents(&self) -> Result<Vec<Agent>, StoreError>;
    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    async fn tickets(&self) -> Result<Vec<Ticket>, StoreError>;
    async fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError>;
    /// The tickets whose SLA clocks run, soonest due first, at most `limit`: (when the next
    /// clock runs out — `Ticket::next_due` — and the ticket's id). Kept as tickets are
    /// written, so the SLA watch never reads every ticket.
    async fn tickets_due(&self, limit: usize) -> Result<Vec<(Millis, u64)>, StoreError>;
    async fn ratings(&self) -> Result<Vec<Rating>, StoreError>;
    async fn feedback(&self) -> Result<Vec<Feedback>, StoreError>;
    /// Unanswered questions with their counts, most frequent first.
    async fn unanswered(&self, limit: usize) -> Result<Vec<(String, u64)>, StoreError>;
    async fn counters(&self) -> Result<Counters, StoreError>;
    /// Report counters per hour in `[from_hour, until_hour)` (hours since the epoch), every
    /// scope, in (hour, scope) order; kept by [`Store::commit`] (see [`report::derive`]).
    async fn report_hours(&self, from_hour: u64, until_hour: u64) -> Result<Vec<report::HourCounts>, StoreError>;
    /// All-time report counters per scope (`hour` is [`report::ALL_TIME`]).
    async fn report_totals(&self) -> Result<Vec<report::HourCounts>, StoreError>;
    /// Named counters (answers per article, unanswered questions) summed over
    /// `[from_hour, until_hour)`, largest first (then by name), at most `limit`. Questions
    /// answered since they were last unanswered are left out.
    async fn report_names(&self, kind: report::NameKind, from_hour: u64, until_hour: u64, limit: usize) -> Result<Vec<(String, u64)>, StoreError>;
    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError>;
    /// Conversations `query` matches, newest first, at most `query.limit` (and where the
    /// search stopped, if its `budget` ran out first): searched in the history index (one
    /// [`Summary`] per conversation, written with each step), never by loading conversations.
    async fn search_history(&self, query: &HistoryQuery) -> Result<Hits, StoreError>;
    /// One conversation's summary.
    async fn summary(&self, conversation: &str) -> Result<Option<Summary>, StoreError>;
    async fn conversation_count(&self) -> Result<usize, StoreError>;
    /// Tells the other nodes sharing this store that something changed: a short note (ids
    /// and small events, not data), sent after the commit it is about. Fire and forget: a
    /// lost note costs a late live event, never data. A single-node store drops it.
    fn announce(&self, note: String);
    /// Notes other nodes announce, from now on; `None` for a single-node store. After a lost
    /// connection to the database the receiver gets [`RESYNC`]: notes may have been missed.
    fn notes(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<str>>>;
    /// Which backend this is (`sled`, `postgres`), for `/readyz` and the log.
    fn backend(&self) -> &'static str;
    /// Whether the store answers now: a cheap read (and, where writes wait for a flush, a
    /// flush), for `/readyz`.
    async fn check(&self) -> Result<(), StoreError>;
    /// A fresh id for handoffs and tickets, unique for the life of the store (and across
    /// every node sharing it).
    async fn next_id(&self) -> Result<u64, StoreError>;
    /// Applies a change atomically and resolves, once it is durable, with the messages it
    /// stored. A change whose conversation moved on since it was read is refused with
    /// [`StoreError::Conflict`] and writes nothing.
    fn commit(&self, change: Change) -> Committed;
    /// Announces a commit to come; see [`CommitHint`].
    fn expect_commit(&self) -> CommitHint;
    /// Resolves once every record written before the call is durable. Concurrent callers
    /// share one flush.
    fn durable(&self) -> Durable;

    // Records of a channel or module (WeChat's deliveries, users and outbox; agents' access),
    // by `space` and string key, kept in the same database so that [`Store::durable`] covers
    // them. Writes are durable once `durable` resolves after them.

    async fn record(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores (`Some`) or deletes (`None`) a record.
    async fn set_record(&self, space: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError>;
    /// Stores `value` unless the key already has a record; whether it stored. With several
    /// nodes on one database exactly one claim of a key wins.
    async fn claim_record(&self, space: &str, key: &str, value: Vec<u8>) -> Result<bool, StoreError>;
    /// Changes one record atomically (no other writer of that key runs in between) and
    /// returns what was stored.
    async fn update_record(&self, space: &str, key: &str, update: Update<'_>) -> Result<Option<Vec<u8>>, StoreError>;
    /// Records whose key starts with `prefix`, in key order (byte order of the UTF-8 keys).
    async fn records(&self, space: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The first `limit` records of a space in key order: a bounded read of a space that
    /// can grow without bound (an outbox behind a receiver that is down).
    async fn first_records(&self, space: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}
