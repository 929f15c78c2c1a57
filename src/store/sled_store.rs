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

use super::history;
use super::report::{self, Before, HourCounts, Marks, NameKind, Span, Tally};
use super::{Change, CommitHint, Committed, Counters, Durable, Feedback, Hits, HistoryQuery, Session, Store, StoreError, Summary, Update};
use crate::dialogue::{Conversation, Message};
use crate::handoff::{Agent, Handoff, HandoffStatus, Priority, Rating, Ticket};

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
    /// `agent \0 handoff id` for every assigned handoff: an agent's load without a scan.
    assigned: sled::Tree,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        match e {
            // The disk refused (full, read-only): for now, not for good.
            sled::Error::Io(e) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Failed(other.to_string()),
        }
    }
}

/// Queue keys sort by priority, then arrival, then id: the queue's order.
fn queue_key(h: &Handoff) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = match h.priority {
        Priority::High => 0,
        Priority::Normal => 1,
    };
    key[1..9].copy_from_slice(&h.created_ms.to_be_bytes());
    key[9..17].copy_from_slice(&h.id.to_be_bytes());
    key
}

fn assigned_key(agent: &str, id: u64) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Marks a store whose `assigned` index is complete (older stores are indexed at open).
const ASSIGNED_INDEXED: &[u8] = b"index:assigned";

/// History summaries live in the counters tree under this prefix: sled's transactions take
/// at most 14 trees, and every step already writes that many.
const HISTORY: &[u8] = b"hist:";
/// Marks a store whose history index is complete (older stores are indexed at open).
const HISTORY_INDEXED: &[u8] = b"index:history";

/// History keys sort newest first (the start time inverted), then by id.
fn history_key(created_ms: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(HISTORY.len() + 8 + id.len());
    key.extend_from_slice(HISTORY);
    key.extend_from_slice(&(u64::MAX - created_ms).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The (start, id) a history key stands for.
fn history_position(key: &[u8]) -> (u64, String) {
    let ms = u64::MAX - be_u64(&key[HISTORY.len()..HISTORY.len() + 8]);
    (ms, String::from_utf8_lossy(&key[HISTORY.len() + 8..]).into_owned())
}

fn history_bound(created_ms: u64) -> Vec<u8> {
    history_key(created_ms, "")
}

/// The SLA watch's index: `tdue:` + when a ticket's next SLA clock runs out + its id, for
/// every ticket with a clock running.
const TICKET_DUE: &[u8] = b"tdue:";
/// Marks a store whose due index is complete (older stores are indexed at open).
const TICKET_DUE_INDEXED: &[u8] = b"index:ticket-due";

fn ticket_due_key(t: &Ticket) -> Option<Vec<u8>> {
    let due = t.next_due()?;
    Some([TICKET_DUE, &due.to_be_bytes()[..], &t.id.to_be_bytes()[..]].concat())
}

/// The history text index: one empty-valued key per (term, summary), `hterm:` + the term
/// (`history::terms`) + 0xFF (which UTF-8 never holds, so one term's postings never run
/// into a longer term's) + the summary's position (its history key without the prefix). A
/// term's postings thus sort newest first, as the summaries do, and a search intersects
/// them by seeking.
const TERMS: &[u8] = b"hterm:";
/// Marks a store whose text index is complete (older stores are indexed at open).
const TERMS_INDEXED: &[u8] = b"index:history-terms-2";

fn term_prefix(term: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(TERMS.len() + term.len() + 1);
    key.extend_from_slice(TERMS);
    key.extend_from_slice(term.as_bytes());
    key.push(0xFF);
    key
}

/// The postings a summary gains over the terms it `had` (`history::summary_terms`: text
/// only grows and a conversation's start never changes, so postings are only ever added; one
/// left behind by a changed name or user only brings a candidate the check turns down).
fn new_postings(had: &std::collections::BTreeSet<String>, after: &Summary) -> Vec<Vec<u8>> {
    let position = history_key(after.created_ms, &after.id);
    history::summary_terms(after)
        .difference(had)
        .map(|term| {
            let mut key = term_prefix(term);
            key.extend_from_slice(&position[HISTORY.len()..]);
            key
        })
        .collect()
}

fn encode_summary(s: &Summary) -> Vec<u8> {
    postcard::to_allocvec(s).expect("summaries always serialise")
}

fn decode_summary(key: &[u8], bytes: &[u8]) -> Result<Summary, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })
}

