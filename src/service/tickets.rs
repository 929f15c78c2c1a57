//! Tickets (工单) as agents work them: listing with filters and search, creating one from a
//! conversation, changing status, priority, category, tags, assignee and complaint steps,
//! notes, and replies to the customer — through the conversation's channel while it is
//! reachable, else recorded as a call or an e-mail. Also the SLA watch, which records
//! breaches as their due times pass. The rules themselves are in `handoff::ticket`.

use crate::webhook::EventKind;
use super::*;
use crate::handoff::{ComplaintStep, ReplyVia, TicketError, TicketPriority, TicketSource, TicketStatus, TicketSummary};

/// What a ticket list is filtered by; every field is optional and they combine.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub category: Option<String>,
    /// An agent id, or `none` for unassigned tickets.
    pub assignee: Option<String>,
    pub breached: Option<bool>,
    /// Words to find in the message, contact, visitor's name, tags, notes and replies.
    pub q: Option<String>,
}

/// A change to a ticket's fields; unset fields stay as they are. `assignee: Some(None)`
/// unassigns.
#[derive(Debug, Clone, Default)]
pub struct TicketUpdate {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub assignee: Option<Option<String>>,
    pub complaint: Option<bool>,
    pub complaint_step: Option<String>,
}

/// A ticket an agent makes from a conversation.
#[derive(Debug, Clone, Default)]
pub struct NewTicket {
    pub message: String,
    pub contact: Option<String>,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub tags: Vec<String>,
    pub complaint: bool,
    /// Assign it to this agent (unset: to its creator).
    pub assignee: Option<String>,
}

/// A ticket as the console shows it, with whether its conversation can still be replied to.
#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Whether a reply can go through the conversation (else by phone or mail).
    pub reachable: bool,
}

const MAX_CATEGORY_CHARS: usize = 32;
const MAX_TAGS: usize = 20;
/// How often the SLA watch looks at least (it also wakes at the next due time and whenever
/// a ticket is written).
const SLA_WATCH_MS: u64 = 30_000;
/// Overdue tickets one sweep takes on, at most (the next sweep follows at once).
const SLA_SWEEP_MAX: usize = 500;
/// How often a write that lost to another node's is tried again on the fresh ticket (this
/// node's writers of one ticket wait their turn instead; see `lock_ticket`).
const TICKET_RETRIES: u32 = 10;

fn invalid(message: String) -> ServiceError {
    ServiceError::refused(Code::InvalidTicket, message)
}

impl From<TicketError> for ServiceError {
    fn from(e: TicketError) -> ServiceError {
        ServiceError::refused(Code::InvalidTransition, e.to_string())
    }
}

fn parse_status(s: &str) -> Result<TicketStatus> {
    TicketStatus::parse(s).ok_or_else(|| invalid(format!("status {s:?} is not one of new, open, pending_customer, resolved, closed")))
}

fn parse_priority(s: &str) -> Result<TicketPriority> {
    TicketPriority::parse(s).ok_or_else(|| invalid(format!("priority {s:?} is not one of low, normal, high, urgent")))
}

fn check_category(c: &str) -> Result<String> {
    let c = c.trim();
    if c.is_empty() || c.chars().count() > MAX_CATEGORY_CHARS {
        return Err(invalid(format!("a category is 1 to {MAX_CATEGORY_CHARS} characters, not {:?}", c.chars().take(40).collect::<String>())));
    }
    Ok(c.to_string())
}

fn check_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!("a ticket has at most {MAX_TAGS} tags, not {}", tags.len())));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = check_category(t).map_err(|_| invalid(format!("a tag is 1 to {MAX_CATEGORY_CHARS} characters, not {t:?}")))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

