//! Signed webhooks: the events kefu tells a shop's other systems about (a conversation
//! started, handed off, assigned, resolved, rated; a ticket created or updated; a message
//! left), the endpoints an admin configures per event type, and their outbox.
//!
//! An event is staged into the [`Change`] of the step that causes it (one outbox record per
//! subscribed endpoint), so the store writes it in that step's transaction: a crash loses
//! neither, and a refused step sends nothing. The delivery worker (`worker.rs`) sends the
//! outbox off the conversation path, signed (`sign.rs`), at least once, in order per
//! conversation, with retries and backoff; the sent and the given-up stay in a log.
//! Everything lives in record spaces of the shared store, so every node sees the same
//! endpoints and one node (holding a lease) sends.
//!
//! This module knows the store and nothing of the service or HTTP.

pub use crate::dialogue::now_ms;

pub mod sign;
mod worker;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::codes::Code;
use crate::dialogue::Millis;
use crate::store::{Change, RecordWrite, Store, StoreError};

/// The event types, each with its wire name and when it is sent: one table, so adding a type
/// is one line (and the admin page and the docs list it from here).
macro_rules! events {
    ($($kind:ident = $name:literal $when:literal,)*) => {
        /// A type of event endpoints subscribe to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $(#[doc = $when] $kind,)*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),*];

            /// The name in `X-Kefu-Event` and the body's `event`.
            pub fn name(self) -> &'static str {
                match self { $(EventKind::$kind => $name,)* }
            }

            pub fn when(self) -> &'static str {
                match self { $(EventKind::$kind => $when,)* }
            }

            pub fn from_name(name: &str) -> Option<EventKind> {
                match name { $($name => Some(EventKind::$kind),)* _ => None }
            }
        }
    };
}

events! {
    ConversationStarted = "conversation.started" "a visitor or a channel's user started a conversation",
    ConversationHandedOff = "conversation.handed_off" "the bot handed the conversation to a human (it is queued)",
    ConversationAssigned = "conversation.assigned" "an agent claimed the conversation, was given it, or had it transferred to them",
    ConversationResolved = "conversation.resolved" "the agent resolved the conversation",
    ConversationRated = "conversation.rated" "the visitor rated a resolved conversation",
    TicketCreated = "ticket.created" "a ticket was created",
    TicketUpdated = "ticket.updated" "a ticket changed",
    MessageLeft = "message.left" "a visitor left a message (contact and text) when nobody could take the conversation",
}

/// One event, before it is staged: its type, its conversation (the order it keeps) and what
/// it says.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub conversation: Option<String>,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: EventKind, conversation: &str, data: serde_json::Value) -> Event {
        Event { kind, conversation: Some(conversation.to_string()), data }
    }
}

/// An endpoint an admin configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// Event names it gets.
    pub events: Vec<String>,
    /// The HMAC-SHA256 key of its signatures (hex, generated).
    pub secret: String,
    pub created_ms: Millis,
}

impl Endpoint {
    fn wants(&self, kind: EventKind) -> bool {
        self.events.iter().any(|e| e == kind.name())
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the outbox: not yet sent, or waiting for its next try.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after `webhooks.give_up_secs` of failures (kept; "send again" retries it).
    Failed,
}

/// One try at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: Millis,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did (no answer, or not 2xx).
    pub error: Option<String>,
}

/// One event for one endpoint: an outbox entry while pending, a log entry after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The `X-Kefu-Delivery` header: the same on every try and on "send again", so a
    /// receiver can drop what it has already handled.
    pub id: String,
    pub endpoint: String,
    pub event: String,
    pub conversation: Option<String>,
    /// The JSON body, fixed when the event was staged.
    pub body: String,
    pub created_ms: Millis,
    pub status: Status,
    /// Tries so far.
    pub tries: u32,
    /// The last few tries, oldest first.
    pub attempts: Vec<Attempt>,
    /// Not before (after a failed try).
    pub next_ms: Millis,
    /// When this round of tries began (staged, or sent again): the give-up clock.
    pub since_ms: Millis,
}

/// Tries kept per delivery in the log.
const ATTEMPTS_KEPT: usize = 10;

