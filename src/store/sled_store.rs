//! The sled implementation of [`Store`], with group commit: one writer thread applies every
//! change waiting for it in one transaction and makes them durable with one flush.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use super::{Change, CommitHint, Committed, Counters, Durable, Feedback, Session, Store, StoreError};
use crate::dialogue::{Conversation, Message};
use crate::handoff::{Agent, Handoff, HandoffStatus, Rating, Ticket};

/// sled's page cache, in bytes.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// sled on disk. Cloning shares the database; the last clone dropped stops the writer and
/// releases the directory (so the same process can reopen it, as tests of restarts do).
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

/// What the writer thread is asked to do.
enum Job {
    /// Apply a change, make it durable, and answer with the messages it stored.
    Commit(Change, oneshot::Sender<Result<Vec<Message>, StoreError>>),
    /// Make everything written so far durable (a channel's own records).
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

/// How long the writer holds a transaction open, at most, for commits that were announced
/// (see [`CommitHint`]) but have not arrived, looking again every STEP. Each transaction and
/// flush costs sled a fixed amount of CPU (it seals its log buffer and wakes its I/O threads),
/// so sharing them is what lets one core answer more. Measured with scripts/load.sh at 16
/// connections: 3,720 messages/s without the first look (GRACE = 0), 4,421 with it.
const COMMIT_WINDOW: Duration = Duration::from_millis(2);
const GRACE: Duration = Duration::from_micros(200);
const STEP: Duration = Duration::from_micros(250);

/// At most this many jobs share a transaction, which keeps one transaction's write set (and
/// the wait of the first job in it) bounded under a flood.
const MAX_BATCH: usize = 256;

struct Inner {
    db: sled::Db,
    trees: Trees,
    writer: Option<mpsc::Sender<Job>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    /// Commits announced and not yet sent (see [`CommitHint`]).
    announced: Arc<AtomicUsize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop; joining it drops its database handle.
        self.writer.take();
        if let Some(t) = self.writer_thread.take() {
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

/// Transactions never abort on purpose: a refused change is skipped inside the batch.
type TxResult<T> = Result<T, ConflictableTransactionError<std::convert::Infallible>>;

fn bump(tree: &TransactionalTree, key: &[u8]) -> TxResult<()> {
    let n = tree.get(key)?.map_or(0, |v| be_u64(&v));
    tree.insert(key, &(n + 1).to_be_bytes())?;
    Ok(())
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and starts its writer thread.
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
        // Why one writer: sled seals and writes its log buffer for every transaction, waking
        // its whole I/O thread pool each time; at one transaction per message that cost
        // more CPU than answering the message. Batching concurrent changes into one
        // transaction pays it once per flush.
        let (writer, jobs) = mpsc::channel::<Job>();
        let announced = Arc::new(AtomicUsize::new(0));
        let (writer_db, writer_trees, writer_announced) = (db.clone(), trees.clone(), announced.clone());
        let writer_thread = std::thread::Builder::new()
            .name("kefu-writer".into())
            .spawn(move || write_loop(writer_db, writer_trees, jobs, writer_announced))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        let inner = Inner { db, trees, writer: Some(writer), writer_thread: Some(writer_thread), announced };
        Ok(SledStore { inner: Arc::new(inner) })
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

    fn commit(&self, change: Change) -> Committed {
        let (tx, rx) = oneshot::channel();
        let sent = self.inner.writer.as_ref().ok_or(()).and_then(|w| w.send(Job::Commit(change, tx)).map_err(|_| ()));
        Box::pin(async move {
            sent.map_err(|_| StoreError::WriterGone)?;
            rx.await.map_err(|_| StoreError::WriterGone)?
        })
    }

    fn keyspace(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(format!("channel:{name}"))?)
    }

    fn expect_commit(&self) -> CommitHint {
        CommitHint::new(self.inner.announced.clone())
    }

    fn durable(&self) -> Durable {
        let (tx, rx) = oneshot::channel();
        let sent = self.inner.writer.as_ref().ok_or(()).and_then(|w| w.send(Job::Flush(tx)).map_err(|_| ()));
        Box::pin(async move {
            sent.map_err(|_| StoreError::WriterGone)?;
            rx.await.map_err(|_| StoreError::WriterGone)?
        })
    }
}

/// The writer thread's loop: takes one job, then every job queued behind it, applies their
/// changes in one transaction, flushes once, and answers them all.
fn write_loop(db: sled::Db, trees: Trees, jobs: mpsc::Receiver<Job>, announced: Arc<AtomicUsize>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        // A short look for company, then a longer wait only while commits are announced: a
        // lone visitor's message waits GRACE at most. The look is needed even with nothing
        // announced because the server's worker announces its next message only after it has
        // handed this one over, and on a busy core the writer wakes in that gap.
        let deadline = Instant::now() + COMMIT_WINDOW;
        let mut pause = GRACE;
        loop {
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            batch.extend(jobs.try_iter().take(MAX_BATCH - batch.len()));
            if announced.load(Ordering::SeqCst) == 0 || Instant::now() >= deadline || batch.len() >= MAX_BATCH {
                break;
            }
            pause = STEP;
        }
        let changes: Vec<&Change> = batch
            .iter()
            .filter_map(|j| match j {
                Job::Commit(c, _) => Some(c),
                Job::Flush(_) => None,
            })
            .collect();
        let applied = if changes.is_empty() { Ok(Vec::new()) } else { apply(&trees, &changes) };
        let flushed = db.flush().map(|_| ());
        let mut outcomes = applied.map(Vec::into_iter);
        for job in batch {
            match job {
                Job::Commit(_, reply) => {
                    let outcome = match &mut outcomes {
                        Ok(each) => each.next().expect("one outcome per change"),
                        Err(e) => Err(StoreError::Sled(e.clone())),
                    };
                    let _ = reply.send(flushed.clone().map_err(StoreError::Sled).and(outcome));
                }
                Job::Flush(reply) => {
                    let _ = reply.send(flushed.clone().map_err(StoreError::Sled));
                }
            }
        }
    }
}

/// Applies `changes` in order in one sled transaction. Each gets its own outcome: a change
/// whose conversation moved on since it was read (or whose stored record is unreadable) is
/// refused and writes nothing, and the others still apply. A storage error fails them all.
fn apply(t: &Trees, changes: &[&Change]) -> Result<Vec<Result<Vec<Message>, StoreError>>, sled::Error> {
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
            let mut outcomes = Vec::with_capacity(changes.len());
            for change in changes {
                let mut stored = Vec::with_capacity(change.messages.len());
                if let Some(conv) = &change.conversation {
                    let mut conv = conv.clone();
                    // The caller serialises steps per conversation; a mismatch means two
                    // writers raced, and appending would break the sequence.
                    if let Some(old) = conversations.get(conv.id.as_bytes())? {
                        match decode::<Conversation>(conv.id.as_bytes(), &old) {
                            Ok(old) if old.last_seq == conv.last_seq => {}
                            Ok(_) => {
                                outcomes.push(Err(StoreError::Conflict(conv.id.clone())));
                                continue;
                            }
                            Err(e) => {
                                outcomes.push(Err(e));
                                continue;
                            }
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
                    // One rating per resolution: a second one for the same handoff replaces it.
                    let which = r.handoff.map_or_else(|| r.at_ms.to_string(), |h| format!("handoff-{h}"));
                    ratings.insert(pair_key(&r.conversation, &which), encode(r))?;
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
                outcomes.push(Ok(stored));
            }
            TxResult::Ok(outcomes)
        },
    );
    result.map_err(|e| match e {
        TransactionError::Abort(never) => match never {},
        TransactionError::Storage(e) => e,
    })
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
                .await
                .unwrap();
            assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
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

    #[tokio::test]
    async fn a_stale_conversation_is_refused_not_interleaved() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let conv = conversation("c1");
        store.commit(Change { conversation: Some(conv.clone()), messages: vec![NewMessage::system("a")], ..Default::default() }).await.unwrap();
        // `conv` still says last_seq 0: a second writer working from an old copy.
        let err = store.commit(Change { conversation: Some(conv), messages: vec![NewMessage::system("b")], ..Default::default() }).await;
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
        assert_eq!(store.messages("c1", 0, 10).unwrap().len(), 1);
    }

    /// Changes sent together share one transaction, yet each gets its own outcome: a stale
    /// one is refused and writes nothing, while the ones around it apply and count.
    #[tokio::test]
    async fn a_refused_change_does_not_take_its_batch_down() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.commit(Change { conversation: Some(conversation("stale")), messages: vec![NewMessage::system("a")], ..Default::default() }).await.unwrap();
        // Sent before any is awaited, so the writer finds them queued together.
        let pending: Vec<_> = (0..50)
            .map(|i| {
                let id = if i == 25 { "stale".to_string() } else { format!("c{i}") };
                let messages = vec![NewMessage::visitor(&format!("问题{i}"), None), NewMessage::system("答")];
                store.commit(Change { conversation: Some(conversation(&id)), messages, at_ms: 3_600_000, ..Default::default() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for p in pending {
            outcomes.push(p.await);
        }
        for (i, outcome) in outcomes.iter().enumerate() {
            if i == 25 {
                assert!(matches!(outcome, Err(StoreError::Conflict(id)) if id == "stale"), "{outcome:?}");
            } else {
                let stored = outcome.as_ref().unwrap();
                assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2], "change {i}");
                assert_eq!(store.messages(&format!("c{i}"), 0, 10).unwrap()[0].text, format!("问题{i}"));
            }
        }
        assert_eq!(store.messages("stale", 0, 10).unwrap().len(), 1);
        // 49 visitor messages in hour 1, each counted once although they shared a key.
        assert_eq!(store.counters().unwrap().messages_per_hour, vec![(1, 49)]);
    }
}
