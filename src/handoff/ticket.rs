//! Tickets (工单): a customer's matter that agents work until it is resolved — its status
//! lifecycle, category, tags, priority and assignee, the complaint flow (受理 → 调查 → 协商 →
//! 反馈), SLA due times and breaches, and the history of every change (who, when, what).
//!
//! Plain data and pure decisions: the service checks who may act, stores the ticket (one
//! [`crate::store::Change`] per action) and delivers replies.

use serde::{Deserialize, Serialize};

use super::{BusinessHours, Reason};
use crate::dialogue::{Message, Millis, Visitor};

/// Where a ticket stands. `new → open → pending_customer → resolved → closed`; see
/// [`TicketStatus::may_become`] for every allowed move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Nobody has looked at it yet.
    #[default]
    New,
    /// An agent works on it.
    Open,
    /// Waiting for the customer's answer.
    PendingCustomer,
    Resolved,
    /// Done for good; nothing changes a closed ticket.
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 5] =
        [TicketStatus::New, TicketStatus::Open, TicketStatus::PendingCustomer, TicketStatus::Resolved, TicketStatus::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Open => "open",
            TicketStatus::PendingCustomer => "pending_customer",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<TicketStatus> {
        TicketStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether a ticket may move from `self` to `to`. Work goes forward; a resolved ticket
    /// may be reopened (the customer was not satisfied) or closed; a closed one is final.
    pub fn may_become(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (New, Open | PendingCustomer | Resolved) | (Open, PendingCustomer | Resolved) | (PendingCustomer, Open | Resolved) | (Resolved, Open | Closed)
        )
    }

    /// Whether work on the ticket is over (its resolution clock has stopped).
    pub fn is_done(self) -> bool {
        matches!(self, TicketStatus::Resolved | TicketStatus::Closed)
    }
}

/// How urgent a ticket is; picks its SLA policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl TicketPriority {
    pub const ALL: [TicketPriority; 4] = [TicketPriority::Low, TicketPriority::Normal, TicketPriority::High, TicketPriority::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketPriority::Low => "low",
            TicketPriority::Normal => "normal",
            TicketPriority::High => "high",
            TicketPriority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<TicketPriority> {
        TicketPriority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The category that makes a ticket a complaint (投诉), whatever else it is flagged.
pub const COMPLAINT: &str = "投诉";
/// A leave-a-message ticket's category unless the visitor's reason says otherwise.
pub const LEFT_MESSAGE: &str = "留言";

/// The complaint flow's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintStep {
    /// 受理: the complaint is accepted.
    Accept,
    /// 调查: the facts are looked into.
    Investigate,
    /// 协商: a remedy is agreed with the customer.
    Negotiate,
    /// 反馈: the customer is told the outcome. Only then may the ticket be resolved.
    Feedback,
}

impl ComplaintStep {
    pub const ALL: [ComplaintStep; 4] = [ComplaintStep::Accept, ComplaintStep::Investigate, ComplaintStep::Negotiate, ComplaintStep::Feedback];

    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintStep::Accept => "accept",
            ComplaintStep::Investigate => "investigate",
            ComplaintStep::Negotiate => "negotiate",
            ComplaintStep::Feedback => "feedback",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ComplaintStep::Accept => "受理",
            ComplaintStep::Investigate => "调查",
            ComplaintStep::Negotiate => "协商",
            ComplaintStep::Feedback => "反馈",
        }
    }

    /// By wire name (`accept`) or by its Chinese name (`受理`).
    pub fn parse(s: &str) -> Option<ComplaintStep> {
        ComplaintStep::ALL.into_iter().find(|c| c.as_str() == s || c.label() == s)
    }
}

/// How a reply reached the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ReplyVia {
    /// Through the conversation's own channel (the widget, WeChat), as a message in it.
    Channel,
    /// The agent called the customer; the reply records what was said.
    Phone,
    /// The agent wrote an e-mail.
    Mail,
}

