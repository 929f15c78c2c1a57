//! What each webhook event says: the payloads the service's steps stage into their changes
//! (see `crate::webhook`). A step calls one of these before its commit, under its
//! conversation's turn.

use serde_json::json;

use super::*;
use crate::webhook::{Event, EventKind};

impl Service {
    async fn event(&self, change: &mut Change, kind: EventKind, conversation: &str, data: serde_json::Value) -> Result<()> {
        Ok(self.webhooks.stage(change, Event::new(kind, conversation, data)).await?)
    }

    pub(super) async fn started_event(&self, change: &mut Change, conv: &Conversation) -> Result<()> {
        let v = &conv.visitor;
        let data = json!({ "channel": v.channel, "user_id": v.user_id, "verified": v.verified, "name": v.name, "page": v.page });
        self.event(change, EventKind::ConversationStarted, &conv.id, data).await
    }

    pub(super) async fn handed_off_event(&self, change: &mut Change, h: &Handoff) -> Result<()> {
        let data = json!({
            "handoff": h.id, "reason": h.reason.as_str(), "detail": h.detail, "priority": h.priority,
            "skill": h.skill, "intent": h.intent, "channel": h.visitor.channel,
        });
        self.event(change, EventKind::ConversationHandedOff, &h.conversation, data).await
    }

    /// `from`: the agent who held it before (a transfer).
    pub(super) async fn assigned_event(&self, change: &mut Change, h: &Handoff, agent: &Agent, from: Option<&str>) -> Result<()> {
        let data = json!({ "handoff": h.id, "agent": agent.id, "agent_name": agent.name, "from_agent": from });
        self.event(change, EventKind::ConversationAssigned, &h.conversation, data).await
    }

    pub(super) async fn resolved_event(&self, change: &mut Change, h: &Handoff) -> Result<()> {
        let data = json!({ "handoff": h.id, "agent": h.agent, "assigned_ms": h.assigned_ms, "closed_ms": h.closed_ms });
        self.event(change, EventKind::ConversationResolved, &h.conversation, data).await
    }

    pub(super) async fn rated_event(&self, change: &mut Change, r: &Rating) -> Result<()> {
        let data = json!({ "handoff": r.handoff, "agent": r.agent, "score": r.score, "comment": r.comment });
        self.event(change, EventKind::ConversationRated, &r.conversation, data).await
    }

    /// A ticket an agent made (`ticket.created`) or any change of one (`ticket.updated`): its
    /// state after the change and the history entries the change added.
    pub(super) async fn ticket_event(&self, change: &mut Change, kind: EventKind, t: &Ticket, history_before: usize) -> Result<()> {
        let data = json!({
            "ticket": t.id, "version": t.version, "status": t.status, "category": t.category, "tags": t.tags,
            "priority": t.priority, "assignee": t.assignee, "complaint": t.complaint, "sla": t.sla,
            "source": t.source, "changes": t.history.get(history_before..).unwrap_or_default(),
        });
        self.event(change, kind, &t.conversation, data).await
    }

    /// A ticket left through the leave-a-message flow: `ticket.created` and `message.left`.
    pub(super) async fn left_message_events(&self, change: &mut Change, t: &Ticket) -> Result<()> {
        let data = json!({
            "ticket": t.id, "contact": t.contact, "message": t.message, "reason": t.reason.as_str(),
            "channel": t.visitor.channel, "user_id": t.visitor.user_id, "name": t.visitor.name,
        });
        self.event(change, EventKind::TicketCreated, &t.conversation, data.clone()).await?;
        self.event(change, EventKind::MessageLeft, &t.conversation, data).await
    }
}
