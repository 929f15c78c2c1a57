//! Visitors' side of a conversation outside the bot's turn: starting or resuming one,
//! proving the token, what the widget shows, the 转人工 button, ratings, "did this help"
//! and the leave-a-message form.

use super::*;

impl Service {
    /// Starts a conversation, or resumes a verified customer's on a new device.
    pub async fn start(&self, req: StartRequest) -> Result<Started> {
        let (max_name, max_page) = (self.config.max_name_chars, self.config.max_page_chars);
        if let Some(n) = req.name.as_deref().map(|n| n.chars().count()).filter(|n| *n > max_name) {
            return Err(ServiceError::refused(Code::InvalidVisitor, format!("name has {n} characters; at most {max_name} are allowed")));
        }
        if let Some(n) = req.page.as_deref().map(|p| p.chars().count()).filter(|n| *n > max_page) {
            return Err(ServiceError::refused(Code::InvalidVisitor, format!("page has {n} characters; at most {max_page} are allowed")));
        }
        let mut visitor = Visitor {
            channel: if req.channel.is_empty() { "web".into() } else { req.channel.clone() },
            user_id: None,
            verified: false,
            name: req.name,
            page: req.page,
        };
        if let Some((user, signature)) = &req.identity {
            let secret = self.config.identity_secret.as_deref().ok_or_else(|| {
                ServiceError::refused(Code::IdentityNotAccepted, "this site does not accept signed identities (no identity_secret configured)")
            })?;
            if user.is_empty() || user.len() > 128 || !auth::verify_identity(secret, user, signature) {
                return Err(ServiceError::refused(Code::Forbidden, "the identity signature does not match the user id"));
            }
            visitor.user_id = Some(user.clone());
            visitor.verified = true;
        }
        let token = auth::new_token();
        let hash = auth::token_hash(&token);
        if let Some(user) = &visitor.user_id {
            if let Some(existing) = self.store.conversation_of_user(user).await? {
                let _turn = self.lock(&existing).await?;
                if let Some(mut conv) = self.store.conversation(&existing).await? {
                    if conv.state != State::Closed {
                        conv.token_hashes.push(hash);
                        // Keep the last few devices; older tokens stop working.
                        let excess = conv.token_hashes.len().saturating_sub(8);
                        conv.token_hashes.drain(..excess);
                        conv.visitor.page = visitor.page.clone().or(conv.visitor.page);
                        let id = conv.id.clone();
                        self.commit(Change { conversation: Some(conv), at_ms: now_ms(), ..Default::default() }).await?;
                        let messages = self.visible_messages(&id, 0).await?;
                        return Ok(Started { id, token, resumed: true, verified: true, messages });
                    }
                }
            }
        }
        let now = now_ms();
        let id = auth::new_id();
        let conv = Conversation::new(id.clone(), vec![hash], visitor.clone(), now);
        let identity = visitor.user_id.clone().map(|u| (u, id.clone()));
        let mut change = Change { identity, at_ms: now, ..Default::default() };
        self.started_event(&mut change, &conv).await?;
        change.conversation = Some(conv);
        self.commit(change).await?;
        Ok(Started { id, token, resumed: false, verified: visitor.verified, messages: vec![] })
    }

    /// The conversation, if `token` is one of its visitor tokens.
    pub async fn authorize_visitor(&self, id: &str, token: &str) -> Result<Conversation> {
        // Unknown conversation and wrong token look the same: ids are not to be probed.
        let conv = self.store.conversation(id).await?.ok_or(ServiceError::Unauthorized)?;
        let hash = auth::token_hash(token);
        let mut ok = false;
        for h in &conv.token_hashes {
            ok |= auth::same(h, &hash);
        }
        if ok {
            Ok(conv)
        } else {
            Err(ServiceError::Unauthorized)
        }
    }

    pub(super) async fn visible_messages(&self, id: &str, after: u64) -> Result<Vec<Message>> {
        Ok(self.store.messages(id, after, HISTORY_LIMIT).await?.into_iter().filter(|m| !m.internal).collect())
    }

    pub(super) async fn queue_position(&self, conv: &Conversation) -> Result<Option<usize>> {
        if conv.state != State::Queued {
            return Ok(None);
        }
        let queued = self.handoff_of(&conv).await?.filter(|h| h.status == HandoffStatus::Queued);
        match queued {
            Some(h) => Ok(Some(self.store.queue_ahead(&h).await? + 1)),
            None => Ok(self.store.queue().await?.iter().position(|h| h.conversation == conv.id).map(|p| p + 1)),
        }
    }