impl ReplyVia {
    pub fn parse(s: &str) -> Option<ReplyVia> {
        match s {
            "channel" => Some(ReplyVia::Channel),
            "phone" => Some(ReplyVia::Phone),
            "mail" => Some(ReplyVia::Mail),
            _ => None,
        }
    }
}

/// Which SLA clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    FirstResponse,
    Resolution,
}

/// Who created the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TicketSource {
    /// The visitor left a message (nobody could take the conversation).
    #[default]
    LeftMessage,
    /// An agent made it from a conversation.
    Agent,
}

/// One entry of a ticket's history: who did what, when. Notes and replies are entries too,
/// so the history is the ticket's whole timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub at_ms: Millis,
    /// An agent id, `visitor` or `system` (the SLA clock).
    pub by: String,
    #[serde(flatten)]
    pub what: TicketChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketChange {
    Created { source: TicketSource },
    Status { from: TicketStatus, to: TicketStatus },
    Assignee { from: Option<String>, to: Option<String> },
    Priority { from: TicketPriority, to: TicketPriority },
    Category { from: String, to: String },
    Tags { tags: Vec<String> },
    /// An internal note, for agents only.
    Note { text: String },
    /// A reply to the customer; `seq` is its message in the conversation when sent there.
    Reply { via: ReplyVia, text: String, seq: Option<u64> },
    Complaint { step: ComplaintStep },
    /// An SLA clock ran out before its work was done.
    Breach { clock: SlaClock, due_ms: Millis },
}

/// A ticket's SLA: when the first response and the resolution fall due (business time; see
/// [`SlaPolicy`]) and whether each was breached. `None` due: the policy sets no limit or the
/// business is never open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    pub first_response_due_ms: Option<Millis>,
    pub resolution_due_ms: Option<Millis>,
    pub first_response_breached: bool,
    pub resolution_breached: bool,
    /// Business time the resolution clock spent stopped while the ticket waited on the
    /// customer (pending customer): the resolution falls due that much later.
    #[serde(default)]
    pub paused_ms: Millis,
    /// Since when the ticket waits on the customer, while it does (the clock is stopped).
    #[serde(default)]
    pub pending_since_ms: Option<Millis>,
}

impl Sla {
    pub fn breaches(&self) -> u32 {
        self.first_response_breached as u32 + self.resolution_breached as u32
    }
}

/// A ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: u64,
    pub conversation: String,
    /// How to reach the customer outside the conversation (a phone number or e-mail).
    pub contact: String,
    /// What the customer wants, in their words (or the agent's summary).
    pub message: String,
    pub reason: Reason,
    pub visitor: Visitor,
    /// The conversation up to the ticket.
    pub transcript: Vec<Message>,
    pub created_ms: Millis,
    // Fields from here on came with the ticket lifecycle; tickets stored before it read as
    // new, normal-priority leave-a-message tickets.
    /// Moves on by one with every write: the store refuses a write made from an older copy
    /// (two agents changing one ticket at once), so no change is lost.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub source: TicketSource,
    #[serde(default)]
    pub status: TicketStatus,
    #[serde(default = "left_message")]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: TicketPriority,
    #[serde(default)]
    pub assignee: Option<String>,
    /// A complaint follows the complaint flow; the steps done so far, in order.
    #[serde(default)]
    pub complaint: bool,
    #[serde(default)]
    pub complaint_steps: Vec<ComplaintStep>,
    #[serde(default)]
    pub sla: Sla,
    /// The first reply to the customer, and the latest resolution.
    #[serde(default)]
    pub first_response_ms: Option<Millis>,
    #[serde(default)]
    pub resolved_ms: Option<Millis>,
    #[serde(default)]
    pub updated_ms: Millis,
    #[serde(default)]
    pub history: Vec<TicketEvent>,
}

fn left_message() -> String {
    LEFT_MESSAGE.into()
}