/// `[webhooks]`: how deliveries are sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// A try waits this long for the receiver's answer.
    pub timeout_ms: u64,
    /// Waits between tries double from one second up to this.
    pub max_backoff_ms: u64,
    /// A delivery failing for this long is marked failed (and kept).
    pub give_up_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { timeout_ms: 5_000, max_backoff_ms: 600_000, give_up_secs: 3_600 }
    }
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(format!("webhooks.timeout_ms must be 1 to 60000, not {}", self.timeout_ms));
        }
        if self.max_backoff_ms < 1_000 {
            return Err(format!("webhooks.max_backoff_ms must be at least 1000, not {}", self.max_backoff_ms));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook endpoint {0}")]
    EndpointNotFound(String),
    #[error("no webhook delivery {0}")]
    DeliveryNotFound(String),
    #[error("a webhook record is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The API code of a refusal (`None`: a store fault, answered as the store's errors are).
    pub fn code(&self) -> Option<Code> {
        match self {
            WebhookError::Invalid(_) => Some(Code::InvalidWebhook),
            WebhookError::EndpointNotFound(_) => Some(Code::WebhookNotFound),
            WebhookError::DeliveryNotFound(_) => Some(Code::DeliveryNotFound),
            WebhookError::Corrupt(_) | WebhookError::Store(_) => None,
        }
    }
}

pub(crate) const ENDPOINTS: &str = "webhook-endpoints";
/// Pending deliveries, keyed `order \0 endpoint`: the order (a fresh store id, zero-padded
/// to sort as a number) is the order of the steps that caused them.
pub(crate) const OUTBOX: &str = "webhook-outbox";
/// Delivered and failed deliveries, under the key they had in the outbox.
pub(crate) const LOG: &str = "webhook-log";
const SENDER: &str = "webhook-sender";

fn outbox_key(order: u64, endpoint: &str) -> String {
    format!("{order:020}\u{0}{endpoint}")
}

fn read<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(bytes).map_err(|e| WebhookError::Corrupt(format!("{what}: {e}")))
}

fn write<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("webhook records serialise")
}

/// The webhooks of one node: the endpoints (cached: every step asks who subscribes), the
/// outbox staging, the admin's operations, and the worker's wake-up.
pub struct Webhooks {
    store: Arc<dyn Store>,
    config: WebhookConfig,
    endpoints: RwLock<Arc<Vec<Endpoint>>>,
    wake: Notify,
    /// This process among the nodes sharing the store (who holds the sender's lease).
    node: String,
    /// Passes of the worker so far (tests and `/metrics` wait on them, not on time).
    pub passes: std::sync::atomic::AtomicU64,
}

impl Webhooks {
    /// The webhooks over `store`; [`Webhooks::load`] reads the endpoints before serving.
    pub fn new(store: Arc<dyn Store>, config: WebhookConfig) -> Webhooks {
        Webhooks {
            store,
            config,
            endpoints: RwLock::new(Arc::new(Vec::new())),
            wake: Notify::new(),
            node: crate::auth::new_id(),
            passes: Default::default(),
        }
    }

    /// Reads the endpoints: before the first step is served, so that none of its events is
    /// missed; again at every pass of the worker (another node's admin may change them).
    pub async fn load(&self) -> Result<(), WebhookError> {
        self.refresh().await
    }

    async fn refresh(&self) -> Result<(), WebhookError> {
        let mut list = Vec::new();
        for (_, v) in self.store.records(ENDPOINTS, "").await? {
            list.push(read::<Endpoint>("an endpoint", &v)?);
        }
        list.sort_by_key(|e: &Endpoint| e.created_ms);
        *self.endpoints.write().expect("endpoints lock poisoned") = Arc::new(list);
        Ok(())
    }

    fn cached(&self) -> Arc<Vec<Endpoint>> {
        self.endpoints.read().expect("endpoints lock poisoned").clone()
    }

    /// Stages `event` into `change` for every endpoint subscribed to its type: the outbox
    /// records are written in the change's own commit. Nothing (not even a store read)
    /// when nobody subscribes. The caller holds the conversation's turn, so the fresh id
    /// orders this event after the conversation's earlier ones.
    pub async fn stage(&self, change: &mut Change, event: Event) -> Result<(), StoreError> {
        let endpoints: Vec<Endpoint> = self.cached().iter().filter(|e| e.wants(event.kind)).cloned().collect();
        if endpoints.is_empty() {
            return Ok(());
        }
        let order = self.store.next_id().await?;
        let body = serde_json::json!({
            "id": order.to_string(),
            "event": event.kind.name(),
            "created_ms": change.at_ms,
            "conversation": event.conversation,
            "data": event.data,
        })
        .to_string();
        for e in endpoints {
            let delivery = Delivery {
                id: format!("{order}-{}", e.id),
                endpoint: e.id.clone(),
                event: event.kind.name().into(),
                conversation: event.conversation.clone(),
                body: body.clone(),
                created_ms: change.at_ms,
                status: Status::Pending,
                tries: 0,
                attempts: vec![],
                next_ms: 0,
                since_ms: change.at_ms,
            };
            change.records.push(RecordWrite { space: OUTBOX.into(), key: outbox_key(order, &e.id), value: Some(write(&delivery)) });
        }
        Ok(())
    }

