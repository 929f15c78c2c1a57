//! The sled implementation of [`Store`], with group commit: writers wait for a shared flush
//! instead of each paying for one.

use std::path::Path;
use std::sync::{mpsc, Arc};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use super::{Change, Counters, Durable, Feedback, Session, Store, StoreError};
use crate::dialogue::{Conversation, Message};
use crate::handoff::{Agent, Handoff, HandoffStatus, Rating, Ticket};

/// sled's page cache, in bytes.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// sled on disk. Cloning shares the database; the last clone dropped stops the flusher and
/// releases the directory (so the same process can reopen it, as tests of restarts do).
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

type FlushRequest = oneshot::Sender<Result<(), StoreError>>;

struct Inner {
    db: sled::Db,
    trees: Trees,
    flush: Option<mpsc::Sender<FlushRequest>>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the flusher's loop; joining it drops its database handle.
        self.flush.take();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Trees {
    conversations: sled::Tree,
    messages: sled::Tree,
    client_ids: sled::Tree,
    identities: sled::Tree,
    handoffs: sled::Tree,
    queue: sled::Tree,
    agents: sled::Tree,
    sessions: sled::Tree,
    tickets: sled::Tree,
    ratings: sled::Tree,
    feedback: sled::Tree,
    unanswered: sled::Tree,
    counters: sled::Tree,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialise")
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })
}

/// Message keys sort by conversation, then sequence number.
fn message_key(conversation: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(conversation.len() + 9);
    key.extend_from_slice(conversation.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

/// A big-endian u64 value (counters, sequence numbers); a malformed one reads as 0.
fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn bump(tree: &TransactionalTree, key: &[u8]) -> TxResult<()> {
    let n = tree.get(key)?.map_or(0, |v| be_u64(&v));
    tree.insert(key, &(n + 1).to_be_bytes())?;
    Ok(())
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and starts its flusher thread.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // Flushing is ours (group commit before acknowledging); sled's own periodic flush
        // stays on as a backstop.
        // sled's page cache defaults to 1 GiB: under steady traffic the RSS then climbs for
        // hours. 64 MiB holds the working set (recent conversations) of a busy site.
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).cache_capacity(CACHE_BYTES).open()?;
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            conversations: tree("conversations")?,
            messages: tree("messages")?,
            client_ids: tree("client_ids")?,
            identities: tree("identities")?,
            handoffs: tree("handoffs")?,
            queue: tree("queue")?,
            agents: tree("agents")?,
            sessions: tree("sessions")?,
            tickets: tree("tickets")?,
            ratings: tree("ratings")?,
            feedback: tree("feedback")?,
            unanswered: tree("unanswered")?,
            counters: tree("counters")?,
        };
        let (flush, requests) = mpsc::channel::<FlushRequest>();
        let flusher_db = db.clone();
        let flusher = std::thread::Builder::new()
            .name("kefu-flush".into())
            .spawn(move || {
                // Every request that arrived before a flush started is covered by it: take
                // one, then all that queued up behind it, flush once, answer them all.
                while let Ok(first) = requests.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(requests.try_iter());
                    let result = flusher_db.flush();
                    for w in waiting {
                        let r = match &result {
                            Ok(_) => Ok(()),
                            Err(e) => Err(StoreError::Sled(e.clone())),
                        };
                        let _ = w.send(r);
                    }
                }
            })
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(SledStore { inner: Arc::new(Inner { db, trees, flush: Some(flush), flusher: Some(flusher) }) })
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        tree.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        tree.iter().map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        }).collect()
    }
}

