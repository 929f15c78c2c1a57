//! Presence that tells the truth: which agents have a console open on this node, when they
//! last did something, sending away agents whose consoles closed (after a grace period) or
//! who went idle, reconsidering the queue when nobody is left, offering leave-a-message to
//! visitors who waited too long, and the queue's estimated wait.
//!
//! What it must not know: HTTP or WebSockets (the socket handler holds a [`ConsoleGuard`]).
//! Consoles are counted by the node that holds them; each node's sweep writes what it saw of
//! each online agent (last attended, last active) to a store record of its own, and every
//! node decides on the newest of them, so a console on another node keeps the agent here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::dialogue::policy;

/// `[presence]`: when agents go away and when queued visitors are offered leave-a-message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// An online agent whose last console connection closed goes away after this long (a
    /// reload or a network blip reconnects well within it).
    pub away_grace_secs: u64,
    /// An online agent with no activity (input in the console, any action) for this long goes
    /// away (0: never).
    pub idle_secs: u64,
    /// A visitor queued this long is offered leave-a-message and leaves the queue (0: never).
    pub queue_timeout_secs: u64,
    /// The wait per visitor ahead assumed until enough visitors have been taken from the
    /// queue to measure it.
    pub wait_per_visitor_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig { away_grace_secs: 60, idle_secs: 900, queue_timeout_secs: 600, wait_per_visitor_secs: 120 }
    }
}

impl PresenceConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.away_grace_secs == 0 {
            return Err("presence.away_grace_secs must be above 0 (a reload would otherwise send the agent away)".into());
        }
        if self.wait_per_visitor_secs == 0 {
            return Err("presence.wait_per_visitor_secs must be above 0".into());
        }
        Ok(())
    }

    /// How often the sweep looks: a quarter of the shortest period, within 100 ms and 5 s.
    fn sweep_every(&self) -> Duration {
        let shortest = [self.away_grace_secs, self.idle_secs, self.queue_timeout_secs].into_iter().filter(|s| *s > 0).min().unwrap_or(60);
        Duration::from_millis((shortest * 1000 / 4).clamp(100, 5_000))
    }
}

/// Why an agent was sent away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwayReason {
    /// The last console closed and did not come back within the grace period.
    Disconnected,
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    consoles: u32,
    /// When the agent last had no console (the last close, going online, or this node's start).
    unattended_since: Millis,
    last_active: Millis,
}

/// The store's record space for the nodes' sightings of agents.
const PRESENCE: &str = "presence";

/// How many recent departures from the queue the wait estimate looks at.
const RECENT_TAKES: usize = 20;
/// Departures older than this say nothing about the queue now.
const TAKES_WINDOW_MS: Millis = 3_600_000;

/// This node's view of agents' consoles and activity, and the queue's recent throughput.
#[derive(Debug)]
pub struct Presence {
    /// This node's name in the shared presence records.
    node: String,
    started_ms: Millis,
    seen: Mutex<HashMap<String, Seen>>,
    /// When visitors were taken from the queue (claims and automatic assignments), oldest first.
    takes: Mutex<VecDeque<Millis>>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence { node: crate::auth::new_id(), started_ms: now_ms(), seen: Mutex::new(HashMap::new()), takes: Mutex::new(VecDeque::new()) }
    }
}

/// One node's view of an agent, shared through the store (`presence` records, keyed
/// `agent/node`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
struct Sighting {
    attended_ms: Millis,
    active_ms: Millis,
}

/// Held while one console connection is open; dropping it counts the connection closed.
pub struct ConsoleGuard {
    presence: Arc<Presence>,
    agent: String,
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        let now = now_ms();
        let mut seen = self.presence.seen.lock().expect("presence lock poisoned");
        if let Some(s) = seen.get_mut(&self.agent) {
            s.consoles = s.consoles.saturating_sub(1);
            if s.consoles == 0 {
                s.unattended_since = now;
            }
        }
    }
}

