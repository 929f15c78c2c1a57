//! Agents: accounts, sessions and presence, and what an agent does with a conversation it
//! owns (messages, notes, resolve, return to the bot), plus closing a conversation.

use super::*;

impl Service {
    // ---- agents ---------------------------------------------------------------------------

    /// Creates or replaces an agent account; a replaced account keeps its role (see
    /// [`Service::put_person`]).
    pub async fn put_agent(&self, id: &str, name: &str, password: &str, skills: Vec<String>, max_concurrent: u32) -> Result<AgentInfo> {
        self.put_person(id, name, password, skills, max_concurrent, None).await
    }

    /// Creates or replaces an account with `role` (`None`: the replaced account's role, or
    /// agent for a new one). Replacing an account resets its password: its sessions end.
    pub async fn put_person(&self, id: &str, name: &str, password: &str, skills: Vec<String>, max_concurrent: u32, role: Option<Role>) -> Result<AgentInfo> {
        let valid_id = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_id {
            return Err(ServiceError::refused(Code::InvalidAgent, "an agent id is 1 to 64 letters, digits, '-', '_' or '.'"));
        }
        let name = people::checked_name(name)?;
        people::check_password(password, id, &name)?;
        people::check_capacity(max_concurrent)?;
        let skills = people::checked_skills(skills)?;
        let existing = self.store.agent(id).await?;
        let status = existing.as_ref().map_or(AgentStatus::Away, |a| a.status);
        let role = role.or(existing.as_ref().map(|a| a.role)).unwrap_or_default();
        let password_hash = self.hash_password(password).await?;
        let agent = Agent { id: id.into(), name, skills, max_concurrent, status, password_hash, role };
        // Before the new password is stored: a login that checked the old one is voided.
        let reset_at = now_ms();
        self.commit(Change { agent: Some(agent.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        if existing.is_some() {
            // A new password: whoever logged in with the old one is logged out.
            self.end_sessions(id, reset_at, None).await?;
        }
        Ok(self.agent_info(&agent, &self.actives().await?).await)
    }

    /// Conversations each agent holds now, from the store's index of assigned handoffs.
    pub(super) async fn actives(&self) -> Result<HashMap<String, u32>> {
        let mut counts = HashMap::new();
        for h in self.store.assigned(None).await? {
            if let (HandoffStatus::Assigned, Some(agent)) = (&h.status, h.agent) {
                *counts.entry(agent).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    pub(super) async fn active(&self, agent: &str) -> Result<u32> {
        Ok(self.store.assigned(Some(agent)).await?.len() as u32)
    }

    pub(super) async fn agent_info(&self, a: &Agent, actives: &HashMap<String, u32>) -> AgentInfo {
        AgentInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            skills: a.skills.clone(),
            max_concurrent: a.max_concurrent,
            status: a.status,
            role: a.role,
            active: actives.get(&a.id).copied().unwrap_or(0),
            disabled: self.access(&a.id).await.map(|x| x.disabled).unwrap_or(false),
        }
    }

    pub async fn agents(&self) -> Result<Vec<AgentInfo>> {
        let actives = self.actives().await?;
        let mut out = Vec::new();
        for a in self.store.agents().await? {
            out.push(self.agent_info(&a, &actives).await);
        }
        Ok(out)
    }

    /// Logs an agent in; returns a bearer token (stored hashed) and the account.
    pub async fn login(&self, id: &str, password: &str) -> Result<(String, AgentInfo)> {
        // Taken before the password is checked: a reset that lands during the check voids
        // this session too.
        let now = now_ms();
        let agent = self.store.agent(id).await?;
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
        if self.access(&agent.id).await?.disabled {
            return Err(ServiceError::refused(Code::AgentDisabled, format!("agent {} is disabled; an admin can enable it", agent.id)));
        }
        let token = auth::new_token();
        let session = Session { agent: agent.id.clone(), created_ms: now, expires_ms: now + self.config.session_hours * 3_600_000 };
        self.commit(Change { session: Some((auth::token_hash(&token), Some(session))), at_ms: now, ..Default::default() }).await?;
        Ok((token, self.agent_info(&agent, &self.actives().await?).await))
    }

    pub async fn logout(&self, token: &str) -> Result<()> {
        let hash = auth::token_hash(token);
        self.commit(Change { session: Some((hash.clone(), None)), at_ms: now_ms(), ..Default::default() }).await?;
        let _ = self.sessions_ended.send(access::SessionEnded::Token(hash));
        Ok(())
    }

    /// The agent a bearer token belongs to.
    pub async fn authorize_agent(&self, token: &str) -> Result<Agent> {
        Ok(self.agent_session(token).await?.0)
    }

    /// The agent a bearer token belongs to, with its session. A session is void once it
    /// expires, when the agent is disabled, or when its password was reset after the login.
    pub async fn agent_session(&self, token: &str) -> Result<(Agent, Session)> {
        let hash = auth::token_hash(token);
        let session = self.store.session(&hash).await?.ok_or(ServiceError::Unauthorized)?;
        if session.expires_ms < now_ms() {
            return Err(ServiceError::Unauthorized);
        }
        if !self.access(&session.agent).await?.admits(session.created_ms, &hash) {
            return Err(ServiceError::Unauthorized);
        }
        let agent = self.store.agent(&session.agent).await?.ok_or(ServiceError::Unauthorized)?;
        Ok((agent, session))
    }

    pub async fn set_status(&self, agent: &Agent, status: AgentStatus) -> Result<AgentInfo> {
        let _g = self.assigning.lock().await;
        let mut a = self.store.agent(&agent.id).await?.ok_or_else(|| ServiceError::refused(Code::AgentNotFound, format!("agent {} not found", agent.id)))?;
        a.status = status;
        self.commit(Change { agent: Some(a.clone()), at_ms: now_ms(), ..Default::default() }).await?;
        drop(_g);
        if status == AgentStatus::Online {
            self.presence_online(&a.id);
        }
        self.hub.to_agents(&AgentEvent::Presence { agent: a.id.clone(), status });
        if status == AgentStatus::Online && self.config.assignment == Assignment::Auto {
            self.assign_waiting().await?;
        }
        Ok(self.agent_info(&a, &self.actives().await?).await)
    }

    /// Conversations the agent holds.
    pub async fn mine(&self, agent: &Agent) -> Result<Vec<Handoff>> {
        Ok(self.store.assigned(Some(&agent.id)).await?)
    }

    /// A conversation with its handoff and every message, internal notes included.
    pub async fn agent_view(&self, id: &str) -> Result<AgentView> {
        let conversation = self.load_conversation(id).await?;
        let handoff = self.handoff_of(&conversation).await?;
        let waiting_ms = handoff.as_ref().filter(|h| h.status == HandoffStatus::Queued).map(|h| now_ms().saturating_sub(h.created_ms));
        let messages = self.store.messages(id, 0, HISTORY_LIMIT).await?;
        Ok(AgentView { conversation, handoff, messages, waiting_ms })
    }

    /// Runs `f` on a conversation the agent owns, under its lock, and commits the change.
    pub(super) async fn as_owner(
        &self,
        agent: &Agent,
        conv_id: &str,
        f: impl FnOnce(&mut Conversation, &mut Handoff, &mut Change) -> Result<()>,
    ) -> Result<(Conversation, Handoff, Vec<Message>)> {
        self.agent_active(&agent.id);
        let turn = self.lock(conv_id).await?;
        let mut conv = self.load_conversation(conv_id).await?;
        if conv.state != (State::WithAgent { agent: agent.id.clone() }) {
            return Err(ServiceError::refused(Code::NotYourConversation, format!("conversation {conv_id} is not yours (claim it first)")));
        }
        let mut h = self
            .handoff_of(&conv).await?
            .ok_or_else(|| ServiceError::Internal(format!("conversation {conv_id} has an agent but no handoff")))?;
        let mut change = Change { at_ms: now_ms(), ..Default::default() };
        let was = h.status.clone();
        f(&mut conv, &mut h, &mut change)?;
        if was != HandoffStatus::Resolved && h.status == HandoffStatus::Resolved {
            self.resolved_event(&mut change, &h).await?;
        }
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
                change.messages.push(NewMessage { from, text: text.trim().into(), internal: false, bot: None, client_id: None, image: None });
                Ok(())
            })
            .await?;
        self.publish_visitor_messages(&conv, &stored, None).await?;
        Ok(stored.into_iter().next().expect("the agent's message was stored"))
    }

    /// An internal note, seen by agents only. Any agent may note a handed-off conversation.
    pub async fn note(&self, agent: &Agent, conv_id: &str, text: &str) -> Result<Message> {
        self.check_text(text)?;
        let turn = self.lock(conv_id).await?;
        let conv = self.load_conversation(conv_id).await?;
        if conv.handoff.is_none() {
            return Err(ServiceError::refused(Code::NotHandedOff, format!("conversation {conv_id} was not handed off; notes belong to handed-off conversations")));
        }
        let from = Sender::Agent { id: agent.id.clone(), name: agent.name.clone() };
        let message = NewMessage { from, text: text.trim().into(), internal: true, bot: None, client_id: None, image: None };
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
                change.messages.push(NewMessage::system(&self.config.dialogue.resolved_text));
                Ok(())
            })
            .await?;
        self.finish(&conv, &h, &stored).await
    }

    /// Gives the conversation back to the bot without asking for a rating.
    pub async fn return_to_bot(&self, agent: &Agent, conv_id: &str) -> Result<()> {
        let (conv, h, stored) = self
            .as_owner(agent, conv_id, |conv, h, change| {
                h.status = HandoffStatus::Returned;
                h.closed_ms = Some(change.at_ms);
                conv.state = State::Bot;
                conv.context.misses = 0;
                change.messages.push(NewMessage::system(&self.config.dialogue.returned_text));
                Ok(())
            })
            .await?;
        self.finish(&conv, &h, &stored).await
    }

    pub(super) async fn finish(&self, conv: &Conversation, h: &Handoff, stored: &[Message]) -> Result<()> {
        self.publish_visitor_messages(conv, stored, None).await?;
        self.hub.to_visitor(&conv.id, &self.state_event(conv).await?);
        self.hub.to_agents(&AgentEvent::Changed { handoff: h.id, conversation: conv.id.clone(), status: h.status.clone(), agent: h.agent.clone() });
        if self.config.assignment == Assignment::Auto {
            self.assign_waiting().await?;
        }
        Ok(())
    }

    /// Ends a conversation for good (e.g. a WeChat user unsubscribed).
    pub async fn close(&self, conv_id: &str) -> Result<()> {
        let _turn = self.lock(conv_id).await?;
        let Some(mut conv) = self.store.conversation(conv_id).await? else { return Ok(()) };
        let mut change = Change { at_ms: now_ms(), ..Default::default() };
        if let Some(mut h) = self.handoff_of(&conv).await? {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn accounts_are_checked_and_logins_give_sessions() {
        let f = testing::service(|_| {}).await;
        let bad = f.service.put_agent("a b", "A", "password-123", vec![], 2).await.unwrap_err();
        assert!(bad.to_string().contains("agent id"), "{bad}");
        assert_eq!(code(f.service.put_agent("a1", "A", "short", vec![], 2).await), Code::InvalidPassword);
        assert_eq!(code(f.service.put_agent("a1", "A", "password-123", vec![], 0).await), Code::InvalidAgent);
        let info = f.service.put_agent("a1", "A", "password-123", vec![], 2).await.unwrap();
        assert_eq!(info.skills, ["general"]);
        assert_eq!(code(f.service.login("a1", "wrong-password").await), Code::Unauthorized);
        assert!(matches!(f.service.login("nobody", "password-123").await, Err(ServiceError::Unauthorized)));
        let (token, _) = f.service.login("a1", "password-123").await.unwrap();
        assert_eq!(f.service.authorize_agent(&token).await.unwrap().id, "a1");
        f.service.logout(&token).await.unwrap();
        assert!(matches!(f.service.authorize_agent(&token).await, Err(ServiceError::Unauthorized)));
    }

    #[tokio::test]
    async fn only_the_owner_speaks_and_resolving_asks_for_a_rating() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let a2 = f.agent("a2", true).await;
        let (id, token) = f.visitor().await;
        assert_eq!(code(f.service.note(&a1, &id, "备注").await), Code::NotHandedOff, "not handed off");
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.claim(&a1, &id).await.unwrap();
        assert_eq!(code(f.service.agent_message(&a2, &id, "你好").await), Code::NotYourConversation);
        assert!(f.service.note(&a2, &id, "备注").await.unwrap().internal, "any agent may note");
        f.service.agent_message(&a1, &id, "您好").await.unwrap();
        f.service.resolve(&a1, &id).await.unwrap();
        let conv = f.service.authorize_visitor(&id, &token).await.unwrap();
        assert!(conv.context.rating_requested);
        assert_eq!(conv.state, State::Bot);
        f.service.rate(&id, &token, 5, Some("很好".into())).await.unwrap();
        assert!(!f.service.authorize_visitor(&id, &token).await.unwrap().context.rating_requested);
        // Notes stay out of the visitor's view.
        let view = f.service.visitor_view(&conv, 0).await.unwrap();
        assert!(view.messages.iter().all(|m| !m.internal));
    }

    #[tokio::test]
    async fn closing_returns_an_open_handoff() {
        let f = testing::service(|_| {}).await;
        f.agent("a1", true).await;
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.close(&id).await.unwrap();
        assert!(f.service.queue().await.unwrap().is_empty());
        let view = f.service.agent_view(&id).await.unwrap();
        assert_eq!(view.conversation.state, State::Closed);
        assert_eq!(view.handoff.unwrap().status, HandoffStatus::Returned);
        assert_eq!(code(f.service.agent_view("nope").await), Code::ConversationNotFound);
    }
}
