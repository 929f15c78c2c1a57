//! Human handoff: the handoff record an agent works from, agents, the priority queue,
//! automatic assignment, business hours, tickets (工单) with their SLA, ratings and canned
//! replies.
//!
//! Everything here is plain data and pure decisions; the service stores and applies them.

mod canned;
mod hours;
mod ticket;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dialogue::{Message, Millis, Visitor};
pub use canned::{canned_path, load_canned, Canned, CannedError, CANNED_FILE};
pub use hours::{BusinessHours, HoursError};
pub use ticket::{
    ComplaintStep, ReplyVia, Sla, SlaClock, SlaPolicies, SlaPolicy, Ticket, TicketChange, TicketError, TicketEvent, TicketPriority, TicketSource,
    TicketStatus, TicketSummary, COMPLAINT, LEFT_MESSAGE,
};

/// How handoffs reach agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Agents claim conversations from the queue.
    #[default]
    Claim,
    /// The least-loaded online agent with the skill gets it at once.
    Auto,
}

/// How urgent a handoff is. Higher goes first in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    High,
}

/// Where a handoff stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffStatus {
    Queued,
    Assigned,
    Resolved,
    /// An agent gave the conversation back to the bot.
    Returned,
}

/// Why a conversation reached a human. Stored and sent as a plain string (`"requested"`,
/// `"repeated_misses"`…); an intent file may name a reason of its own, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Reason {
    /// The visitor asked for a human.
    Requested,
    Complaint,
    /// The bot could not answer several questions in a row.
    RepeatedMisses,
    /// The best answer was not confident enough to give, on a policy that hands off then.
    LowConfidence,
    /// A collecting intent ran out of re-asks for a slot.
    SlotFailed,
    /// An intent's own reason.
    Other(String),
}

impl Reason {
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Requested => "requested",
            Reason::Complaint => "complaint",
            Reason::RepeatedMisses => "repeated_misses",
            Reason::LowConfidence => "low_confidence",
            Reason::SlotFailed => "slot_failed",
            Reason::Other(s) => s,
        }
    }
}

impl From<String> for Reason {
    fn from(s: String) -> Reason {
        match s.as_str() {
            "requested" => Reason::Requested,
            "complaint" => Reason::Complaint,
            "repeated_misses" => Reason::RepeatedMisses,
            "low_confidence" => Reason::LowConfidence,
            "slot_failed" => Reason::SlotFailed,
            _ => Reason::Other(s),
        }
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Reason {
        Reason::from(s.to_string())
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.as_str().to_string()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests compare with the wire name: `handoff.reason == "requested"`.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A candidate article the bot considered, with its confidence, for the agent's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    pub article: String,
    pub title: String,
    pub confidence: f32,
}

/// Everything an agent needs to take over without re-asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub id: u64,
    pub conversation: String,
    /// Machine-readable reason.
    pub reason: Reason,
    /// The reason in words, for the agent.
    pub detail: String,
    pub priority: Priority,
    pub skill: String,
    pub intent: Option<String>,
    pub slots: BTreeMap<String, String>,
    pub candidates: Vec<CandidateView>,
    pub visitor: Visitor,
    /// The conversation up to the handoff (agents also read it live).
    pub transcript: Vec<Message>,
    pub created_ms: Millis,
    pub status: HandoffStatus,
    pub agent: Option<String>,
    pub assigned_ms: Option<Millis>,
    pub closed_ms: Option<Millis>,
}

/// Online or away; only online agents are offered conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    #[default]
    Away,
}

/// What a person may do, each role including the ones below it: an agent works
/// conversations; a supervisor also watches every live conversation, takes one over and
/// reviews resolved ones (质检); an admin also manages people and uses the admin pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human agent's account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The login name, unique.
    pub id: String,
    pub name: String,
    /// Skill groups; "*" takes every skill.
    pub skills: Vec<String>,
    pub max_concurrent: u32,
    pub status: AgentStatus,
    /// PBKDF2-SHA256 of the password (see `crate::auth`).
    pub password_hash: String,
    /// Accounts stored before roles existed are agents.
    #[serde(default)]
    pub role: Role,
}

