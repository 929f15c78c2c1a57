//! The conversation service: runs each visitor message through intents, knowledge and the
//! dialogue policy, applies the outcome to the store (durably, before anything is
//! acknowledged), hands off and assigns, and carries agents' actions. Channels (HTTP,
//! WebSocket, WeChat) call it; it knows nothing about them.

mod brain;
mod events;
mod locks;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::auth;
use crate::config::{Assignment, Config};
use crate::dialogue::{
    Availability, Conversation, Message, Millis, NewMessage, Outcome, Policy, Sender, State, Turn, Visitor,
};
use crate::handoff::{self, Agent, AgentStatus, CandidateView, Handoff, HandoffStatus, Load, Rating, Ticket};
use crate::knowledge::KnowledgeError;
use crate::store::{Change, Feedback, Session, Store, StoreError};
use crate::text::normalize;
pub use brain::{fingerprint, Brain, BrainError, Sources};
pub use events::{AgentEvent, Hub, VisitorEvent};
pub use stats::Stats;

/// What can go wrong serving a request; the HTTP edge maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the conversation is busy; try again shortly")]
    Busy,
    #[error("the store is unavailable: {0}")]
    Unavailable(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ServiceError::Unavailable(e)
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

pub type Result<T> = std::result::Result<T, ServiceError>;

pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

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
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
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
    pub state: &'static str,
    pub queue_position: Option<usize>,
    pub agent: Option<String>,
    pub rating_requested: bool,
    pub messages: Vec<Message>,
}

/// A handed-off conversation as an agent sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub conversation: Conversation,
    pub handoff: Option<Handoff>,
    pub messages: Vec<Message>,
    pub waiting_ms: Option<u64>,
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
    pub active: u32,
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

pub struct Service {
    config: Config,
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
}

const HISTORY_LIMIT: usize = 1000;