impl Presence {
    fn entry<'a>(&self, seen: &'a mut HashMap<String, Seen>, agent: &str) -> &'a mut Seen {
        let started = self.started_ms;
        seen.entry(agent.to_string()).or_insert(Seen { consoles: 0, unattended_since: started, last_active: started })
    }

    pub fn opened(self: &Arc<Self>, agent: &str) -> ConsoleGuard {
        let mut seen = self.seen.lock().expect("presence lock poisoned");
        let s = self.entry(&mut seen, agent);
        s.consoles += 1;
        s.last_active = now_ms();
        ConsoleGuard { presence: self.clone(), agent: agent.to_string() }
    }

    /// The agent did something (typed, clicked, claimed, sent).
    pub fn touch(&self, agent: &str) {
        let mut seen = self.seen.lock().expect("presence lock poisoned");
        self.entry(&mut seen, agent).last_active = now_ms();
    }

    /// The agent went online: the grace and idle periods start now.
    fn went_online(&self, agent: &str) {
        let now = now_ms();
        let mut seen = self.seen.lock().expect("presence lock poisoned");
        let s = self.entry(&mut seen, agent);
        s.last_active = now;
        if s.consoles == 0 {
            s.unattended_since = now;
        }
    }

    /// What this node saw of `agent` by `now`: attended until (now, while a console is open)
    /// and last active.
    fn sighting(&self, agent: &str, now: Millis) -> Sighting {
        let mut seen = self.seen.lock().expect("presence lock poisoned");
        let s = *self.entry(&mut seen, agent);
        Sighting { attended_ms: if s.consoles > 0 { now } else { s.unattended_since }, active_ms: s.last_active }
    }

    /// Whether an online agent should go away now, and why, from the newest sighting of any node.
    fn away_now(seen: Sighting, now: Millis, config: &PresenceConfig) -> Option<AwayReason> {
        if now.saturating_sub(seen.attended_ms) >= config.away_grace_secs * 1000 {
            return Some(AwayReason::Disconnected);
        }
        if config.idle_secs > 0 && now.saturating_sub(seen.active_ms) >= config.idle_secs * 1000 {
            return Some(AwayReason::Idle);
        }
        None
    }

    fn taken(&self, at: Millis) {
        let mut takes = self.takes.lock().expect("presence lock poisoned");
        takes.push_back(at);
        while takes.len() > RECENT_TAKES {
            takes.pop_front();
        }
    }

    /// The estimated wait of the visitor at `position`: `position` times the mean interval
    /// between the recent departures from the queue (the last 20 within the hour), or times
    /// `wait_per_visitor_secs` while fewer than two are known. Throughput already reflects how
    /// many agents are serving and how long they take.
    pub fn estimate(&self, position: usize, now: Millis, config: &PresenceConfig) -> u64 {
        let takes = self.takes.lock().expect("presence lock poisoned");
        let recent: Vec<Millis> = takes.iter().copied().filter(|t| now.saturating_sub(*t) <= TAKES_WINDOW_MS).collect();
        let per_visitor = match (recent.first(), recent.last()) {
            (Some(first), Some(last)) if recent.len() >= 2 && last > first => (last - first) / (recent.len() as u64 - 1),
            _ => config.wait_per_visitor_secs * 1000,
        };
        per_visitor * position as u64
    }
}

impl Service {
    /// Counts a console connection of `agent` open until the guard drops.
    pub fn console_opened(&self, agent: &str) -> ConsoleGuard {
        self.presence.opened(agent)
    }

    /// Activity in the console (input), which keeps an agent from going idle.
    pub fn agent_active(&self, agent: &str) {
        self.presence.touch(agent);
    }

    pub(super) fn presence_online(&self, agent: &str) {
        self.presence.went_online(agent);
    }

    pub(super) fn presence_taken(&self) {
        self.presence.taken(now_ms());
    }

    pub(super) fn estimated_wait(&self, position: Option<usize>) -> Option<u64> {
        position.map(|p| self.presence.estimate(p, now_ms(), &self.config.presence))
    }