    pub(super) async fn agent_name(&self, conv: &Conversation) -> Result<Option<String>> {
        match &conv.state {
            State::WithAgent { agent } => Ok(self.store.agent(agent).await?.map(|a| a.name)),
            _ => Ok(None),
        }
    }

    /// The visitor's view: state and messages after `after`.
    pub async fn visitor_view(&self, conv: &Conversation, after: u64) -> Result<VisitorView> {
        let queue_position = self.queue_position(conv).await?;
        Ok(VisitorView {
            id: conv.id.clone(),
            state: conv.state.name(),
            queue_position,
            estimated_wait_ms: self.estimated_wait(queue_position),
            agent: self.agent_name(conv).await?,
            rating_requested: conv.context.rating_requested,
            messages: self.visible_messages(&conv.id, after).await?,
        })
    }

    pub(super) async fn state_event(&self, conv: &Conversation) -> Result<VisitorEvent> {
        let queue_position = self.queue_position(conv).await?;
        Ok(VisitorEvent::State {
            state: conv.state.name(),
            queue_position,
            estimated_wait_ms: self.estimated_wait(queue_position),
            agent: self.agent_name(conv).await?,
            rating_requested: conv.context.rating_requested,
        })
    }

    pub(super) fn check_text(&self, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Err(ServiceError::refused(Code::BadRequest, "the message is empty"));
        }
        let max = self.config.max_message_chars;
        let n = text.chars().count();
        if n > max {
            return Err(ServiceError::refused(Code::MessageTooLong, format!("the message has {n} characters; at most {max} are allowed")));
        }
        Ok(())
    }

    /// The conversation of a user of another channel (a WeChat OpenID), started when they
    /// have none open. The channel vouches for the user, so there is no visitor token.
    pub async fn channel_conversation(&self, channel: &str, user_key: &str) -> Result<String> {
        if user_key.is_empty() || user_key.len() > 200 {
            return Err(ServiceError::refused(Code::BadRequest, "a channel user key is 1 to 200 bytes"));
        }
        if let Some(id) = self.open_conversation_of(user_key).await? {
            return Ok(id);
        }
        // One user's first messages can arrive together: one of them starts the conversation.
        let _one = self.opening.lock().await;
        if let Some(id) = self.open_conversation_of(user_key).await? {
            return Ok(id);
        }
        let now = now_ms();
        let id = auth::new_id();
        let visitor = Visitor { channel: channel.into(), user_id: Some(user_key.into()), verified: true, name: None, page: None };
        let conv = Conversation::new(id.clone(), vec![], visitor, now);
        let identity = Some((user_key.to_string(), id.clone()));
        let mut change = Change { identity, at_ms: now, ..Default::default() };
        self.started_event(&mut change, &conv).await?;
        change.conversation = Some(conv);
        self.commit(change).await?;
        Ok(id)
    }

    /// The open conversation of a channel's user, if any.
    async fn open_conversation_of(&self, user_key: &str) -> Result<Option<String>> {
        let Some(existing) = self.store.conversation_of_user(user_key).await? else { return Ok(None) };
        Ok(self.store.conversation(&existing).await?.filter(|c| c.state != State::Closed).map(|c| c.id))
    }

    /// The visitor asks for a human with the 转人工 button.
    pub async fn request_human(&self, id: &str, token: &str, client_id: Option<String>) -> Result<Exchange> {
        self.visitor_message(id, token, "转人工", client_id).await
    }

    /// A 1–5 rating after an agent resolved the conversation.
    pub async fn rate(&self, id: &str, token: &str, score: u8, comment: Option<String>) -> Result<()> {
        if !(1..=5).contains(&score) {
            return Err(ServiceError::refused(Code::InvalidRating, format!("a rating is 1 to 5, not {score}")));
        }
        let max = self.config.max_comment_chars;
        if let Some(n) = comment.as_deref().map(|c| c.chars().count()).filter(|n| *n > max) {
            return Err(ServiceError::refused(Code::CommentTooLong, format!("the comment has {n} characters; at most {max} are allowed")));
        }
        let _turn = self.lock(id).await?;
        let mut conv = self.authorize_visitor(id, token).await?;
        let Some(handoff) = self.handoff_of(&conv).await? else {
            return Err(ServiceError::refused(Code::NotHandedOff, "only a conversation served by an agent can be rated"));
        };
        if handoff.status != HandoffStatus::Resolved {
            return Err(ServiceError::refused(Code::NotResolved, "the conversation can be rated once an agent has resolved it"));
        }
        conv.context.rating_requested = false;
        let now = now_ms();
        let rating = Rating {
            conversation: id.into(),
            handoff: Some(handoff.id),
            agent: handoff.agent.clone(),
            score,
            comment,
            at_ms: now,
        };
        let mut change = Change { conversation: Some(conv.clone()), at_ms: now, ..Default::default() };
        self.rated_event(&mut change, &rating).await?;
        change.rating = Some(rating);
        self.commit(change).await?;
        self.hub.to_visitor(id, &self.state_event(&conv).await?);
        Ok(())
    }

    /// "Did this answer help?" under a bot answer.
    pub async fn feedback(&self, id: &str, token: &str, seq: u64, helpful: bool) -> Result<()> {
        let _turn = self.lock(id).await?;
        let conv = self.authorize_visitor(id, token).await?;
        let message = self.store.messages(id, seq.saturating_sub(1), 1).await?.into_iter().next().filter(|m| m.seq == seq);
        let Some(message) = message.filter(|m| m.from == Sender::Bot) else {
            return Err(ServiceError::refused(Code::MessageNotFound, format!("message {seq} is not a bot message of this conversation")));
        };
        let feedback = Feedback {
            conversation: conv.id.clone(),
            seq,
            article: message.bot.and_then(|b| b.article),
            helpful,
            at_ms: now_ms(),
        };
        self.commit(Change { feedback: Some(feedback), at_ms: now_ms(), ..Default::default() }).await?;
        Ok(())
    }

    /// A leave-a-message form: contact and message in one go.
    pub async fn leave_ticket(&self, id: &str, token: &str, contact: &str, message: &str) -> Result<Ticket> {
        self.check_text(message)?;
        if contact.trim().is_empty() || contact.chars().count() > 100 {
            return Err(ServiceError::refused(Code::InvalidContact, "contact must be 1 to 100 characters (a phone number or an e-mail)"));
        }
        let _turn = self.lock(id).await?;
        let mut conv = self.authorize_visitor(id, token).await?;
        let now = now_ms();
        let mut change = Change { at_ms: now, ..Default::default() };
        let said = self.config.dialogue.left_message_text.replace("{message}", message.trim()).replace("{contact}", contact.trim());
        change.messages.push(NewMessage::visitor(said, None));
        let reason = conv.context.ticket_reason.take().unwrap_or(Reason::Requested);
        if matches!(conv.state, State::LeavingMessage { .. }) {
            conv.state = State::Bot;
        }
        conv.context.pending_message = None;
        let mut transcript = self.store.messages(id, 0, HISTORY_LIMIT).await?;
        transcript.extend(predict(&conv, &change));
        let mut ticket = Ticket {
            id: self.store.next_id().await?,
            conversation: id.into(),
            contact: contact.trim().into(),
            message: message.trim().into(),
            reason,
            visitor: conv.visitor.clone(),
            transcript,
            created_ms: now,
            ..Default::default()
        };
        self.open_ticket(&mut ticket, "visitor");
        let said = self.config.dialogue.ticket_text.replace("{contact}", contact.trim()).replace("{message}", &crate::dialogue::policy::quote(message));
        change.messages.push(NewMessage::bot(said, crate::dialogue::BotMeta { kind: "ticket".into(), ..Default::default() }));
        self.left_message_events(&mut change, &ticket).await?;
        change.ticket = Some(ticket.clone());
        change.conversation = Some(conv.clone());
        let stored = self.commit(change).await?;
        self.publish_visitor_messages(&conv, &stored, None).await?;
        self.announce_ticket(&ticket, true);
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[tokio::test]
    async fn a_visitor_token_opens_only_its_conversation() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        assert_eq!(f.service.authorize_visitor(&id, &token).await.unwrap().id, id);
        assert_eq!(code(f.service.authorize_visitor(&id, "wrong").await), Code::Unauthorized);
        let (other, _) = f.visitor().await;
        assert!(matches!(f.service.authorize_visitor(&other, &token).await, Err(ServiceError::Unauthorized)));
        // An unknown id looks like a wrong token: ids are not to be probed.
        assert!(matches!(f.service.authorize_visitor("nope", &token).await, Err(ServiceError::Unauthorized)));
    }

    #[tokio::test]
    async fn messages_are_checked_for_emptiness_and_length() {
        let f = testing::service(|c| c.limits.max_message_chars = 5).await;
        f.service.check_text("你好").unwrap();
        assert_eq!(code(f.service.check_text(" \n ")), Code::BadRequest);
        let e = f.service.check_text("一二三四五六").unwrap_err();
        assert_eq!(e.to_string(), "the message has 6 characters; at most 5 are allowed");
    }

    #[tokio::test]
    async fn a_signed_customer_resumes_on_another_device() {
        let f = testing::service(|_| {}).await;
        let signed = |sig: &str| StartRequest { identity: Some(("u1".into(), sig.into())), ..Default::default() };
        assert_eq!(code(f.service.start(signed("00")).await), Code::IdentityNotAccepted, "no secret configured");
        let f = testing::service(|c| c.identity_secret = Some("s3cret".into())).await;
        assert_eq!(code(f.service.start(signed("00")).await), Code::Forbidden);
        let sig = auth::sign_identity("s3cret", "u1");
        let first = f.service.start(signed(&sig)).await.unwrap();
        let second = f.service.start(signed(&sig)).await.unwrap();
        assert!(!first.resumed && second.resumed && second.verified);
        assert_eq!(first.id, second.id);
        // Both devices' tokens work.
        f.service.authorize_visitor(&first.id, &first.token).await.unwrap();
        f.service.authorize_visitor(&first.id, &second.token).await.unwrap();
    }

    #[tokio::test]
    async fn ratings_need_a_resolved_handoff_and_a_score_of_one_to_five() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        assert_eq!(code(f.service.rate(&id, &token, 6, None).await), Code::InvalidRating);
        assert_eq!(code(f.service.rate(&id, &token, 5, None).await), Code::NotHandedOff);
    }

    #[tokio::test]
    async fn one_rating_counts_per_resolution_and_comments_are_capped() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.claim(&a1, &id).await.unwrap();
        f.service.resolve(&a1, &id).await.unwrap();
        let long = "好".repeat(501);
        let e = f.service.rate(&id, &token, 5, Some(long)).await.unwrap_err();
        assert_eq!(e.code(), Code::CommentTooLong);
        assert!(e.to_string().contains("501") && e.to_string().contains("500"), "{e}");
        f.service.rate(&id, &token, 1, Some("很差".into())).await.unwrap();
        f.service.rate(&id, &token, 5, Some("其实很好".into())).await.unwrap();
        let stats = f.service.stats().await.unwrap();
        assert_eq!(stats.ratings, [0, 0, 0, 0, 1], "the second rating replaced the first");
        assert_eq!(stats.csat_mean, Some(5.0));
        assert_eq!(f.service.store().ratings().await.unwrap().len(), 1);
        // A second resolution of the same conversation is rated on its own.
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.claim(&a1, &id).await.unwrap();
        f.service.resolve(&a1, &id).await.unwrap();
        f.service.rate(&id, &token, 3, None).await.unwrap();
        assert_eq!(f.service.stats().await.unwrap().ratings, [0, 0, 1, 0, 1]);
    }

    #[tokio::test]
    async fn a_visitor_name_or_page_over_the_limit_is_refused() {
        let f = testing::service(|_| {}).await;
        let long_name = StartRequest { name: Some("名".repeat(65)), ..Default::default() };
        let e = f.service.start(long_name).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidVisitor);
        assert!(e.to_string().starts_with("name has 65 characters; at most 64"), "{e}");
        let long_page = StartRequest { page: Some(format!("https://shop.example/{}", "a".repeat(2048))), ..Default::default() };
        assert_eq!(code(f.service.start(long_page).await), Code::InvalidVisitor);
        let fine = StartRequest { name: Some("名".repeat(64)), page: Some("https://shop.example/cart".into()), ..Default::default() };
        f.service.start(fine).await.unwrap();
    }

    #[tokio::test]
    async fn a_left_message_becomes_a_ticket_with_the_transcript() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        f.service.visitor_message(&id, &token, "怎么开发票", None).await.unwrap();
        let ticket = f.service.leave_ticket(&id, &token, "13800138000", "请回电").await.unwrap();
        assert_eq!((ticket.contact.as_str(), ticket.message.as_str(), ticket.reason.as_str()), ("13800138000", "请回电", "requested"));
        // From the first question to the form's message; the bot's reply is not in it yet.
        assert_eq!(ticket.transcript[0].text, "怎么开发票");
        assert_eq!(ticket.transcript.last().unwrap().text, "【留言】请回电（联系方式：13800138000）");
        assert_eq!(f.service.tickets().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_channel_user_has_one_open_conversation() {
        let f = testing::service(|_| {}).await;
        let a = f.service.channel_conversation("wechat", "openid-1").await.unwrap();
        assert_eq!(f.service.channel_conversation("wechat", "openid-1").await.unwrap(), a);
        f.service.close(&a).await.unwrap();
        assert_ne!(f.service.channel_conversation("wechat", "openid-1").await.unwrap(), a, "a closed one is not reused");
        assert_eq!(code(f.service.channel_conversation("wechat", "").await), Code::BadRequest);
    }
}
