//! The queue and assignment: claiming, automatic least-loaded assignment, transfers, and
//! telling queued visitors their position.

use super::*;

impl Service {
    /// Tells the queued visitors whose position moved because a handoff entered or left the
    /// queue at `changed`'s place: those behind it. The ones ahead keep their place.
    pub(super) async fn notify_queue(&self, changed: &Handoff) -> Result<()> {
        let ahead = self.store.queue_ahead(changed).await?;
        for (i, h) in self.store.queue_from(changed).await?.iter().enumerate() {
            self.hub.to_visitor(
                &h.conversation,
                &VisitorEvent::State {
                    state: StateName::Queued,
                    queue_position: Some(ahead + i + 1),
                    estimated_wait_ms: self.estimated_wait(Some(ahead + i + 1)),
                    agent: None,
                    rating_requested: false,
                },
            );
        }
        Ok(())
    }

    /// The queue, by priority then waiting time.
    pub async fn queue(&self) -> Result<Vec<QueueEntry>> {
        let now = now_ms();
        Ok(self
            .store
            .queue().await?
            .into_iter()
            .enumerate()
            .map(|(i, h)| QueueEntry { position: i + 1, waiting_ms: now.saturating_sub(h.created_ms), handoff: h })
            .collect())
    }

    /// Moves a conversation's handoff to `agent` (claim, auto-assignment or transfer).
    pub(super) async fn give_to(&self, conv_id: &str, agent: &Agent, expect: &[HandoffStatus], notice: String) -> Result<()> {
        self.hand_to(conv_id, agent, expect, vec![NewMessage::system(notice)], true).await.map(|_| ())
    }

    /// Moves a conversation's handoff in one of the `expect` states to `agent`, storing
    /// `messages` with it; `within_capacity`: only if the agent has room (a supervisor's
    /// takeover does not ask). Returns who held it before.
    pub(super) async fn hand_to(&self, conv_id: &str, agent: &Agent, expect: &[HandoffStatus], messages: Vec<NewMessage>, within_capacity: bool) -> Result<Option<String>> {
        let turn = self.lock(conv_id).await?;
        let mut conv = self.load_conversation(conv_id).await?;
        let mut h = self
            .handoff_of(&conv).await?
            .ok_or_else(|| ServiceError::refused(Code::NotHandedOff, format!("conversation {conv_id} has not been handed off")))?;
        if !expect.contains(&h.status) {
            return Err(ServiceError::refused(Code::NotWaiting, format!("the conversation is {:?}, not waiting for this", h.status).to_lowercase()));
        }
        if within_capacity && h.agent.as_deref() != Some(&agent.id) && self.active(&agent.id).await? >= agent.max_concurrent {
            return Err(ServiceError::refused(Code::AgentFull, format!("{} already holds the maximum of {} conversations", agent.id, agent.max_concurrent)));
        }
        let was_queued = h.status == HandoffStatus::Queued;
        let before = h.agent.clone().filter(|_| !was_queued);
        let now = now_ms();
        let from = h.agent.clone();
        h.status = HandoffStatus::Assigned;
        h.agent = Some(agent.id.clone());
        h.assigned_ms.get_or_insert(now);
        conv.state = State::WithAgent { agent: agent.id.clone() };
        let mut change = Change { conversation: Some(conv.clone()), messages, handoffs: vec![h.clone()], at_ms: now, ..Default::default() };
        self.assigned_event(&mut change, &h, agent, from.as_deref()).await?;
        let stored = self.commit(change).await?;
        drop(turn);
        if was_queued {
            self.presence_taken();
        }
        self.publish_visitor_messages(&conv, &stored, None).await?;
        self.hub.to_agents(&AgentEvent::Changed { handoff: h.id, conversation: conv.id.clone(), status: HandoffStatus::Assigned, agent: h.agent.clone() });
        self.notify_queue(&h).await?;
        Ok(before)
    }

    pub async fn claim(&self, agent: &Agent, conv_id: &str) -> Result<AgentView> {
        self.agent_active(&agent.id);
        let _g = self.assigning.lock().await;
        self.give_to(conv_id, agent, &[HandoffStatus::Queued], self.config.dialogue.agent_joined_text.replace("{agent}", &agent.name)).await?;
        self.agent_view(conv_id).await
    }