    /// Runs [`Service::sweep_presence`] until aborted.
    pub async fn presence_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.presence.sweep_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.sweep_presence().await {
                tracing::warn!(error = %e, "presence sweep failed; retrying at the next tick");
            }
        }
    }

    /// One look: sends away agents whose consoles closed past the grace period or who went
    /// idle, then reconsiders the queue.
    pub async fn sweep_presence(&self) -> Result<()> {
        let now = now_ms();
        for agent in self.store.agents().await? {
            if agent.status != AgentStatus::Online {
                continue;
            }
            let mine = self.presence.sighting(&agent.id, now);
            let bytes = serde_json::to_vec(&mine).expect("sightings serialise");
            self.store.set_record(PRESENCE, &format!("{}/{}", agent.id, self.presence.node), Some(bytes)).await?;
            // The newest of every node's sightings (a node that stopped writing ages out).
            let mut newest = mine;
            for (_, v) in self.store.records(PRESENCE, &format!("{}/", agent.id)).await? {
                if let Ok(other) = serde_json::from_slice::<Sighting>(&v) {
                    newest.attended_ms = newest.attended_ms.max(other.attended_ms);
                    newest.active_ms = newest.active_ms.max(other.active_ms);
                }
            }
            if let Some(why) = Presence::away_now(newest, now, &self.config.presence) {
                tracing::info!(agent = %agent.id, reason = ?why, "agent is away");
                self.set_status(&agent, AgentStatus::Away).await?;
            }
        }
        self.reconsider_queue(now).await
    }

    /// Offers leave-a-message to queued visitors nobody online can take any more, and to
    /// those queued longer than `queue_timeout_secs`.
    async fn reconsider_queue(&self, now: Millis) -> Result<()> {
        let queue = self.store.queue().await?;
        if queue.is_empty() {
            return Ok(());
        }
        let agents = self.store.agents().await?;
        let loads: Vec<Load<'_>> = agents.iter().map(|a| Load { agent: a, active: 0 }).collect();
        let timeout = self.config.presence.queue_timeout_secs * 1000;
        for h in queue {
            let text = if !handoff::anyone_online(&loads, &h.skill) {
                &self.config.dialogue.no_agents_text
            } else if timeout > 0 && now.saturating_sub(h.created_ms) >= timeout {
                &self.config.dialogue.queue_timeout_text
            } else {
                continue;
            };
            self.offer_message(&h, text).await?;
        }
        Ok(())
    }

    /// Takes a queued visitor out of the queue and into the leave-a-message flow.
    async fn offer_message(&self, queued: &Handoff, text: &str) -> Result<()> {
        let _g = self.assigning.lock().await;
        let turn = self.lock(&queued.conversation).await?;
        let mut conv = self.load_conversation(&queued.conversation).await?;
        let Some(mut h) = self.handoff_of(&conv).await? else { return Ok(()) };
        // Claimed or left meanwhile: nothing to offer.
        if h.id != queued.id || h.status != HandoffStatus::Queued || conv.state != State::Queued {
            return Ok(());
        }
        let now = now_ms();
        h.status = HandoffStatus::Returned;
        h.closed_ms = Some(now);
        let (state, context) = policy::offer_message(&conv.context, h.reason.clone());
        conv.state = state;
        conv.context = context;
        let change = Change {
            conversation: Some(conv.clone()),
            messages: vec![NewMessage::bot(text, crate::dialogue::BotMeta { kind: "ticket".into(), ..Default::default() })],
            handoffs: vec![h.clone()],
            at_ms: now,
            ..Default::default()
        };
        let stored = self.commit(change).await?;
        drop(turn);
        drop(_g);
        self.publish_visitor_messages(&conv, &stored, None).await?;
        self.hub.to_visitor(&conv.id, &self.state_event(&conv).await?);
        self.hub.to_agents(&AgentEvent::Changed { handoff: h.id, conversation: conv.id.clone(), status: h.status.clone(), agent: None });
        self.notify_queue(&h).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    #[test]
    fn the_estimate_follows_the_queue_s_recent_pace() {
        let config = PresenceConfig::default();
        let p = Presence::default();
        let now = 10_000_000;
        assert_eq!(p.estimate(3, now, &config), 3 * 120_000, "no departures yet: the configured pace");
        p.taken(now - 240_000);
        assert_eq!(p.estimate(1, now, &config), 120_000, "one departure is no pace yet");
        p.taken(now - 120_000);
        p.taken(now);
        assert_eq!(p.estimate(2, now, &config), 240_000, "one visitor every two minutes");
        assert_eq!(p.estimate(2, now + TAKES_WINDOW_MS + 240_001, &config), 240_000, "an hour later only the last is recent");
    }

    #[tokio::test]
    async fn a_closed_console_sends_the_agent_away_after_the_grace_and_the_queue_is_offered_a_message() {
        let f = testing::service(|c| c.presence.away_grace_secs = 1).await;
        let agent = f.agent("a1", true).await;
        let console = f.service.console_opened("a1");
        let (id, token) = f.visitor().await;
        let x = f.service.request_human(&id, &token, None).await.unwrap();
        assert_eq!(x.state, "queued");
        drop(console);
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Online, "within the grace");
        // The grace is measured from the close; wind its start back instead of sleeping.
        f.service.presence.seen.lock().unwrap().get_mut("a1").unwrap().unattended_since -= 1_000;
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent(&agent.id).await.unwrap().unwrap().status, AgentStatus::Away);
        let conv = f.service.authorize_visitor(&id, &token).await.unwrap();
        assert_eq!(conv.state, State::LeavingMessage { asked_contact: false });
        assert!(f.service.queue().await.unwrap().is_empty());
        let said = f.service.visitor_view(&conv, 0).await.unwrap().messages;
        assert_eq!(said.last().unwrap().text, f.service.config().dialogue.no_agents_text);
        let ticket = f.service.leave_ticket(&id, &token, "13800138000", "请回电，谢谢").await.unwrap();
        assert_eq!(ticket.reason, "requested");
    }

    #[tokio::test]
    async fn a_console_on_another_node_keeps_the_agent_online() {
        let f = testing::service(|c| c.presence.away_grace_secs = 1).await;
        f.agent("a1", true).await;
        f.service.presence.seen.lock().unwrap().entry("a1".into()).or_insert(Seen { consoles: 0, unattended_since: 0, last_active: now_ms() }).unattended_since = 0;
        // Another node's sweep wrote that it holds a1's console now.
        let other = Sighting { attended_ms: now_ms(), active_ms: now_ms() };
        f.service.store().set_record(PRESENCE, "a1/other-node", Some(serde_json::to_vec(&other).unwrap())).await.unwrap();
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Online);
        // That node stopped writing (closed, or the node is gone): the grace runs from its last word.
        let old = Sighting { attended_ms: now_ms() - 1_000, active_ms: now_ms() };
        f.service.store().set_record(PRESENCE, "a1/other-node", Some(serde_json::to_vec(&old).unwrap())).await.unwrap();
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Away);
    }

    #[tokio::test]
    async fn a_long_wait_is_offered_a_message_while_agents_stay() {
        let f = testing::service(|c| c.presence.queue_timeout_secs = 30).await;
        f.agent("a1", true).await;
        let _console = f.service.console_opened("a1");
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.queue().await.unwrap().len(), 1, "not waited long yet");
        f.service.reconsider_queue(now_ms() + 30_000).await.unwrap();
        let conv = f.service.authorize_visitor(&id, &token).await.unwrap();
        assert_eq!(conv.state.name(), StateName::LeavingMessage);
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Online);
    }

    #[tokio::test]
    async fn idle_agents_go_away() {
        let f = testing::service(|c| c.presence.idle_secs = 60).await;
        f.agent("a1", true).await;
        let _console = f.service.console_opened("a1");
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Online);
        f.service.presence.seen.lock().unwrap().get_mut("a1").unwrap().last_active -= 60_000;
        f.service.sweep_presence().await.unwrap();
        assert_eq!(f.service.store().agent("a1").await.unwrap().unwrap().status, AgentStatus::Away);
    }
}