impl Service {
    /// Builds the service over an opened store and loaded brain.
    pub fn new(config: Config, store: Arc<dyn Store>, brain: Brain, sources: Sources, admin_token_hash: String) -> Service {
        let status = ReloadStatus {
            generation: brain.generation.clone(),
            articles: brain.engine.articles().len(),
            intents: brain.intents.all().len(),
            at_ms: now_ms(),
            error: None,
        };
        Service {
            config,
            store,
            brain: RwLock::new(Arc::new(brain)),
            sources,
            locks: Default::default(),
            hub: Hub::default(),
            assigning: Default::default(),
            admin_token_hash,
            reload: Mutex::new(status),
            reloading: Default::default(),
            opening: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn brain(&self) -> Arc<Brain> {
        self.brain.read().expect("brain lock poisoned").clone()
    }

    fn wait(&self) -> Duration {
        Duration::from_millis(self.config.limits.conversation_wait_ms)
    }

    async fn lock(&self, conversation: &str) -> Result<locks::Turn> {
        self.locks.lock(conversation, self.wait()).await.ok_or(ServiceError::Busy)
    }

    /// Commits a change and waits until it is on disk: nothing is acknowledged before.
    async fn commit(&self, change: Change) -> Result<Vec<Message>> {
        Ok(self.store.commit(change).await?)
    }

    // ---- visitors -------------------------------------------------------------------------

    /// Starts a conversation, or resumes a verified customer's on a new device.
    pub async fn start(&self, req: StartRequest) -> Result<Started> {
        let mut visitor = Visitor {
            channel: if req.channel.is_empty() { "web".into() } else { req.channel.clone() },
            user_id: None,
            verified: false,
            name: req.name.map(|n| n.chars().take(64).collect()),
            page: req.page.map(|p| p.chars().take(512).collect()),
        };
        if let Some((user, signature)) = &req.identity {
            let secret = self.config.identity_secret.as_deref().ok_or_else(|| {
                ServiceError::BadRequest("this site does not accept signed identities (no identity_secret configured)".into())
            })?;
            if user.is_empty() || user.len() > 128 || !auth::verify_identity(secret, user, signature) {
                return Err(ServiceError::Forbidden("the identity signature does not match the user id".into()));
            }
            visitor.user_id = Some(user.clone());
            visitor.verified = true;
        }
        let token = auth::new_token();
        let hash = auth::token_hash(&token);
        if let Some(user) = &visitor.user_id {
            if let Some(existing) = self.store.conversation_of_user(user)? {
                let _turn = self.lock(&existing).await?;
                if let Some(mut conv) = self.store.conversation(&existing)? {
                    if conv.state != State::Closed {
                        conv.token_hashes.push(hash);
                        // Keep the last few devices; older tokens stop working.
                        let excess = conv.token_hashes.len().saturating_sub(8);
                        conv.token_hashes.drain(..excess);
                        conv.visitor.page = visitor.page.clone().or(conv.visitor.page);
                        let id = conv.id.clone();
                        self.commit(Change { conversation: Some(conv), at_ms: now_ms(), ..Default::default() }).await?;
                        let messages = self.visible_messages(&id, 0)?;
                        return Ok(Started { id, token, resumed: true, verified: true, messages });
                    }
                }
            }
        }
        let now = now_ms();
        let id = auth::new_id();
        let conv = Conversation::new(id.clone(), vec![hash], visitor.clone(), now);
        let identity = visitor.user_id.clone().map(|u| (u, id.clone()));
        self.commit(Change { conversation: Some(conv), identity, at_ms: now, ..Default::default() }).await?;
        Ok(Started { id, token, resumed: false, verified: visitor.verified, messages: vec![] })
    }

    /// The conversation, if `token` is one of its visitor tokens.
    pub fn authorize_visitor(&self, id: &str, token: &str) -> Result<Conversation> {
        // Unknown conversation and wrong token look the same: ids are not to be probed.
        let conv = self.store.conversation(id)?.ok_or(ServiceError::Unauthorized)?;
        let hash = auth::token_hash(token);
        let mut ok = false;
        for h in &conv.token_hashes {
            ok |= auth::same(h, &hash);
        }
        if ok {
            Ok(conv)
        } else {
            Err(ServiceError::Unauthorized)
        }
    }

    fn visible_messages(&self, id: &str, after: u64) -> Result<Vec<Message>> {
        Ok(self.store.messages(id, after, HISTORY_LIMIT)?.into_iter().filter(|m| !m.internal).collect())
    }

    fn queue_position(&self, conv: &Conversation) -> Result<Option<usize>> {
        if conv.state != State::Queued {
            return Ok(None);
        }
        let queued = conv.handoff.map(|h| self.store.handoff(h)).transpose()?.flatten().filter(|h| h.status == HandoffStatus::Queued);
        match queued {
            Some(h) => Ok(Some(self.store.queue_rank(&h.queue_key())? + 1)),
            None => Ok(self.store.queue()?.iter().position(|h| h.conversation == conv.id).map(|p| p + 1)),
        }
    }

    fn agent_name(&self, conv: &Conversation) -> Result<Option<String>> {
        match &conv.state {
            State::WithAgent { agent } => Ok(self.store.agent(agent)?.map(|a| a.name)),
            _ => Ok(None),
        }
    }

    /// The visitor's view: state and messages after `after`.
    pub fn visitor_view(&self, conv: &Conversation, after: u64) -> Result<VisitorView> {
        Ok(VisitorView {
            id: conv.id.clone(),
            state: conv.state.name(),
            queue_position: self.queue_position(conv)?,
            agent: self.agent_name(conv)?,
            rating_requested: conv.context.rating_requested,
            messages: self.visible_messages(&conv.id, after)?,
        })
    }

    fn state_event(&self, conv: &Conversation) -> Result<VisitorEvent> {
        Ok(VisitorEvent::State {
            state: conv.state.name(),
            queue_position: self.queue_position(conv)?,
            agent: self.agent_name(conv)?,
            rating_requested: conv.context.rating_requested,
        })
    }

    fn check_text(&self, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Err(ServiceError::BadRequest("the message is empty".into()));
        }
        let max = self.config.limits.max_message_chars;
        let n = text.chars().count();
        if n > max {
            return Err(ServiceError::BadRequest(format!("the message has {n} characters; at most {max} are allowed")));
        }
        Ok(())
    }

    /// Whether someone could take a handoff needing `skill` now.
    fn availability(&self, skill: &str) -> Result<Availability> {
        if !self.config.hours.is_open(now_ms()) {
            return Ok(Availability::OutOfHours);
        }
        let agents = self.store.agents()?;
        let loads: Vec<Load<'_>> = agents.iter().map(|a| Load { agent: a, active: 0 }).collect();
        Ok(if handoff::anyone_online(&loads, skill) { Availability::Available } else { Availability::NoAgents })
    }

    /// A visitor's message: stored, answered by the bot unless a human owns the conversation,
    /// and acknowledged only once durable. A resend with the same `client_id` is stored once.
    pub async fn visitor_message(&self, id: &str, token: &str, text: &str, client_id: Option<String>) -> Result<Exchange> {
        Ok(self.take_message(id, Some(token), text, client_id, false).await?.0)
    }

    /// The conversation of a user of another channel (a WeChat OpenID), started when they
    /// have none open. The channel vouches for the user, so there is no visitor token.
    pub async fn channel_conversation(&self, channel: &str, user_key: &str) -> Result<String> {
        if user_key.is_empty() || user_key.len() > 200 {
            return Err(ServiceError::BadRequest("a channel user key is 1 to 200 bytes".into()));
        }
        let open = |key: &str| -> Result<Option<String>> {
            let Some(existing) = self.store.conversation_of_user(key)? else { return Ok(None) };
            Ok(self.store.conversation(&existing)?.filter(|c| c.state != State::Closed).map(|c| c.id))
        };
        if let Some(id) = open(user_key)? {
            return Ok(id);
        }
        // One user's first messages can arrive together: one of them starts the conversation.
        let _one = self.opening.lock().await;
        if let Some(id) = open(user_key)? {
            return Ok(id);
        }
        let now = now_ms();
        let id = auth::new_id();
        let visitor = Visitor { channel: channel.into(), user_id: Some(user_key.into()), verified: true, name: None, page: None };
        let conv = Conversation::new(id.clone(), vec![], visitor, now);
        let identity = Some((user_key.to_string(), id.clone()));
        self.commit(Change { conversation: Some(conv), identity, at_ms: now, ..Default::default() }).await?;
        Ok(id)
    }

    /// A message from a user of another channel, through the same intents, dialogue and
    /// handoff as the widget's. `client_id` is the channel's message id (resends are stored
    /// and answered once). With `humans_elsewhere` the channel has its own agents: a handoff
    /// is not queued here but reported as `transferred`, and the bot does not check whether
    /// kefu's agents are online.
    pub async fn channel_message(
        &self,
        conversation: &str,
        text: &str,
        client_id: Option<String>,
        humans_elsewhere: bool,
    ) -> Result<ChannelExchange> {
        let (exchange, transferred) = self.take_message(conversation, None, text, client_id, humans_elsewhere).await?;
        Ok(ChannelExchange { exchange, transferred })
    }

    /// A message of the widget (checked against `token`) or of a channel (`None`: trusted).
    async fn take_message(
        &self,
        id: &str,
        token: Option<&str>,
        text: &str,
        client_id: Option<String>,
        humans_elsewhere: bool,
    ) -> Result<(Exchange, bool)> {
        self.check_text(text)?;
        if let Some(c) = &client_id {
            if c.is_empty() || c.len() > 64 {
                return Err(ServiceError::BadRequest("client_id must be 1 to 64 characters".into()));
            }
        }
        let turn = self.lock(id).await?;
        // Announced after taking the turn: a message queued behind this conversation's lock
        // cannot commit until this one has, and waiting for it would only delay both.
        let hint = self.store.expect_commit();
        let mut conv = match token {
            Some(token) => self.authorize_visitor(id, token)?,
            None => self.store.conversation(id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))?,
        };
        if let Some(c) = &client_id {
            if let Some(first) = self.store.message_by_client_id(id, c)? {
                let replies = self
                    .visible_messages(id, first.seq)?
                    .into_iter()
                    .take_while(|m| m.from != Sender::Visitor)
                    .collect();
                let queue_position = self.queue_position(&conv)?;
                let exchange = Exchange { message: first, replies, state: conv.state.name(), queue_position, duplicate: true };
                return Ok((exchange, false));
            }
        }
        if conv.state == State::Closed {
            return Err(ServiceError::Conflict("the conversation is closed; start a new one".into()));
        }
        let now = now_ms();
        let mut change = Change { at_ms: now, ..Default::default() };
        change.messages.push(NewMessage::visitor(text.trim(), client_id));
        let mut new_handoff = None;
        let mut rated = false;
        let state_before = conv.state.name();
        let mut transferred = false;
        if !conv.state.human_owned() {
            let (outcome, candidates) = self.bot_turn(&conv, text, humans_elsewhere)?;
            rated = outcome.rating.is_some();
            let previous = conv.handoff;
            new_handoff = self.apply_outcome(&mut conv, outcome, candidates, text, &mut change)?;
            if humans_elsewhere && new_handoff.take().is_some() {
                // The channel's own agents take over: nothing is queued here, and the bot
                // answers again when the user comes back.
                change.handoffs.clear();
                conv.handoff = previous;
                conv.state = State::Bot;
                transferred = true;
            }
        }
        change.conversation = Some(conv.clone());
        drop(hint);
        let stored = self.commit(change).await?;
        drop(turn);
        self.publish_visitor_messages(&conv, &stored, new_handoff.as_ref())?;
        // The widget shows controls by state (e.g. the leave-a-message form): announce a new
        // state that the messages' publication did not (it covers handoffs only).
        let announced = new_handoff.is_some() || conv.state.human_owned();
        if rated || (!announced && conv.state.name() != state_before) {
            self.hub.to_visitor(&conv.id, &self.state_event(&conv)?);
        }
        if let Some(h) = &new_handoff {
            self.hub.to_agents(&AgentEvent::Handoff { handoff: h.clone() });
            if self.config.assignment == Assignment::Auto {
                self.assign_waiting().await?;
            }
            self.notify_queue(h)?;
        }
        // Only an automatic assignment can have moved the conversation on since the commit.
        let auto_assigned = new_handoff.is_some() && self.config.assignment == Assignment::Auto;
        let conv = if auto_assigned { self.store.conversation(id)?.unwrap_or(conv) } else { conv };
        let mut stored = stored.into_iter();
        let message = stored.next().expect("the visitor's message was stored");
        let exchange = Exchange {
            message,
            replies: stored.collect(),
            state: conv.state.name(),
            queue_position: self.queue_position(&conv)?,
            duplicate: false,
        };
        Ok((exchange, transferred))
    }