    /// Assigns queued handoffs to the least-loaded online agents (automatic assignment).
    pub async fn assign_waiting(&self) -> Result<()> {
        let _g = self.assigning.lock().await;
        for h in self.store.queue().await? {
            let agents = self.store.agents().await?;
            let actives = self.actives().await?;
            let loads: Vec<Load<'_>> =
                agents.iter().map(|a| Load { agent: a, active: actives.get(&a.id).copied().unwrap_or(0) }).collect();
            let Some(agent) = handoff::pick_agent(&loads, &h.skill).cloned() else { continue };
            let notice = self.config.dialogue.agent_joined_text.replace("{agent}", &agent.name);
            match self.give_to(&h.conversation, &agent, &[HandoffStatus::Queued], notice).await {
                Ok(()) => {}
                // Taken meanwhile, or the agent filled up: the next one.
                Err(e) if e.code().status() == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Hands the conversation to another agent (who must be online with room).
    pub async fn transfer(&self, agent: &Agent, conv_id: &str, to: &str) -> Result<()> {
        let _g = self.assigning.lock().await;
        let target = self.store.agent(to).await?.ok_or_else(|| ServiceError::refused(Code::AgentNotFound, format!("agent {to} not found")))?;
        if target.status != AgentStatus::Online {
            return Err(ServiceError::refused(Code::AgentOffline, format!("agent {to} is not online")));
        }
        let conv = self.load_conversation(conv_id).await?;
        if conv.state != (State::WithAgent { agent: agent.id.clone() }) {
            return Err(ServiceError::refused(Code::NotYourConversation, format!("conversation {conv_id} is not yours (claim it first)")));
        }
        self.give_to(conv_id, &target, &[HandoffStatus::Assigned], self.config.dialogue.transferred_text.replace("{agent}", &target.name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;
    use crate::handoff::Assignment;

    async fn queued(f: &testing::Fixture) -> String {
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_claim_assigns_and_the_agent_capacity_holds() {
        let f = testing::service(|_| {}).await;
        let agent = f.agent("a1", true).await;
        let (one, two, three) = (queued(&f).await, queued(&f).await, queued(&f).await);
        assert_eq!(f.service.queue().await.unwrap().len(), 3);
        let view = f.service.claim(&agent, &one).await.unwrap();
        assert_eq!(view.conversation.state, State::WithAgent { agent: "a1".into() });
        assert_eq!(view.messages.last().unwrap().text, "客服「a1」已接入，为您服务。");
        assert_eq!(code(f.service.claim(&agent, &one).await), Code::NotWaiting, "already taken");
        f.service.claim(&agent, &two).await.unwrap();
        let full = f.service.claim(&agent, &three).await.unwrap_err();
        assert_eq!(full.to_string(), "a1 already holds the maximum of 2 conversations");
        assert_eq!(f.service.queue().await.unwrap()[0].handoff.conversation, three);
    }

    #[tokio::test]
    async fn automatic_assignment_gives_the_queue_to_whoever_comes_online() {
        let f = testing::service(|c| c.assignment = Assignment::Auto).await;
        let agent = f.agent("a1", false).await;
        let waiting = queued(&f).await;
        assert_eq!(f.service.queue().await.unwrap().len(), 0, "nobody online: leave a message");
        f.service.set_status(&agent, AgentStatus::Online).await.unwrap();
        let waiting2 = queued(&f).await;
        assert_ne!(waiting, waiting2);
        assert!(f.service.queue().await.unwrap().is_empty());
        assert_eq!(f.service.mine(&agent).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_transfer_needs_an_online_target() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let a2 = f.agent("a2", false).await;
        let id = queued(&f).await;
        f.service.claim(&a1, &id).await.unwrap();
        assert_eq!(code(f.service.transfer(&a1, &id, "a2").await), Code::AgentOffline);
        assert_eq!(code(f.service.transfer(&a1, &id, "nobody").await), Code::AgentNotFound);
        f.service.set_status(&a2, AgentStatus::Online).await.unwrap();
        assert_eq!(code(f.service.transfer(&a2, &id, "a1").await), Code::NotYourConversation, "not a2's");
        f.service.transfer(&a1, &id, "a2").await.unwrap();
        assert_eq!(f.service.mine(&a2).await.unwrap().len(), 1);
        assert!(f.service.mine(&a1).await.unwrap().is_empty());
    }
}
