//! What the WeChat channel remembers, in its own keyspaces of the service's store: how each
//! delivery (MsgId) was answered, each user's conversation and message window, and the outbox
//! of messages waiting to go out through the message API.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dialogue::Millis;
use crate::store::Store;

/// After a user's message an app may send that many messages…
pub const QUOTA: u32 = 5;
/// …within this long.
pub const WINDOW_MS: Millis = 48 * 3_600_000;
/// Delivery records are kept this long (WeChat retries within seconds).
const DELIVERY_KEEP_MS: Millis = 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a WeChat store record is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How one delivery was answered, so that WeChat's retries get the same and nothing twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// Answered in the HTTP response with this body (before encryption); a retry means the
    /// response was lost, so it is given again.
    Passive(Reply),
    /// Answered `success`; the answer went to the outbox.
    Later,
}

/// A passive reply, before it is written as XML or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Text(String),
    /// `transfer_customer_service`, to an agent account or anyone.
    Transfer(Option<String>),
    /// Nothing to say: `success`.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Delivery {
    answer: Answer,
    at_ms: Millis,
}

/// A WeChat user of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct User {
    pub conversation: String,
    /// When the user last wrote: it opens the message window.
    pub last_message_ms: Millis,
    /// Messages sent through the API since then.
    pub sent: u32,
}

impl User {
    pub fn may_send(&self, now: Millis) -> bool {
        self.sent < QUOTA && now.saturating_sub(self.last_message_ms) < WINDOW_MS
    }
}

/// A message waiting to go out through the customer-service message API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub app: String,
    pub openid: String,
    pub text: String,
    /// A photo to send instead of `text` (the hash of its clean copy in the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub attempts: u32,
    /// Not before (after a failed attempt).
    pub next_ms: Millis,
}

/// The channel's records, in spaces of the service's store (so every node sharing the store
/// shares them).
pub struct WxStore {
    store: Arc<dyn Store>,
}

const DELIVERIES: &str = "wechat-deliveries";
const USERS: &str = "wechat-users";
const TARGETS: &str = "wechat-targets";
const OUTBOX: &str = "wechat-outbox";
const CLAIMS: &str = "wechat-claims";
const SENDER: &str = "wechat-sender";
/// A node's claim on a delivery lapses after this (it died answering): a later retry is
/// then answered by another node.
const CLAIM_MS: Millis = 15_000;
/// The sending node holds its lease this long, renewing it at every pass (each second).
const SENDER_MS: Millis = 5_000;

