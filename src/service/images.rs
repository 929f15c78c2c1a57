//! Photos in conversations: an image from a visitor, a channel user or an agent is checked
//! and cleaned (`crate::images`), its clean bytes stored once under their SHA-256 and linked
//! to the conversation, then a message refers to it by that hash; and an image is served back
//! only to that conversation's visitor and to agents.
//!
//! Storage: records of the shared store (so every node serves every image, and PostgreSQL
//! keeps the bytes as `bytea`), written and durable before the message that refers to them is
//! committed: a crash in between leaves an unreferenced image, never a message without one.

use super::*;
use crate::dialogue::ImageInfo;
use crate::images::{self, Format, ImageError};

/// Clean image bytes by hash: content-addressed, so one photo sent twice is kept once.
pub const IMAGES: &str = "images";
/// `{conversation}/{hash}` → the image's [`ImageInfo`]: which conversations may show it.
pub const IMAGE_LINKS: &str = "image-links";

/// Photos decoded at once: each can take a few hundred megabytes while it is cleaned, and a
/// burst of uploads must not add those up.
static CLEANING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What the bot says to a photo it cannot read (while no human owns the conversation).
pub const IMAGE_TO_BOT: &str = "收到您的图片。机器人看不懂图片，如需客服查看，请点「转人工」。";

impl From<ImageError> for ServiceError {
    fn from(e: ImageError) -> Self {
        let code = match e {
            ImageError::TooLarge { .. } => Code::TooLarge,
            ImageError::TooBig { .. } | ImageError::TooManyPixels { .. } => Code::ImageTooBig,
            ImageError::Empty | ImageError::NotAnImage(_) | ImageError::Broken { .. } => Code::NotAnImage,
        };
        ServiceError::refused(code, e.to_string())
    }
}

/// An image to serve: its format (for `Content-Type`) and bytes.
#[derive(Debug, Clone)]
pub struct ImageBytes {
    pub format: Format,
    pub bytes: Vec<u8>,
}

impl Service {
    /// Checks and cleans `bytes` (CPU work, off the async workers) and stores the clean copy
    /// linked to `conversation`, durably.
    async fn keep_image(&self, conversation: &str, bytes: Vec<u8>) -> Result<ImageInfo> {
        let limits = self.config.images;
        let _turn = CLEANING.acquire().await.map_err(|e| ServiceError::Internal(e.to_string()))?;
        let clean = tokio::task::spawn_blocking(move || images::clean(&bytes, limits))
            .await
            .map_err(|e| ServiceError::Internal(format!("the image check stopped: {e}")))??;
        // Exactly one writer of a hash wins; whoever wins, the bytes are the same.
        self.store.claim_record(IMAGES, &clean.info.hash, clean.bytes).await?;
        let link = serde_json::to_vec(&clean.info).expect("image infos serialise");
        self.store.set_record(IMAGE_LINKS, &format!("{conversation}/{}", clean.info.hash), Some(link)).await?;
        self.store.durable().await?;
        Ok(clean.info)
    }

