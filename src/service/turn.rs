//! One visitor (or channel user) message: checked, stored under the conversation's lock,
//! read by the matchers, decided by the dialogue policy, applied to the store in one commit,
//! then published.

use super::*;
use crate::nlu;

impl Service {
    /// Whether someone could take a handoff needing `skill` now.
    pub(super) async fn availability(&self, skill: &str) -> Result<Availability> {
        if !self.config.hours.is_open(now_ms()) {
            return Ok(Availability::OutOfHours);
        }
        let agents = self.store.agents().await?;
        let loads: Vec<Load<'_>> = agents.iter().map(|a| Load { agent: a, active: 0 }).collect();
        Ok(if handoff::anyone_online(&loads, skill) { Availability::Available } else { Availability::NoAgents })
    }

    /// A visitor's message: stored, answered by the bot unless a human owns the conversation,
    /// and acknowledged only once durable. A resend with the same `client_id` is stored once.
    pub async fn visitor_message(&self, id: &str, token: &str, text: &str, client_id: Option<String>) -> Result<Exchange> {
        Ok(self.take_message(id, Some(token), text, client_id, false).await?.0)
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
    /// Worked out again when another node moved the conversation on meanwhile (each node
    /// serialises its own requests per conversation; the store refuses the loser of a race
    /// between nodes whole, so a retry sees the winner's messages and its resend check).
    pub(super) async fn take_message(
        &self,
        id: &str,
        token: Option<&str>,
        text: &str,
        client_id: Option<String>,
        humans_elsewhere: bool,
    ) -> Result<(Exchange, bool)> {
        const ATTEMPTS: usize = 8;
        let mut attempt = 1;
        loop {
            match self.take_message_once(id, token, text, client_id.clone(), humans_elsewhere).await {
                Err(ServiceError::Moved(_)) if attempt < ATTEMPTS => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    async fn take_message_once(
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
                return Err(ServiceError::refused(Code::InvalidClientId, format!("client_id must be 1 to 64 characters, not {}", c.len())));
            }
        }
        let turn = self.lock(id).await?;
        // Announced after taking the turn: a message queued behind this conversation's lock
        // cannot commit until this one has, and waiting for it would only delay both.
        let hint = self.store.expect_commit();
        let mut conv = match token {
            Some(token) => self.authorize_visitor(id, token).await?,
            None => self.load_conversation(id).await?,
        };
        if let Some(c) = &client_id {
            if let Some(first) = self.store.message_by_client_id(id, c).await? {
                let replies = self
                    .visible_messages(id, first.seq).await?
                    .into_iter()
                    .take_while(|m| m.from != Sender::Visitor)
                    .collect();
                let queue_position = self.queue_position(&conv).await?;
                let estimated_wait_ms = self.estimated_wait(queue_position);
                let exchange = Exchange { message: first, replies, state: conv.state.name(), queue_position, estimated_wait_ms, duplicate: true };
                return Ok((exchange, false));
            }
        }
        if conv.state == State::Closed {
            return Err(ServiceError::refused(Code::ConversationClosed, format!("conversation {id} is closed; start a new one")));
        }
        let now = now_ms();
        let mut change = Change { at_ms: now, ..Default::default() };
        change.messages.push(NewMessage::visitor(text.trim(), client_id));
        let mut new_handoff = None;
        let mut rated = false;
        let state_before = conv.state.name();
        let mut transferred = false;
        if !conv.state.human_owned() {
            let (outcome, candidates) = self.bot_turn(&conv, text, humans_elsewhere).await?;
            rated = outcome.rating.is_some();
            transferred = outcome.transferred;
            new_handoff = self.apply_outcome(&mut conv, outcome, candidates, text, &mut change).await?;
        }
        change.conversation = Some(conv.clone());
        drop(hint);
        let new_ticket = change.ticket.clone();
        let stored = self.commit(change).await?;
        drop(turn);
        if let Some(t) = &new_ticket {
            self.announce_ticket(t, true);
        }
        self.publish_visitor_messages(&conv, &stored, new_handoff.as_ref()).await?;
        // The widget shows controls by state (e.g. the leave-a-message form): announce a new
        // state that the messages' publication did not (it covers handoffs only).
        let announced = new_handoff.is_some() || conv.state.human_owned();
        if rated || (!announced && conv.state.name() != state_before) {
            self.hub.to_visitor(&conv.id, &self.state_event(&conv).await?);
        }
        if let Some(h) = &new_handoff {
            self.hub.to_agents(&AgentEvent::Handoff { handoff: h.clone() });
            if self.config.assignment == Assignment::Auto {
                self.assign_waiting().await?;
            }
            self.notify_queue(h).await?;
        }
        // Only an automatic assignment can have moved the conversation on since the commit.
        let auto_assigned = new_handoff.is_some() && self.config.assignment == Assignment::Auto;
        let conv = if auto_assigned { self.store.conversation(id).await?.unwrap_or(conv) } else { conv };
        let mut stored = stored.into_iter();
        let message = stored.next().expect("the visitor's message was stored");
        let queue_position = self.queue_position(&conv).await?;
        let exchange = Exchange {
            message,
            replies: stored.collect(),
            state: conv.state.name(),
            queue_position,
            estimated_wait_ms: self.estimated_wait(queue_position),
            duplicate: false,
        };
        Ok((exchange, transferred))
    }

    /// Runs the matchers and the policy for one message (no writes). Also returns the
    /// knowledge candidates, for a handoff's summary.
    ///
    /// The matchers are CPU work and run once, off the async workers. The policy is pure and
    /// cheap: it is run once with nobody asked about, and only if it wanted a human is the
    /// store read for who is available and the policy run again with the answer, so that a
    /// plain answer costs no store read and the policy never waits on one.
    pub(super) async fn bot_turn(&self, conv: &Conversation, text: &str, humans_elsewhere: bool) -> Result<(Outcome, Vec<CandidateView>)> {
        let brain = self.brain();
        let read = cpu_bound(|| read_message(&brain, conv, text))?;
        let wanted = std::cell::RefCell::new(None);
        let outcome = self.decide(&brain, conv, text, &read, &|skill: &str| {
            wanted.borrow_mut().get_or_insert_with(|| skill.to_string());
            Availability::NoAgents
        });
        let outcome = match wanted.into_inner() {
            None => outcome,
            Some(_) if humans_elsewhere => self.decide(&brain, conv, text, &read, &|_: &str| Availability::Elsewhere),
            Some(skill) => {
                // Hours and agents are read for the skill the policy wants. A store error
                // fails the turn; it is not taken for "nobody is online".
                let available = self.availability(&skill).await?;
                self.decide(&brain, conv, text, &read, &|_: &str| available)
            }
        };
        let candidates = read
            .knowledge
            .candidates
            .iter()
            .take(5)
            .filter_map(|c| {
                brain.article(&c.id).map(|a| CandidateView { article: a.id.clone(), title: a.title.clone(), confidence: c.confidence })
            })
            .collect();
        Ok((outcome, candidates))
    }

    /// The conversation so far, with the messages `change` is about to store.
    async fn transcript(&self, conv: &Conversation, change: &Change) -> Result<Vec<Message>> {
        let mut t = self.store.messages(&conv.id, 0, HISTORY_LIMIT).await?;
        t.extend(predict(conv, change));
        Ok(t)
    }

    fn decide(&self, brain: &Brain, conv: &Conversation, text: &str, read: &Read, availability: &dyn Fn(&str) -> Availability) -> Outcome {
        let find = |id: &str| brain.article(id);
        let policy = Policy { rules: &self.config.dialogue, intents: &brain.intents, article: &find };
        let turn = Turn {
            text,
            intent: read.intent.as_ref(),
            knowledge: Some(&read.knowledge),
            followup: read.followup.as_ref(),
            availability,
        };
        policy.step(&conv.state, &conv.context, &turn)
    }

    /// Applies a policy outcome to the conversation and the change; returns a new handoff.
    pub(super) async fn apply_outcome(
        &self,
        conv: &mut Conversation,
        outcome: Outcome,
        candidates: Vec<CandidateView>,
        text: &str,
        change: &mut Change,
    ) -> Result<Option<Handoff>> {
        let Outcome { state, context, replies, handoff, ticket, rating, unanswered, transferred: _ } = outcome;
        conv.state = state;
        conv.context = context;
        // An answered question leaves the unanswered lists (the reports' "answered since").
        let answered = replies.iter().any(|(_, meta)| meta.kind == "answer");
        for (reply, meta) in replies {
            change.messages.push(NewMessage::bot(reply, meta));
        }
        if let Some(q) = question_key(text) {
            if unanswered {
                change.unanswered.push(q);
            } else if answered {
                change.answered.push(q);
            }
        }
        if let Some(score) = rating {
            let last = self.handoff_of(conv).await?;
            let rating = Rating {
                conversation: conv.id.clone(),
                handoff: last.as_ref().map(|h| h.id),
                agent: last.and_then(|h| h.agent),
                score,
                comment: None,
                at_ms: change.at_ms,
            };
            self.rated_event(change, &rating).await?;
            change.rating = Some(rating);
        }
        if let Some(t) = ticket {
            let mut ticket = Ticket {
                id: self.store.next_id().await?,
                conversation: conv.id.clone(),
                contact: t.contact.unwrap_or_default(),
                message: t.message,
                reason: t.reason,
                visitor: conv.visitor.clone(),
                transcript: self.transcript(conv, change).await?,
                created_ms: change.at_ms,
                ..Default::default()
            };
            self.open_ticket(&mut ticket, "visitor");
            self.left_message_events(change, &ticket).await?;
            change.ticket = Some(ticket);
        }
        let Some(req) = handoff else { return Ok(None) };
        let h = Handoff {
            id: self.store.next_id().await?,
            conversation: conv.id.clone(),
            reason: req.reason,
            detail: req.detail,
            priority: req.priority,
            skill: req.skill,
            intent: req.intent,
            slots: conv.context.slots.clone(),
            candidates,
            visitor: conv.visitor.clone(),
            transcript: self.transcript(conv, change).await?,
            created_ms: change.at_ms,
            status: HandoffStatus::Queued,
            agent: None,
            assigned_ms: None,
            closed_ms: None,
        };
        conv.handoff = Some(h.id);
        self.handed_off_event(change, &h).await?;
        change.handoffs.push(h.clone());
        Ok(Some(h))
    }

    pub(super) async fn publish_visitor_messages(&self, conv: &Conversation, stored: &[Message], new_handoff: Option<&Handoff>) -> Result<()> {
        // Internal notes stored with a step (a takeover's) are for agents only.
        for m in stored.iter().filter(|m| !m.internal) {
            self.hub.to_visitor(&conv.id, &VisitorEvent::Message { message: m.clone() });
        }
        // Agents follow conversations that are (or were just) handed off.
        if conv.handoff.is_some() && (conv.state.human_owned() || new_handoff.is_some()) {
            for m in stored {
                self.hub.to_agents(&AgentEvent::Message { conversation: conv.id.clone(), message: m.clone() });
            }
        }
        if new_handoff.is_some() || conv.state.human_owned() {
            self.hub.to_visitor(&conv.id, &self.state_event(conv).await?);
        }
        Ok(())
    }
}

/// Runs `f`, which takes milliseconds of CPU (analysis, ranking), so that the other tasks
/// queued on this worker thread move to another one meanwhile: without it a long message
/// delayed unrelated conversations on the same worker (the ordering phase of
/// `scripts/reliability.sh` saw 1.3 s). Single-threaded runtimes (unit tests) just run it.
/// What the matchers made of one message.
struct Read {
    intent: Option<crate::nlu::IntentMatch>,
    knowledge: crate::knowledge::Reply,
    followup: Option<crate::knowledge::Reply>,
}

fn read_message(brain: &Brain, conv: &Conversation, text: &str) -> Result<Read> {
    // One analysis serves the intents and the knowledge: they share the analyser.
    let analyzed = brain.engine.analyzer().analyze(text);
    let intent = brain.intents.recognise(text, &analyzed)?;
    let knowledge = brain.engine.ask_analyzed(&analyzed)?;
    // A follow-up ("那运费呢？") is read with the topic of the last answered article: the
    // content words of its question. The old article itself is not a candidate (a follow-up
    // asks something new), and the confidence is decided afresh.
    let followup = match (&conv.context.last_article, knowledge.answer()) {
        (Some(last), None) => match (nlu::followup(text), brain.article(last)) {
            (Some(f), Some(a)) => {
                let mut reply = brain.ask(&f.query(&nlu::followup::topic(brain.engine.analyzer(), &a.title)))?;
                reply.candidates.retain(|c| &c.id != last);
                reply.confidence = reply.candidates.first().map_or(0.0, |c| c.confidence);
                reply.action = brain.engine.thresholds().decide(reply.confidence);
                Some(reply)
            }
            _ => None,
        },
        _ => None,
    };
    Ok(Read { intent, knowledge, followup })
}

fn cpu_bound<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn an_intents_examples_do_not_take_a_knowledge_question() {
        // The shipped knowledge and intents: 我买的东西坏了怎么办 shares 我买的东西 with an
        // example of `order_status` (我买的东西到哪了) but asks about a broken item.
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let f = testing::service(|c| {
            c.knowledge = repo.join("knowledge");
            c.intents = repo.join("intents");
        })
        .await;
        let (id, token) = f.visitor().await;
        let x = f.service.visitor_message(&id, &token, "我买的东西坏了怎么办", None).await.unwrap();
        let bot = x.replies[0].bot.as_ref().unwrap();
        assert_ne!(bot.intent.as_deref(), Some("order_status"), "{:?}", x.replies[0].text);
        assert_ne!(x.state, "collecting");
        let (id, token) = f.visitor().await;
        let x = f.service.visitor_message(&id, &token, "我的订单到哪了", None).await.unwrap();
        assert_eq!(x.replies[0].bot.as_ref().unwrap().intent.as_deref(), Some("order_status"));
    }

    #[tokio::test]
    async fn a_known_question_is_answered_and_acknowledged_once() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        let x = f.service.visitor_message(&id, &token, "退货运费谁出", Some("c1".into())).await.unwrap();
        assert_eq!(x.state, "bot");
        assert!(!x.duplicate);
        let answer = x.replies[0].bot.as_ref().unwrap();
        assert_eq!(answer.article.as_deref(), Some("return-shipping-fee"));
        // A resend is stored once and gets the same replies.
        let again = f.service.visitor_message(&id, &token, "退货运费谁出", Some("c1".into())).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.seq, x.message.seq);
        assert_eq!(again.replies.len(), x.replies.len());
        assert_eq!(code(f.service.visitor_message(&id, &token, "hi", Some(String::new())).await), Code::InvalidClientId);
    }

    #[tokio::test]
    async fn with_nobody_online_a_handoff_becomes_leave_a_message() {
        let f = testing::service(|_| {}).await;
        f.agent("away", false).await;
        let (id, token) = f.visitor().await;
        let x = f.service.request_human(&id, &token, None).await.unwrap();
        assert_eq!(x.state, "leaving_message");
        assert_eq!(x.replies[0].text, f.service.config().dialogue.no_agents_text);
        assert!(f.service.queue().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn with_an_agent_online_a_handoff_is_queued() {
        let f = testing::service(|_| {}).await;
        f.agent("a1", true).await;
        let (id, token) = f.visitor().await;
        f.service.visitor_message(&id, &token, "怎么开发票", None).await.unwrap();
        let x = f.service.request_human(&id, &token, None).await.unwrap();
        assert_eq!((x.state.as_str(), x.queue_position), ("queued", Some(1)));
        let queue = f.service.queue().await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].handoff.reason, "requested");
        // The agent reads the whole transcript, the bot's reply to 转人工 included.
        let transcript = &queue[0].handoff.transcript;
        assert_eq!(transcript[0].text, "怎么开发票");
        assert_eq!(transcript.last().unwrap().text, "正在为您转接人工客服。");
    }

    #[tokio::test]
    async fn a_channel_with_its_own_agents_is_told_to_transfer() {
        let f = testing::service(|_| {}).await;
        let id = f.service.channel_conversation("wechat", "openid-1").await.unwrap();
        let x = f.service.channel_message(&id, "转人工", None, true).await.unwrap();
        assert!(x.transferred);
        assert_eq!(x.exchange.state, "bot", "the bot answers again when the user comes back");
        assert!(f.service.queue().await.unwrap().is_empty());
        assert!(f.service.store().conversation(&id).await.unwrap().unwrap().handoff.is_none());
    }

    #[tokio::test]
    async fn a_closed_conversation_takes_no_messages() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        f.service.close(&id).await.unwrap();
        assert_eq!(code(f.service.visitor_message(&id, &token, "在吗", None).await), Code::ConversationClosed);
        assert_eq!(code(f.service.channel_message("nope", "在吗", None, false).await), Code::ConversationNotFound);
    }
}

/// A question as the unanswered lists keep it: normalised, at most 200 characters.
pub(super) fn question_key(text: &str) -> Option<String> {
    let q: String = normalize(text).chars().take(200).collect();
    let q = q.trim();
    (!q.is_empty()).then(|| q.to_string())
}