    /// A step with staged events committed: the worker looks now rather than at its next
    /// tick.
    pub fn committed(&self, change_had_records: bool) {
        if change_had_records {
            self.wake.notify_one();
        }
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    // ---- the admin's operations ------------------------------------------------------

    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.cached().as_ref().clone()
    }

    fn check(url: &str, events: &[String]) -> Result<(), WebhookError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| WebhookError::Invalid(format!("url {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(WebhookError::Invalid(format!("url {url:?} must be an http:// or https:// URL with a host")));
        }
        if url.len() > 2000 {
            return Err(WebhookError::Invalid(format!("url has {} bytes; at most 2000 are allowed", url.len())));
        }
        if events.is_empty() {
            let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
            return Err(WebhookError::Invalid(format!("events is empty; name at least one of {}", names.join(", "))));
        }
        for e in events {
            if EventKind::from_name(e).is_none() {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                return Err(WebhookError::Invalid(format!("{e:?} is not an event type; the types are {}", names.join(", "))));
            }
        }
        Ok(())
    }

    /// Adds an endpoint, with a fresh secret.
    pub async fn add(&self, url: &str, events: Vec<String>, now: Millis) -> Result<Endpoint, WebhookError> {
        Self::check(url, &events)?;
        let id = crate::auth::new_id()[..12].to_string();
        let e = Endpoint { id: id.clone(), url: url.trim().into(), events, secret: crate::auth::new_token(), created_ms: now };
        self.store.set_record(ENDPOINTS, &id, Some(write(&e))).await?;
        self.store.durable().await?;
        self.refresh().await?;
        Ok(e)
    }

    /// Changes an endpoint's URL and events (its secret stays).
    pub async fn update(&self, id: &str, url: &str, events: Vec<String>) -> Result<Endpoint, WebhookError> {
        Self::check(url, &events)?;
        let mut e = self.endpoint(id).await?;
        e.url = url.trim().into();
        e.events = events;
        self.store.set_record(ENDPOINTS, id, Some(write(&e))).await?;
        self.store.durable().await?;
        self.refresh().await?;
        Ok(e)
    }

    /// Removes an endpoint; its pending deliveries are logged as failed when the worker
    /// meets them.
    pub async fn remove(&self, id: &str) -> Result<(), WebhookError> {
        self.endpoint(id).await?;
        self.store.set_record(ENDPOINTS, id, None).await?;
        self.store.durable().await?;
        self.refresh().await?;
        Ok(())
    }

    async fn endpoint(&self, id: &str) -> Result<Endpoint, WebhookError> {
        let bytes = self.store.record(ENDPOINTS, id).await?.ok_or_else(|| WebhookError::EndpointNotFound(id.chars().take(64).collect()))?;
        read("an endpoint", &bytes)
    }

    /// The newest deliveries first (pending ones too), at most `limit`, of one endpoint or
    /// all.
    pub async fn deliveries(&self, endpoint: Option<&str>, limit: usize) -> Result<Vec<Delivery>, WebhookError> {
        let mut all: Vec<(String, Delivery)> = Vec::new();
        for space in [OUTBOX, LOG] {
            for (k, v) in self.store.records(space, "").await? {
                let d: Delivery = read("a delivery", &v)?;
                if endpoint.is_none_or(|e| e == d.endpoint) {
                    all.push((k, d));
                }
            }
        }
        all.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(all.into_iter().take(limit).map(|(_, d)| d).collect())
    }

    /// "Send again": a logged delivery goes back to the outbox (behind its conversation's
    /// later events; same delivery id), a pending one is tried at once.
    pub async fn resend(&self, id: &str, now: Millis) -> Result<Delivery, WebhookError> {
        for space in [OUTBOX, LOG] {
            for (k, v) in self.store.records(space, "").await? {
                let mut d: Delivery = read("a delivery", &v)?;
                if d.id != id {
                    continue;
                }
                d.status = Status::Pending;
                d.next_ms = 0;
                d.since_ms = now;
                if space == OUTBOX {
                    self.store.set_record(OUTBOX, &k, Some(write(&d))).await?;
                } else {
                    let order = self.store.next_id().await?;
                    self.store.set_record(OUTBOX, &outbox_key(order, &d.endpoint), Some(write(&d))).await?;
                    self.store.set_record(LOG, &k, None).await?;
                }
                self.store.durable().await?;
                self.wake.notify_one();
                return Ok(d);
            }
        }
        Err(WebhookError::DeliveryNotFound(id.chars().take(64).collect()))
    }

    /// Deliveries waiting in the outbox (for `/metrics` and tests).
    pub async fn pending(&self) -> Result<usize, WebhookError> {
        Ok(self.store.records(OUTBOX, "").await?.len())
    }
}