impl Default for Ticket {
    fn default() -> Ticket {
        Ticket {
            id: 0,
            conversation: String::new(),
            contact: String::new(),
            message: String::new(),
            reason: Reason::Requested,
            visitor: Visitor::default(),
            transcript: vec![],
            created_ms: 0,
            version: 0,
            source: TicketSource::LeftMessage,
            status: TicketStatus::New,
            category: left_message(),
            tags: vec![],
            priority: TicketPriority::Normal,
            assignee: None,
            complaint: false,
            complaint_steps: vec![],
            sla: Sla::default(),
            first_response_ms: None,
            resolved_ms: None,
            updated_ms: 0,
            history: vec![],
        }
    }
}

/// Why a change to a ticket is refused; the service maps each to an error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket {id} is {from} and cannot become {to}; from {from} it can become {allowed}")]
    Transition { id: u64, from: &'static str, to: &'static str, allowed: String },
    #[error("ticket {0} is a complaint: it can be resolved only after the 反馈 (feedback) step; do the complaint steps first")]
    ComplaintOpen(u64),
    #[error("ticket {0} is not a complaint, so it has no complaint steps (set the category 投诉 or the complaint flag)")]
    NotComplaint(u64),
    #[error("ticket {id}'s next complaint step is {expected}, not {got}")]
    StepOrder { id: u64, expected: String, got: &'static str },
    #[error("ticket {0} is closed; a closed ticket does not change")]
    Closed(u64),
}

impl Ticket {
    fn record(&mut self, by: &str, at_ms: Millis, what: TicketChange) {
        self.history.push(TicketEvent { at_ms, by: by.to_string(), what });
        self.updated_ms = self.updated_ms.max(at_ms);
    }

    /// Starts a new ticket's history and SLA; a complaint category or reason makes it a
    /// complaint.
    pub fn open(&mut self, by: &str, policies: &SlaPolicies, hours: &BusinessHours) {
        self.version = 1;
        self.complaint |= self.category == COMPLAINT || self.reason == Reason::Complaint;
        if self.complaint && self.category == LEFT_MESSAGE {
            self.category = COMPLAINT.into();
        }
        self.updated_ms = self.created_ms;
        let source = self.source;
        self.record(by, self.created_ms, TicketChange::Created { source });
        self.sla = policies.due(self, hours);
    }

    fn refuse_closed(&self) -> Result<(), TicketError> {
        if self.status == TicketStatus::Closed {
            return Err(TicketError::Closed(self.id));
        }
        Ok(())
    }

    /// Moves the ticket to `to`, if the lifecycle allows it (the same status is no change).
    /// Waiting on the customer stops the resolution clock; leaving that status starts it
    /// again, its due time moved by the business time it was stopped.
    pub fn set_status(&mut self, by: &str, at_ms: Millis, to: TicketStatus, hours: &BusinessHours) -> Result<(), TicketError> {
        let from = self.status;
        self.transition(by, at_ms, to)?;
        if from != to && to == TicketStatus::PendingCustomer {
            self.sla.pending_since_ms = Some(at_ms);
        }
        if from == TicketStatus::PendingCustomer && to != from {
            if let Some(since) = self.sla.pending_since_ms.take() {
                let paused = hours.business_between(since, at_ms);
                self.sla.paused_ms += paused;
                self.sla.resolution_due_ms = self.sla.resolution_due_ms.and_then(|due| hours.add_business(due, paused));
            }
        }
        Ok(())
    }

