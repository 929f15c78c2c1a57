//! Supervision: a supervisor sees every live conversation (queued or with an agent; their
//! messages reach every console's WebSocket as they are written) and can take one over,
//! whoever holds it and whatever the supervisor's own load.

use serde::Serialize;

use super::*;

/// A queued or assigned conversation, as a supervisor's list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveConversation {
    pub conversation: String,
    pub handoff: u64,
    pub status: HandoffStatus,
    pub reason: Reason,
    pub priority: handoff::Priority,
    pub visitor: Visitor,
    pub agent: Option<String>,
    pub agent_name: Option<String>,
    pub created_ms: Millis,
    pub assigned_ms: Option<Millis>,
}

impl Service {
    /// Every live conversation: the queue in its order, then the assigned ones by agent.
    pub async fn live(&self, supervisor: &Agent) -> Result<Vec<LiveConversation>> {
        people::require(supervisor, Role::Supervisor)?;
        let names: HashMap<String, String> = self.store.agents().await?.into_iter().map(|a| (a.id, a.name)).collect();
        let mut handoffs = self.store.queue().await?;
        handoffs.extend(self.store.assigned(None).await?);
        Ok(handoffs
            .into_iter()
            .map(|h| LiveConversation {
                agent_name: h.agent.as_ref().and_then(|a| names.get(a).cloned()),
                conversation: h.conversation,
                handoff: h.id,
                status: h.status,
                reason: h.reason,
                priority: h.priority,
                visitor: h.visitor,
                agent: h.agent,
                created_ms: h.created_ms,
                assigned_ms: h.assigned_ms,
            })
            .collect())
    }

    /// A supervisor takes a queued or assigned conversation over: it moves to them, the
    /// visitor is told who serves them now, the transcript records it as an internal system
    /// note, and the agent who held it is told in their console.
    pub async fn take_over(&self, supervisor: &Agent, conv_id: &str) -> Result<AgentView> {
        people::require(supervisor, Role::Supervisor)?;
        self.agent_active(&supervisor.id);
        let _g = self.assigning.lock().await;
        let conv = self.load_conversation(conv_id).await?;
        if conv.state == (State::WithAgent { agent: supervisor.id.clone() }) {
            return Err(ServiceError::refused(Code::NotWaiting, format!("you already hold conversation {conv_id}")));
        }
        let from = match &conv.state {
            State::WithAgent { agent } => self.store.agent(agent).await?.map_or_else(|| agent.clone(), |a| format!("{}（{}）", a.name, a.id)),
            _ => "排队中".to_string(),
        };
        let note = NewMessage {
            internal: true,
            ..NewMessage::system(format!("主管 {}（{}）接管了会话，之前：{from}", supervisor.name, supervisor.id))
        };
        let joined = NewMessage::system(self.config.dialogue.agent_joined_text.replace("{agent}", &supervisor.name));
        let before = self.hand_to(conv_id, supervisor, &[HandoffStatus::Queued, HandoffStatus::Assigned], vec![note, joined], false).await?;
        drop(_g);
        if let Some(from) = before {
            self.hub.to_agents(&AgentEvent::TakenOver {
                conversation: conv_id.to_string(),
                from,
                by: supervisor.id.clone(),
                by_name: supervisor.name.clone(),
            });
        }
        self.agent_view(conv_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn a_supervisor_sees_every_live_conversation_and_takes_one_over() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        f.service.put_person("sup", "主管老周", "password-123", vec![], 1, Some(Role::Supervisor)).await.unwrap();
        let sup = f.service.store().agent("sup").await.unwrap().unwrap();
        let (held, token) = f.visitor().await;
        f.service.request_human(&held, &token, None).await.unwrap();
        f.service.claim(&a1, &held).await.unwrap();
        let (queued, token2) = f.visitor().await;
        f.service.request_human(&queued, &token2, None).await.unwrap();

        assert_eq!(code(f.service.live(&a1).await), Code::RoleRequired, "an agent does not supervise");
        let live = f.service.live(&sup).await.unwrap();
        let seen: Vec<_> = live.iter().map(|l| (l.conversation.as_str(), l.status.clone(), l.agent_name.clone())).collect();
        assert_eq!(seen, [(queued.as_str(), HandoffStatus::Queued, None), (held.as_str(), HandoffStatus::Assigned, Some("a1".to_string()))]);

        assert_eq!(code(f.service.take_over(&a1, &held).await), Code::RoleRequired);
        let mut events = f.service.hub().subscribe_agents();
        let view = f.service.take_over(&sup, &held).await.unwrap();
        assert_eq!(view.conversation.state, State::WithAgent { agent: "sup".into() });
        // The note is in the agents' transcript, not the visitor's; the visitor learns the name.
        let note = view.messages.iter().find(|m| m.internal && m.from == Sender::System).expect("a system note");
        assert!(note.text.contains("主管老周") && note.text.contains("a1"), "{}", note.text);
        let visitor_conv = f.service.authorize_visitor(&held, &token).await.unwrap();
        let seen = f.service.visitor_view(&visitor_conv, 0).await.unwrap();
        assert_eq!(seen.agent.as_deref(), Some("主管老周"));
        assert!(seen.messages.iter().all(|m| !m.internal));
        assert!(seen.messages.last().unwrap().text.contains("主管老周"));
        let told = loop {
            let e: serde_json::Value = serde_json::from_str(&events.recv().await.unwrap()).unwrap();
            if e["type"] == "taken_over" {
                break e;
            }
        };
        assert_eq!((told["from"].as_str(), told["by"].as_str()), (Some("a1"), Some("sup")));
        // The old owner can no longer speak; the supervisor can, over their capacity of 1.
        assert_eq!(code(f.service.agent_message(&a1, &held, "还在吗").await), Code::NotYourConversation);
        f.service.take_over(&sup, &queued).await.unwrap();
        assert_eq!(f.service.mine(&sup).await.unwrap().len(), 2, "a takeover ignores the supervisor's capacity");
        assert_eq!(code(f.service.take_over(&sup, &queued).await), Code::NotWaiting);
        f.service.resolve(&sup, &queued).await.unwrap();
        assert_eq!(code(f.service.take_over(&sup, &queued).await), Code::NotWaiting, "a resolved conversation is not live");
    }
}