    /// Runs the matchers and the policy for one message (CPU only; no writes). Also returns
    /// the knowledge candidates, for a handoff's summary.
    fn bot_turn(&self, conv: &Conversation, text: &str, humans_elsewhere: bool) -> Result<(Outcome, Vec<CandidateView>)> {
        let brain = self.brain();
        // One analysis serves the intents and the knowledge: they share the analyser.
        let analyzed = brain.engine.analyzer().analyze(text);
        let intent = brain.intents.recognise(text, &analyzed)?;
        let knowledge = brain.engine.ask_analyzed(&analyzed)?;
        // A follow-up ("那运费呢？") is read with the topic of the last answered article: the
        // content words of its question. The old article itself is not a candidate (a
        // follow-up asks something new), and the confidence is decided afresh.
        let followup = match (&conv.context.last_article, knowledge.answer()) {
            (Some(last), None) if looks_like_followup(text) => match brain.article(last) {
                Some(a) => {
                    let analyzer = brain.engine.analyzer();
                    let topic: String = analyzer.terms(&a.title).into_iter().filter(|t| !analyzer.is_function_word(t)).collect();
                    let mut reply = brain.ask(&format!("{topic} {}", followup_core(text)))?;
                    reply.candidates.retain(|c| &c.id != last);
                    reply.confidence = reply.candidates.first().map_or(0.0, |c| c.confidence);
                    reply.action = brain.engine.thresholds().decide(reply.confidence);
                    Some(reply)
                }
                None => None,
            },
            _ => None,
        };
        let find = |id: &str| brain.article(id);
        let policy = Policy { rules: &self.config.dialogue, intents: &brain.intents, article: &find };
        let turn = Turn {
            text,
            intent: intent.as_ref(),
            knowledge: Some(&knowledge),
            followup: followup.as_ref(),
            availability: Availability::Available,
        };
        let candidates = knowledge
            .candidates
            .iter()
            .take(5)
            .filter_map(|c| {
                brain.article(&c.id).map(|a| CandidateView { article: a.id.clone(), title: a.title.clone(), confidence: c.confidence })
            })
            .collect();
        let outcome = policy.step(&conv.state, &conv.context, &turn);
        // Hours and agents are checked only when the policy wants a human, for the skill it
        // wants; the policy is pure, so it is simply asked again.
        if let Some(req) = outcome.handoff.as_ref().filter(|_| !humans_elsewhere) {
            let availability = self.availability(&req.skill)?;
            if availability != Availability::Available {
                return Ok((policy.step(&conv.state, &conv.context, &Turn { availability, ..turn }), candidates));
            }
        }
        Ok((outcome, candidates))
    }