impl TicketFilter {
    fn matcher(&self) -> Result<impl Fn(&Ticket) -> bool + '_> {
        let status = self.status.as_deref().filter(|s| !s.is_empty()).map(parse_status).transpose()?;
        let priority = self.priority.as_deref().filter(|s| !s.is_empty()).map(parse_priority).transpose()?;
        let q = self.q.as_deref().map(normalize).filter(|q| !q.trim().is_empty());
        Ok(move |t: &Ticket| {
            status.is_none_or(|s| t.status == s)
                && priority.is_none_or(|p| t.priority == p)
                && self.category.as_deref().filter(|c| !c.is_empty()).is_none_or(|c| t.category == c)
                && self.assignee.as_deref().filter(|a| !a.is_empty()).is_none_or(|a| match a {
                    "none" => t.assignee.is_none(),
                    a => t.assignee.as_deref() == Some(a),
                })
                && self.breached.is_none_or(|b| (t.sla.breaches() > 0) == b)
                && q.as_deref().is_none_or(|q| searchable(t).contains(q))
        })
    }
}

/// The text a ticket search looks in, normalised like the query.
fn searchable(t: &Ticket) -> String {
    let mut text = format!("{} {} {} {} #{} {}", t.message, t.contact, t.visitor.name.as_deref().unwrap_or(""), t.tags.join(" "), t.id, t.category);
    for e in &t.history {
        if let crate::handoff::TicketChange::Note { text: x } | crate::handoff::TicketChange::Reply { text: x, .. } = &e.what {
            text.push(' ');
            text.push_str(x);
        }
    }
    normalize(&text)
}