fn record_tree(space: &str) -> String {
    format!("channel:{space}")
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
            assigned: tree("assigned")?,
        };
        if trees.counters.get(ASSIGNED_INDEXED)?.is_none() {
            for kv in trees.handoffs.iter() {
                let (k, v) = kv?;
                let h: Handoff = decode(&k, &v)?;
                if let (HandoffStatus::Assigned, Some(agent)) = (&h.status, &h.agent) {
                    trees.assigned.insert(assigned_key(agent, h.id), &h.id.to_be_bytes())?;
                }
            }
            trees.counters.insert(ASSIGNED_INDEXED, &[1])?;
            db.flush()?;
        }
        if trees.counters.get(NAMES_BY_DAY)?.is_none() {
            index_names_by_day(&trees.counters)?;
            db.flush()?;
        }
        if trees.counters.get(HISTORY_INDEXED)?.is_none() {
            index_history(&trees)?;
            trees.counters.insert(HISTORY_INDEXED, &[1])?;
            db.flush()?;
        }
        if trees.counters.get(TICKET_DUE_INDEXED)?.is_none() {
            for kv in trees.tickets.iter() {
                let (k, v) = kv?;
                if let Some(key) = ticket_due_key(&decode::<Ticket>(&k, &v)?) {
                    trees.counters.insert(key, &[])?;
                }
            }
            trees.counters.insert(TICKET_DUE_INDEXED, &[1])?;
            db.flush()?;
        }
        if trees.counters.get(TERMS_INDEXED)?.is_none() {
            index_history_terms(&trees.counters)?;
            trees.counters.insert(TERMS_INDEXED, &[1])?;
            db.flush()?;
        }
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
            .map_err(|e| StoreError::Failed(format!("cannot start the writer thread: {e}")))?;
        let inner = Inner { db, trees, writer: Some(writer), writer_thread: Some(writer_thread), announced };
        Ok(SledStore { inner: Arc::new(inner) })
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        tree.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// Queued handoffs from queue key `from` on.
    fn queued_from(&self, from: &[u8]) -> Result<Vec<Handoff>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.trees.queue.range(from.to_vec()..) {
            let (_, id) = kv?;
            if let Some(h) = Self::get::<Handoff>(&self.inner.trees.handoffs, &id)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// A text search through the text index: the summaries whose postings hold every one
    /// of `terms`, between the history keys `start` (inclusive) and `end` (exclusive),
    /// found by a leapfrog intersection (each list is sought to the furthest position any
    /// list has reached, so the lists' common positions come out in order and long runs
    /// that one of them lacks are skipped in one seek), then checked by `Summary::matches`.
    /// The budget counts seeks and candidates.
    fn search_terms(&self, q: &HistoryQuery, terms: &[String], start: &[u8], end: &[u8]) -> Result<Hits, StoreError> {
        let counters = &self.inner.trees.counters;
        let prefixes: Vec<Vec<u8>> = terms.iter().map(|t| term_prefix(t)).collect();
        // Positions are history keys without their prefix; `end` may be the prefix's end.
        let until = end.strip_prefix(HISTORY).filter(|rest| !rest.is_empty());
        let mut cur = start.get(HISTORY.len()..).unwrap_or_default().to_vec();
        // Whether `cur` is a stored position (it is not at the start, nor just after a
        // candidate), and the last stored position known to be behind the search: every
        // position before `cur` has been decided, so a budget stop continues after it.
        let (mut cur_stored, mut done) = (false, None);
        let (mut agree, mut spent, mut out) = (0, 0, Vec::new());
        let position = |p: &[u8]| history_position(&[HISTORY, p].concat());
        for list in (0..prefixes.len()).cycle() {
            if q.budget > 0 && spent >= q.budget && done.is_some() {
                return Ok(Hits { summaries: out, stopped_at: done });
            }
            spent += 1;
            let prefix = &prefixes[list];
            let Some(kv) = counters.range([prefix.as_slice(), &cur].concat()..).next() else { break };
            let (key, _) = kv?;
            let Some(next) = key.strip_prefix(prefix.as_slice()) else { break };
            if until.is_some_and(|u| next >= u) {
                break;
            }
            if next != cur.as_slice() {
                if cur_stored {
                    done = Some(position(&cur));
                }
                cur = next.to_vec();
                cur_stored = true;
                agree = 0;
            }
            agree += 1;
            if agree < prefixes.len() {
                continue;
            }
            let key = [HISTORY, &cur].concat();
            if let Some(v) = counters.get(&key)? {
                let s = decode_summary(&key, &v)?;
                if s.matches(q) {
                    out.push(s);
                    if out.len() >= q.limit {
                        break;
                    }
                }
            }
            done = Some(position(&cur));
            // On to the first position after this one.
            cur.push(0);
            (cur_stored, agree) = (false, 0);
        }
        Ok(Hits { summaries: out, stopped_at: None })
    }

    /// A visitor search: the conversation of that id, the verified user's conversations
    /// (their postings, few), and the visitors whose name holds `v` (`name` pairs, through
    /// [`Self::search_terms`]), merged in the history's order.
    fn search_visitor(&self, q: &HistoryQuery, v: &str, name: &[String], start: &[u8], end: &[u8]) -> Result<Hits, StoreError> {
        let counters = &self.inner.trees.counters;
        let mut named = self.search_terms(q, name, start, end)?;
        let mut exact: Vec<Vec<u8>> = Vec::new();
        if let Some(conv) = Self::get::<Conversation>(&self.inner.trees.conversations, v.as_bytes())? {
            exact.push(history_key(conv.created_ms, &conv.id));
        }
        let user = term_prefix(&history::user_term(v));
        for kv in counters.scan_prefix(&user) {
            exact.push([HISTORY, &kv?.0[user.len()..]].concat());
        }
        // Only what lies in the range, and before where the name search stopped (past it,
        // the next request finds them in order).
        let stop = named.stopped_at.as_ref().map(|(ms, id)| history_key(*ms, id));
        for key in exact {
            if key.as_slice() < start || key.as_slice() >= end || stop.as_ref().is_some_and(|s| key > *s) {
                continue;
            }
            if let Some(bytes) = counters.get(&key)? {
                let s = decode_summary(&key, &bytes)?;
                if s.matches(q) && !named.summaries.iter().any(|n| n.id == s.id) {
                    named.summaries.push(s);
                }
            }
        }
        named.summaries.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        if named.summaries.len() >= q.limit {
            named.summaries.truncate(q.limit);
            named.stopped_at = None;
        }
        Ok(named)
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        tree.iter().map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        }).collect()
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        Self::get(&self.inner.trees.conversations, id.as_bytes())
    }

    async fn messages(&self, conversation: &str, after: u64, limit: usize) -> Result<Vec<Message>, StoreError> {
        let start = message_key(conversation, after.saturating_add(1));
        let end = message_key(conversation, u64::MAX);
        self.inner.trees.messages.range(start..=end).take(limit).map(|kv| {
            let (k, v) = kv?;
            decode(&k, &v)
        }).collect()
    }

    async fn message_by_client_id(&self, conversation: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
        let Some(seq) = self.inner.trees.client_ids.get(pair_key(conversation, client_id))? else { return Ok(None) };
        let seq = be_u64(&seq);
        Self::get(&self.inner.trees.messages, &message_key(conversation, seq))
    }

    async fn conversation_of_user(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.inner.trees.identities.get(user_id.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn handoff(&self, id: u64) -> Result<Option<Handoff>, StoreError> {
        Self::get(&self.inner.trees.handoffs, &id.to_be_bytes())
    }

    async fn queue(&self) -> Result<Vec<Handoff>, StoreError> {
        self.queued_from(&[])
    }

    async fn queue_ahead(&self, handoff: &Handoff) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.inner.trees.queue.range(..queue_key(handoff).to_vec()).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    async fn queue_from(&self, handoff: &Handoff) -> Result<Vec<Handoff>, StoreError> {
        self.queued_from(&queue_key(handoff))
    }

    async fn assigned(&self, agent: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        let prefix = agent.map(|a| assigned_key(a, 0)[..a.len() + 1].to_vec()).unwrap_or_default();
        let mut out = Vec::new();
        for kv in self.inner.trees.assigned.scan_prefix(prefix) {
            let (_, id) = kv?;
            if let Some(h) = Self::get::<Handoff>(&self.inner.trees.handoffs, &id)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    async fn handoffs(&self) -> Result<Vec<Handoff>, StoreError> {
        Self::all(&self.inner.trees.handoffs)
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        Self::get(&self.inner.trees.agents, id.as_bytes())
    }

    async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        Self::all(&self.inner.trees.agents)
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Self::get(&self.inner.trees.sessions, token_hash.as_bytes())
    }

    async fn tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        Self::all(&self.inner.trees.tickets)
    }

    async fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError> {
        Self::get(&self.inner.trees.tickets, &id.to_be_bytes())
    }

    async fn tickets_due(&self, limit: usize) -> Result<Vec<(crate::dialogue::Millis, u64)>, StoreError> {
        self.inner.trees.counters.scan_prefix(TICKET_DUE).take(limit).map(|kv| {
            let (k, _) = kv?;
            let rest = &k[TICKET_DUE.len()..];
            Ok((be_u64(&rest[..8]), be_u64(&rest[8..])))
        }).collect()
    }

    async fn ratings(&self) -> Result<Vec<Rating>, StoreError> {
        Self::all(&self.inner.trees.ratings)
    }

    async fn feedback(&self) -> Result<Vec<Feedback>, StoreError> {
        Self::all(&self.inner.trees.feedback)
    }

    async fn unanswered(&self, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
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

    async fn counters(&self) -> Result<Counters, StoreError> {
        let mut messages_per_hour = Vec::new();
        for kv in self.inner.trees.counters.scan_prefix(b"msg:") {
            let (k, v) = kv?;
            let hour = be_u64(&k[4..]);
            messages_per_hour.push((hour, be_u64(&v)));
        }
        Ok(Counters { messages_per_hour })
    }

    async fn report_hours(&self, from_hour: u64, until_hour: u64) -> Result<Vec<HourCounts>, StoreError> {
        self.report_hours_sync(from_hour, until_hour)
    }

    async fn report_totals(&self) -> Result<Vec<HourCounts>, StoreError> {
        self.report_rows(report_key(report::ALL_TIME, ""), report_key(report::ALL_TIME + 1, ""))
    }

    async fn report_names(&self, kind: NameKind, from_hour: u64, until_hour: u64, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        self.report_names_sync(kind, from_hour, until_hour, limit)
    }

    async fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        Self::all(&self.inner.trees.conversations)
    }

    async fn search_history(&self, q: &HistoryQuery) -> Result<Hits, StoreError> {
        let counters = &self.inner.trees.counters;
        let mut start = match q.to_ms {
            Some(t) => history_bound(t.saturating_sub(1)),
            None => HISTORY.to_vec(),
        };
        if let Some((ms, id)) = &q.before {
            let mut after = history_key(*ms, id);
            after.push(0);
            start = start.max(after);
        }
        let end = match q.from_ms {
            Some(0) | None => b"hist;".to_vec(),
            Some(f) => history_bound(f - 1),
        };
        if start >= end {
            return Ok(Hits::default());
        }
        let terms = q.text.as_deref().map(history::query_terms).unwrap_or_default();
        if !terms.is_empty() {
            return self.search_terms(q, &terms, &start, &end);
        }
        if let Some(v) = q.visitor.as_deref() {
            let name: Vec<String> = history::query_terms(v).into_iter().map(|p| format!("\u{2}{p}")).collect();
            if !name.is_empty() {
                return self.search_visitor(q, v, &name, &start, &end);
            }
        }
        // postcard writes strings as they are: a summary without the searched text, visitor
        // or agent bytes anywhere in it cannot match, and is skipped before decoding (most
        // of a search's time is decoding).
        let needles: Vec<memchr::memmem::Finder<'_>> = [q.text.as_deref(), q.visitor.as_deref(), q.agent.as_deref()]
            .into_iter()
            .flatten()
            .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
            .collect();
        let mut out = Vec::new();
        let mut last = None;
        // Iterating is most of the cost (about 3 µs a summary on this machine): the budget
        // bounds one request, and the caller continues from where it stopped.
        for (examined, kv) in counters.range(start..end).enumerate() {
            let (k, v) = kv?;
            if q.budget > 0 && examined == q.budget {
                // Stopped before this one: the last one examined is where to go on from.
                return Ok(Hits { summaries: out, stopped_at: last });
            }
            last = Some(history_position(&k));
            if needles.iter().any(|f| f.find(&v).is_none()) {
                continue;
            }
            let s = decode_summary(&k, &v)?;
            if s.matches(q) {
                out.push(s);
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(Hits { summaries: out, stopped_at: None })
    }

    async fn summary(&self, conversation: &str) -> Result<Option<Summary>, StoreError> {
        let Some(conv) = Self::get::<Conversation>(&self.inner.trees.conversations, conversation.as_bytes())? else { return Ok(None) };
        let key = history_key(conv.created_ms, &conv.id);
        self.inner.trees.counters.get(&key)?.map(|v| decode_summary(&key, &v)).transpose()
    }

    async fn conversation_count(&self) -> Result<usize, StoreError> {
        Ok(self.inner.trees.conversations.len())
    }

    fn announce(&self, _note: String) {
        // One node: nobody else to tell.
    }

    fn notes(&self) -> Option<tokio::sync::broadcast::Receiver<Arc<str>>> {
        None
    }

    fn backend(&self) -> &'static str {
        "sled"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.trees.counters.get(ASSIGNED_INDEXED)?;
        // A full disk fails the flush that every acknowledgement waits for.
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.durable()).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("the store did not flush within 2 s".into())),
        }
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
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

    async fn record(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.db.open_tree(record_tree(space))?.get(key)?.map(|v| v.to_vec()))
    }

    async fn set_record(&self, space: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(record_tree(space))?;
        match value {
            Some(v) => tree.insert(key, v)?,
            None => tree.remove(key)?,
        };
        Ok(())
    }

    async fn claim_record(&self, space: &str, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let tree = self.inner.db.open_tree(record_tree(space))?;
        Ok(tree.compare_and_swap(key, None as Option<&[u8]>, Some(value))?.is_ok())
    }

    async fn update_record(&self, space: &str, key: &str, update: Update<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let tree = self.inner.db.open_tree(record_tree(space))?;
        let mut failed = None;
        let stored = tree.update_and_fetch(key, |old| match update(old) {
            Ok(new) => new,
            Err(e) => {
                // Keep the record as it was; report why.
                failed = Some(e);
                old.map(<[u8]>::to_vec)
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(stored.map(|v| v.to_vec())),
        }
    }

    async fn records(&self, space: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tree = self.inner.db.open_tree(record_tree(space))?;
        Self::record_pairs(space, tree.scan_prefix(prefix))
    }

    async fn first_records(&self, space: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tree = self.inner.db.open_tree(record_tree(space))?;
        Self::record_pairs(space, tree.iter().take(limit))
    }
}

impl SledStore {
    fn record_pairs(space: &str, pairs: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        pairs
            .map(|kv| {
                let (k, v) = kv?;
                let key = String::from_utf8(k.to_vec())
                    .map_err(|_| StoreError::Corrupt { key: format!("{space}/{}", String::from_utf8_lossy(&k)), reason: "the key is not UTF-8".into() })?;
                Ok((key, v.to_vec()))
            })
            .collect()
    }
}

/// Builds the history index of a store written before it existed: each conversation's
/// summary from its messages, handoffs, tickets and ratings (once, at open).
fn index_history(t: &Trees) -> Result<(), StoreError> {
    let mut handoffs: std::collections::HashMap<String, Vec<Handoff>> = Default::default();
    for kv in t.handoffs.iter() {
        let (k, v) = kv?;
        let h: Handoff = decode(&k, &v)?;
        handoffs.entry(h.conversation.clone()).or_default().push(h);
    }
    let mut tickets: std::collections::HashMap<String, Ticket> = Default::default();
    for kv in t.tickets.iter() {
        let (k, v) = kv?;
        let ticket: Ticket = decode(&k, &v)?;
        tickets.insert(ticket.conversation.clone(), ticket);
    }
    let mut ratings: std::collections::HashMap<String, Rating> = Default::default();
    for kv in t.ratings.iter() {
        let (k, v) = kv?;
        let r: Rating = decode(&k, &v)?;
        ratings.insert(r.conversation.clone(), r);
    }
    for kv in t.conversations.iter() {
        let (k, v) = kv?;
        let conv: Conversation = decode(&k, &v)?;
        let mut stored = Vec::new();
        let mut prefix = conv.id.as_bytes().to_vec();
        prefix.push(0);
        for kv in t.messages.scan_prefix(prefix) {
            let (k, v) = kv?;
            stored.push(decode::<Message>(&k, &v)?);
        }
        let change = Change {
            handoffs: handoffs.remove(&conv.id).unwrap_or_default(),
            ticket: tickets.remove(&conv.id),
            rating: ratings.remove(&conv.id),
            at_ms: conv.updated_ms,
            ..Default::default()
        };
        t.counters.insert(history_key(conv.created_ms, &conv.id), encode_summary(&Summary::after(None, &conv, &change, &stored)))?;
    }
    Ok(())
}

/// Adds the text index to a store whose summaries were written before it existed (once, at
/// open; postings are idempotent, so an open interrupted halfway simply starts over).
fn index_history_terms(counters: &sled::Tree) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for kv in counters.scan_prefix(HISTORY) {
        let (k, v) = kv?;
        let Ok(summary) = decode_summary(&k, &v) else { continue };
        for posting in new_postings(&Default::default(), &summary) {
            batch.insert(posting, &[]);
            pending += 1;
        }
        if pending >= 100_000 {
            counters.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    counters.apply_batch(batch)?;
    Ok(())
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
        let applied = if changes.is_empty() { Ok(Vec::new()) } else { record_trees(&db, &changes).and_then(|extra| apply(&trees, &changes, &extra)) };
        let flushed = db.flush().map(|_| ());
        let mut outcomes = applied.map(Vec::into_iter);
        for job in batch {
            match job {
                Job::Commit(_, reply) => {
                    let outcome = match &mut outcomes {
                        Ok(each) => each.next().expect("one outcome per change"),
                        Err(e) => Err(StoreError::from(e.clone())),
                    };
                    let _ = reply.send(flushed.clone().map_err(StoreError::from).and(outcome));
                }
                Job::Flush(reply) => {
                    let _ = reply.send(flushed.clone().map_err(StoreError::from));
                }
            }
        }
    }
}

/// The record trees (one per space) that a batch's changes write records in, by space.
fn record_trees(db: &sled::Db, changes: &[&Change]) -> Result<Vec<(String, sled::Tree)>, sled::Error> {
    let mut out: Vec<(String, sled::Tree)> = Vec::new();
    for r in changes.iter().flat_map(|c| &c.records) {
        if !out.iter().any(|(space, _)| *space == r.space) {
            out.push((r.space.clone(), db.open_tree(record_tree(&r.space))?));
        }
    }
    Ok(out)
}

/// Applies `changes` in order in one sled transaction. Each gets its own outcome: a change
/// whose conversation moved on since it was read (or whose stored record is unreadable) is
/// refused and writes nothing, and the others still apply. A storage error fails them all.
/// `extra`: the record trees of the changes' records (see [`record_trees`]).
fn apply(t: &Trees, changes: &[&Change], extra: &[(String, sled::Tree)]) -> Result<Vec<Result<Vec<Message>, StoreError>>, sled::Error> {
    // A slice, not a tuple: tuples stop at 14 trees, and the record trees come on top.
    let mut trees: Vec<&sled::Tree> = vec![
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
        &t.assigned,
    ];
    trees.extend(extra.iter().map(|(_, tree)| tree));
    let result = trees.as_slice().transaction(
        |tx: &Vec<TransactionalTree>| {
            let [conversations, messages, client_ids, identities, handoffs, queue, agents, sessions, tickets, ratings, feedback, unanswered, counters, assigned] =
                <&[TransactionalTree; 14]>::try_from(&tx[..14]).expect("the 14 fixed trees come first");
            let record_txs = &tx[14..];
            let mut outcomes = Vec::with_capacity(changes.len());
            // The report counters of the whole batch, written once at its end.
            let mut tally = Tally::default();
            for change in changes {
                let mut stored = Vec::with_capacity(change.messages.len());
                let before = match read_before(change, counters, handoffs, tickets, ratings, feedback)? {
                    Ok(b) => b,
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
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
                    for message in change.number(&mut conv) {
                        messages.insert(message_key(&conv.id, message.seq), encode(&message))?;
                        if let Some(cid) = &message.client_id {
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
                    let key = history_key(conv.created_ms, &conv.id);
                    // An unreadable summary is rebuilt from this step on rather than refusing it.
                    let previous = counters.get(&key)?.and_then(|v| decode_summary(&key, &v).ok());
                    // The previous version's terms, not a copy of it: a summary holds up to
                    // 1 000 characters of text, and this runs in every step.
                    let had = previous.as_ref().map(history::summary_terms).unwrap_or_default();
                    let summary = Summary::after(previous, &conv, change, &stored);
                    for posting in new_postings(&had, &summary) {
                        counters.insert(posting, &[])?;
                    }
                    counters.insert(key, encode_summary(&summary))?;
                }
                for h in &change.handoffs {
                    let old = handoffs.insert(&h.id.to_be_bytes(), encode(h))?;
                    if h.status == HandoffStatus::Queued {
                        queue.insert(&queue_key(h), &h.id.to_be_bytes())?;
                    } else {
                        queue.remove(&queue_key(h))?;
                    }
                    // The index follows the handoff: off its old agent, onto its new one.
                    if let Some(Ok(old)) = old.map(|v| decode::<Handoff>(&h.id.to_be_bytes(), &v)) {
                        if let Some(agent) = &old.agent {
                            assigned.remove(assigned_key(agent, h.id))?;
                        }
                    }
                    if let (HandoffStatus::Assigned, Some(agent)) = (&h.status, &h.agent) {
                        assigned.insert(assigned_key(agent, h.id), &h.id.to_be_bytes())?;
                    }
                }
                if let Some(ticket) = &change.ticket {
                    let old = tickets.insert(&ticket.id.to_be_bytes(), encode(ticket))?;
                    // The due index follows the ticket: off its old due time, onto its new one.
                    if let Some(key) = old.and_then(|v| decode::<Ticket>(&ticket.id.to_be_bytes(), &v).ok()).and_then(|t| ticket_due_key(&t)) {
                        counters.remove(key)?;
                    }
                    if let Some(key) = ticket_due_key(ticket) {
                        counters.insert(key, &[])?;
                    }
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
                for r in &change.records {
                    let i = extra.iter().position(|(space, _)| *space == r.space).expect("every record's tree was opened");
                    match &r.value {
                        Some(v) => record_txs[i].insert(r.key.as_bytes(), v.as_slice())?,
                        None => record_txs[i].remove(r.key.as_bytes())?,
                    };
                }
                let (counts, marks) = report::derive(change, &before);
                for (id, m) in marks {
                    counters.insert(mark_key(&id), encode(&m))?;
                }
                tally.merge(counts);
                outcomes.push(Ok(stored));
            }
            write_tally(&tally, counters, unanswered, changes.last().map_or(0, |c| c.at_ms))?;
            TxResult::Ok(outcomes)
        },
    );
    result.map_err(|e| match e {
        TransactionError::Abort(never) => match never {},
        TransactionError::Storage(e) => e,
    })
}

// The report aggregates live in the `counters` tree under their own prefixes (sled's
// transactions take at most 14 trees, and the store already uses 14):
//   rep: hour scope    → the JSON counts of that hour and scope (hour ALL_TIME: all time)
//   mrk: conversation  → its report marks
//   nam: kind hour name → a big-endian count (answers per article, unanswered questions)
//   ans: question      → when a once-unanswered question was answered (it left the lists)
const REPORT: &[u8] = b"rep:";
const MARKS: &[u8] = b"mrk:";
const NAMES: &[u8] = b"nam:";
const ANSWERED: &[u8] = b"ans:";

fn prefixed(prefix: &[u8], rest: &[&[u8]]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    for r in rest {
        key.extend_from_slice(r);
    }
    key
}

fn report_key(hour: u64, scope: &str) -> Vec<u8> {
    prefixed(REPORT, &[&hour.to_be_bytes(), scope.as_bytes()])
}

fn mark_key(conversation: &str) -> Vec<u8> {
    prefixed(MARKS, &[conversation.as_bytes()])
}

fn kind_byte(kind: NameKind, span: Span) -> u8 {
    match (kind, span) {
        (NameKind::Article, Span::Hour) => b'a',
        (NameKind::Question, Span::Hour) => b'q',
        (NameKind::Article, Span::Day) => b'A',
        (NameKind::Question, Span::Day) => b'Q',
    }
}

fn name_key(kind: NameKind, span: Span, hour: u64, name: &str) -> Vec<u8> {
    prefixed(NAMES, &[&[kind_byte(kind, span)], &hour.to_be_bytes(), name.as_bytes()])
}

/// Marks a store whose named counters have their day buckets (older stores add them at open).
const NAMES_BY_DAY: &[u8] = b"index:names-by-day";

/// Adds the day buckets of every hour bucket of the named counters (a store written before
/// they existed), in one atomic batch.
fn index_names_by_day(counters: &sled::Tree) -> Result<(), StoreError> {
    let mut days: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
    for kv in counters.scan_prefix(NAMES) {
        let (k, v) = kv?;
        let kind = match k.get(NAMES.len()) {
            Some(b'a') => NameKind::Article,
            Some(b'q') => NameKind::Question,
            _ => continue,
        };
        let hour = be_u64(&k[NAMES.len() + 1..NAMES.len() + 9]);
        let day = (hour - hour % 24).to_be_bytes();
        let key = prefixed(NAMES, &[&[kind_byte(kind, Span::Day)], &day, &k[NAMES.len() + 9..]]);
        *days.entry(key).or_default() += be_u64(&v);
    }
    let mut batch = sled::Batch::default();
    for (k, n) in days {
        batch.insert(k, &n.to_be_bytes());
    }
    // Seals summarise day rows: rebuilt rows make them stale.
    for kv in counters.scan_prefix(SEALED) {
        batch.remove(kv?.0);
    }
    batch.insert(NAMES_BY_DAY, &[1]);
    counters.apply_batch(batch)?;
    Ok(())
}

/// What the report derivation needs from before the change (read inside its transaction, so
/// earlier changes of the batch are seen). An unreadable record refuses the change.
fn read_before(
    change: &Change,
    counters: &TransactionalTree,
    handoffs: &TransactionalTree,
    tickets: &TransactionalTree,
    ratings: &TransactionalTree,
    feedback: &TransactionalTree,
) -> TxResult<Result<Before, StoreError>> {
    let mut before = Before::default();
    for id in report::touched(change) {
        let key = mark_key(&id);
        if let Some(v) = counters.get(&key)? {
            match decode::<Marks>(&key, &v) {
                Ok(m) => before.marks.insert(id, m),
                Err(e) => return Ok(Err(e)),
            };
        }
    }
    for h in &change.handoffs {
        let key = h.id.to_be_bytes();
        if let Some(v) = handoffs.get(key)? {
            match decode::<Handoff>(&key, &v) {
                Ok(old) => before.handoffs.insert(h.id, old),
                Err(e) => return Ok(Err(e)),
            };
        }
    }
    if let Some(t) = &change.ticket {
        let key = t.id.to_be_bytes();
        if let Some(v) = tickets.get(key)? {
            match decode::<Ticket>(&key, &v) {
                Ok(old) => before.ticket = Some(old),
                Err(e) => return Ok(Err(e)),
            }
        }
        if !report::ticket_follows(t, before.ticket.as_ref()) {
            return Ok(Err(StoreError::TicketChanged(t.id)));
        }
    }
    if let Some(r) = &change.rating {
        let which = r.handoff.map_or_else(|| r.at_ms.to_string(), |h| format!("handoff-{h}"));
        let key = pair_key(&r.conversation, &which);
        if let Some(v) = ratings.get(&key)? {
            match decode::<Rating>(&key, &v) {
                Ok(old) => before.rating = Some(old),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    if let Some(f) = &change.feedback {
        let key = pair_key(&f.conversation, &f.seq.to_string());
        if let Some(v) = feedback.get(&key)? {
            match decode::<Feedback>(&key, &v) {
                Ok(old) => before.feedback = Some(old),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    Ok(Ok(before))
}

/// Adds a batch's report counters, and moves questions on or off the unanswered lists.
fn write_tally(tally: &Tally, counters: &TransactionalTree, unanswered: &TransactionalTree, at_ms: u64) -> TxResult<()> {
    for ((hour, scope), deltas) in tally.rows() {
        let key = report_key(hour, &scope);
        // A corrupt row restarts from zero rather than blocking every write after it.
        let mut counts: report::Counts = counters.get(&key)?.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default();
        for (c, n) in deltas {
            *counts.entry(c).or_default() += n;
        }
        counts.retain(|_, n| *n != 0);
        counters.insert(key, encode(&counts))?;
    }
    let sealable = hour_now().saturating_sub(1);
    for ((kind, span, hour, name), n) in tally.name_rows() {
        let key = name_key(kind, span, hour, name);
        let old = counters.get(&key)?.map_or(0, |v| be_u64(&v));
        counters.insert(key, &old.saturating_add_signed(n).to_be_bytes())?;
        if span == Span::Day && hour + 24 <= sealable {
            counters.remove(sealed_key(kind, hour))?;
        }
    }
    for q in &tally.unanswered {
        counters.remove(prefixed(ANSWERED, &[q.as_bytes()]))?;
    }
    for q in &tally.answered {
        // Only a question on the list leaves it (and is remembered as answered).
        if unanswered.remove(q.as_bytes())?.is_some() {
            counters.insert(prefixed(ANSWERED, &[q.as_bytes()]), &at_ms.to_be_bytes())?;
        }
    }
    Ok(())
}

impl SledStore {
    fn report_rows(&self, from: Vec<u8>, until: Vec<u8>) -> Result<Vec<HourCounts>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.trees.counters.range(from..until) {
            let (k, v) = kv?;
            let hour = be_u64(&k[REPORT.len()..REPORT.len() + 8]);
            let scope = String::from_utf8_lossy(&k[REPORT.len() + 8..]).into_owned();
            out.push(HourCounts { hour, scope, counts: decode(&k, &v)? });
        }
        Ok(out)
    }

    pub(super) fn report_hours_sync(&self, from_hour: u64, until_hour: u64) -> Result<Vec<HourCounts>, StoreError> {
        let until_hour = until_hour.min(report::ALL_TIME);
        if from_hour >= until_hour {
            return Ok(Vec::new());
        }
        self.report_rows(report_key(from_hour, ""), report_key(until_hour, ""))
    }

    pub(super) fn report_names_sync(&self, kind: NameKind, from_hour: u64, until_hour: u64, limit: usize) -> Result<Vec<(String, u64)>, StoreError> {
        let counters = &self.inner.trees.counters;
        let mut sums: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
        let mut add = |name: &[u8], n: u64| match sums.get_mut(name) {
            Some(sum) => *sum += n,
            None => {
                sums.insert(name.to_vec(), n);
            }
        };
        let skip = NAMES.len() + 9;
        let scan = |span: Span, from: u64, until: u64| counters.range(name_key(kind, span, from, "")..name_key(kind, span, until, ""));
        let sealable = hour_now().saturating_sub(1);
        for (span, from_hour, until_hour) in report::name_buckets(from_hour, until_hour) {
            if span == Span::Hour {
                for kv in scan(span, from_hour, until_hour) {
                    let (k, v) = kv?;
                    add(&k[skip..], be_u64(&v));
                }
                continue;
            }
            for day in (from_hour..until_hour).step_by(24) {
                let sealed = sealed_key(kind, day);
                if let Some(v) = counters.get(&sealed)? {
                    if let Ok(names) = postcard::from_bytes::<Vec<(&[u8], u64)>>(&v) {
                        for (name, n) in names {
                            add(name, n);
                        }
                        continue;
                    }
                }
                let mut names: Vec<(Vec<u8>, u64)> = Vec::new();
                for kv in scan(span, day, day + 24) {
                    let (k, v) = kv?;
                    names.push((k[skip..].to_vec(), be_u64(&v)));
                }
                for (name, n) in &names {
                    add(name, *n);
                }
                if day + 24 <= sealable {
                    let names: Vec<(&[u8], u64)> = names.iter().map(|(k, n)| (k.as_slice(), *n)).collect();
                    counters.insert(sealed, postcard::to_allocvec(&names).map_err(|e| StoreError::Failed(e.to_string()))?)?;
                }
            }
        }
        // Answered questions leave the list. That list is usually much shorter than the
        // names: read it once, unless it is longer (then look each name up).
        let mut answered = None;
        if kind == NameKind::Question {
            let mut set = std::collections::HashSet::new();
            for kv in counters.scan_prefix(ANSWERED).take(sums.len() + 1) {
                set.insert(kv?.0[ANSWERED.len()..].to_vec());
            }
            answered = (set.len() <= sums.len()).then_some(set);
        }
        let mut all = Vec::with_capacity(sums.len());
        for (name, n) in sums {
            let gone = match (&answered, kind) {
                (Some(set), _) => set.contains(&name),
                (None, NameKind::Question) => counters.contains_key(prefixed(ANSWERED, &[&name]))?,
                (None, NameKind::Article) => false,
            };
            if gone {
                continue;
            }
            all.push((String::from_utf8_lossy(&name).into_owned(), n));
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        Ok(all)
    }
}

/// Hours since the epoch, by this machine's clock.
fn hour_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64) / report::HOUR_MS
}

/// A day's named counters of one kind in one record, written by the first report that reads
/// the day once it has ended (an hour after, so that no step still in flight writes to it):
/// a 30-day report then reads 30 records per kind instead of every name of every day (20 000
/// distinct questions make ~90 000 day rows). A write to a sealed day (only a step whose
/// time is more than an hour old) removes the seal in its transaction.
const SEALED: &[u8] = b"nsd:";

fn sealed_key(kind: NameKind, day_hour: u64) -> Vec<u8> {
    prefixed(SEALED, &[&[kind_byte(kind, Span::Day)], &day_hour.to_be_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::{BotMeta, NewMessage};

    /// Opens the store again after dropping it: sled's flusher thread lets go of the
    /// directory's lock a moment after the last handle, so the open waits for that.
    fn reopen(dir: &Path) -> SledStore {
        for _ in 0..500 {
            match SledStore::open(dir) {
                Ok(s) => return s,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        SledStore::open(dir).expect("the store opens again")
    }

    /// A day that has ended is read from its sealed record; a late write to it unseals it.
    #[tokio::test]
    async fn a_sealed_day_gives_the_same_counts_and_a_late_write_unseals_it() {
        let dir = tempfile::tempdir().unwrap();
        let day = 491_808u64; // a whole UTC day, long ended
        let store = SledStore::open(dir.path()).unwrap();
        let ask = |i: u64, q: &str| {
            let at = (day + i) * report::HOUR_MS;
            let conv = Conversation::new(format!("c{i}"), vec![], Default::default(), at);
            Change { conversation: Some(conv), messages: vec![NewMessage::visitor(q, None)], unanswered: vec![q.into()], at_ms: at, ..Default::default() }
        };
        for (i, q) in [(1, "发票"), (5, "发票"), (9, "运费")] {
            store.commit(ask(i, q)).await.unwrap();
        }
        let want = vec![("发票".to_string(), 2), ("运费".to_string(), 1)];
        assert_eq!(store.report_names(NameKind::Question, day, day + 24, 10).await.unwrap(), want);
        assert!(store.inner.trees.counters.contains_key(sealed_key(NameKind::Question, day)).unwrap(), "the ended day is sealed");
        assert_eq!(store.report_names(NameKind::Question, day, day + 24, 10).await.unwrap(), want, "read from the seal");
        store.commit(ask(12, "运费")).await.unwrap();
        assert!(!store.inner.trees.counters.contains_key(sealed_key(NameKind::Question, day)).unwrap(), "a late write unseals it");
        let want = vec![("发票".to_string(), 2), ("运费".to_string(), 2)];
        assert_eq!(store.report_names(NameKind::Question, day, day + 24, 10).await.unwrap(), want);
        assert_eq!(store.report_names(NameKind::Question, day - 24, day + 48, 10).await.unwrap(), want, "sealed again");
    }

    /// A store whose summaries were written before the text index existed gains it at open.
    #[tokio::test]
    async fn an_older_store_gains_the_history_text_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let conv = Conversation::new("c1".into(), vec![], Default::default(), 1_000);
        let change = Change { conversation: Some(conv), messages: vec![NewMessage::visitor("洗衣机漏水了", None)], at_ms: 1_000, ..Default::default() };
        store.commit(change).await.unwrap();
        let q = HistoryQuery { text: Some(crate::text::normalize("漏水")), limit: 10, ..Default::default() };
        let found = |hits: Hits| hits.summaries.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(found(store.search_history(&q).await.unwrap()), ["c1"]);
        // Make it an older store: no postings, no marker.
        let counters = &store.inner.trees.counters;
        for kv in counters.scan_prefix(TERMS) {
            counters.remove(kv.unwrap().0).unwrap();
        }
        counters.remove(TERMS_INDEXED).unwrap();
        assert!(found(store.search_history(&q).await.unwrap()).is_empty(), "the postings are gone");
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(found(store.search_history(&q).await.unwrap()), ["c1"]);
    }

    /// A store whose tickets were written before the due index existed gains it at open.
    #[tokio::test]
    async fn an_older_store_gains_the_ticket_due_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut t = Ticket { id: 3, conversation: "c".into(), created_ms: 1_795_397_400_000, ..Default::default() };
        t.open("visitor", &crate::handoff::SlaPolicies::default(), &crate::handoff::BusinessHours::default());
        store.commit(Change { ticket: Some(t.clone()), at_ms: t.created_ms, ..Default::default() }).await.unwrap();
        let want = vec![(t.next_due().unwrap(), 3)];
        assert_eq!(store.tickets_due(10).await.unwrap(), want);
        let counters = &store.inner.trees.counters;
        for kv in counters.scan_prefix(TICKET_DUE) {
            counters.remove(kv.unwrap().0).unwrap();
        }
        counters.remove(TICKET_DUE_INDEXED).unwrap();
        assert!(store.tickets_due(10).await.unwrap().is_empty());
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.tickets_due(10).await.unwrap(), want);
    }

    /// A store written before named counters had day buckets gains them at open.
    #[tokio::test]
    async fn an_older_store_gains_the_day_buckets_of_its_named_counters() {
        let dir = tempfile::tempdir().unwrap();
        let hour = 491_808u64; // a whole UTC day
        let store = SledStore::open(dir.path()).unwrap();
        for (i, article) in ["refund", "refund", "invoice"].into_iter().enumerate() {
            let at = (hour + 3 * i as u64) * report::HOUR_MS;
            let conv = Conversation::new(format!("c{i}"), vec![], Default::default(), at);
            let answer = NewMessage::bot(
                "……",
                BotMeta {
                    kind: "answer".into(),
                    article: Some(article.into()),
                    ..Default::default()
                },
            );
            store
                .commit(Change {
                    conversation: Some(conv),
                    messages: vec![answer],
                    at_ms: at,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let want = vec![("refund".to_string(), 2), ("invoice".to_string(), 1)];
        assert_eq!(
            store
                .report_names(NameKind::Article, hour, hour + 48, 10)
                .await
                .unwrap(),
            want
        );
        // Make it an older store: no day buckets, no marker.
        let counters = &store.inner.trees.counters;
        for prefix in [prefixed(NAMES, &[b"A"]), SEALED.to_vec()] {
            for kv in counters.scan_prefix(prefix) {
                counters.remove(kv.unwrap().0).unwrap();
            }
        }
        counters.remove(NAMES_BY_DAY).unwrap();
        assert_eq!(
            store
                .report_names(NameKind::Article, hour, hour + 48, 10)
                .await
                .unwrap(),
            vec![],
            "the days are gone"
        );
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(
            store
                .report_names(NameKind::Article, hour, hour + 48, 10)
                .await
                .unwrap(),
            want
        );
        assert_eq!(
            store
                .report_names(NameKind::Article, hour + 2, hour + 48, 10)
                .await
                .unwrap(),
            vec![("invoice".to_string(), 1), ("refund".to_string(), 1)]
        );
    }
}