    /// Applies a policy outcome to the conversation and the change; returns a new handoff.
    fn apply_outcome(
        &self,
        conv: &mut Conversation,
        outcome: Outcome,
        candidates: Vec<CandidateView>,
        text: &str,
        change: &mut Change,
    ) -> Result<Option<Handoff>> {
        let Outcome { state, context, replies, handoff, ticket, rating, unanswered } = outcome;
        conv.state = state;
        conv.context = context;
        for (reply, meta) in replies {
            change.messages.push(NewMessage::bot(reply, meta));
        }
        if unanswered {
            let q: String = normalize(text).chars().take(200).collect();
            if !q.trim().is_empty() {
                change.unanswered.push(q.trim().to_string());
            }
        }
        if let Some(score) = rating {
            let last = conv.handoff.and_then(|h| self.store.handoff(h).ok().flatten());
            change.rating = Some(Rating {
                conversation: conv.id.clone(),
                handoff: last.as_ref().map(|h| h.id),
                agent: last.and_then(|h| h.agent),
                score,
                comment: None,
                at_ms: change.at_ms,
            });
        }
        let transcript = |conv: &Conversation, change: &Change| -> Result<Vec<Message>> {
            let mut t = self.store.messages(&conv.id, 0, HISTORY_LIMIT)?;
            t.extend(predict(conv, &change.messages, change.at_ms));
            Ok(t)
        };
        if let Some(t) = ticket {
            change.ticket = Some(Ticket {
                id: self.store.next_id()?,
                conversation: conv.id.clone(),
                contact: t.contact.unwrap_or_default(),
                message: t.message,
                reason: t.reason,
                visitor: conv.visitor.clone(),
                transcript: transcript(conv, change)?,
                created_ms: change.at_ms,
            });
        }
        let Some(req) = handoff else { return Ok(None) };
        let h = Handoff {
            id: self.store.next_id()?,
            conversation: conv.id.clone(),
            reason: req.reason,
            detail: req.detail,
            priority: req.priority,
            skill: req.skill,
            intent: req.intent,
            slots: conv.context.slots.clone(),
            candidates,
            visitor: conv.visitor.clone(),
            transcript: transcript(conv, change)?,
            created_ms: change.at_ms,
            status: HandoffStatus::Queued,
            agent: None,
            assigned_ms: None,
            closed_ms: None,
        };
        conv.handoff = Some(h.id);
        change.handoffs.push(h.clone());
        Ok(Some(h))
    }

    fn publish_visitor_messages(&self, conv: &Conversation, stored: &[Message], new_handoff: Option<&Handoff>) -> Result<()> {
        for m in stored {
            self.hub.to_visitor(&conv.id, &VisitorEvent::Message { message: m.clone() });
        }
        // Agents follow conversations that are (or were just) handed off.
        if conv.handoff.is_some() && (conv.state.human_owned() || new_handoff.is_some()) {
            for m in stored {
                self.hub.to_agents(&AgentEvent::Message { conversation: conv.id.clone(), message: m.clone() });
            }
        }
        if new_handoff.is_some() || conv.state.human_owned() {
            self.hub.to_visitor(&conv.id, &self.state_event(conv)?);
        }
        Ok(())
    }

    /// Tells every queued visitor their position.
    /// Tells the queued visitors whose position moved because a handoff entered or left the
    /// queue at `changed` (its queue key): those behind it. The ones ahead keep their place.
    fn notify_queue(&self, changed: &Handoff) -> Result<()> {
        let key = changed.queue_key();
        let ahead = self.store.queue_rank(&key)?;
        for (i, h) in self.store.queue_from(&key)?.iter().enumerate() {
            self.hub.to_visitor(
                &h.conversation,
                &VisitorEvent::State { state: "queued", queue_position: Some(ahead + i + 1), agent: None, rating_requested: false },
            );
        }
        Ok(())
    }

    /// The visitor asks for a human with the 转人工 button.
    pub async fn request_human(&self, id: &str, token: &str, client_id: Option<String>) -> Result<Exchange> {
        self.visitor_message(id, token, "转人工", client_id).await
    }

    /// A 1–5 rating after an agent resolved the conversation.
    pub async fn rate(&self, id: &str, token: &str, score: u8, comment: Option<String>) -> Result<()> {
        if !(1..=5).contains(&score) {
            return Err(ServiceError::BadRequest(format!("a rating is 1 to 5, not {score}")));
        }
        let _turn = self.lock(id).await?;
        let mut conv = self.authorize_visitor(id, token)?;
        let Some(handoff) = conv.handoff.map(|h| self.store.handoff(h)).transpose()?.flatten() else {
            return Err(ServiceError::Conflict("only a conversation served by an agent can be rated".into()));
        };
        if handoff.status != HandoffStatus::Resolved {
            return Err(ServiceError::Conflict("the conversation can be rated once an agent has resolved it".into()));
        }
        conv.context.rating_requested = false;
        let now = now_ms();
        let rating = Rating {
            conversation: id.into(),
            handoff: Some(handoff.id),
            agent: handoff.agent.clone(),
            score,
            comment: comment.map(|c| c.chars().take(500).collect()),
            at_ms: now,
        };
        self.commit(Change { conversation: Some(conv.clone()), rating: Some(rating), at_ms: now, ..Default::default() }).await?;
        self.hub.to_visitor(id, &self.state_event(&conv)?);
        Ok(())
    }