fn key(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

fn read<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn write<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

impl WxStore {
    pub fn open(store: Arc<dyn Store>) -> WxStore {
        WxStore { store }
    }

    pub async fn answer(&self, app: &str, delivery: &str) -> Result<Option<Answer>, StoreError> {
        self.store.record(DELIVERIES, &key(&[app, delivery])).await?.map(|v| read::<Delivery>(&v).map(|d| d.answer)).transpose()
    }

    pub async fn set_answer(&self, app: &str, delivery: &str, answer: Answer, now: Millis) -> Result<(), StoreError> {
        self.store.set_record(DELIVERIES, &key(&[app, delivery]), Some(write(&Delivery { answer, at_ms: now }))).await?;
        Ok(())
    }

    /// Takes (or renews) a lease for `node` unless another live node holds it: whether
    /// `node` holds it now.
    async fn lease(&self, space: &str, key: &str, node: &str, until_ms: Millis, now: Millis) -> Result<bool, StoreError> {
        Ok(crate::store::lease::hold(&*self.store, space, key, node, until_ms, now).await?)
    }

    /// Claims a delivery for `node`: false when another node is answering it.
    pub async fn claim(&self, app: &str, delivery: &str, node: &str, now: Millis) -> Result<bool, StoreError> {
        self.lease(CLAIMS, &key(&[app, delivery]), node, now + CLAIM_MS, now).await
    }

    /// Whether `node` is the one that sends the outbox now (taking the lease if it is free).
    pub async fn hold_sender(&self, node: &str, now: Millis) -> Result<bool, StoreError> {
        self.lease(SENDER, "lease", node, now + SENDER_MS, now).await
    }

    /// Forgets deliveries (and claims) older than a day.
    pub async fn prune(&self, now: Millis) -> Result<usize, StoreError> {
        let mut n = 0;
        for (k, v) in self.store.records(DELIVERIES, "").await? {
            if read::<Delivery>(&v).map_or(true, |d| now.saturating_sub(d.at_ms) > DELIVERY_KEEP_MS) {
                self.store.set_record(DELIVERIES, &k, None).await?;
                n += 1;
            }
        }
        for (k, v) in self.store.records(CLAIMS, "").await? {
            if serde_json::from_slice::<crate::store::lease::Lease>(&v).map_or(true, |l| now.saturating_sub(l.until_ms) > DELIVERY_KEEP_MS) {
                self.store.set_record(CLAIMS, &k, None).await?;
            }
        }
        Ok(n)
    }

    pub async fn user(&self, app: &str, openid: &str) -> Result<Option<User>, StoreError> {
        self.store.record(USERS, &key(&[app, openid])).await?.map(|v| read(&v)).transpose()
    }

    /// Changes a user atomically (the outbox worker and incoming messages both do, on any
    /// node).
    async fn update_user(&self, app: &str, openid: &str, f: impl Fn(&mut User) + Send + Sync) -> Result<User, StoreError> {
        let update = |old: Option<&[u8]>| {
            let mut user = match old {
                Some(bytes) => serde_json::from_slice::<User>(bytes).map_err(|e| crate::store::StoreError::Corrupt {
                    key: format!("{USERS}/{app}/{openid}"),
                    reason: e.to_string(),
                })?,
                None => User::default(),
            };
            f(&mut user);
            Ok(Some(write(&user)))
        };
        let stored = self.store.update_record(USERS, &key(&[app, openid]), &update).await?;
        read(&stored.expect("the update always writes"))
    }

    /// The user wrote in `conversation`: their message window opens anew, and their
    /// conversation is reached through this app and OpenID.
    pub async fn user_wrote(&self, app: &str, openid: &str, conversation: &str, now: Millis) -> Result<User, StoreError> {
        let user = self
            .update_user(app, openid, |u| {
                u.conversation = conversation.to_string();
                u.last_message_ms = now;
                u.sent = 0;
            })
            .await?;
        self.store.set_record(TARGETS, conversation, Some(key(&[app, openid]).into_bytes())).await?;
        Ok(user)
    }

    /// One message went out through the API.
    pub async fn count_sent(&self, app: &str, openid: &str) -> Result<User, StoreError> {
        self.update_user(app, openid, |u| u.sent += 1).await
    }

    /// WeChat says the window is closed: hold everything until the user writes again.
    pub async fn close_window(&self, app: &str, openid: &str) -> Result<User, StoreError> {
        self.update_user(app, openid, |u| u.sent = u.sent.max(QUOTA)).await
    }

    /// The app and OpenID a conversation was last reached from.
    pub async fn target(&self, conversation: &str) -> Result<Option<(String, String)>, StoreError> {
        let Some(v) = self.store.record(TARGETS, conversation).await? else { return Ok(None) };
        let s = String::from_utf8(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (app, openid) = s.split_once('\u{0}').ok_or_else(|| StoreError::Corrupt("a target without an OpenID".into()))?;
        Ok(Some((app.to_string(), openid.to_string())))
    }

    /// Queues a message for the API, in order per user (`seq`: a fresh id of the store,
    /// zero-padded so that keys sort as numbers).
    pub async fn hold(&self, seq: u64, message: &Outgoing) -> Result<(), StoreError> {
        let k = format!("{}\u{0}{seq:020}", key(&[&message.app, &message.openid]));
        self.store.set_record(OUTBOX, &k, Some(write(message))).await?;
        Ok(())
    }

    /// The outbox, per user in order, with each message's key.
    pub async fn outbox(&self) -> Result<Vec<(String, Outgoing)>, StoreError> {
        self.store.records(OUTBOX, "").await?.into_iter().map(|(k, v)| Ok((k, read(&v)?))).collect()
    }

    pub async fn update_outgoing(&self, k: &str, message: Option<&Outgoing>) -> Result<(), StoreError> {
        self.store.set_record(OUTBOX, k, message.map(write)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quota_window_outbox_and_deliveries_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000_000;
        {
            let store = crate::store::SledStore::open(dir.path()).unwrap();
            let s = WxStore::open(Arc::new(store.clone()));
            let u = s.user_wrote("mp", "oA", "conv1", now).await.unwrap();
            assert!(u.may_send(now));
            for _ in 0..QUOTA {
                s.count_sent("mp", "oA").await.unwrap();
            }
            assert!(!s.user("mp", "oA").await.unwrap().unwrap().may_send(now), "five sent: the quota is used up");
            // The window opens anew when the user writes, and closes 48 hours after.
            let u = s.user_wrote("mp", "oA", "conv1", now + 1).await.unwrap();
            assert!(u.may_send(now + 1) && !u.may_send(now + 1 + WINDOW_MS));
            s.close_window("mp", "oA").await.unwrap();
            assert!(!s.user("mp", "oA").await.unwrap().unwrap().may_send(now + 2));
            assert_eq!(s.target("conv1").await.unwrap(), Some(("mp".into(), "oA".into())));
            // Ids 9 and 10 would sort the wrong way round as unpadded text.
            for (seq, text) in [(7, "一"), (9, "二"), (10, "三")] {
                s.hold(seq, &Outgoing { app: "mp".into(), openid: "oA".into(), text: text.into(), image: None, attempts: 0, next_ms: 0 }).await.unwrap();
            }
            s.set_answer("mp", "123", Answer::Passive(Reply::Text("答".into())), now).await.unwrap();
            s.set_answer("mp", "old", Answer::Later, now - 2 * DELIVERY_KEEP_MS).await.unwrap();
            assert_eq!(s.prune(now).await.unwrap(), 1);
            store.durable().await.unwrap();
        }
        // Everything survives a restart, the outbox in order. sled's flusher thread lets go
        // of the file lock a moment after the last handle drops: retry the open until it does.
        let store = (0..200)
            .find_map(|_| crate::store::SledStore::open(dir.path()).ok().or_else(|| {
                std::thread::yield_now();
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            }))
            .expect("the store reopens once the old handle lets go of its lock");
        let s = WxStore::open(Arc::new(store));
        let texts: Vec<String> = s.outbox().await.unwrap().into_iter().map(|(_, o)| o.text).collect();
        assert_eq!(texts, ["一", "二", "三"]);
        assert_eq!(s.answer("mp", "123").await.unwrap(), Some(Answer::Passive(Reply::Text("答".into()))));
        assert_eq!(s.answer("mp", "old").await.unwrap(), None);
    }
}
