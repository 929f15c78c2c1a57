//! What the WeChat channel remembers, in its own keyspaces of the service's store: how each
//! delivery (MsgId) was answered, each user's conversation and message window, and the outbox
//! of messages waiting to go out through the message API.

use serde::{Deserialize, Serialize};

use crate::dialogue::Millis;

/// After a user's message an app may send that many messages…
pub const QUOTA: u32 = 5;
/// …within this long.
pub const WINDOW_MS: Millis = 48 * 3_600_000;
/// Delivery records are kept this long (WeChat retries within seconds).
const DELIVERY_KEEP_MS: Millis = 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the WeChat store failed: {0}")]
    Sled(#[from] sled::Error),
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
    pub attempts: u32,
    /// Not before (after a failed attempt).
    pub next_ms: Millis,
}

pub struct WxStore {
    deliveries: sled::Tree,
    users: sled::Tree,
    targets: sled::Tree,
    outbox: sled::Tree,
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\u{0}").into_bytes()
}

fn read<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn write<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

impl WxStore {
    pub fn open(store: &dyn crate::store::Store) -> Result<WxStore, StoreError> {
        let tree = |name: &str| store.keyspace(name);
        Ok(WxStore {
            deliveries: tree("wechat-deliveries")?,
            users: tree("wechat-users")?,
            targets: tree("wechat-targets")?,
            outbox: tree("wechat-outbox")?,
        })
    }

    pub fn answer(&self, app: &str, delivery: &str) -> Result<Option<Answer>, StoreError> {
        self.deliveries.get(key(&[app, delivery]))?.map(|v| read::<Delivery>(&v).map(|d| d.answer)).transpose()
    }

    pub fn set_answer(&self, app: &str, delivery: &str, answer: Answer, now: Millis) -> Result<(), StoreError> {
        self.deliveries.insert(key(&[app, delivery]), write(&Delivery { answer, at_ms: now }))?;
        Ok(())
    }

    /// Forgets deliveries older than a day.
    pub fn prune(&self, now: Millis) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.deliveries.iter() {
            let (k, v) = entry?;
            if read::<Delivery>(&v).map_or(true, |d| now.saturating_sub(d.at_ms) > DELIVERY_KEEP_MS) {
                self.deliveries.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn user(&self, app: &str, openid: &str) -> Result<Option<User>, StoreError> {
        self.users.get(key(&[app, openid]))?.map(|v| read(&v)).transpose()
    }

    /// Changes a user atomically (the outbox worker and incoming messages both do).
    fn update_user(&self, app: &str, openid: &str, mut f: impl FnMut(&mut User)) -> Result<User, StoreError> {
        let mut corrupt = None;
        let updated = self.users.update_and_fetch(key(&[app, openid]), |old| {
            let mut user = match old.map(read::<User>) {
                Some(Ok(u)) => u,
                Some(Err(e)) => {
                    // Keep the unreadable record as it is; report it.
                    corrupt = Some(e);
                    return old.map(<[u8]>::to_vec);
                }
                None => User::default(),
            };
            f(&mut user);
            Some(write(&user))
        })?;
        if let Some(e) = corrupt {
            return Err(e);
        }
        read(&updated.expect("the update always writes"))
    }

    /// The user wrote in `conversation`: their message window opens anew, and their
    /// conversation is reached through this app and OpenID.
    pub fn user_wrote(&self, app: &str, openid: &str, conversation: &str, now: Millis) -> Result<User, StoreError> {
        let user = self.update_user(app, openid, |u| {
            u.conversation = conversation.to_string();
            u.last_message_ms = now;
            u.sent = 0;
        })?;
        self.targets.insert(conversation.as_bytes(), key(&[app, openid]))?;
        Ok(user)
    }

    /// One message went out through the API.
    pub fn count_sent(&self, app: &str, openid: &str) -> Result<User, StoreError> {
        self.update_user(app, openid, |u| u.sent += 1)
    }

    /// WeChat says the window is closed: hold everything until the user writes again.
    pub fn close_window(&self, app: &str, openid: &str) -> Result<User, StoreError> {
        self.update_user(app, openid, |u| u.sent = u.sent.max(QUOTA))
    }

    /// The app and OpenID a conversation was last reached from.
    pub fn target(&self, conversation: &str) -> Result<Option<(String, String)>, StoreError> {
        let Some(v) = self.targets.get(conversation.as_bytes())? else { return Ok(None) };
        let s = String::from_utf8(v.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (app, openid) = s.split_once('\u{0}').ok_or_else(|| StoreError::Corrupt("a target without an OpenID".into()))?;
        Ok(Some((app.to_string(), openid.to_string())))
    }

    /// Queues a message for the API, in order per user (`seq`: a fresh id of the store).
    pub fn hold(&self, seq: u64, message: &Outgoing) -> Result<(), StoreError> {
        let mut k = key(&[&message.app, &message.openid]);
        k.push(0);
        k.extend_from_slice(&seq.to_be_bytes());
        self.outbox.insert(k, write(message))?;
        Ok(())
    }

    /// The outbox, per user in order.
    pub fn outbox(&self) -> Result<Vec<(sled::IVec, Outgoing)>, StoreError> {
        self.outbox.iter().map(|e| e.map_err(StoreError::from).and_then(|(k, v)| Ok((k, read(&v)?)))).collect()
    }

    pub fn update_outgoing(&self, k: &[u8], message: Option<&Outgoing>) -> Result<(), StoreError> {
        match message {
            Some(m) => self.outbox.insert(k, write(m))?,
            None => self.outbox.remove(k)?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_window_outbox_and_deliveries_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000_000;
        {
            let store = crate::store::SledStore::open(dir.path()).unwrap();
            let s = WxStore::open(&store).unwrap();
            let u = s.user_wrote("mp", "oA", "conv1", now).unwrap();
            assert!(u.may_send(now));
            for _ in 0..QUOTA {
                s.count_sent("mp", "oA").unwrap();
            }
            assert!(!s.user("mp", "oA").unwrap().unwrap().may_send(now), "five sent: the quota is used up");
            // The window opens anew when the user writes, and closes 48 hours after.
            let u = s.user_wrote("mp", "oA", "conv1", now + 1).unwrap();
            assert!(u.may_send(now + 1) && !u.may_send(now + 1 + WINDOW_MS));
            s.close_window("mp", "oA").unwrap();
            assert!(!s.user("mp", "oA").unwrap().unwrap().may_send(now + 2));
            assert_eq!(s.target("conv1").unwrap(), Some(("mp".into(), "oA".into())));
            for (seq, text) in [(7, "一"), (8, "二"), (9, "三")] {
                s.hold(seq, &Outgoing { app: "mp".into(), openid: "oA".into(), text: text.into(), attempts: 0, next_ms: 0 }).unwrap();
            }
            s.set_answer("mp", "123", Answer::Passive(Reply::Text("答".into())), now).unwrap();
            s.set_answer("mp", "old", Answer::Later, now - 2 * DELIVERY_KEEP_MS).unwrap();
            assert_eq!(s.prune(now).unwrap(), 1);
            s.outbox.flush().unwrap();
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
        let s = WxStore::open(&store).unwrap();
        let texts: Vec<String> = s.outbox().unwrap().into_iter().map(|(_, o)| o.text).collect();
        assert_eq!(texts, ["一", "二", "三"]);
        assert_eq!(s.answer("mp", "123").unwrap(), Some(Answer::Passive(Reply::Text("答".into()))));
        assert_eq!(s.answer("mp", "old").unwrap(), None);
    }
}