    /// The lifecycle move alone (a new ticket opening never touches the clocks).
    fn transition(&mut self, by: &str, at_ms: Millis, to: TicketStatus) -> Result<(), TicketError> {
        let from = self.status;
        if from == to {
            return Ok(());
        }
        if !from.may_become(to) {
            let allowed: Vec<&str> = TicketStatus::ALL.into_iter().filter(|s| from.may_become(*s)).map(|s| s.as_str()).collect();
            let allowed = if allowed.is_empty() { "nothing (it is final)".to_string() } else { allowed.join(", ") };
            return Err(TicketError::Transition { id: self.id, from: from.as_str(), to: to.as_str(), allowed });
        }
        if to == TicketStatus::Resolved && self.complaint && !self.complaint_steps.contains(&ComplaintStep::Feedback) {
            return Err(TicketError::ComplaintOpen(self.id));
        }
        if to == TicketStatus::Resolved {
            self.resolved_ms = Some(at_ms);
        }
        self.status = to;
        self.record(by, at_ms, TicketChange::Status { from, to });
        Ok(())
    }

    pub fn set_assignee(&mut self, by: &str, at_ms: Millis, to: Option<String>) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if self.assignee != to {
            let from = std::mem::replace(&mut self.assignee, to.clone());
            self.record(by, at_ms, TicketChange::Assignee { from, to });
        }
        Ok(())
    }

    /// A new priority or category picks the SLA policy anew; the due times count from the
    /// ticket's creation, and a breach already recorded stays recorded.
    pub fn set_priority(&mut self, by: &str, at_ms: Millis, to: TicketPriority, policies: &SlaPolicies, hours: &BusinessHours) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if self.priority != to {
            let from = std::mem::replace(&mut self.priority, to);
            self.record(by, at_ms, TicketChange::Priority { from, to });
            self.redue(policies, hours);
        }
        Ok(())
    }

    /// Setting the category 投诉 makes the ticket a complaint (it stays one).
    pub fn set_category(&mut self, by: &str, at_ms: Millis, to: String, policies: &SlaPolicies, hours: &BusinessHours) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if self.category != to {
            let from = std::mem::replace(&mut self.category, to.clone());
            self.complaint |= to == COMPLAINT;
            self.record(by, at_ms, TicketChange::Category { from, to });
            self.redue(policies, hours);
        }
        Ok(())
    }

    pub fn set_complaint(&mut self, by: &str, at_ms: Millis, policies: &SlaPolicies, hours: &BusinessHours) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if !self.complaint {
            self.set_category(by, at_ms, COMPLAINT.into(), policies, hours)?;
            self.complaint = true;
        }
        Ok(())
    }

    pub fn set_tags(&mut self, by: &str, at_ms: Millis, tags: Vec<String>) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if self.tags != tags {
            self.tags = tags.clone();
            self.record(by, at_ms, TicketChange::Tags { tags });
        }
        Ok(())
    }

    fn redue(&mut self, policies: &SlaPolicies, hours: &BusinessHours) {
        let due = policies.due(self, hours);
        self.sla.first_response_due_ms = due.first_response_due_ms;
        self.sla.resolution_due_ms = due.resolution_due_ms;
    }

    pub fn note(&mut self, by: &str, at_ms: Millis, text: String) -> Result<(), TicketError> {
        self.refuse_closed()?;
        self.record(by, at_ms, TicketChange::Note { text });
        Ok(())
    }

    /// Records a reply to the customer (the first one stops the first-response clock). A
    /// reply to a new ticket opens it.
    pub fn reply(&mut self, by: &str, at_ms: Millis, via: ReplyVia, text: String, seq: Option<u64>) -> Result<(), TicketError> {
        self.refuse_closed()?;
        self.first_response_ms.get_or_insert(at_ms);
        self.record(by, at_ms, TicketChange::Reply { via, text, seq });
        if self.status == TicketStatus::New {
            self.transition(by, at_ms, TicketStatus::Open)?;
        }
        Ok(())
    }

    /// The next step of the complaint flow; steps go in order, each once.
    pub fn complaint_step(&mut self, by: &str, at_ms: Millis, step: ComplaintStep) -> Result<(), TicketError> {
        self.refuse_closed()?;
        if !self.complaint {
            return Err(TicketError::NotComplaint(self.id));
        }
        let Some(expected) = ComplaintStep::ALL.get(self.complaint_steps.len()).copied() else {
            return Err(TicketError::StepOrder { id: self.id, expected: "none (the flow is complete)".into(), got: step.as_str() });
        };
        if step != expected {
            return Err(TicketError::StepOrder { id: self.id, expected: format!("{} ({})", expected.as_str(), expected.label()), got: step.as_str() });
        }
        self.complaint_steps.push(step);
        self.record(by, at_ms, TicketChange::Complaint { step });
        if self.status == TicketStatus::New {
            self.transition(by, at_ms, TicketStatus::Open)?;
        }
        Ok(())
    }

    /// Marks the SLA clocks that ran out by `now` with their work undone; whether any did.
    /// Called before every write and by the service's SLA watch, so a breach is recorded
    /// (and counted in the reports) once, when it is first seen.
    pub fn check_sla(&mut self, now: Millis) -> bool {
        let mut breached = false;
        if let (Some(due), false) = (self.sla.first_response_due_ms, self.sla.first_response_breached) {
            let late = self.first_response_ms.map_or(now > due, |at| at > due);
            if late {
                self.sla.first_response_breached = true;
                self.record("system", now.max(due), TicketChange::Breach { clock: SlaClock::FirstResponse, due_ms: due });
                breached = true;
            }
        }
        // Stopped while the ticket waits on the customer.
        let waiting = self.sla.pending_since_ms.is_some();
        if let (Some(due), false, false) = (self.sla.resolution_due_ms, self.sla.resolution_breached, waiting) {
            let late = match (self.status.is_done(), self.resolved_ms) {
                (true, Some(at)) => at > due,
                _ => now > due,
            };
            if late {
                self.sla.resolution_breached = true;
                self.record("system", now.max(due), TicketChange::Breach { clock: SlaClock::Resolution, due_ms: due });
                breached = true;
            }
        }
        breached
    }

    /// When an SLA clock of this ticket next runs out, if one still runs.
    pub fn next_due(&self) -> Option<Millis> {
        let first = (!self.sla.first_response_breached && self.first_response_ms.is_none()).then_some(self.sla.first_response_due_ms).flatten();
        let resolution =
            (!self.sla.resolution_breached && !self.status.is_done() && self.sla.pending_since_ms.is_none()).then_some(self.sla.resolution_due_ms).flatten();
        first.into_iter().chain(resolution).min()
    }
}

