//! Other nodes' events: the notes they announce through the store, replayed to this node's
//! sockets (a visitor on node A sees the agent's reply sent through node B).

use tokio::sync::broadcast;

use super::events::Note;
use super::*;

impl Service {
    /// Replays the other nodes' notes until the store stops sending them; returns at once
    /// for a single-node store.
    pub async fn follow_other_nodes(self: Arc<Self>) {
        let Some(mut notes) = self.store.notes() else { return };
        // Subscribed first, so that nothing published meanwhile is missed.
        if let Err(e) = self.join_shared_knowledge().await {
            tracing::error!(error = %e, "cannot join the shared knowledge; serving this node's own");
        }
        let resync: Arc<str> = RESYNC_EVENT.into();
        loop {
            match notes.recv().await {
                Ok(note) if &*note == crate::store::RESYNC => {
                    self.hub.resync_all(&resync);
                    // A knowledge note may have been missed too.
                    if let Err(e) = self.adopt_knowledge().await {
                        tracing::warn!(error = %e, "cannot catch up with the shared knowledge");
                    }
                }
                Ok(note) => {
                    if let Err(e) = self.replay(&note).await {
                        tracing::warn!(error = %e, "another node's event was not replayed here");
                    }
                }
                // Fell behind: the sockets here reload from the store.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "fell behind the other nodes' events; sockets resync");
                    self.hub.resync_all(&resync);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn replay(&self, note: &str) -> Result<()> {
        let note: Note = serde_json::from_str(note).map_err(|e| ServiceError::Internal(format!("an unreadable note from another node: {e}")))?;
        match note {
            Note::Visitor { c, event } => self.hub.local_visitor(&c, &event),
            // Read only when someone here listens.
            Note::VisitorMessage { c, seq } if self.hub.has_visitor(&c) => {
                if let Some(message) = self.store.messages(&c, seq.saturating_sub(1), 1).await?.pop() {
                    self.hub.local_visitor(&c, &VisitorEvent::Message { message });
                }
            }
            Note::VisitorMessage { .. } => {}
            Note::Agents { event } => self.hub.local_agents(&event),
            Note::AgentMessage { c, seq } if self.hub.has_agents() => {
                if let Some(message) = self.store.messages(&c, seq.saturating_sub(1), 1).await?.pop() {
                    self.hub.local_agents(&AgentEvent::Message { conversation: c, message });
                }
            }
            Note::AgentMessage { .. } => {}
            Note::Handoff { id } if self.hub.has_agents() => {
                if let Some(handoff) = self.store.handoff(id).await? {
                    self.hub.local_agents(&AgentEvent::Handoff { handoff });
                }
            }
            Note::Handoff { .. } => {}
            Note::Ticket { id, created } if self.hub.has_agents() => {
                if let Some(t) = self.store.ticket(id).await? {
                    self.hub.local_agents(&AgentEvent::Ticket { ticket: crate::handoff::TicketSummary::from(&t), created });
                }
            }
            Note::Ticket { .. } => {}
            Note::Knowledge { .. } => self.adopt_knowledge().await?,
        }
        Ok(())
    }
}