    /// A visitor's photo (checked against `token`), or a channel user's (`None`: the channel
    /// vouches for them): stored with a message referring to it. While the bot has the
    /// conversation it says that it cannot read photos; with a human it stays silent.
    pub async fn visitor_image(&self, id: &str, token: Option<&str>, bytes: Vec<u8>, client_id: Option<String>) -> Result<Exchange> {
        if let Some(c) = &client_id {
            if c.is_empty() || c.len() > 64 {
                return Err(ServiceError::refused(Code::InvalidClientId, format!("client_id must be 1 to 64 characters, not {}", c.len())));
            }
        }
        // Checked before anything is stored: a wrong token stores nothing.
        match token {
            Some(t) => self.authorize_visitor(id, t).await?,
            None => self.load_conversation(id).await?,
        };
        if let Some(c) = &client_id {
            if let Some(first) = self.store.message_by_client_id(id, c).await? {
                let conv = self.load_conversation(id).await?;
                let replies = self.visible_messages(id, first.seq).await?.into_iter().take_while(|m| m.from != Sender::Visitor).collect();
                return Ok(self.exchange(&conv, first, replies, true).await?);
            }
        }
        let info = self.keep_image(id, bytes).await?;
        const ATTEMPTS: usize = 8;
        let mut attempt = 1;
        loop {
            match self.commit_visitor_image(id, token, &info, client_id.clone()).await {
                Err(ServiceError::Moved(_)) if attempt < ATTEMPTS => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    async fn commit_visitor_image(&self, id: &str, token: Option<&str>, info: &ImageInfo, client_id: Option<String>) -> Result<Exchange> {
        let turn = self.lock(id).await?;
        let conv = match token {
            Some(t) => self.authorize_visitor(id, t).await?,
            None => self.load_conversation(id).await?,
        };
        if conv.state == State::Closed {
            return Err(ServiceError::refused(Code::ConversationClosed, format!("conversation {id} is closed; start a new one")));
        }
        let mut change = Change { at_ms: now_ms(), ..Default::default() };
        change.messages.push(NewMessage::image(Sender::Visitor, info.clone(), client_id));
        if !conv.state.human_owned() {
            change.messages.push(NewMessage::bot(IMAGE_TO_BOT, crate::dialogue::BotMeta { kind: "image".into(), ..Default::default() }));
        }
        change.conversation = Some(conv.clone());
        let stored = self.commit(change).await?;
        drop(turn);
        self.publish_visitor_messages(&conv, &stored, None).await?;
        let mut stored = stored.into_iter();
        let message = stored.next().expect("the photo's message was stored");
        self.exchange(&conv, message, stored.collect(), false).await
    }

    async fn exchange(&self, conv: &Conversation, message: Message, replies: Vec<Message>, duplicate: bool) -> Result<Exchange> {
        let queue_position = self.queue_position(conv).await?;
        let estimated_wait_ms = self.estimated_wait(queue_position);
        Ok(Exchange { message, replies, state: conv.state.name(), queue_position, estimated_wait_ms, duplicate })
    }

    /// An agent's photo to the visitor of a conversation they hold.
    pub async fn agent_image(&self, agent: &Agent, conv_id: &str, bytes: Vec<u8>) -> Result<Message> {
        // Whose conversation it is is checked again under the lock; this spares storing the
        // photo of an agent who cannot send it.
        let conv = self.load_conversation(conv_id).await?;
        if conv.state != (State::WithAgent { agent: agent.id.clone() }) {
            return Err(ServiceError::refused(Code::NotYourConversation, format!("conversation {conv_id} is not yours (claim it first)")));
        }
        let info = self.keep_image(conv_id, bytes).await?;
        let from = Sender::Agent { id: agent.id.clone(), name: agent.name.clone() };
        let (conv, _, stored) = self
            .as_owner(agent, conv_id, |_, _, change| {
                change.messages.push(NewMessage::image(from, info, None));
                Ok(())
            })
            .await?;
        self.publish_visitor_messages(&conv, &stored, None).await?;
        Ok(stored.into_iter().next().expect("the agent's photo was stored"))
    }

    /// A photo of conversation `id` for its visitor (`token`).
    pub async fn image_for_visitor(&self, id: &str, token: &str, hash: &str) -> Result<ImageBytes> {
        self.authorize_visitor(id, token).await?;
        self.linked_image(id, hash).await
    }

    /// A photo of conversation `id` for an agent (any agent may read any conversation).
    pub async fn image_for_agent(&self, id: &str, hash: &str) -> Result<ImageBytes> {
        self.load_conversation(id).await?;
        self.linked_image(id, hash).await
    }

    async fn linked_image(&self, id: &str, hash: &str) -> Result<ImageBytes> {
        let missing = || ServiceError::refused(Code::ImageNotFound, format!("conversation {id} has no image {}", hash.chars().take(64).collect::<String>()));
        if !images::is_hash(hash) {
            return Err(missing());
        }
        let Some(link) = self.store.record(IMAGE_LINKS, &format!("{id}/{hash}")).await? else { return Err(missing()) };
        let info: ImageInfo = serde_json::from_slice(&link).map_err(|e| ServiceError::Internal(format!("image link {id}/{hash} is unreadable: {e}")))?;
        let bytes = self.store.record(IMAGES, hash).await?.ok_or_else(|| ServiceError::Internal(format!("image {hash} is linked but not stored")))?;
        Ok(ImageBytes { format: info.format, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;
    use crate::images::samples;

    #[tokio::test]
    async fn a_visitor_photo_is_stored_once_and_served_to_its_visitor_and_agents() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        let (other, other_token) = f.visitor().await;
        let ex = f.service.visitor_image(&id, Some(&token), samples::jpeg_with_exif(24, 16), None).await.unwrap();
        let info = ex.message.image.clone().expect("the message refers to its image");
        assert_eq!((info.format, info.width, info.height), (Format::Jpeg, 16, 24), "turned upright");
        assert_eq!(ex.message.text, crate::dialogue::IMAGE_TEXT);
        assert_eq!(ex.replies.len(), 1, "the bot says it cannot read photos");
        let served = f.service.image_for_visitor(&id, &token, &info.hash).await.unwrap();
        assert_eq!(served.bytes.len(), info.bytes);
        assert!(!served.bytes.windows(4).any(|w| w == b"Exif"));
        f.service.image_for_agent(&id, &info.hash).await.unwrap();
        // Another visitor's token does not open it, nor does their conversation's id.
        assert_eq!(code(f.service.image_for_visitor(&id, &other_token, &info.hash).await), Code::Unauthorized);
        assert_eq!(code(f.service.image_for_visitor(&other, &other_token, &info.hash).await), Code::ImageNotFound);
        // Sent again: the same hash, one stored copy.
        let again = f.service.visitor_image(&id, Some(&token), samples::jpeg_with_exif(24, 16), None).await.unwrap();
        assert_eq!(again.message.image.unwrap().hash, info.hash);
        assert_eq!(f.service.store().records(IMAGES, "").await.unwrap().len(), 1);
        let stats = f.service.stats().await.unwrap();
        assert_eq!((stats.images_received, stats.images_sent), (2, 0));
    }

    #[test]
    fn messages_stored_before_photos_read_as_they_were() {
        let old = r#"{"conversation":"c1","seq":3,"at_ms":10,"from":{"kind":"visitor"},"text":"你好","internal":false}"#;
        let m: Message = serde_json::from_str(old).unwrap();
        assert_eq!((m.text.as_str(), m.image.as_ref()), ("你好", None));
        assert!(!serde_json::to_string(&m).unwrap().contains("image"), "a message without a photo is written as before");
    }

    #[tokio::test]
    async fn a_bad_file_stores_nothing_and_says_why() {
        let f = testing::service(|_| {}).await;
        let (id, token) = f.visitor().await;
        let e = f.service.visitor_image(&id, Some(&token), "我是一段文字".as_bytes().to_vec(), None).await.unwrap_err();
        assert_eq!(e.code(), Code::NotAnImage);
        assert!(e.to_string().contains("not a JPEG, PNG or WebP image"), "{e}");
        assert_eq!(code(f.service.visitor_image(&id, Some("wrong"), samples::png(4, 4), None).await), Code::Unauthorized);
        assert!(f.service.store().records(IMAGES, "").await.unwrap().is_empty());
        assert!(f.service.store().messages(&id, 0, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_agent_sends_a_photo_to_the_conversation_they_hold() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let a2 = f.agent("a2", true).await;
        let (id, token) = f.visitor().await;
        f.service.request_human(&id, &token, None).await.unwrap();
        f.service.claim(&a1, &id).await.unwrap();
        assert_eq!(code(f.service.agent_image(&a2, &id, samples::png(8, 8)).await), Code::NotYourConversation);
        let ex = f.service.visitor_image(&id, Some(&token), samples::webp(10, 10), Some("p1".into())).await.unwrap();
        assert!(ex.replies.is_empty(), "with an agent the bot stays silent");
        let m = f.service.agent_image(&a1, &id, samples::png(8, 8)).await.unwrap();
        let hash = m.image.unwrap().hash;
        assert_eq!(f.service.image_for_visitor(&id, &token, &hash).await.unwrap().format, Format::Png);
        let stats = f.service.stats().await.unwrap();
        assert_eq!((stats.images_received, stats.images_sent), (1, 1));
        // A date range's report counts them too: the team's, the sender's, the day's.
        let today = crate::service::reports::date_of(((crate::service::now_ms() / 3_600_000 + 8) / 24) as i64);
        let report = f.service.report(crate::service::reports::Range::parse(&today, &today, 480).unwrap()).await.unwrap();
        assert_eq!((report.images_received, report.team.images_sent), (1, 1));
        assert_eq!(report.agents.iter().find(|a| a.agent.as_deref() == Some("a1")).map(|a| a.images_sent), Some(1));
        assert_eq!((report.days[0].images_received, report.days[0].images_sent), (1, 1));
    }
}