    /// "Did this answer help?" under a bot answer.
    pub async fn feedback(&self, id: &str, token: &str, seq: u64, helpful: bool) -> Result<()> {
        let _turn = self.lock(id).await?;
        let conv = self.authorize_visitor(id, token)?;
        let message = self.store.messages(id, seq.saturating_sub(1), 1)?.into_iter().next().filter(|m| m.seq == seq);
        let Some(message) = message.filter(|m| m.from == Sender::Bot) else {
            return Err(ServiceError::NotFound(format!("bot message {seq}")));
        };
        let feedback = Feedback {
            conversation: conv.id.clone(),
            seq,
            article: message.bot.and_then(|b| b.article),
            helpful,
            at_ms: now_ms(),
        };
        self.commit(Change { feedback: Some(feedback), at_ms: now_ms(), ..Default::default() }).await?;
        Ok(())
    }

    /// A leave-a-message form: contact and message in one go.
    pub async fn leave_ticket(&self, id: &str, token: &str, contact: &str, message: &str) -> Result<Ticket> {
        self.check_text(message)?;
        if contact.trim().is_empty() || contact.chars().count() > 100 {
            return Err(ServiceError::BadRequest("contact must be 1 to 100 characters (a phone number or an e-mail)".into()));
        }
        let _turn = self.lock(id).await?;
        let mut conv = self.authorize_visitor(id, token)?;
        let now = now_ms();
        let mut change = Change { at_ms: now, ..Default::default() };
        change.messages.push(NewMessage::visitor(format!("【留言】{}（联系方式：{}）", message.trim(), contact.trim()), None));
        let reason = conv.context.ticket_reason.take().unwrap_or_else(|| "requested".into());
        if matches!(conv.state, State::LeavingMessage { .. }) {
            conv.state = State::Bot;
        }
        conv.context.pending_message = None;
        let mut transcript = self.store.messages(id, 0, HISTORY_LIMIT)?;
        transcript.extend(predict(&conv, &change.messages, now));
        let ticket = Ticket {
            id: self.store.next_id()?,
            conversation: id.into(),
            contact: contact.trim().into(),
            message: message.trim().into(),
            reason,
            visitor: conv.visitor.clone(),
            transcript,
            created_ms: now,
        };
        let said = self.config.dialogue.ticket_text.replace("{contact}", contact.trim()).replace("{message}", &crate::dialogue::policy::quote(message));
        change.messages.push(NewMessage::bot(said, crate::dialogue::BotMeta { kind: "ticket".into(), ..Default::default() }));
        change.ticket = Some(ticket.clone());
        change.conversation = Some(conv.clone());
        let stored = self.commit(change).await?;
        self.publish_visitor_messages(&conv, &stored, None)?;
        Ok(ticket)
    }

    // ---- agents ---------------------------------------------------------------------------