/// One SLA policy: the tickets it covers and their budgets, in business minutes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Tickets of this priority; unset: any.
    #[serde(default)]
    pub priority: Option<TicketPriority>,
    /// Tickets of this category; unset: any.
    #[serde(default)]
    pub category: Option<String>,
    /// Business minutes to the first reply; 0: no limit.
    pub first_response_minutes: u64,
    /// Business minutes to resolving; 0: no limit.
    pub resolution_minutes: u64,
}

impl SlaPolicy {
    fn covers(&self, t: &Ticket) -> bool {
        self.priority.is_none_or(|p| p == t.priority) && self.category.as_ref().is_none_or(|c| *c == t.category)
    }
}

/// The SLA policies in force, with the SLA clock's speed.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicies {
    /// The first policy covering a ticket applies to it.
    pub policies: Vec<SlaPolicy>,
    /// Business seconds of SLA time per real second: budgets are divided by it. 1 except
    /// when testing SLA on a fast clock (see `sla_clock_speed` in the config).
    pub speed: f64,
}

impl Default for SlaPolicies {
    fn default() -> SlaPolicies {
        SlaPolicies { policies: SlaPolicies::defaults(), speed: 1.0 }
    }
}

impl SlaPolicies {
    /// Complaints first (answered within the hour, settled within three business days),
    /// then by priority.
    pub fn defaults() -> Vec<SlaPolicy> {
        let p = |priority: Option<TicketPriority>, category: Option<&str>, first: u64, resolution: u64| SlaPolicy {
            priority,
            category: category.map(String::from),
            first_response_minutes: first,
            resolution_minutes: resolution,
        };
        vec![
            p(Some(TicketPriority::Urgent), None, 30, 4 * 60),
            p(None, Some(COMPLAINT), 60, 3 * 9 * 60),
            p(Some(TicketPriority::High), None, 60, 9 * 60),
            p(Some(TicketPriority::Normal), None, 4 * 60, 2 * 9 * 60),
            p(Some(TicketPriority::Low), None, 9 * 60, 5 * 9 * 60),
        ]
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.speed.is_finite() && self.speed >= 1.0 && self.speed <= 1_000_000.0) {
            return Err(format!("sla_clock_speed must be between 1 and 1000000, not {}", self.speed));
        }
        for (i, p) in self.policies.iter().enumerate() {
            if p.category.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(format!("sla policy {}: an empty category; leave it out to cover every category", i + 1));
            }
            let a_year = 366 * 24 * 60;
            if p.first_response_minutes > a_year || p.resolution_minutes > a_year {
                return Err(format!("sla policy {}: a budget over a year ({a_year} minutes)", i + 1));
            }
        }
        Ok(())
    }

    /// The due times of `t` under the first policy covering it (none covering: no limits).
    pub fn due(&self, t: &Ticket, hours: &BusinessHours) -> Sla {
        let Some(p) = self.policies.iter().find(|p| p.covers(t)) else { return Sla::default() };
        let due = |minutes: u64, paused: Millis| {
            (minutes > 0).then(|| hours.add_business(t.created_ms, ((minutes * 60_000) as f64 / self.speed) as u64 + paused)).flatten()
        };
        Sla { first_response_due_ms: due(p.first_response_minutes, 0), resolution_due_ms: due(p.resolution_minutes, t.sla.paused_ms), ..t.sla.clone() }
    }
}