impl Service {
    /// Tickets matching `filter`, most recently changed first.
    pub async fn ticket_list(&self, filter: &TicketFilter) -> Result<Vec<TicketSummary>> {
        let matches = filter.matcher()?;
        let mut out: Vec<TicketSummary> = self.store.tickets().await?.iter().filter(|t| matches(t)).map(TicketSummary::from).collect();
        out.sort_by(|a, b| b.updated_ms.max(b.created_ms).cmp(&a.updated_ms.max(a.created_ms)).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn load_ticket(&self, id: u64) -> Result<Ticket> {
        self.store.ticket(id).await?.ok_or_else(|| ServiceError::refused(Code::TicketNotFound, format!("ticket {id} not found")))
    }

    /// A ticket with its transcript and history.
    pub async fn ticket_view(&self, id: u64) -> Result<TicketView> {
        let ticket = self.load_ticket(id).await?;
        let reachable = self.reachable(&ticket.conversation).await?;
        Ok(TicketView { ticket, reachable })
    }

    /// Whether a reply can go through the conversation: it exists and is not closed (a
    /// WeChat user who unsubscribed, a conversation ended for good).
    async fn reachable(&self, conversation: &str) -> Result<bool> {
        Ok(self.store.conversation(conversation).await?.is_some_and(|c| c.state != State::Closed))
    }

    /// Starts a new ticket's SLA and history (a leave-a-message ticket's too).
    pub(super) fn open_ticket(&self, ticket: &mut Ticket, by: &str) {
        ticket.open(by, &self.config.sla, &self.config.hours);
    }

    /// Tells every agent about a new or changed ticket, and the SLA watch about its due times.
    pub(super) fn announce_ticket(&self, ticket: &Ticket, created: bool) {
        self.hub.to_agents(&AgentEvent::Ticket { ticket: TicketSummary::from(ticket), created });
        self.sla_wake.notify_one();
    }

    /// An agent makes a ticket from a conversation (handed off or not).
    pub async fn create_ticket(&self, agent: &Agent, conv_id: &str, req: NewTicket) -> Result<TicketView> {
        self.check_text(&req.message)?;
        let category = req.category.as_deref().map(check_category).transpose()?;
        let priority = req.priority.as_deref().map(parse_priority).transpose()?.unwrap_or_default();
        let tags = check_tags(&req.tags)?;
        let contact = req.contact.as_deref().map(str::trim).unwrap_or("").to_string();
        if contact.chars().count() > 100 {
            return Err(ServiceError::refused(Code::InvalidContact, "contact must be at most 100 characters (a phone number or an e-mail)"));
        }
        let assignee = req.assignee.unwrap_or_else(|| agent.id.clone());
        if assignee != agent.id && self.store.agent(&assignee).await?.is_none() {
            return Err(invalid(format!("assignee {assignee:?} is not an agent")));
        }
        let conv = self.load_conversation(conv_id).await?;
        let now = now_ms();
        let mut ticket = Ticket {
            id: self.store.next_id().await?,
            conversation: conv.id.clone(),
            contact,
            message: req.message.trim().into(),
            reason: Reason::Other("agent".into()),
            visitor: conv.visitor.clone(),
            transcript: self.store.messages(conv_id, 0, HISTORY_LIMIT).await?,
            created_ms: now,
            source: TicketSource::Agent,
            category: category.unwrap_or_else(|| "咨询".into()),
            tags,
            priority,
            complaint: req.complaint,
            assignee: Some(assignee),
            ..Default::default()
        };
        self.open_ticket(&mut ticket, &agent.id);
        let mut change = Change { ticket: Some(ticket.clone()), at_ms: now, ..Default::default() };
        self.ticket_event(&mut change, EventKind::TicketCreated, &ticket, 0).await?;
        self.commit(change).await?;
        self.announce_ticket(&ticket, true);
        Ok(TicketView { ticket, reachable: conv.state != State::Closed })
    }

    /// Writes of one ticket on this node take turns, like the steps of a conversation.
    async fn lock_ticket(&self, id: u64) -> Result<locks::Turn> {
        self.lock(&format!("ticket:{id}")).await
    }

    /// Reads the ticket, applies `f` and writes it with its version moved on. A write that
    /// lost a race with another node's is retried on the fresh ticket, so `f` decides again
    /// on what is stored.
    async fn change_ticket(&self, id: u64, f: impl Fn(&mut Ticket, Millis) -> Result<()>) -> Result<Ticket> {
        let _turn = self.lock_ticket(id).await?;
        let mut tries = 0;
        loop {
            let mut t = self.load_ticket(id).await?;
            let (now, history_before) = (now_ms(), t.history.len());
            // A clock that ran out before this change is recorded first.
            t.check_sla(now);
            f(&mut t, now)?;
            t.check_sla(now);
            t.version += 1;
            let mut change = Change { ticket: Some(t.clone()), at_ms: now, ..Default::default() };
            self.ticket_event(&mut change, EventKind::TicketUpdated, &t, history_before).await?;
            match self.commit(change).await {
                Err(ServiceError::Refused(Code::TicketChanged, _)) if tries < TICKET_RETRIES => tries += 1,
                Err(e) => return Err(e),
                Ok(_) => {
                    self.announce_ticket(&t, false);
                    return Ok(t);
                }
            }
        }
    }

    /// Changes a ticket's fields; each change is checked (lifecycle, complaint flow) and
    /// recorded in the ticket's history.
    pub async fn update_ticket(&self, agent: &Agent, id: u64, u: TicketUpdate) -> Result<TicketView> {
        self.agent_active(&agent.id);
        let status = u.status.as_deref().map(parse_status).transpose()?;
        let priority = u.priority.as_deref().map(parse_priority).transpose()?;
        let category = u.category.as_deref().map(check_category).transpose()?;
        let tags = u.tags.as_deref().map(check_tags).transpose()?;
        let step = u
            .complaint_step
            .as_deref()
            .map(|s| ComplaintStep::parse(s).ok_or_else(|| invalid(format!("complaint step {s:?} is not one of accept (受理), investigate (调查), negotiate (协商), feedback (反馈)"))))
            .transpose()?;
        if let Some(Some(a)) = &u.assignee {
            if self.store.agent(a).await?.is_none() {
                return Err(invalid(format!("assignee {a:?} is not an agent")));
            }
        }
        if u.complaint == Some(false) {
            return Err(invalid("a complaint stays a complaint: complaint can only be set to true".into()));
        }
        let (sla, hours) = (&self.config.sla, &self.config.hours);
        let by = agent.id.as_str();
        let t = self
            .change_ticket(id, |t, now| {
                if let Some(c) = &category {
                    t.set_category(by, now, c.clone(), sla, hours)?;
                }
                if u.complaint == Some(true) {
                    t.set_complaint(by, now, sla, hours)?;
                }
                if let Some(p) = priority {
                    t.set_priority(by, now, p, sla, hours)?;
                }
                if let Some(tags) = &tags {
                    t.set_tags(by, now, tags.clone())?;
                }
                if let Some(a) = &u.assignee {
                    t.set_assignee(by, now, a.clone())?;
                }
                if let Some(s) = step {
                    t.complaint_step(by, now, s)?;
                }
                if let Some(s) = status {
                    t.set_status(by, now, s, hours)?;
                }
                Ok(())
            })
            .await?;
        let reachable = self.reachable(&t.conversation).await?;
        Ok(TicketView { ticket: t, reachable })
    }

    /// An internal note on a ticket.
    pub async fn ticket_note(&self, agent: &Agent, id: u64, text: &str) -> Result<TicketView> {
        self.check_text(text)?;
        let t = self.change_ticket(id, |t, now| Ok(t.note(&agent.id, now, text.trim().into())?)).await?;
        let reachable = self.reachable(&t.conversation).await?;
        Ok(TicketView { ticket: t, reachable })
    }

    /// A reply to the customer. `via` channel (the default) sends it as the agent's message
    /// in the conversation, where the widget shows it and WeChat's relay sends it on; phone
    /// or mail records that the agent contacted the customer that way, and what was said.
    pub async fn ticket_reply(&self, agent: &Agent, id: u64, text: &str, via: Option<&str>) -> Result<TicketView> {
        self.check_text(text)?;
        self.agent_active(&agent.id);
        let via = match via {
            None => ReplyVia::Channel,
            Some(v) => ReplyVia::parse(v).ok_or_else(|| invalid(format!("via {v:?} is not one of channel, phone, mail")))?,
        };
        let text = text.trim().to_string();
        if via != ReplyVia::Channel {
            let t = self.change_ticket(id, |t, now| Ok(t.reply(&agent.id, now, via, text.clone(), None)?)).await?;
            let reachable = self.reachable(&t.conversation).await?;
            return Ok(TicketView { ticket: t, reachable });
        }
        let ticket_turn = self.lock_ticket(id).await?;
        let conv_id = self.load_ticket(id).await?.conversation;
        // The message and the ticket's record of it are one change, under the conversation's
        // lock too (its messages are numbered in order).
        let turn = self.lock(&conv_id).await?;
        let Some(conv) = self.store.conversation(&conv_id).await?.filter(|c| c.state != State::Closed) else {
            return Err(ServiceError::refused(Code::Unreachable, format!("conversation {conv_id} of ticket {id} is closed; reply by phone or mail (via) instead")));
        };
        if let State::WithAgent { agent: owner } = &conv.state {
            if *owner != agent.id {
                return Err(ServiceError::refused(Code::NotYourConversation, format!("conversation {conv_id} is held by agent {owner} now; reply there, or by phone or mail")));
            }
        }
        let from = Sender::Agent { id: agent.id.clone(), name: agent.name.clone() };
        let mut tries = 0;
        let (t, stored) = loop {
            let mut t = self.load_ticket(id).await?;
            let (now, history_before) = (now_ms(), t.history.len());
            let mut change = Change { conversation: Some(conv.clone()), at_ms: now, ..Default::default() };
            change.messages.push(NewMessage { from: from.clone(), text: text.clone(), internal: false, bot: None, client_id: None, image: None });
            let seq = predict(&conv, &change).first().map(|m| m.seq);
            t.check_sla(now);
            t.reply(&agent.id, now, ReplyVia::Channel, text.clone(), seq)?;
            t.check_sla(now);
            t.version += 1;
            change.ticket = Some(t.clone());
            self.ticket_event(&mut change, EventKind::TicketUpdated, &t, history_before).await?;
            match self.commit(change).await {
                Err(ServiceError::Refused(Code::TicketChanged, _)) if tries < TICKET_RETRIES => tries += 1,
                Err(e) => return Err(e),
                Ok(stored) => break (t, stored),
            }
        };
        drop(turn);
        drop(ticket_turn);
        self.publish_visitor_messages(&conv, &stored, None).await?;
        self.announce_ticket(&t, false);
        Ok(TicketView { ticket: t, reachable: true })
    }

    /// Records the SLA breaches of every ticket whose due time has passed; returns when the
    /// next clock runs out (if one still runs). Several nodes may run it at once: the ticket's
    /// version lets one write win, and the others find the breach recorded.
    pub async fn sweep_sla(&self) -> Result<Option<Millis>> {
        let now = now_ms();
        let mut next: Option<Millis> = None;
        let due = self.store.tickets_due(SLA_SWEEP_MAX).await?;
        if due.len() == SLA_SWEEP_MAX && due.last().is_some_and(|(at, _)| *at < now) {
            // More are overdue than one sweep takes: the next sweep comes at once.
            next = Some(now);
        }
        for (at, id) in due {
            if at >= now {
                next = Some(next.map_or(at, |n| n.min(at)));
                break;
            }
            let _turn = self.lock_ticket(id).await?;
            // Read under the lock: an agent may have written it since the index was read.
            let Some(mut fresh) = self.store.ticket(id).await? else { continue };
            let history_before = fresh.history.len();
            if !fresh.check_sla(now) {
                continue;
            }
            fresh.version += 1;
            let mut change = Change { ticket: Some(fresh.clone()), at_ms: now, ..Default::default() };
            self.ticket_event(&mut change, EventKind::TicketUpdated, &fresh, history_before).await?;
            match self.commit(change).await {
                Ok(_) => self.announce_ticket(&fresh, false),
                // Someone else wrote it meanwhile; their write checked the clock too.
                Err(ServiceError::Refused(Code::TicketChanged, _)) => {}
                Err(e) => return Err(e),
            }
            if let Some(due) = fresh.next_due() {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        Ok(next)
    }

    /// Watches the SLA clocks until aborted: sleeps to the next due time (or a new ticket),
    /// at most `SLA_WATCH_MS`.
    pub async fn sla_loop(self: Arc<Self>) {
        loop {
            let wait = match self.sweep_sla().await {
                Ok(next) => next.map_or(SLA_WATCH_MS, |due| due.saturating_sub(now_ms()) + 1).min(SLA_WATCH_MS),
                Err(e) => {
                    tracing::warn!(error = %e, "the SLA watch failed; retrying");
                    SLA_WATCH_MS
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = self.sla_wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;
    use crate::handoff::{SlaClock, TicketChange};

    async fn left_message(f: &testing::Fixture) -> (String, String, Ticket) {
        let (id, token) = f.visitor().await;
        let t = f.service.leave_ticket(&id, &token, "13800138000", "发票开错了，请回电").await.unwrap();
        (id, token, t)
    }

    #[tokio::test]
    async fn a_left_message_is_worked_through_its_lifecycle() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let mut events = f.service.hub().subscribe_agents();
        let (conv, token, t) = left_message(&f).await;
        let announced: serde_json::Value = serde_json::from_str(&events.recv().await.unwrap()).unwrap();
        assert_eq!((announced["type"].as_str(), announced["created"].as_bool()), (Some("ticket"), Some(true)));
        assert_eq!(announced["ticket"]["id"], t.id);
        assert_eq!((t.status, t.version, t.category.as_str()), (TicketStatus::New, 1, "留言"));
        assert!(t.sla.first_response_due_ms.is_some());

        let u = |status: &str| TicketUpdate { status: Some(status.into()), ..Default::default() };
        let e = f.service.update_ticket(&a1, t.id, u("closed")).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidTransition);
        assert!(e.to_string().contains("cannot become closed"), "{e}");
        assert_eq!(code(f.service.update_ticket(&a1, t.id, u("done")).await), Code::InvalidTicket);
        let assign = TicketUpdate { assignee: Some(Some("a1".into())), tags: Some(vec!["发票".into()]), priority: Some("high".into()), ..Default::default() };
        f.service.update_ticket(&a1, t.id, assign).await.unwrap();

        // A reply through the widget: the visitor's conversation gets the agent's message.
        let view = f.service.ticket_reply(&a1, t.id, "您好，发票已重开", None).await.unwrap();
        assert_eq!(view.ticket.status, TicketStatus::Open, "a reply opens a new ticket");
        assert!(view.ticket.first_response_ms.is_some());
        let conv_view = f.service.visitor_view(&f.service.authorize_visitor(&conv, &token).await.unwrap(), 0).await.unwrap();
        assert_eq!(conv_view.messages.last().unwrap().text, "您好，发票已重开");
        let Some(TicketChange::Reply { seq: Some(seq), via: ReplyVia::Channel, .. }) = view.ticket.history.iter().rev().map(|e| e.what.clone()).find(|w| matches!(w, TicketChange::Reply { .. })) else {
            panic!("the reply is in the history with its message")
        };
        assert_eq!(seq, conv_view.messages.last().unwrap().seq);

        f.service.ticket_note(&a1, t.id, "客户说下午有空").await.unwrap();
        f.service.update_ticket(&a1, t.id, u("pending_customer")).await.unwrap();
        f.service.update_ticket(&a1, t.id, u("resolved")).await.unwrap();
        let done = f.service.update_ticket(&a1, t.id, u("closed")).await.unwrap().ticket;
        assert_eq!(code(f.service.ticket_note(&a1, t.id, "再补一句").await), Code::InvalidTransition, "closed is final");
        let kinds: Vec<String> = done.history.iter().map(|e| serde_json::to_value(&e.what).unwrap()["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(kinds, ["created", "priority", "tags", "assignee", "reply", "status", "note", "status", "status", "status"]);
        assert!(done.history[1..].iter().all(|e| e.by == "a1" && e.at_ms >= t.created_ms));
        assert_eq!(done.version, 7, "one write per action");

        // Filters and search.
        let list = |f2: TicketFilter| {
            let s = f.service.clone();
            async move { s.ticket_list(&f2).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>() }
        };
        assert_eq!(list(TicketFilter { status: Some("closed".into()), ..Default::default() }).await, [t.id]);
        assert_eq!(list(TicketFilter { status: Some("open".into()), ..Default::default() }).await, Vec::<u64>::new());
        assert_eq!(list(TicketFilter { q: Some("下午".into()), assignee: Some("a1".into()), ..Default::default() }).await, [t.id], "notes are searched");
        assert_eq!(list(TicketFilter { assignee: Some("none".into()), ..Default::default() }).await, Vec::<u64>::new());
        assert_eq!(code(f.service.ticket_list(&TicketFilter { priority: Some("asap".into()), ..Default::default() }).await), Code::InvalidTicket);
        assert_eq!(code(f.service.ticket_view(999).await), Code::TicketNotFound);
    }

    #[tokio::test]
    async fn replies_go_by_phone_when_the_conversation_is_closed() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let (conv, _, t) = left_message(&f).await;
        f.service.close(&conv).await.unwrap();
        assert!(!f.service.ticket_view(t.id).await.unwrap().reachable);
        assert_eq!(code(f.service.ticket_reply(&a1, t.id, "您好", None).await), Code::Unreachable);
        assert_eq!(code(f.service.ticket_reply(&a1, t.id, "您好", Some("fax")).await), Code::InvalidTicket);
        let v = f.service.ticket_reply(&a1, t.id, "已电话联系客户，同意重开发票", Some("phone")).await.unwrap();
        assert!(matches!(v.ticket.history.last().unwrap().what, TicketChange::Status { .. }));
        assert!(v.ticket.history.iter().any(|e| matches!(&e.what, TicketChange::Reply { via: ReplyVia::Phone, seq: None, .. })));
    }

    #[tokio::test]
    async fn a_complaint_follows_its_flow_and_agents_make_tickets() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let (conv, _) = f.visitor().await;
        let req = NewTicket { message: "快递员态度恶劣".into(), category: Some("投诉".into()), ..Default::default() };
        let t = f.service.create_ticket(&a1, &conv, req).await.unwrap().ticket;
        assert!(t.complaint && t.assignee.as_deref() == Some("a1") && t.source == TicketSource::Agent);
        let resolve = TicketUpdate { status: Some("resolved".into()), ..Default::default() };
        let e = f.service.update_ticket(&a1, t.id, resolve.clone()).await.unwrap_err();
        assert!(e.to_string().contains("反馈"), "{e}");
        let step = |s: &str| TicketUpdate { complaint_step: Some(s.into()), ..Default::default() };
        assert_eq!(code(f.service.update_ticket(&a1, t.id, step("协商")).await), Code::InvalidTransition, "out of order");
        for s in ["受理", "investigate", "协商", "反馈"] {
            f.service.update_ticket(&a1, t.id, step(s)).await.unwrap();
        }
        let done = f.service.update_ticket(&a1, t.id, resolve).await.unwrap().ticket;
        assert_eq!(done.complaint_steps, ComplaintStep::ALL);
        assert_eq!(done.status, TicketStatus::Resolved);
        assert_eq!(code(f.service.create_ticket(&a1, "nope", NewTicket { message: "x".into(), ..Default::default() }).await), Code::ConversationNotFound);
        let bad = NewTicket { message: "x".into(), assignee: Some("ghost".into()), ..Default::default() };
        assert_eq!(code(f.service.create_ticket(&a1, &conv, bad).await), Code::InvalidTicket);
    }

    #[tokio::test]
    async fn the_sla_watch_records_a_breach_once_and_reports_count_it() {
        // 3600×: the default 4-hour first response is due 4 seconds after the ticket; the
        // clock is moved by writing the ticket's creation time into the past instead of
        // waiting.
        let f = testing::service(|c| c.sla_clock_speed = 3600.0).await;
        let a1 = f.agent("a1", true).await;
        let (_, _, t) = left_message(&f).await;
        f.service.update_ticket(&a1, t.id, TicketUpdate { assignee: Some(Some("a1".into())), ..Default::default() }).await.unwrap();
        let due = t.sla.first_response_due_ms.unwrap();
        assert_eq!(due, t.created_ms + 4_000);
        assert_eq!(f.service.sweep_sla().await.unwrap(), Some(due), "not yet due");
        let mut late = f.service.store().ticket(t.id).await.unwrap().unwrap();
        late.sla.first_response_due_ms = Some(now_ms() - 1);
        late.version += 1;
        f.service.store().commit(Change { ticket: Some(late), at_ms: now_ms(), ..Default::default() }).await.unwrap();
        f.service.sweep_sla().await.unwrap();
        f.service.sweep_sla().await.unwrap();
        let t = f.service.ticket_view(t.id).await.unwrap().ticket;
        assert!(t.sla.first_response_breached);
        let breaches: Vec<_> = t.history.iter().filter(|e| matches!(e.what, TicketChange::Breach { clock: SlaClock::FirstResponse, .. })).collect();
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].by, "system");
        assert_eq!(f.service.ticket_list(&TicketFilter { breached: Some(true), ..Default::default() }).await.unwrap().len(), 1);
        let today = reports::date_of(((now_ms() / 3_600_000 + 8) / 24) as i64);
        let report = f.service.report(Range::parse(&today, &today, 480).unwrap()).await.unwrap();
        assert_eq!(report.team.sla_breaches, 1);
        assert_eq!(report.agents.iter().find(|a| a.agent.as_deref() == Some("a1")).map(|a| a.sla_breaches), Some(1));
    }
}