    /// Creates or replaces an agent account.
    pub async fn put_agent(&self, id: &str, name: &str, password: &str, skills: Vec<String>, max_concurrent: u32) -> Result<AgentInfo> {
        let valid_id = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_id {
            return Err(ServiceError::BadRequest("an agent id is 1 to 64 letters, digits, '-', '_' or '.'".into()));
        }
        if name.trim().is_empty() || name.chars().count() > 64 {
            return Err(ServiceError::BadRequest("an agent name is 1 to 64 characters".into()));
        }
        if password.chars().count() < 8 {
            return Err(ServiceError::BadRequest("a password has at least 8 characters".into()));
        }
        if max_concurrent == 0 || max_concurrent > 100 {
            return Err(ServiceError::BadRequest("max_concurrent is 1 to 100".into()));
        }
        let skills = if skills.is_empty() { vec!["general".to_string()] } else { skills };
        let status = self.store.agent(id)?.map_or(AgentStatus::Away, |a| a.status);
        let password_hash = {
            let (p, rounds) = (password.to_string(), self.config.password_rounds);
            tokio::task::spawn_blocking(move || auth::hash_password(&p, rounds)).await.map_err(|e| ServiceError::Internal(e.to_string()))?
        };
        let agent = Agent { id: id.into(), name: name.trim().into(), skills, max_concurrent, status, password_hash };
        self.commit(Change { agent: Some(agent.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        Ok(self.agent_info(&agent, &self.actives()?))
    }

    /// Conversations each agent holds now, from one pass over the handoffs.
    fn actives(&self) -> Result<HashMap<String, u32>> {
        let mut counts = HashMap::new();
        for h in self.store.handoffs()? {
            if let (HandoffStatus::Assigned, Some(agent)) = (&h.status, h.agent) {
                *counts.entry(agent).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    fn active(&self, agent: &str) -> Result<u32> {
        Ok(self.actives()?.get(agent).copied().unwrap_or(0))
    }

    fn agent_info(&self, a: &Agent, actives: &HashMap<String, u32>) -> AgentInfo {
        AgentInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            skills: a.skills.clone(),
            max_concurrent: a.max_concurrent,
            status: a.status,
            active: actives.get(&a.id).copied().unwrap_or(0),
        }
    }

    pub fn agents(&self) -> Result<Vec<AgentInfo>> {
        let actives = self.actives()?;
        Ok(self.store.agents()?.iter().map(|a| self.agent_info(a, &actives)).collect())
    }

    /// Logs an agent in; returns a bearer token (stored hashed) and the account.
    pub async fn login(&self, id: &str, password: &str) -> Result<(String, AgentInfo)> {
        let agent = self.store.agent(id)?;
        let stored = agent.as_ref().map_or_else(
            // Verify against a dummy hash too, so a wrong id costs as long as a wrong password.
            || format!("pbkdf2-sha256${}$00$00", self.config.password_rounds),
            |a| a.password_hash.clone(),
        );
        let p = password.to_string();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&p, &stored))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (true, Some(agent)) = (ok, agent) else { return Err(ServiceError::Unauthorized) };
        let token = auth::new_token();
        let now = now_ms();
        let session = Session { agent: agent.id.clone(), created_ms: now, expires_ms: now + self.config.limits.session_hours * 3_600_000 };
        self.commit(Change { session: Some((auth::token_hash(&token), Some(session))), at_ms: now, ..Default::default() }).await?;
        Ok((token, self.agent_info(&agent, &self.actives()?)))
    }

    pub async fn logout(&self, token: &str) -> Result<()> {
        self.commit(Change { session: Some((auth::token_hash(token), None)), at_ms: now_ms(), ..Default::default() }).await?;
        Ok(())
    }

    /// The agent a bearer token belongs to.
    pub fn authorize_agent(&self, token: &str) -> Result<Agent> {
        let session = self.store.session(&auth::token_hash(token))?.ok_or(ServiceError::Unauthorized)?;
        if session.expires_ms < now_ms() {
            return Err(ServiceError::Unauthorized);
        }
        self.store.agent(&session.agent)?.ok_or(ServiceError::Unauthorized)
    }

    /// Whether `token` is the admin token.
    pub fn authorize_admin(&self, token: &str) -> Result<()> {
        if auth::same(&auth::token_hash(token), &self.admin_token_hash) {
            Ok(())
        } else {
            Err(ServiceError::Unauthorized)
        }
    }

    pub async fn set_status(&self, agent: &Agent, status: AgentStatus) -> Result<AgentInfo> {
        let _g = self.assigning.lock().await;
        let mut a = self.store.agent(&agent.id)?.ok_or_else(|| ServiceError::NotFound(format!("agent {}", agent.id)))?;
        a.status = status;
        self.commit(Change { agent: Some(a.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        drop(_g);
        if status == AgentStatus::Online && self.config.assignment == Assignment::Auto {
            self.assign_waiting().await?;
        }
        Ok(self.agent_info(&a, &self.actives()?))
    }

    /// The queue, by priority then waiting time.
    pub fn queue(&self) -> Result<Vec<QueueEntry>> {
        let now = now_ms();
        Ok(self
            .store
            .queue()?
            .into_iter()
            .enumerate()
            .map(|(i, h)| QueueEntry { position: i + 1, waiting_ms: now.saturating_sub(h.created_ms), handoff: h })
            .collect())
    }

    /// Conversations the agent holds.
    pub fn mine(&self, agent: &Agent) -> Result<Vec<Handoff>> {
        Ok(self
            .store
            .handoffs()?
            .into_iter()
            .filter(|h| h.status == HandoffStatus::Assigned && h.agent.as_deref() == Some(&agent.id))
            .collect())
    }

    /// A conversation with its handoff and every message, internal notes included.
    pub fn agent_view(&self, id: &str) -> Result<AgentView> {
        let conversation = self.store.conversation(id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))?;
        let handoff = conversation.handoff.map(|h| self.store.handoff(h)).transpose()?.flatten();
        let waiting_ms = handoff.as_ref().filter(|h| h.status == HandoffStatus::Queued).map(|h| now_ms().saturating_sub(h.created_ms));
        let messages = self.store.messages(id, 0, HISTORY_LIMIT)?;
        Ok(AgentView { conversation, handoff, messages, waiting_ms })
    }

    /// Moves a conversation's handoff to `agent` (claim, auto-assignment or transfer).
    async fn give_to(&self, conv_id: &str, agent: &Agent, expect: &[HandoffStatus], notice: String) -> Result<()> {
        let turn = self.lock(conv_id).await?;
        let mut conv = self.store.conversation(conv_id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {conv_id}")))?;
        let mut h = conv
            .handoff
            .and_then(|h| self.store.handoff(h).ok().flatten())
            .ok_or_else(|| ServiceError::Conflict("the conversation has not been handed off".into()))?;
        if !expect.contains(&h.status) {
            return Err(ServiceError::Conflict(format!("the conversation is {:?}, not waiting for this", h.status).to_lowercase()));
        }
        if h.agent.as_deref() != Some(&agent.id) && self.active(&agent.id)? >= agent.max_concurrent {
            return Err(ServiceError::Conflict(format!("{} already holds the maximum of {} conversations", agent.id, agent.max_concurrent)));
        }
        let now = now_ms();
        h.status = HandoffStatus::Assigned;
        h.agent = Some(agent.id.clone());
        h.assigned_ms.get_or_insert(now);
        conv.state = State::WithAgent { agent: agent.id.clone() };
        let change = Change {
            conversation: Some(conv.clone()),
            messages: vec![NewMessage::system(notice)],
            handoffs: vec![h.clone()],
            at_ms: now,
            ..Default::default()
        };
        let stored = self.commit(change).await?;
        drop(turn);
        self.publish_visitor_messages(&conv, &stored, None)?;
        self.hub.to_agents(&AgentEvent::Changed { handoff: h.id, conversation: conv.id.clone(), status: "assigned".into(), agent: h.agent.clone() });
        self.notify_queue(&h)?;
        Ok(())
    }

    pub async fn claim(&self, agent: &Agent, conv_id: &str) -> Result<AgentView> {
        let _g = self.assigning.lock().await;
        self.give_to(conv_id, agent, &[HandoffStatus::Queued], format!("客服「{}」已接入，为您服务。", agent.name)).await?;
        self.agent_view(conv_id)
    }

    /// Assigns queued handoffs to the least-loaded online agents (automatic assignment).
    pub async fn assign_waiting(&self) -> Result<()> {
        let _g = self.assigning.lock().await;
        for h in self.store.queue()? {
            let agents = self.store.agents()?;
            let actives = self.actives()?;
            let loads: Vec<Load<'_>> =
                agents.iter().map(|a| Load { agent: a, active: actives.get(&a.id).copied().unwrap_or(0) }).collect();
            let Some(agent) = handoff::pick_agent(&loads, &h.skill).cloned() else { continue };
            let notice = format!("客服「{}」已接入，为您服务。", agent.name);
            match self.give_to(&h.conversation, &agent, &[HandoffStatus::Queued], notice).await {
                Ok(()) | Err(ServiceError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Runs `f` on a conversation the agent owns, under its lock, and commits the change.
    async fn as_owner(
        &self,
        agent: &Agent,
        conv_id: &str,
        f: impl FnOnce(&mut Conversation, &mut Handoff, &mut Change) -> Result<()>,
    ) -> Result<(Conversation, Handoff, Vec<Message>)> {
        let turn = self.lock(conv_id).await?;
        let mut conv = self.store.conversation(conv_id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {conv_id}")))?;
        if conv.state != (State::WithAgent { agent: agent.id.clone() }) {
            return Err(ServiceError::Forbidden("this conversation is not yours (claim it first)".into()));
        }
        let mut h = conv
            .handoff
            .and_then(|h| self.store.handoff(h).ok().flatten())
            .ok_or_else(|| ServiceError::Internal(format!("conversation {conv_id} has an agent but no handoff")))?;
        let mut change = Change { at_ms: now_ms(), ..Default::default() };
        f(&mut conv, &mut h, &mut change)?;
        change.conversation = Some(conv.clone());
        change.handoffs.push(h.clone());
        let stored = self.commit(change).await?;
        drop(turn);
        Ok((conv, h, stored))
    }

    /// An agent's message to the visitor.
    pub async fn agent_message(&self, agent: &Agent, conv_id: &str, text: &str) -> Result<Message> {
        self.check_text(text)?;
        let from = Sender::Agent { id: agent.id.clone(), name: agent.name.clone() };
        let (conv, _, stored) = self
            .as_owner(agent, conv_id, |_, _, change| {
                change.messages.push(NewMessage { from, text: text.trim().into(), internal: false, bot: None, client_id: None });
                Ok(())
            })
            .await?;
        self.publish_visitor_messages(&conv, &stored, None)?;
        Ok(stored.into_iter().next().expect("the agent's message was stored"))
    }

    /// An internal note, seen by agents only. Any agent may note a handed-off conversation.
    pub async fn note(&self, agent: &Agent, conv_id: &str, text: &str) -> Result<Message> {
        self.check_text(text)?;
        let turn = self.lock(conv_id).await?;
        let conv = self.store.conversation(conv_id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {conv_id}")))?;
        if conv.handoff.is_none() {
            return Err(ServiceError::Conflict("notes belong to handed-off conversations".into()));
        }
        let from = Sender::Agent { id: agent.id.clone(), name: agent.name.clone() };
        let message = NewMessage { from, text: text.trim().into(), internal: true, bot: None, client_id: None };
        let stored = self.commit(Change { conversation: Some(conv.clone()), messages: vec![message], at_ms: now_ms(), ..Default::default() }).await?;
        drop(turn);
        let m = stored.into_iter().next().expect("the note was stored");
        self.hub.to_agents(&AgentEvent::Message { conversation: conv.id, message: m.clone() });
        Ok(m)
    }

    /// Resolves: the conversation returns to the bot and the visitor is asked for a rating.
    pub async fn resolve(&self, agent: &Agent, conv_id: &str) -> Result<()> {
        let (conv, h, stored) = self
            .as_owner(agent, conv_id, |conv, h, change| {
                h.status = HandoffStatus::Resolved;
                h.closed_ms = Some(change.at_ms);
                conv.state = State::Bot;
                conv.context.rating_requested = true;
                conv.context.misses = 0;
                change.messages.push(NewMessage::system("本次人工服务已结束。请为客服的服务打分：回复 1–5（5 分最满意）。"));
                Ok(())
            })
            .await?;
        self.finish(&conv, &h, &stored, "resolved").await
    }

    /// Gives the conversation back to the bot without asking for a rating.
    pub async fn return_to_bot(&self, agent: &Agent, conv_id: &str) -> Result<()> {
        let (conv, h, stored) = self
            .as_owner(agent, conv_id, |conv, h, change| {
                h.status = HandoffStatus::Returned;
                h.closed_ms = Some(change.at_ms);
                conv.state = State::Bot;
                conv.context.misses = 0;
                change.messages.push(NewMessage::system("人工客服已离开，智能助手继续为您服务。"));
                Ok(())
            })
            .await?;
        self.finish(&conv, &h, &stored, "returned").await
    }

    async fn finish(&self, conv: &Conversation, h: &Handoff, stored: &[Message], status: &str) -> Result<()> {
        self.publish_visitor_messages(conv, stored, None)?;
        self.hub.to_visitor(&conv.id, &self.state_event(conv)?);
        self.hub.to_agents(&AgentEvent::Changed { handoff: h.id, conversation: conv.id.clone(), status: status.into(), agent: h.agent.clone() });
        if self.config.assignment == Assignment::Auto {
            self.assign_waiting().await?;
        }
        Ok(())
    }

    /// Hands the conversation to another agent (who must be online with room).
    pub async fn transfer(&self, agent: &Agent, conv_id: &str, to: &str) -> Result<()> {
        let _g = self.assigning.lock().await;
        let target = self.store.agent(to)?.ok_or_else(|| ServiceError::NotFound(format!("agent {to}")))?;
        if target.status != AgentStatus::Online {
            return Err(ServiceError::Conflict(format!("agent {to} is not online")));
        }
        let conv = self.store.conversation(conv_id)?.ok_or_else(|| ServiceError::NotFound(format!("conversation {conv_id}")))?;
        if conv.state != (State::WithAgent { agent: agent.id.clone() }) {
            return Err(ServiceError::Forbidden("this conversation is not yours (claim it first)".into()));
        }
        self.give_to(conv_id, &target, &[HandoffStatus::Assigned], format!("已为您转接给客服「{}」。", target.name)).await
    }

    /// Ends a conversation for good (e.g. a WeChat user unsubscribed).
    pub async fn close(&self, conv_id: &str) -> Result<()> {
        let _turn = self.lock(conv_id).await?;
        let Some(mut conv) = self.store.conversation(conv_id)? else { return Ok(()) };
        let mut change = Change { at_ms: now_ms(), ..Default::default() };
        if let Some(mut h) = conv.handoff.and_then(|h| self.store.handoff(h).ok().flatten()) {
            if matches!(h.status, HandoffStatus::Queued | HandoffStatus::Assigned) {
                h.status = HandoffStatus::Returned;
                h.closed_ms = Some(change.at_ms);
                change.handoffs.push(h);
            }
        }
        conv.state = State::Closed;
        change.conversation = Some(conv);
        self.commit(change).await?;
        Ok(())
    }

    // ---- admin ----------------------------------------------------------------------------

    /// Re-imports knowledge and intents and swaps them in; on failure the old ones keep
    /// serving and the error is reported.
    pub async fn reload(&self) -> ReloadStatus {
        let _only_one = self.reloading.lock().await;
        let sources = self.sources.clone();
        let result = tokio::task::spawn_blocking(move || Brain::load(&sources)).await;
        let mut status = self.reload.lock().expect("reload status poisoned").clone();
        status.at_ms = now_ms();
        match result {
            Ok(Ok(brain)) => {
                status = ReloadStatus {
                    generation: brain.generation.clone(),
                    articles: brain.engine.articles().len(),
                    intents: brain.intents.all().len(),
                    at_ms: status.at_ms,
                    error: None,
                };
                *self.brain.write().expect("brain lock poisoned") = Arc::new(brain);
                tracing::info!(generation = %status.generation, articles = status.articles, intents = status.intents, "knowledge reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reload failed; the previous knowledge keeps serving");
                status.error = Some(e.to_string());
            }
            Err(e) => status.error = Some(format!("the reload task failed: {e}")),
        }
        *self.reload.lock().expect("reload status poisoned") = status.clone();
        status
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload.lock().expect("reload status poisoned").clone()
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    pub fn stats(&self) -> Result<Stats> {
        stats::compute(&*self.store, now_ms())
    }

    pub fn tickets(&self) -> Result<Vec<Ticket>> {
        Ok(self.store.tickets()?)
    }

    /// Adds a question to an article's similar questions (from the unanswered list): writes
    /// the article file under the knowledge folder, then reloads.
    pub async fn add_similar(&self, article: &str, question: &str) -> Result<ReloadStatus> {
        let question = question.trim();
        if question.is_empty() || question.chars().count() > 200 || question.contains(['\n', '"', '\\']) {
            return Err(ServiceError::BadRequest("the question must be one line of 1 to 200 characters without quotes or backslashes".into()));
        }
        let brain = self.brain();
        if brain.article(article).is_none() {
            return Err(ServiceError::NotFound(format!("article {article}")));
        }
        let dir = self.sources.knowledge.clone();
        let (article, question) = (article.to_string(), question.to_string());
        tokio::task::spawn_blocking(move || crate::knowledge::add_similar(&dir, &article, &question))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let status = self.reload().await;
        match &status.error {
            Some(e) => Err(ServiceError::Internal(format!("the question was added but the reload failed: {e}"))),
            None => Ok(status),
        }
    }
}

/// Whether a message reads as an elliptical follow-up to the last answer: short, and opening
/// with 那/还有/如果… or closing with 呢 ("那运费呢？", "如果超过七天"). Anything else is a new
/// question and is not mixed with the old topic.
fn looks_like_followup(text: &str) -> bool {
    let t = normalize(text).replace(' ', "");
    let short = t.chars().count() <= 12;
    let opens = ["那", "还有", "如果", "要是", "另外", "那如果", "那要是"].iter().any(|p| t.starts_with(p));
    short && (opens || t.ends_with('呢'))
}

/// A follow-up without its elliptical markers (那…呢), which only say "about the last topic"
/// and, left in, pull the reading towards unrelated questions that happen to contain them.
fn followup_core(text: &str) -> String {
    let t = normalize(text).replace(' ', "");
    let t = ["那么", "那", "还有", "另外"].iter().find_map(|p| t.strip_prefix(p)).unwrap_or(&t);
    t.trim_end_matches('呢').to_string()
}

/// The messages a change will store, with the sequence numbers they will get (the caller
/// holds the conversation's lock, so the numbers are exact).
fn predict(conv: &Conversation, messages: &[NewMessage], at_ms: Millis) -> Vec<Message> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| Message {
            conversation: conv.id.clone(),
            seq: conv.last_seq + 1 + i as u64,
            at_ms,
            from: m.from.clone(),
            text: m.text.clone(),
            internal: m.internal,
            bot: m.bot.clone(),
            client_id: m.client_id.clone(),
        })
        .collect()
}