/// A ticket in a list: everything but its transcript and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSummary {
    pub id: u64,
    pub conversation: String,
    pub contact: String,
    pub message: String,
    pub visitor_name: Option<String>,
    pub channel: String,
    pub source: TicketSource,
    pub status: TicketStatus,
    pub category: String,
    pub tags: Vec<String>,
    pub priority: TicketPriority,
    pub assignee: Option<String>,
    pub complaint: bool,
    pub complaint_steps: Vec<ComplaintStep>,
    pub sla: Sla,
    pub breached: bool,
    pub created_ms: Millis,
    pub updated_ms: Millis,
}

impl From<&Ticket> for TicketSummary {
    fn from(t: &Ticket) -> TicketSummary {
        TicketSummary {
            id: t.id,
            conversation: t.conversation.clone(),
            contact: t.contact.clone(),
            message: t.message.clone(),
            visitor_name: t.visitor.name.clone(),
            channel: t.visitor.channel.clone(),
            source: t.source,
            status: t.status,
            category: t.category.clone(),
            tags: t.tags.clone(),
            priority: t.priority,
            assignee: t.assignee.clone(),
            complaint: t.complaint,
            complaint_steps: t.complaint_steps.clone(),
            sla: t.sla.clone(),
            breached: t.sla.breaches() > 0,
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    // 2026-11-23 is a Monday; 01:30 UTC is 09:30 in China.
    const MONDAY_0930_CHINA: Millis = 1_795_397_400_000;

    fn office() -> BusinessHours {
        BusinessHours { days: vec![1, 2, 3, 4, 5], open: "09:00".into(), close: "18:00".into(), ..Default::default() }
    }

    fn ticket(category: &str, at: Millis) -> Ticket {
        let mut t = Ticket { id: 7, category: category.into(), created_ms: at, ..Default::default() };
        t.open("visitor", &SlaPolicies::default(), &office());
        t
    }

    #[test]
    fn the_lifecycle_allows_only_its_moves() {
        let mut t = ticket(LEFT_MESSAGE, MONDAY_0930_CHINA);
        let e = t.set_status("a1", 1, TicketStatus::Closed, &office()).unwrap_err();
        assert_eq!(e.to_string(), "ticket 7 is new and cannot become closed; from new it can become open, pending_customer, resolved");
        t.set_status("a1", 2, TicketStatus::Open, &office()).unwrap();
        t.set_status("a1", 3, TicketStatus::PendingCustomer, &office()).unwrap();
        t.set_status("a1", 4, TicketStatus::Resolved, &office()).unwrap();
        t.set_status("a1", 5, TicketStatus::Open, &office()).unwrap();
        t.set_status("a1", 6, TicketStatus::Resolved, &office()).unwrap();
        t.set_status("a1", 7, TicketStatus::Closed, &office()).unwrap();
        assert!(matches!(t.set_status("a1", 8, TicketStatus::Open, &office()), Err(TicketError::Transition { .. })));
        assert_eq!(t.note("a1", 9, "x".into()), Err(TicketError::Closed(7)));
        let moves: Vec<_> = t.history.iter().filter_map(|e| match &e.what { TicketChange::Status { to, .. } => Some(*to), _ => None }).collect();
        assert_eq!(moves.len(), 6);
        assert_eq!(t.resolved_ms, Some(6));
    }

    /// Waiting on the customer stops the resolution clock (business time), not the first
    /// response's; the due time moves by the time it was stopped.
    #[test]
    fn waiting_on_the_customer_stops_the_resolution_clock() {
        let policies = SlaPolicies::default();
        let mut t = ticket(LEFT_MESSAGE, MONDAY_0930_CHINA);
        let due = t.sla.resolution_due_ms.expect("the default policy sets a resolution time");
        t.reply("a1", MONDAY_0930_CHINA + HOUR, ReplyVia::Phone, "请提供照片".into(), None).unwrap();
        // Pending from Monday 10:30 until Tuesday 10:30: 7.5 h on Monday, 1.5 h on Tuesday.
        t.set_status("a1", MONDAY_0930_CHINA + HOUR, TicketStatus::PendingCustomer, &office()).unwrap();
        assert_eq!(t.next_due(), None, "no clock runs while the customer is awaited");
        assert!(!t.check_sla(due + 1), "not breached while stopped, even past the old due time");
        let back = MONDAY_0930_CHINA + 25 * HOUR;
        t.set_status("a1", back, TicketStatus::Open, &office()).unwrap();
        assert_eq!(t.sla.paused_ms, 9 * HOUR);
        let moved = office().add_business(due, 9 * HOUR).unwrap();
        assert_eq!(t.sla.resolution_due_ms, Some(moved));
        assert_eq!(t.next_due(), Some(moved));
        // A new priority recomputes from creation and keeps the pause.
        t.set_priority("a1", back, TicketPriority::High, &policies, &office()).unwrap();
        let high = policies.due(&Ticket { sla: Sla::default(), ..t.clone() }, &office()).resolution_due_ms.unwrap();
        assert_eq!(t.sla.resolution_due_ms, office().add_business(high, 9 * HOUR));
        let due = t.sla.resolution_due_ms.unwrap();
        assert!(!t.check_sla(due), "not late at the due time itself");
        assert!(t.check_sla(due + 1));
        assert!(t.sla.resolution_breached);
    }

    #[test]
    fn a_complaint_is_resolved_only_after_feedback() {
        let mut t = ticket(COMPLAINT, MONDAY_0930_CHINA);
        assert!(t.complaint);
        assert_eq!(t.set_status("a1", 1, TicketStatus::Resolved, &office()), Err(TicketError::ComplaintOpen(7)));
        let e = t.complaint_step("a1", 2, ComplaintStep::Negotiate).unwrap_err();
        assert_eq!(e.to_string(), "ticket 7's next complaint step is accept (受理), not negotiate");
        for (i, step) in ComplaintStep::ALL.into_iter().enumerate() {
            t.complaint_step(&format!("a{i}"), 10 + i as u64, step).unwrap();
        }
        assert_eq!(t.status, TicketStatus::Open, "the first step opened it");
        assert!(t.complaint_step("a1", 20, ComplaintStep::Feedback).is_err(), "each step once");
        t.set_status("a1", 21, TicketStatus::Resolved, &office()).unwrap();
        let steps: Vec<_> = t.history.iter().filter_map(|e| match &e.what { TicketChange::Complaint { step } => Some((e.by.as_str(), e.at_ms, *step)), _ => None }).collect();
        assert_eq!(steps[0], ("a0", 10, ComplaintStep::Accept));
        assert_eq!(steps[3], ("a3", 13, ComplaintStep::Feedback));
        let mut plain = ticket(LEFT_MESSAGE, MONDAY_0930_CHINA);
        assert_eq!(plain.complaint_step("a1", 1, ComplaintStep::Accept), Err(TicketError::NotComplaint(7)));
        assert_eq!(ComplaintStep::parse("调查"), Some(ComplaintStep::Investigate));
    }

    #[test]
    fn sla_due_in_business_hours_and_breaches_once() {
        // Friday 17:00: a normal ticket's 4 business hours run to Monday 12:00.
        let friday_1700 = MONDAY_0930_CHINA + 4 * 24 * HOUR + 7 * HOUR + HOUR / 2;
        let mut t = ticket(LEFT_MESSAGE, friday_1700);
        let monday_1200 = MONDAY_0930_CHINA + 7 * 24 * HOUR + 2 * HOUR + HOUR / 2;
        assert_eq!(t.sla.first_response_due_ms, Some(monday_1200));
        assert_eq!(t.next_due(), Some(monday_1200));
        assert!(!t.check_sla(monday_1200), "not late at the due time itself");
        assert!(t.check_sla(monday_1200 + 1));
        assert!(!t.check_sla(monday_1200 + 2), "recorded once");
        assert!(t.sla.first_response_breached && !t.sla.resolution_breached);
        // A reply in time stops the clock: no breach later.
        let mut on_time = ticket(LEFT_MESSAGE, friday_1700);
        on_time.reply("a1", monday_1200 - 1, ReplyVia::Phone, "已回电".into(), None).unwrap();
        assert!(!on_time.check_sla(monday_1200 + HOUR));
        assert_eq!(on_time.status, TicketStatus::Open);
        // Urgent: 30 minutes; raising the priority moves the due time.
        t.set_priority("a1", 1, TicketPriority::Urgent, &SlaPolicies::default(), &office()).unwrap();
        assert_eq!(t.sla.first_response_due_ms, Some(friday_1700 + HOUR / 2));
        assert!(t.sla.first_response_breached, "a recorded breach stays");
    }

    #[test]
    fn a_fast_clock_divides_the_budgets() {
        let fast = SlaPolicies { speed: 3600.0, ..Default::default() };
        let mut t = Ticket { created_ms: MONDAY_0930_CHINA, ..Default::default() };
        t.open("visitor", &fast, &BusinessHours::default());
        // 4 business hours at 3600× are 4 seconds.
        assert_eq!(t.sla.first_response_due_ms, Some(MONDAY_0930_CHINA + 4_000));
        assert!(SlaPolicies { speed: 0.5, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn old_tickets_read_as_new_left_messages() {
        let old = r#"{"id":3,"conversation":"c","contact":"138","message":"请回电","reason":"requested","visitor":{"channel":"web","user_id":null,"verified":false,"name":null,"page":null},"transcript":[],"created_ms":5}"#;
        let t: Ticket = serde_json::from_str(old).unwrap();
        assert_eq!((t.status, t.priority, t.category.as_str(), t.version), (TicketStatus::New, TicketPriority::Normal, LEFT_MESSAGE, 0));
    }
}