impl Store for SledStore {
    fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        Self::get(&self.inner.trees.conversations, id.as_bytes())
    }

    fn messages(&self, conversation: &str, after: u64, limit: usize) -> Result<Vec<Message>, StoreError> {
        let start = message_key(conversation, after.saturating_add(1));
        let end = message_key(conversation, u64::MAX);
        self.inner.trees.messages.range(start..=end).take(limit).map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        }).collect()
    }

    fn message_by_client_id(&self, conversation: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
        let Some(seq) = self.inner.trees.client_ids.get(pair_key(conversation, client_id))? else { return Ok(None) };
        let seq = be_u64(&seq);
        Self::get(&self.inner.trees.messages, &message_key(conversation, seq))
    }

    fn conversation_of_user(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.inner.trees.identities.get(user_id.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn handoff(&self, id: u64) -> Result<Option<Handoff>, StoreError> {
        Self::get(&self.inner.trees.handoffs, &id.to_be_bytes())
    }

    fn queue(&self) -> Result<Vec<Handoff>, StoreError> {
        self.queue_from(&[])
    }

    fn queue_rank(&self, key: &[u8]) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.inner.trees.queue.range(..key.to_vec()).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    fn queue_from(&self, key: &[u8]) -> Result<Vec<Handoff>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.trees.queue.range(key.to_vec()..) {
            let (_, id) = kv?;
            if let Some(h) = Self::get::<Handoff>(&self.inner.trees.handoffs, &id)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    fn handoffs(&self) -> Result<Vec<Handoff>, StoreError> {
        Self::all(&self.inner.trees.handoffs)
    }

    fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        Self::get(&self.inner.trees.agents, id.as_bytes())
    }

    fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        Self::all(&self.inner.trees.agents)
    }

    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Self::get(&self.inner.trees.sessions, token_hash.as_bytes())
    }

    fn tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        Self::all(&self.inner.trees.tickets)
    }

    fn ratings(&self) -> Result<Vec<Rating>, StoreError> {
        Self::all(&self.inner.trees.ratings)
    }

    fn feedback(&self) -> Result<Vec<Feedback>, StoreError> {
        Self::all(&self.inner.trees.feedback)
    }

    fn unanswered(&self, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        let mut all = Vec::new();
        for kv in self.inner.trees.unanswered.iter() {
            let (k, v) = kv?;
            let n = be_u64(&v);
            all.push((String::from_utf8_lossy(&k).into_owned(), n));
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        Ok(all)
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        let mut messages_per_hour = Vec::new();
        for kv in self.inner.trees.counters.scan_prefix(b"msg:") {
            let (k, v) = kv?;
            let hour = be_u64(&k[4..]);
            messages_per_hour.push((hour, be_u64(&v)));
        }
        Ok(Counters { messages_per_hour })
    }

    fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        Self::all(&self.inner.trees.conversations)
    }

    fn conversation_count(&self) -> Result<usize, StoreError> {
        Ok(self.inner.trees.conversations.len())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        // sled's ids start at 0; handoff and ticket ids start at 1.
        Ok(self.inner.db.generate_id()? + 1)
    }

    fn commit(&self, change: Change) -> Result<Vec<Message>, StoreError> {
        let t = &self.inner.trees;
        let trees = (
            &t.conversations,
            &t.messages,
            &t.client_ids,
            &t.identities,
            &t.handoffs,
            &t.queue,
            &t.agents,
            &t.sessions,
            &t.tickets,
            &t.ratings,
            &t.feedback,
            &t.unanswered,
            &t.counters,
        );
        let result = trees.transaction(
            |(conversations, messages, client_ids, identities, handoffs, queue, agents, sessions, tickets, ratings, feedback, unanswered, counters)| {
                let mut stored = Vec::with_capacity(change.messages.len());
                if let Some(conv) = &change.conversation {
                    let mut conv = conv.clone();
                    // The caller serialises steps per conversation; a mismatch means two
                    // writers raced, and appending would break the sequence.
                    if let Some(old) = conversations.get(conv.id.as_bytes())? {
                        let old: Conversation = decode(conv.id.as_bytes(), &old).map_err(ConflictableTransactionError::Abort)?;
                        if old.last_seq != conv.last_seq {
                            return Err(ConflictableTransactionError::Abort(StoreError::Conflict(conv.id.clone())));
                        }
                    }
                    for m in &change.messages {
                        conv.last_seq += 1;
                        let message = Message {
                            conversation: conv.id.clone(),
                            seq: conv.last_seq,
                            at_ms: change.at_ms,
                            from: m.from.clone(),
                            text: m.text.clone(),
                            internal: m.internal,
                            bot: m.bot.clone(),
                            client_id: m.client_id.clone(),
                        };
                        messages.insert(message_key(&conv.id, message.seq), encode(&message))?;
                        if let Some(cid) = &m.client_id {
                            client_ids.insert(pair_key(&conv.id, cid), &message.seq.to_be_bytes())?;
                        }
                        if message.from == crate::dialogue::Sender::Visitor {
                            let mut key = b"msg:".to_vec();
                            key.extend_from_slice(&(change.at_ms / 3_600_000).to_be_bytes());
                            bump(counters, &key)?;
                        }
                        stored.push(message);
                    }
                    conv.updated_ms = change.at_ms;
                    conversations.insert(conv.id.as_bytes(), encode(&conv))?;
                }
                for h in &change.handoffs {
                    handoffs.insert(&h.id.to_be_bytes(), encode(h))?;
                    if h.status == HandoffStatus::Queued {
                        queue.insert(&h.queue_key(), &h.id.to_be_bytes())?;
                    } else {
                        queue.remove(&h.queue_key())?;
                    }
                }
                if let Some(ticket) = &change.ticket {
                    tickets.insert(&ticket.id.to_be_bytes(), encode(ticket))?;
                }
                if let Some(r) = &change.rating {
                    ratings.insert(pair_key(&r.conversation, &r.at_ms.to_string()), encode(r))?;
                }
                if let Some(f) = &change.feedback {
                    feedback.insert(pair_key(&f.conversation, &f.seq.to_string()), encode(f))?;
                }
                if let Some(a) = &change.agent {
                    agents.insert(a.id.as_bytes(), encode(a))?;
                }
                match &change.session {
                    Some((hash, Some(s))) => {
                        sessions.insert(hash.as_bytes(), encode(s))?;
                    }
                    Some((hash, None)) => {
                        sessions.remove(hash.as_bytes())?;
                    }
                    None => {}
                }
                if let Some((user, conv)) = &change.identity {
                    identities.insert(user.as_bytes(), conv.as_bytes())?;
                }
                for q in &change.unanswered {
                    bump(unanswered, q.as_bytes())?;
                }
                Ok(stored)
            },
        );
        match result {
            Ok(stored) => Ok(stored),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    fn keyspace(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(format!("channel:{name}"))?)
    }

    fn durable(&self) -> Durable {
        let (tx, rx) = oneshot::channel();
        let sent = self.inner.flush.as_ref().ok_or(()).and_then(|f| f.send(tx).map_err(|_| ()));
        Box::pin(async move {
            sent.map_err(|_| StoreError::FlusherGone)?;
            rx.await.map_err(|_| StoreError::FlusherGone)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::{Context, NewMessage, State, Visitor};

    fn conversation(id: &str) -> Conversation {
        Conversation {
            id: id.into(),
            token_hashes: vec![],
            visitor: Visitor::default(),
            state: State::Bot,
            context: Context::default(),
            handoff: None,
            created_ms: 1,
            updated_ms: 1,
            last_seq: 0,
        }
    }

    #[tokio::test]
    async fn messages_are_numbered_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let conv = conversation("c1");
            let stored = store
                .commit(Change {
                    conversation: Some(conv),
                    messages: vec![NewMessage::visitor("你好", Some("m1".into())), NewMessage::system("欢迎")],
                    at_ms: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
            store.durable().await.unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let conv = store.conversation("c1").unwrap().unwrap();
        assert_eq!(conv.last_seq, 2);
        let all = store.messages("c1", 0, 100).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].text, "你好");
        assert_eq!(store.messages("c1", 1, 100).unwrap()[0].seq, 2);
        assert_eq!(store.message_by_client_id("c1", "m1").unwrap().unwrap().seq, 1);
        assert_eq!(store.counters().unwrap().messages_per_hour, vec![(0, 1)]);
    }

    #[test]
    fn a_stale_conversation_is_refused_not_interleaved() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let conv = conversation("c1");
        store.commit(Change { conversation: Some(conv.clone()), messages: vec![NewMessage::system("a")], ..Default::default() }).unwrap();
        // `conv` still says last_seq 0: a second writer working from an old copy.
        let err = store.commit(Change { conversation: Some(conv), messages: vec![NewMessage::system("b")], ..Default::default() });
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
        assert_eq!(store.messages("c1", 0, 10).unwrap().len(), 1);
    }
}