impl Agent {
    /// Whether the account has `role` or one above it.
    pub fn can(&self, role: Role) -> bool {
        self.role >= role
    }

    pub fn has_skill(&self, skill: &str) -> bool {
        self.skills.iter().any(|s| s == "*" || s == skill)
    }
}

/// An agent with the number of conversations they hold now.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub agent: &'a Agent,
    pub active: u32,
}

/// Whether anybody could take a handoff needing `skill` (online with the skill; being busy
/// only means waiting in the queue).
pub fn anyone_online(agents: &[Load<'_>], skill: &str) -> bool {
    agents.iter().any(|l| l.agent.status == AgentStatus::Online && l.agent.has_skill(skill))
}

/// The least-loaded online agent with the skill and room for one more conversation; ties go
/// to the lower id so the choice is deterministic.
pub fn pick_agent<'a>(agents: &[Load<'a>], skill: &str) -> Option<&'a Agent> {
    agents
        .iter()
        .filter(|l| l.agent.status == AgentStatus::Online && l.agent.has_skill(skill))
        .filter(|l| l.active < l.agent.max_concurrent)
        .min_by(|a, b| {
            let ra = a.active as f64 / a.agent.max_concurrent.max(1) as f64;
            let rb = b.active as f64 / b.agent.max_concurrent.max(1) as f64;
            ra.total_cmp(&rb).then_with(|| a.agent.id.cmp(&b.agent.id))
        })
        .map(|l| l.agent)
}

/// A visitor's 1–5 rating of a resolved conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub conversation: String,
    pub handoff: Option<u64>,
    pub agent: Option<String>,
    pub score: u8,
    pub comment: Option<String>,
    pub at_ms: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, skills: &[&str], max: u32, status: AgentStatus) -> Agent {
        Agent {
            id: id.into(),
            name: id.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            max_concurrent: max,
            status,
            password_hash: String::new(),
            role: Role::Agent,
        }
    }

    #[test]
    fn picks_the_least_loaded_online_agent_with_the_skill() {
        let a = agent("a", &["general"], 3, AgentStatus::Online);
        let b = agent("b", &["general", "complaints"], 3, AgentStatus::Online);
        let c = agent("c", &["*"], 3, AgentStatus::Away);
        let loads = [Load { agent: &a, active: 1 }, Load { agent: &b, active: 2 }, Load { agent: &c, active: 0 }];
        assert_eq!(pick_agent(&loads, "general").unwrap().id, "a");
        assert_eq!(pick_agent(&loads, "complaints").unwrap().id, "b");
        assert!(pick_agent(&loads, "billing").is_none(), "the only wildcard agent is away");
        let full = [Load { agent: &a, active: 3 }];
        assert!(pick_agent(&full, "general").is_none());
        assert!(anyone_online(&full, "general"), "busy agents still count: the visitor waits");
    }

    #[test]
    fn accounts_stored_before_roles_are_agents_and_roles_rank() {
        let old = r#"{"id":"a","name":"A","skills":["general"],"max_concurrent":2,"status":"away","password_hash":"x"}"#;
        let a: Agent = serde_json::from_str(old).unwrap();
        assert_eq!(a.role, Role::Agent);
        assert!(a.can(Role::Agent) && !a.can(Role::Supervisor));
        let admin = Agent { role: Role::Admin, ..a };
        assert!(admin.can(Role::Supervisor) && admin.can(Role::Admin));
        assert_eq!(serde_json::to_value(Role::Supervisor).unwrap(), "supervisor");
    }

    #[test]
    fn reasons_keep_their_wire_names() {
        for name in ["requested", "complaint", "repeated_misses", "low_confidence", "slot_failed", "delivery_lost"] {
            let r: Reason = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::json!(name));
            assert_eq!(r.as_str(), name);
        }
        assert_eq!(Reason::from("delivery_lost"), Reason::Other("delivery_lost".into()));
        assert_eq!(Reason::from("slot_failed"), Reason::SlotFailed);
    }
}
