//! The records of a conversation: who is talking, what was said, and where the dialogue is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::handoff::Reason;
pub use crate::images::ImageInfo;

/// Milliseconds since the Unix epoch; every timestamp kefu stores.
pub type Millis = u64;

/// The clock's time now (the policy itself never reads it: callers pass times in).
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// Where the dialogue of one conversation stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    /// The bot answers.
    #[default]
    Bot,
    /// The bot offered the closest questions and waits for a pick ("2", or the question).
    Clarifying { options: Vec<Offer> },
    /// An intent is collecting `slot`; `retries` are the re-asks left after a bad value.
    Collecting { intent: String, slot: String, retries: u32 },
    /// Nobody can take the conversation: the visitor is leaving a message (a ticket).
    LeavingMessage { asked_contact: bool },
    /// Handed off, waiting in the queue for an agent. The bot is silent.
    Queued,
    /// An agent owns the conversation. The bot is silent.
    WithAgent { agent: String },
    /// Closed for good (e.g. a WeChat user unsubscribed).
    Closed,
}

impl State {
    /// Whether a human (or the queue towards one) owns the conversation, so the bot must not
    /// speak.
    pub fn human_owned(&self) -> bool {
        matches!(self, State::Queued | State::WithAgent { .. })
    }

    /// The state without its data, as the widget and the API name it.
    pub fn name(&self) -> StateName {
        match self {
            State::Bot => StateName::Bot,
            State::Clarifying { .. } => StateName::Clarifying,
            State::Collecting { .. } => StateName::Collecting,
            State::LeavingMessage { .. } => StateName::LeavingMessage,
            State::Queued => StateName::Queued,
            State::WithAgent { .. } => StateName::WithAgent,
            State::Closed => StateName::Closed,
        }
    }
}

/// A [`State`]'s name: what clients see (`"state": "queued"`) and switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Bot,
    Clarifying,
    Collecting,
    LeavingMessage,
    Queued,
    WithAgent,
    Closed,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Bot => "bot",
            StateName::Clarifying => "clarifying",
            StateName::Collecting => "collecting",
            StateName::LeavingMessage => "leaving_message",
            StateName::Queued => "queued",
            StateName::WithAgent => "with_agent",
            StateName::Closed => "closed",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and callers compare with the wire name: `exchange.state == "queued"`.
impl PartialEq<&str> for StateName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One question offered in a clarification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub article: String,
    pub question: String,
    pub confidence: f32,
}

/// What the dialogue remembers between turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Context {
    /// The article last answered, for follow-ups such as "那运费呢？".
    pub last_article: Option<String>,
    pub last_intent: Option<String>,
    /// Slots filled by the current (or last) collecting intent.
    pub slots: BTreeMap<String, String>,
    /// Consecutive questions the bot could not answer.
    pub misses: u32,
    /// An agent resolved the conversation and the visitor has not rated it yet.
    pub rating_requested: bool,
    /// A message left while the bot waits for the visitor's contact details.
    pub pending_message: Option<String>,
    /// Why the visitor is leaving a message (the handoff reason that found nobody).
    pub ticket_reason: Option<Reason>,
}

/// Which way the visitor reached kefu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Visitor {
    /// "web", "wechat_mp" (公众号) or "wechat_mini" (小程序).
    pub channel: String,
    /// A verified customer id (signed widget identity, WeChat OpenID/UnionID), if any.
    pub user_id: Option<String>,
    pub verified: bool,
    pub name: Option<String>,
    /// The page the widget was opened on.
    pub page: Option<String>,
}

/// One conversation: its owner, state and context. Messages are stored separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    /// SHA-256 of each visitor token issued for it (one per device).
    pub token_hashes: Vec<String>,
    pub visitor: Visitor,
    pub state: State,
    pub context: Context,
    /// The open (or last) handoff.
    pub handoff: Option<u64>,
    pub created_ms: Millis,
    pub updated_ms: Millis,
    /// Sequence number of the last stored message (0: none yet).
    pub last_seq: u64,
}

impl Conversation {
    /// A new conversation with the bot, no messages yet.
    pub fn new(id: String, token_hashes: Vec<String>, visitor: Visitor, now: Millis) -> Conversation {
        Conversation {
            id,
            token_hashes,
            visitor,
            state: State::Bot,
            context: Context::default(),
            handoff: None,
            created_ms: now,
            updated_ms: now,
            last_seq: 0,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sender {
    Visitor,
    Bot,
    Agent { id: String, name: String },
    /// Notices from kefu itself ("客服小王已接入").
    System,
}

/// What the bot based a message on, kept for agents and statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BotMeta {
    /// "answer", "clarify", "none", "intent", "prompt", "handoff", "ticket", "rating".
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub article: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub options: Vec<Offer>,
}

/// One stored message. `seq` numbers a conversation's messages from 1 without gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub conversation: String,
    pub seq: u64,
    pub at_ms: Millis,
    pub from: Sender,
    pub text: String,
    /// Internal notes are seen by agents only.
    #[serde(default)]
    pub internal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotMeta>,
    /// The client's id for the message, so a resend after a reconnect is stored once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A photo the message carries (its bytes are stored once under the hash); `text` then
    /// says 「[图片]」 for views that show text only. Messages stored before photos have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
}

/// A message about to be stored; the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub from: Sender,
    pub text: String,
    pub internal: bool,
    pub bot: Option<BotMeta>,
    pub client_id: Option<String>,
    pub image: Option<ImageInfo>,
}

/// What a photo's message says in text-only views (history search, WeChat text, tickets).
pub const IMAGE_TEXT: &str = "[图片]";

impl NewMessage {
    pub fn visitor(text: impl Into<String>, client_id: Option<String>) -> NewMessage {
        NewMessage { from: Sender::Visitor, text: text.into(), internal: false, bot: None, client_id, image: None }
    }

    /// A photo from `from` (visitor or agent).
    pub fn image(from: Sender, image: ImageInfo, client_id: Option<String>) -> NewMessage {
        NewMessage { from, text: IMAGE_TEXT.into(), internal: false, bot: None, client_id, image: Some(image) }
    }

    pub fn bot(text: impl Into<String>, meta: BotMeta) -> NewMessage {
        NewMessage { from: Sender::Bot, text: text.into(), internal: false, bot: Some(meta), client_id: None, image: None }
    }

    pub fn system(text: impl Into<String>) -> NewMessage {
        NewMessage { from: Sender::System, text: text.into(), internal: false, bot: None, client_id: None, image: None }
    }
}
