//! One conformance suite for [`Store`], run on every backend: sled in a temp directory and a
//! fresh database on a real PostgreSQL server started for the tests. Each check is written
//! once against `dyn Store`; the macro at the end instantiates it per backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use kefu::dialogue::{Context, Conversation, NewMessage, State, Visitor};
use kefu::handoff::{Agent, AgentStatus, BusinessHours, Handoff, HandoffStatus, Priority, Rating, Reason, ReplyVia, SlaPolicies, Ticket, TicketStatus};
use kefu::dialogue::{BotMeta, Sender};
use kefu::store::report::{HourCounts, NameKind, ALL_TIME, HOUR_MS};
use kefu::store::{Change, Feedback, HistoryQuery, Outcome, PgStore, RecordWrite, Session, SledStore, Store, StoreError};

use crate::fixture;

/// A place for one test's store that can be opened again (a restart).
enum Place {
    Sled(tempfile::TempDir),
    Postgres(String),
}

impl Place {
    async fn sled() -> Place {
        Place::Sled(tempfile::tempdir().unwrap())
    }

    async fn postgres() -> Place {
        Place::Postgres(fixture::pg_database().await)
    }

    /// Opens the store; for sled, the previous handle must have been dropped.
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Place::Sled(dir) => {
                // sled's flusher lets go of the file lock a moment after the last handle
                // drops: retry until it has.
                for _ in 0..500 {
                    if let Ok(s) = SledStore::open(dir.path()) {
                        return Arc::new(s);
                    }
                    tokio::task::yield_now().await;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                panic!("sled did not reopen");
            }
            Place::Postgres(url) => Arc::new(PgStore::connect(url).await.unwrap()),
        }
    }

    /// A second handle on the same data, as another node has (PostgreSQL only).
    async fn another_node(&self) -> Option<Arc<dyn Store>> {
        match self {
            Place::Sled(_) => None,
            Place::Postgres(url) => Some(Arc::new(PgStore::connect(url).await.unwrap())),
        }
    }
}

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

fn handoff(id: u64, conv: &str, priority: Priority, created_ms: u64) -> Handoff {
    Handoff {
        id,
        conversation: conv.into(),
        reason: Reason::Requested,
        detail: String::new(),
        priority,
        skill: "general".into(),
        intent: None,
        slots: BTreeMap::new(),
        candidates: vec![],
        visitor: Visitor::default(),
        transcript: vec![],
        created_ms,
        status: HandoffStatus::Queued,
        agent: None,
        assigned_ms: None,
        closed_ms: None,
    }
}

fn agent(id: &str) -> Agent {
    serde_json::from_value(serde_json::json!({
        "id": id, "name": format!("客服{id}"), "password_hash": "x", "skills": ["general"], "max_concurrent": 3, "status": "online"
    }))
    .unwrap()
}

async fn messages_are_numbered_and_survive_reopening(place: Place) {
    {
        let store = place.open().await;
        let stored = store
            .commit(Change {
                conversation: Some(conversation("c1")),
                messages: vec![NewMessage::visitor("你好", Some("m1".into())), NewMessage::system("欢迎")],
                at_ms: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    let conv = store.conversation("c1").await.unwrap().unwrap();
    assert_eq!((conv.last_seq, conv.updated_ms), (2, 10));
    let all = store.messages("c1", 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["你好", "欢迎"]);
    assert_eq!(store.messages("c1", 1, 100).await.unwrap()[0].seq, 2);
    assert_eq!(store.messages("c1", 0, 1).await.unwrap().len(), 1, "the limit holds");
    assert_eq!(store.message_by_client_id("c1", "m1").await.unwrap().unwrap().seq, 1);
    assert_eq!(store.message_by_client_id("c1", "m2").await.unwrap(), None);
    assert_eq!(store.counters().await.unwrap().messages_per_hour, vec![(0, 1)], "visitor messages only");
    assert_eq!(store.conversation_count().await.unwrap(), 1);
    assert!(store.conversation("nobody").await.unwrap().is_none());
}

async fn a_stale_conversation_is_refused_not_interleaved(place: Place) {
    let store = place.open().await;
    let conv = conversation("c1");
    store.commit(Change { conversation: Some(conv.clone()), messages: vec![NewMessage::system("a")], ..Default::default() }).await.unwrap();
    // `conv` still says last_seq 0: a second writer working from an old copy.
    let err = store
        .commit(Change { conversation: Some(conv), messages: vec![NewMessage::system("b")], ticket: None, ..Default::default() })
        .await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    assert_eq!(store.messages("c1", 0, 10).await.unwrap().len(), 1);
}

/// Changes in flight together each get their own outcome: a stale one is refused and
/// writes nothing (its unanswered question is not counted either), while the ones around it
/// apply and count.
async fn a_refused_change_does_not_take_others_down(place: Place) {
    let store = place.open().await;
    store.commit(Change { conversation: Some(conversation("stale")), messages: vec![NewMessage::system("a")], ..Default::default() }).await.unwrap();
    let pending: Vec<_> = (0..50)
        .map(|i| {
            let id = if i == 25 { "stale".to_string() } else { format!("c{i}") };
            let messages = vec![NewMessage::visitor(&format!("问题{i}"), None), NewMessage::system("答")];
            // Change 25 (odd) is refused: 问题0 counts 25 times, 问题1 24.
            let unanswered = vec![format!("没答上的问题{}", i % 2)];
            store.commit(Change { conversation: Some(conversation(&id)), messages, unanswered, at_ms: 3_600_000, ..Default::default() })
        })
        .collect();
    let outcomes = futures_util::future::join_all(pending).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 25 {
            assert!(matches!(outcome, Err(StoreError::Conflict(id)) if id == "stale"), "{outcome:?}");
        } else {
            let stored = outcome.as_ref().unwrap();
            assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2], "change {i}");
            assert_eq!(store.messages(&format!("c{i}"), 0, 10).await.unwrap()[0].text, format!("问题{i}"));
        }
    }
    assert_eq!(store.messages("stale", 0, 10).await.unwrap().len(), 1);
    // 49 visitor messages in hour 1, each counted once although they shared a key.
    assert_eq!(store.counters().await.unwrap().messages_per_hour, vec![(1, 49)]);
    assert_eq!(store.unanswered(10).await.unwrap(), vec![("没答上的问题0".to_string(), 25), ("没答上的问题1".to_string(), 24)]);
    assert_eq!(store.unanswered(1).await.unwrap().len(), 1);
}

/// Many writers of one conversation at once (several nodes, or requests racing a lock):
/// each step either applies whole on top of the last or is refused, so the sequence has
/// no gaps and no message is stored twice.
async fn racing_steps_of_one_conversation_leave_no_gaps(place: Place) {
    let a = place.open().await;
    let b = place.another_node().await.unwrap_or_else(|| a.clone());
    a.commit(Change { conversation: Some(conversation("c")), messages: vec![NewMessage::system("开始")], ..Default::default() }).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            // Read, then write on top of what was read, retrying on a conflict as the service
            // does with its lock.
            loop {
                let conv = store.conversation("c").await.unwrap().unwrap();
                let change = Change { conversation: Some(conv), messages: vec![NewMessage::visitor(&format!("第{i}条"), Some(format!("m{i}")))], ..Default::default() };
                match store.commit(change).await {
                    Ok(m) => return m[0].seq,
                    Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (2..=41).collect::<Vec<u64>>(), "every step got its own number");
    let stored = b.messages("c", 0, 100).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=41).collect::<Vec<u64>>());
    for i in 0..40 {
        assert_eq!(a.message_by_client_id("c", &format!("m{i}")).await.unwrap().unwrap().text, format!("第{i}条"));
    }
}

async fn the_queue_orders_by_priority_then_waiting_time(place: Place) {
    let store = place.open().await;
    let base = handoff(1, "c1", Priority::Normal, 1_000);
    let older = handoff(2, "c2", Priority::Normal, 500);
    let urgent = handoff(3, "c3", Priority::High, 2_000);
    let twin = handoff(4, "c4", Priority::Normal, 1_000);
    store.commit(Change { handoffs: vec![base.clone(), older.clone(), urgent.clone(), twin.clone()], ..Default::default() }).await.unwrap();
    let ids = |hs: Vec<Handoff>| hs.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(store.queue().await.unwrap()), [3, 2, 1, 4]);
    assert_eq!(store.queue_ahead(&base).await.unwrap(), 2);
    assert_eq!(store.queue_ahead(&urgent).await.unwrap(), 0);
    assert_eq!(ids(store.queue_from(&base).await.unwrap()), [1, 4]);
    // Leaving the queue (assigned) moves the ones behind up; a position can be asked for a
    // place that is not queued itself.
    let taken = Handoff { status: HandoffStatus::Assigned, agent: Some("a1".into()), ..older.clone() };
    store.commit(Change { handoffs: vec![taken], ..Default::default() }).await.unwrap();
    assert_eq!(ids(store.queue().await.unwrap()), [3, 1, 4]);
    assert_eq!(store.queue_ahead(&older).await.unwrap(), 1);
    assert_eq!(store.queue_ahead(&twin).await.unwrap(), 2);
    assert_eq!(store.handoff(2).await.unwrap().unwrap().agent.as_deref(), Some("a1"));
    assert_eq!(store.handoffs().await.unwrap().len(), 4);
}

/// An agent's load is read from the assigned handoffs only, and follows every move:
/// assignment, transfer, resolution.
async fn assigned_handoffs_follow_their_agent(place: Place) {
    let store = place.open().await;
    let mut h = handoff(7, "c7", Priority::Normal, 1);
    store.commit(Change { handoffs: vec![h.clone(), handoff(8, "c8", Priority::Normal, 2)], ..Default::default() }).await.unwrap();
    assert!(store.assigned(None).await.unwrap().is_empty());
    h.status = HandoffStatus::Assigned;
    h.agent = Some("a1".into());
    store.commit(Change { handoffs: vec![h.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(store.assigned(Some("a1")).await.unwrap().iter().map(|h| h.id).collect::<Vec<_>>(), [7]);
    h.agent = Some("a2".into());
    store.commit(Change { handoffs: vec![h.clone()], ..Default::default() }).await.unwrap();
    assert!(store.assigned(Some("a1")).await.unwrap().is_empty(), "a transfer takes it off the first agent");
    assert_eq!(store.assigned(Some("a2")).await.unwrap().len(), 1);
    // "a" is a prefix of "a1" and "a2" but holds nothing.
    assert!(store.assigned(Some("a")).await.unwrap().is_empty());
    assert_eq!(store.assigned(None).await.unwrap().len(), 1);
    h.status = HandoffStatus::Resolved;
    store.commit(Change { handoffs: vec![h], ..Default::default() }).await.unwrap();
    assert!(store.assigned(None).await.unwrap().is_empty());
}

async fn people_sessions_and_records_of_a_step(place: Place) {
    let store = place.open().await;
    let session = Session { agent: "a1".into(), created_ms: 5, expires_ms: 50 };
    let ticket = Ticket {
        id: 9,
        conversation: "c1".into(),
        contact: "13800000000".into(),
        message: "请回电".into(),
        reason: Reason::Requested,
        visitor: Visitor::default(),
        transcript: vec![],
        created_ms: 3,
        version: 1,
        ..Default::default()
    };
    let rating = Rating { conversation: "c1".into(), handoff: Some(7), agent: Some("a1".into()), score: 4, comment: None, at_ms: 4 };
    let feedback = Feedback { conversation: "c1".into(), seq: 2, article: Some("refund".into()), helpful: true, at_ms: 4 };
    store
        .commit(Change {
            conversation: Some(conversation("c1")),
            agent: Some(agent("a1")),
            session: Some(("hash1".into(), Some(session.clone()))),
            identity: Some(("user-42".into(), "c1".into())),
            ticket: Some(ticket),
            rating: Some(rating.clone()),
            feedback: Some(feedback.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.agent("a1").await.unwrap().unwrap().name, "客服a1");
    assert_eq!(store.agents().await.unwrap().len(), 1);
    assert_eq!(store.session("hash1").await.unwrap(), Some(session));
    assert_eq!(store.conversation_of_user("user-42").await.unwrap().as_deref(), Some("c1"));
    assert_eq!(store.tickets().await.unwrap()[0].message, "请回电");
    assert_eq!(store.feedback().await.unwrap(), vec![feedback]);
    // A second rating of the same handoff replaces the first.
    store.commit(Change { rating: Some(Rating { score: 5, ..rating }), ..Default::default() }).await.unwrap();
    let ratings = store.ratings().await.unwrap();
    assert_eq!(ratings.iter().map(|r| r.score).collect::<Vec<_>>(), [5]);
    let mut away = agent("a1");
    away.status = AgentStatus::Away;
    store.commit(Change { agent: Some(away), session: Some(("hash1".into(), None)), ..Default::default() }).await.unwrap();
    assert_eq!(store.session("hash1").await.unwrap(), None, "a logout ends the session");
    assert_eq!(store.agent("a1").await.unwrap().unwrap().status, AgentStatus::Away);
}

/// Roles on agent records and quality reviews (records keyed `agent/conversation/handoff`):
/// an agent stored before roles reads as an agent, a role survives reopening, and one agent's
/// reviews are listed by prefix without another's whose id merely starts the same.
async fn roles_and_quality_reviews(place: Place) {
    {
        let store = place.open().await;
        let old = agent("a1");
        assert_eq!(old.role, kefu::handoff::Role::Agent, "no role stored: an agent");
        let boss = Agent { role: kefu::handoff::Role::Admin, ..agent("boss") };
        let sup = Agent { role: kefu::handoff::Role::Supervisor, ..agent("sup") };
        store.commit(Change { agent: Some(boss), ..Default::default() }).await.unwrap();
        store.commit(Change { agent: Some(sup), ..Default::default() }).await.unwrap();
        for (key, total) in [("a1/c1/7", 92.0), ("a1/c2/8", 80.0), ("a10/c3/9", 60.0)] {
            let review = serde_json::json!({"agent": key.split('/').next().unwrap(), "total": total, "comment": "礼貌用语规范"});
            store.set_record("quality-reviews", key, Some(serde_json::to_vec(&review).unwrap())).await.unwrap();
        }
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    assert_eq!(store.agent("boss").await.unwrap().unwrap().role, kefu::handoff::Role::Admin);
    assert_eq!(store.agent("sup").await.unwrap().unwrap().role, kefu::handoff::Role::Supervisor);
    let a1 = store.records("quality-reviews", "a1/").await.unwrap();
    assert_eq!(a1.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["a1/c1/7", "a1/c2/8"]);
    let first: serde_json::Value = serde_json::from_slice(&a1[0].1).unwrap();
    assert_eq!((first["total"].as_f64(), first["comment"].as_str()), (Some(92.0), Some("礼貌用语规范")));
    // A second review of the same handoff's agent replaces the first.
    store.set_record("quality-reviews", "a1/c1/7", Some(br#"{"total":100.0}"#.to_vec())).await.unwrap();
    assert_eq!(store.records("quality-reviews", "a1/").await.unwrap().len(), 2);
    assert_eq!(store.records("quality-reviews", "").await.unwrap().len(), 3);
}

async fn ids_are_unique_across_callers(place: Place) {
    let a = place.open().await;
    let b = place.another_node().await.unwrap_or_else(|| a.clone());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.next_id().await.unwrap() }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert!(ids[0] >= 1, "ids start at 1");
}

async fn records_are_kept_claimed_once_and_updated_atomically(place: Place) {
    let store = place.open().await;
    assert_eq!(store.record("wx", "k").await.unwrap(), None);
    store.set_record("wx", "k", Some(b"one".to_vec())).await.unwrap();
    assert_eq!(store.record("wx", "k").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(store.record("other-space", "k").await.unwrap(), None, "spaces are apart");
    // Keys in byte order of their UTF-8, prefix-scanned; 9 before 10 needs padding by the
    // caller, and a key with a NUL separator sorts before its longer neighbour.
    for k in ["b\u{0}2", "b\u{0}10", "a", "b", "c", "客服"] {
        store.set_record("list", k, Some(k.as_bytes().to_vec())).await.unwrap();
    }
    let keys: Vec<String> = store.records("list", "").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b", "b\u{0}10", "b\u{0}2", "c", "客服"]);
    let keys: Vec<String> = store.records("list", "b\u{0}").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["b\u{0}10", "b\u{0}2"]);
    store.set_record("list", "a", None).await.unwrap();
    assert_eq!(store.record("list", "a").await.unwrap(), None);

    // Claims: of 20 at once (half through another node), exactly one wins.
    let other = place.another_node().await.unwrap_or_else(|| store.clone());
    let mut claims = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { store.clone() } else { other.clone() };
        claims.push(tokio::spawn(async move { s.claim_record("deliveries", "msg-1", format!("node{i}").into_bytes()).await.unwrap() }));
    }
    let mut won = 0;
    for c in claims {
        won += c.await.unwrap() as usize;
    }
    assert_eq!(won, 1);

    // Updates: 40 increments at once lose none.
    let mut ups = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { store.clone() } else { other.clone() };
        ups.push(tokio::spawn(async move {
            let add = |old: Option<&[u8]>| {
                let n: u64 = old.map_or(0, |b| std::str::from_utf8(b).unwrap().parse().unwrap());
                Ok(Some((n + 1).to_string().into_bytes()))
            };
            s.update_record("counts", "n", &add).await.unwrap();
        }));
    }
    for u in ups {
        u.await.unwrap();
    }
    assert_eq!(store.record("counts", "n").await.unwrap().as_deref(), Some(&b"40"[..]));
    // A failing update leaves the record as it was.
    let fail = |_: Option<&[u8]>| Err(StoreError::Corrupt { key: "counts/n".into(), reason: "test".into() });
    assert!(store.update_record("counts", "n", &fail).await.is_err());
    assert_eq!(store.record("counts", "n").await.unwrap().as_deref(), Some(&b"40"[..]));
    let delete = |_: Option<&[u8]>| Ok(None);
    assert_eq!(store.update_record("counts", "n", &delete).await.unwrap(), None);
    assert_eq!(store.record("counts", "n").await.unwrap(), None);
    store.durable().await.unwrap();
}

/// A conversation started at `created_ms` on `channel`, with one visitor message.
async fn started(store: &dyn Store, id: &str, created_ms: u64, channel: &str, text: &str) -> Conversation {
    let mut conv = conversation(id);
    conv.created_ms = created_ms;
    conv.visitor.channel = channel.into();
    let stored = store
        .commit(Change { conversation: Some(conv.clone()), messages: vec![NewMessage::visitor(text, None)], at_ms: created_ms, ..Default::default() })
        .await
        .unwrap();
    conv.last_seq = stored.last().unwrap().seq;
    conv
}

fn query(f: impl FnOnce(&mut HistoryQuery)) -> HistoryQuery {
    let mut q = HistoryQuery { limit: 50, ..Default::default() };
    f(&mut q);
    q
}

async fn ids(store: &dyn Store, q: HistoryQuery) -> Vec<String> {
    store.search_history(&q).await.unwrap().summaries.into_iter().map(|s| s.id).collect()
}

/// The ids a search finds page by page, going on from where each page stopped (at most
/// `pages` requests).
async fn every_page(store: &dyn Store, mut q: HistoryQuery, pages: usize) -> Vec<String> {
    let mut found = vec![];
    for _ in 0..pages {
        let hits = store.search_history(&q).await.unwrap();
        found.extend(hits.summaries.into_iter().map(|s| s.id));
        match hits.stopped_at {
            Some(at) => q.before = Some(at),
            None => break,
        }
    }
    found
}

/// The history index follows every step that writes a conversation, and answers each filter
/// the same on every backend, newest first, page by page; it survives reopening.
async fn history_is_summarised_as_steps_commit_and_searched_by_each_filter(place: Place) {
    {
        let store = place.open().await;
        let s = &*store;
        let a = started(s, "a", 1_000, "web", "退货运费谁出？").await;
        let mut b = started(s, "b", 2_000, "wechat_mp", "洗衣机漏水了").await;
        let mut c = started(s, "c", 3_000, "web", "发票怎么开").await;
        // b: handed off to 小王 (id wang), who answers; then rated.
        let mut h = handoff(1, "b", Priority::Normal, 2_100);
        h.status = HandoffStatus::Assigned;
        h.agent = Some("wang".into());
        b.state = State::WithAgent { agent: "wang".into() };
        let from = kefu::dialogue::Sender::Agent { id: "wang".into(), name: "小王".into() };
        let reply = NewMessage { from, text: "请提供订单号".into(), internal: false, bot: None, client_id: None, image: None };
        let stored = s.commit(Change { conversation: Some(b.clone()), messages: vec![reply], handoffs: vec![h], at_ms: 2_200, ..Default::default() }).await.unwrap();
        b.last_seq = stored.last().unwrap().seq;
        let rating = Rating { conversation: "b".into(), handoff: Some(1), agent: Some("wang".into()), score: 4, comment: None, at_ms: 2_300 };
        s.commit(Change { conversation: Some(b.clone()), rating: Some(rating), at_ms: 2_300, ..Default::default() }).await.unwrap();
        // c: the bot answered, and the visitor left a message.
        let meta = kefu::dialogue::BotMeta { kind: "answer".into(), ..Default::default() };
        let stored = s.commit(Change { conversation: Some(c.clone()), messages: vec![NewMessage::bot("开票说明", meta)], at_ms: 3_100, ..Default::default() }).await.unwrap();
        c.last_seq = stored.last().unwrap().seq;
        let ticket = Ticket {
            id: 9, conversation: "c".into(), contact: "13800138000".into(), message: "请回电".into(), reason: Reason::Requested,
            visitor: Visitor::default(), transcript: vec![], created_ms: 3_200, version: 1, ..Default::default()
        };
        s.commit(Change { conversation: Some(c.clone()), ticket: Some(ticket), at_ms: 3_200, ..Default::default() }).await.unwrap();
        drop(a);
        // d holds every pair of 退货运 but never the phrase, and 漏水 only across two messages.
        let mut d = started(s, "d", 500, "web", "我要退货，货运单号多少").await;
        let stored = s.commit(Change { conversation: Some(d.clone()), messages: vec![NewMessage::visitor("还在漏", None)], at_ms: 600, ..Default::default() }).await.unwrap();
        d.last_seq = stored.last().unwrap().seq;
        // d's visitor signs in later (a verified user, with a name): found by either from then on.
        d.visitor.user_id = Some("u-0042".into());
        d.visitor.name = Some("王小明".into());
        s.commit(Change { conversation: Some(d.clone()), messages: vec![NewMessage::visitor("水了", None)], at_ms: 700, ..Default::default() }).await.unwrap();
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    let s = &*store;
    let text = |t: &str| { let t = kefu::text::normalize(t); query(move |q| q.text = Some(t)) };
    // The text index finds candidates by character pairs; the phrase itself decides.
    assert_eq!(ids(s, text("退货运")).await, ["a"], "every pair of the phrase, but not the phrase, is not a match");
    assert_eq!(ids(s, text("退货")).await, ["a", "d"], "newest first");
    assert_eq!(ids(s, text("漏水")).await, ["b"], "a phrase never spans two messages");
    assert_eq!(ids(s, text("水")).await, ["b", "d"], "one character: no pair to look up, found by reading");
    assert_eq!(ids(s, text("单号")).await, ["b", "d"], "the visitor's and an agent's words");
    assert_eq!(ids(s, { let mut q = text("退货"); q.to_ms = Some(1_000); q }).await, ["d"], "dates bound the postings read");
    // Every pair of a longer phrase narrows; the budget (seeks) may stop it, and going on
    // from where it stopped finds the same.
    let mut q = text("退货运费谁出");
    q.budget = 1;
    let found = every_page(s, q, 20).await;
    assert_eq!(found, ["a"]);
    // The visitor filter: a conversation id, a verified user id, part of a name.
    let visitor = |v: &str| { let v = v.to_string(); query(move |q| q.visitor = Some(v)) };
    assert_eq!(ids(s, visitor("u-0042")).await, ["d"]);
    assert_eq!(ids(s, visitor("小明")).await, ["d"]);
    assert_eq!(ids(s, visitor("王")).await, ["d"], "one character: found by reading");
    assert_eq!(ids(s, visitor("b")).await, ["b"]);
    assert!(ids(s, visitor("u-00")).await.is_empty(), "a user id matches whole");
    assert!(ids(s, visitor("小红")).await.is_empty());
    assert_eq!(ids(s, { let mut q = visitor("u-0042"); q.from_ms = Some(1_000); q }).await, Vec::<String>::new(), "the range applies");
    // What follows counts without d, the conversation written for the index.
    let not_d = |ids: Vec<String>| ids.into_iter().filter(|id| id != "d").collect::<Vec<_>>();
    assert_eq!(not_d(ids(s, query(|_| {})).await), ["c", "b", "a"], "newest first");
    // Text is normalised as the index is: the caller passes the normalised query.
    assert_eq!(ids(s, query(|q| q.text = Some(kefu::text::normalize("漏水")))).await, ["b"]);
    assert_eq!(ids(s, query(|q| q.text = Some(kefu::text::normalize("订单号")))).await, ["b"], "an agent's words");
    assert_eq!(ids(s, query(|q| q.text = Some("开票说明".into()))).await, Vec::<String>::new(), "bot answers are not searched");
    assert_eq!(not_d(ids(s, query(|q| q.channel = Some("web".into()))).await), ["c", "a"]);
    assert_eq!(ids(s, query(|q| q.agent = Some("wang".into()))).await, ["b"]);
    assert_eq!(ids(s, query(|q| q.visitor = Some("a".into()))).await, ["a"]);
    assert_eq!(ids(s, query(|q| q.outcome = Some(Outcome::HandedOff))).await, ["b"]);
    assert_eq!(ids(s, query(|q| q.outcome = Some(Outcome::Rated))).await, ["b"]);
    assert_eq!(ids(s, query(|q| q.outcome = Some(Outcome::Ticket))).await, ["c"]);
    assert_eq!(ids(s, query(|q| q.outcome = Some(Outcome::BotAnswered))).await, ["c"]);
    assert_eq!(ids(s, query(|q| { q.from_ms = Some(2_000); q.to_ms = Some(3_000) })).await, ["b"], "from inclusive, to exclusive");
    assert_eq!(ids(s, query(|q| q.limit = 2)).await, ["c", "b"]);
    assert_eq!(not_d(ids(s, query(|q| q.before = Some((3_000, "c".into())))).await), ["b", "a"], "the page after c");
    // A budget may stop a search early; going on from where it stopped finds the same.
    let q = query(|q| { q.text = Some(kefu::text::normalize("退货")); q.budget = 1 });
    let found = every_page(s, q, 4).await;
    assert_eq!(found, ["a", "d"], "the oldest, found however the budget cut the search");
    let b = s.summary("b").await.unwrap().unwrap();
    assert_eq!((b.channel.as_str(), b.agents.clone(), b.rating, b.messages), ("wechat_mp", vec!["wang".to_string()], Some(4), 2));
    assert_eq!(b.first_question, "洗衣机漏水了");
    assert!(s.summary("nobody").await.unwrap().is_none());
}

/// Records a step carries (the webhook outbox) are written in its transaction: they are
/// there when the step is, survive reopening, overwrite what was under their key, and a
/// refused step writes none of them — while the step beside it in the same batch does; a
/// step can delete a record too.
async fn records_of_a_step_are_written_with_it_or_not_at_all(place: Place) {
    let outbox = |key: &str, value: &str| RecordWrite { space: "test-outbox".into(), key: key.into(), value: Some(value.as_bytes().to_vec()) };
    {
        let store = place.open().await;
        store.set_record("test-outbox", "0001", Some(b"old".to_vec())).await.unwrap();
        let change = Change {
            conversation: Some(conversation("c1")),
            messages: vec![NewMessage::visitor("转人工", None)],
            records: vec![outbox("0001", "交接"), outbox("0002", "开始"), RecordWrite { space: "test-other".into(), key: "k".into(), value: Some(b"v".to_vec()) }],
            ..Default::default()
        };
        store.commit(change).await.unwrap();
        // A stale step (c1 moved on) beside a good one (c2), committed together.
        let stale = Change { conversation: Some(conversation("c1")), messages: vec![NewMessage::system("x")], records: vec![outbox("0003", "不该有")], ..Default::default() };
        let good = Change { conversation: Some(conversation("c2")), messages: vec![NewMessage::system("y")], records: vec![outbox("0004", "该有")], ..Default::default() };
        let (stale, good) = futures_util::future::join(store.commit(stale), store.commit(good)).await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        good.unwrap();
        // A step that deletes a record (a delivered event leaving the outbox) and adds one.
        let gone = RecordWrite { space: "test-outbox".into(), key: "0002".into(), value: None };
        store.commit(Change { records: vec![gone, outbox("0005", "记录")], ..Default::default() }).await.unwrap();
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    let kept: Vec<(String, String)> =
        store.records("test-outbox", "").await.unwrap().into_iter().map(|(k, v)| (k, String::from_utf8(v).unwrap())).collect();
    assert_eq!(kept, [("0001".to_string(), "交接".to_string()), ("0004".into(), "该有".into()), ("0005".into(), "记录".into())]);
    // A bounded read takes the first ones in key order, no more.
    let first: Vec<String> = store.first_records("test-outbox", 2).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(first, ["0001", "0004"]);
    assert_eq!(store.first_records("test-outbox", 10).await.unwrap().len(), 3);
    assert!(store.first_records("test-none", 10).await.unwrap().is_empty());
    assert_eq!(store.record("test-other", "k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.messages("c1", 0, 10).await.unwrap().len(), 1);
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Place::$backend().await).await;
                }
            )*
        }
    };
}

// ---- report counters ------------------------------------------------------------------

/// 2026-02-08 00:00 UTC, in hours and ms.
const H: u64 = 491_808;
const T: u64 = H * HOUR_MS;

fn bot(kind: &str, article: Option<&str>) -> NewMessage {
    NewMessage::bot("……", BotMeta { kind: kind.into(), article: article.map(Into::into), ..Default::default() })
}

fn opened_at(id: &str, at: u64) -> Conversation {
    Conversation { created_ms: at, updated_ms: at, ..conversation(id) }
}

/// The team's counters summed over `rows`, without zeros.
fn team(rows: &[HourCounts]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.scope.is_empty()) {
        for (k, n) in &r.counts {
            *out.entry(k.clone()).or_default() += n;
        }
    }
    out.retain(|_, n| *n != 0);
    out
}

fn scope(rows: &[HourCounts], scope: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.scope == scope) {
        for (k, n) in &r.counts {
            *out.entry(k.clone()).or_default() += n;
        }
    }
    out
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Tickets: each write moves the version on by one, and a write from an older copy (two
/// agents who read the same ticket) is refused whole, its conversation's message too; an
/// SLA breach is counted once, in the hour it is recorded, for the team and the assignee.
async fn tickets_move_on_by_version_and_count_breaches_once(place: Place) {
    {
        let store = place.open().await;
        let mut t = Ticket { id: 40, conversation: "tk".into(), message: "请回电".into(), created_ms: T, ..Default::default() };
        t.open("visitor", &SlaPolicies::default(), &BusinessHours::default());
        assert_eq!(t.version, 1);
        store.commit(Change { conversation: Some(opened_at("tk", T)), ticket: Some(t.clone()), at_ms: T, ..Default::default() }).await.unwrap();
        assert_eq!(store.ticket(40).await.unwrap(), Some(t.clone()));
        assert_eq!(store.ticket(41).await.unwrap(), None);
        let mut stale_new = t.clone();
        stale_new.version = 1;
        assert!(matches!(store.commit(Change { ticket: Some(stale_new), ..Default::default() }).await, Err(StoreError::TicketChanged(40))), "version 1 is taken");

        let (mut a, mut b) = (t.clone(), t.clone());
        a.set_assignee("wang", T + 1, Some("wang".into())).unwrap();
        a.version += 1;
        b.note("li", T + 1, "我来处理".into()).unwrap();
        b.version += 1;
        store.commit(Change { ticket: Some(a.clone()), at_ms: T + 1, ..Default::default() }).await.unwrap();
        let conv = store.conversation("tk").await.unwrap().unwrap();
        let reply = NewMessage { from: Sender::Agent { id: "li".into(), name: "小李".into() }, text: "您好".into(), internal: false, bot: None, client_id: None, image: None };
        let refused = store.commit(Change { conversation: Some(conv.clone()), messages: vec![reply], ticket: Some(b), at_ms: T + 2, ..Default::default() }).await;
        assert!(matches!(refused, Err(StoreError::TicketChanged(40))), "{refused:?}");
        assert!(store.messages("tk", 0, 10).await.unwrap().is_empty(), "the refused change wrote nothing");
        assert_eq!(store.ticket(40).await.unwrap().as_ref(), Some(&a));

        // Five hours on, the 4-hour first response has run out.
        let late_at = T + 5 * HOUR_MS;
        let mut late = a.clone();
        assert!(late.check_sla(late_at));
        late.version += 1;
        store.commit(Change { ticket: Some(late.clone()), at_ms: late_at, ..Default::default() }).await.unwrap();
        let mut again = late.clone();
        again.note("wang", late_at + 1, "已回电".into()).unwrap();
        assert!(!again.check_sla(late_at + 1));
        again.version += 1;
        store.commit(Change { ticket: Some(again), at_ms: late_at + 1, ..Default::default() }).await.unwrap();
        let rows = store.report_hours(H + 5, H + 6).await.unwrap();
        assert_eq!(team(&rows), counts(&[("sla.breaches", 1)]));
        let wang: i64 = rows.iter().filter(|r| r.scope == "agent:wang").map(|r| r.counts.get("sla.breaches").copied().unwrap_or(0)).sum();
        assert_eq!(wang, 1);
        assert_eq!(team(&store.report_hours(H, H + 1).await.unwrap()).get("tickets"), Some(&1), "the ticket counted once");
        drop(store);
    }
    let store = place.open().await;
    let t = store.ticket(40).await.unwrap().unwrap();
    assert_eq!((t.version, t.sla.first_response_breached, t.assignee.as_deref()), (4, true, Some("wang")));
    assert_eq!(store.tickets().await.unwrap().len(), 1);
}

/// The SLA watch's index: every ticket with a clock running, soonest due first; it follows
/// each write (a reply, waiting on the customer, resolving) and survives reopening.
async fn tickets_due_follow_each_ticket_write(place: Place) {
    let (policies, hours) = (SlaPolicies::default(), BusinessHours::default());
    let ticket = |id: u64, created: u64| {
        let mut t = Ticket { id, conversation: format!("due{id}"), message: "请回电".into(), created_ms: created, ..Default::default() };
        t.open("visitor", &policies, &hours);
        t
    };
    let write = |t: &Ticket| Change { ticket: Some(t.clone()), at_ms: t.updated_ms.max(t.created_ms), ..Default::default() };
    {
        let store = place.open().await;
        let (a, mut b, mut c) = (ticket(51, T), ticket(52, T + 1_000), ticket(53, T + 2_000));
        for t in [&a, &b, &c] {
            store.commit(write(t)).await.unwrap();
        }
        let first = |t: &Ticket| t.next_due().unwrap();
        assert_eq!(store.tickets_due(10).await.unwrap(), [(first(&a), 51), (first(&b), 52), (first(&c), 53)]);
        assert_eq!(store.tickets_due(2).await.unwrap().len(), 2);
        // b answered: its first-response clock stops; the resolution clock is next.
        b.reply("wang", T + 3_000, ReplyVia::Phone, "已致电".into(), None).unwrap();
        b.version += 1;
        store.commit(write(&b)).await.unwrap();
        assert_eq!(b.next_due(), b.sla.resolution_due_ms);
        // c waits on the customer, answered already: no clock runs.
        c.reply("li", T + 3_000, ReplyVia::Phone, "请拍照".into(), None).unwrap();
        c.set_status("li", T + 3_000, TicketStatus::PendingCustomer, &hours).unwrap();
        c.version += 1;
        store.commit(write(&c)).await.unwrap();
        assert_eq!(c.next_due(), None);
        assert_eq!(store.tickets_due(10).await.unwrap(), [(first(&a), 51), (first(&b), 52)]);
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    let mut a = store.ticket(51).await.unwrap().unwrap();
    let b = store.ticket(52).await.unwrap().unwrap();
    assert_eq!(store.tickets_due(10).await.unwrap(), [(a.next_due().unwrap(), 51), (b.next_due().unwrap(), 52)]);
    // a answered and resolved: off the index (an unanswered one keeps its first-response clock).
    a.reply("wang", T + 4_000, ReplyVia::Mail, "已处理".into(), None).unwrap();
    a.set_status("wang", T + 4_000, TicketStatus::Resolved, &hours).unwrap();
    a.version += 1;
    store.commit(Change { ticket: Some(a), at_ms: T + 4_000, ..Default::default() }).await.unwrap();
    assert_eq!(store.tickets_due(10).await.unwrap(), [(b.next_due().unwrap(), 52)]);
}

/// Steps of two conversations through the bot, a handoff, an agent and a rating: each moves
/// the counters exactly as `store::report` says, in the hour it happened (conversations in
/// the hour they started), and the counters survive reopening. All-time totals match.
async fn report_counters_follow_each_change(place: Place) {
    {
        let store = place.open().await;
        let mut a = opened_at("ra", T + 10);
        let mut b = opened_at("rb", T + 20);
        let s = store.commit(Change { conversation: Some(a.clone()), messages: vec![NewMessage::visitor("怎么退货", None), bot("answer", Some("refund"))], at_ms: T + 10, ..Default::default() }).await.unwrap();
        a.last_seq = s.last().unwrap().seq;
        let s = store
            .commit(Change {
                conversation: Some(b.clone()),
                messages: vec![NewMessage::visitor("发票抬头", None), bot("none", None)],
                unanswered: vec!["发票抬头".into()],
                at_ms: T + 20,
                ..Default::default()
            })
            .await
            .unwrap();
        b.last_seq = s.last().unwrap().seq;
        let hour = store.report_hours(H, H + 1).await.unwrap();
        assert_eq!(
            team(&hour),
            counts(&[("conversations", 2), ("outcome.auto_resolved", 1), ("outcome.abandoned", 1), ("bot.answers", 1), ("bot.declines", 1), ("unanswered", 1)])
        );
        assert_eq!(store.report_names(NameKind::Article, H, H + 1, 10).await.unwrap(), vec![("refund".to_string(), 1)]);
        assert_eq!(store.report_names(NameKind::Question, H, H + 1, 10).await.unwrap(), vec![("发票抬头".to_string(), 1)]);
        assert!(store.report_hours(H + 1, H + 2).await.unwrap().is_empty(), "nothing in the next hour");
        assert!(store.report_names(NameKind::Article, H + 1, H + 2, 10).await.unwrap().is_empty());

        // An hour later: ra asks for a human; an agent takes it, writes, resolves; it is rated
        // 4, then 5 (the second rating replaces the first).
        let t = T + HOUR_MS;
        let mut h = handoff(7, "ra", Priority::Normal, t);
        a.handoff = Some(7);
        let s = store.commit(Change { conversation: Some(a.clone()), messages: vec![NewMessage::visitor("转人工", None)], handoffs: vec![h.clone()], at_ms: t, ..Default::default() }).await.unwrap();
        a.last_seq = s.last().unwrap().seq;
        (h.status, h.agent, h.assigned_ms) = (HandoffStatus::Assigned, Some("wang".into()), Some(t + 60_000));
        store.commit(Change { handoffs: vec![h.clone()], at_ms: t + 60_000, ..Default::default() }).await.unwrap();
        let reply = NewMessage { from: Sender::Agent { id: "wang".into(), name: "小王".into() }, text: "您好".into(), internal: false, bot: None, client_id: None, image: None };
        let s = store.commit(Change { conversation: Some(a.clone()), messages: vec![reply.clone()], at_ms: t + 90_000, ..Default::default() }).await.unwrap();
        a.last_seq = s.last().unwrap().seq;
        // A second message is not a first response.
        let s = store.commit(Change { conversation: Some(a.clone()), messages: vec![reply], at_ms: t + 100_000, ..Default::default() }).await.unwrap();
        a.last_seq = s.last().unwrap().seq;
        (h.status, h.closed_ms) = (HandoffStatus::Resolved, Some(t + 300_000));
        store.commit(Change { handoffs: vec![h.clone()], at_ms: t + 300_000, ..Default::default() }).await.unwrap();
        for score in [4, 5] {
            let rating = Rating { conversation: "ra".into(), handoff: Some(7), agent: Some("wang".into()), score, comment: None, at_ms: t + 400_000 };
            store.commit(Change { rating: Some(rating), at_ms: t + 400_000, ..Default::default() }).await.unwrap();
        }
        // rb's visitor asks again and is answered, and the question is answered: it leaves
        // the unanswered lists, and rb is resolved after all.
        store
            .commit(Change {
                conversation: Some(b.clone()),
                messages: vec![NewMessage::visitor("发票抬头", None), bot("answer", Some("invoice"))],
                answered: vec!["发票抬头".into()],
                at_ms: t + 500_000,
                ..Default::default()
            })
            .await
            .unwrap();
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    let first = store.report_hours(H, H + 1).await.unwrap();
    assert_eq!(
        team(&first),
        counts(&[("conversations", 2), ("outcome.auto_resolved", 1), ("outcome.escalated", 1), ("bot.answers", 1), ("bot.declines", 1), ("unanswered", 1)]),
        "ra moved to escalated and rb to resolved, in the hour they started"
    );
    let second = store.report_hours(H + 1, H + 2).await.unwrap();
    assert_eq!(
        team(&second),
        counts(&[
            ("handoffs", 1),
            ("handoff.reason.requested", 1),
            ("assigned", 1),
            ("wait.n", 1),
            ("wait.ms", 60_000),
            ("wait.le.60", 1),
            ("first_response.n", 1),
            ("first_response.ms", 30_000),
            ("handled.n", 1),
            ("handled.ms", 240_000),
            ("csat.n", 1),
            ("csat.sum", 5),
            ("csat.5", 1),
            ("bot.answers", 1),
        ])
    );
    assert_eq!(
        scope(&second, "agent:wang"),
        counts(&[("assigned", 1), ("first_response.n", 1), ("first_response.ms", 30_000), ("handled.n", 1), ("handled.ms", 240_000), ("csat.n", 1), ("csat.sum", 5)])
    );
    let both = store.report_hours(H, H + 2).await.unwrap();
    assert_eq!(both.len(), first.len() + second.len());
    assert!(both.windows(2).all(|w| (w[0].hour, &w[0].scope) < (w[1].hour, &w[1].scope)), "in (hour, scope) order");
    // All time: the same sums, without the ALL_TIME rows leaking into ranges.
    let totals = store.report_totals().await.unwrap();
    assert!(totals.iter().all(|r| r.hour == ALL_TIME));
    assert_eq!(team(&totals), team(&both));
    assert_eq!(scope(&totals, "agent:wang"), scope(&both, "agent:wang"));
    assert!(store.report_hours(0, u64::MAX).await.unwrap().iter().all(|r| r.hour != ALL_TIME));
    assert!(store.report_names(NameKind::Question, H, H + 2, 10).await.unwrap().is_empty(), "answered questions leave the list");
    assert!(store.unanswered(10).await.unwrap().is_empty());
    assert_eq!(
        store.report_names(NameKind::Article, H, H + 2, 10).await.unwrap(),
        vec![("invoice".to_string(), 1), ("refund".to_string(), 1)],
        "most first, then by name"
    );
    // Asked and not answered again: back on the list, with its earlier count.
    store.commit(Change { unanswered: vec!["发票抬头".into()], at_ms: T + 2 * HOUR_MS, ..Default::default() }).await.unwrap();
    assert_eq!(store.report_names(NameKind::Question, H, H + 3, 10).await.unwrap(), vec![("发票抬头".to_string(), 2)]);
    assert_eq!(store.unanswered(10).await.unwrap(), vec![("发票抬头".to_string(), 1)]);
}

/// A refused change counts nothing; changes committed together from two nodes all count.
async fn report_counters_count_every_applied_change_once(place: Place) {
    let a = place.open().await;
    let b = place.another_node().await.unwrap_or_else(|| a.clone());
    a.commit(Change { conversation: Some(opened_at("old", T)), messages: vec![NewMessage::system("a")], at_ms: T, ..Default::default() }).await.unwrap();
    // A stale copy of "old" (last_seq 0) is refused, with its answer and unanswered question.
    let stale = a
        .commit(Change {
            conversation: Some(opened_at("old", T)),
            messages: vec![NewMessage::visitor("在吗", None), bot("none", None)],
            unanswered: vec!["在吗".into()],
            at_ms: T,
            ..Default::default()
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(team(&a.report_hours(H, H + 1).await.unwrap()), counts(&[("conversations", 1)]));
    let pending: Vec<_> = (0..60)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let kind = if i % 3 == 0 { "none" } else { "answer" };
            store.commit(Change {
                conversation: Some(opened_at(&format!("n{i}"), T + i)),
                messages: vec![NewMessage::visitor("问", None), bot(kind, Some("refund"))],
                at_ms: T + i,
                ..Default::default()
            })
        })
        .collect();
    for outcome in futures_util::future::join_all(pending).await {
        outcome.unwrap();
    }
    let c = team(&b.report_hours(H, H + 1).await.unwrap());
    assert_eq!(
        c,
        counts(&[("conversations", 61), ("outcome.auto_resolved", 40), ("outcome.abandoned", 20), ("bot.answers", 40), ("bot.declines", 20)])
    );
    assert_eq!(team(&a.report_totals().await.unwrap()), c);
}

async fn named_counters_over_days_match_their_hours(place: Place) {
    let store = place.open().await;
    // Answers every 5 hours over 4 days (from the UTC day of H), one article in 3 hours, the
    // other in the rest; a question every 7 hours.
    let day = H - H % 24;
    let mut expected: Vec<(u64, &str, &str)> = Vec::new();
    for i in 0..20u64 {
        let hour = day + i * 5;
        let article = if i % 3 == 0 { "refund" } else { "invoice" };
        let at = hour * 3_600_000;
        store
            .commit(Change {
                conversation: Some(opened_at(&format!("d{i}"), at)),
                messages: vec![
                    NewMessage::visitor("问", None),
                    bot("answer", Some(article)),
                ],
                unanswered: if i % 7 == 0 {
                    vec![format!("问题{}", i % 2)]
                } else {
                    vec![]
                },
                at_ms: at,
                ..Default::default()
            })
            .await
            .unwrap();
        expected.push((
            hour,
            article,
            if i % 7 == 0 {
                if i % 2 == 0 {
                    "问题0"
                } else {
                    "问题1"
                }
            } else {
                ""
            },
        ));
    }
    // Ranges that start and end inside days (a local day's offset), whole days, and one day.
    for (from, until) in [
        (day + 8, day + 80),
        (day, day + 96),
        (day + 30, day + 40),
        (day + 16, day + 88),
        (day - 5, day + 200),
    ] {
        let mut articles: BTreeMap<String, u64> = BTreeMap::new();
        let mut questions: BTreeMap<String, u64> = BTreeMap::new();
        for (hour, article, question) in &expected {
            if (from..until).contains(hour) {
                *articles.entry(article.to_string()).or_default() += 1;
                if !question.is_empty() {
                    *questions.entry(question.to_string()).or_default() += 1;
                }
            }
        }
        let sorted = |m: BTreeMap<String, u64>| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v
        };
        assert_eq!(
            store
                .report_names(NameKind::Article, from, until, 10)
                .await
                .unwrap(),
            sorted(articles),
            "articles in {from}..{until}"
        );
        assert_eq!(
            store
                .report_names(NameKind::Question, from, until, 10)
                .await
                .unwrap(),
            sorted(questions),
            "questions in {from}..{until}"
        );
    }
}

/// Photos: the clean bytes as a record by hash (binary, megabytes: `bytea` on PostgreSQL),
/// claimed once, linked to the conversation, and a message referring to them; all durable,
/// read back whole after reopening (and from another node), and counted once.
async fn images_are_kept_whole_by_hash_with_their_message(place: Place) {
    use kefu::dialogue::ImageInfo;
    use kefu::images::Format;
    use kefu::service::{IMAGES, IMAGE_LINKS};
    // 4 MiB of every byte value, in an order no compression or text encoding keeps by luck.
    let bytes: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let info = ImageInfo { hash: hash.clone(), format: Format::Jpeg, width: 4000, height: 3000, bytes: bytes.len() };
    let at = T + 5 * 60_000;
    {
        let store = place.open().await;
        assert!(store.claim_record(IMAGES, &hash, bytes.clone()).await.unwrap());
        assert!(!store.claim_record(IMAGES, &hash, b"other".to_vec()).await.unwrap(), "a hash is stored once");
        store.set_record(IMAGE_LINKS, &format!("p1/{hash}"), Some(serde_json::to_vec(&info).unwrap())).await.unwrap();
        let agent_photo = NewMessage::image(Sender::Agent { id: "wang".into(), name: "小王".into() }, info.clone(), None);
        let stored = store
            .commit(Change {
                conversation: Some(opened_at("p1", at)),
                messages: vec![NewMessage::image(Sender::Visitor, info.clone(), Some("photo-1".into())), agent_photo],
                at_ms: at,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored[0].image.as_ref(), Some(&info));
        store.durable().await.unwrap();
    }
    let store = place.open().await;
    assert_eq!(store.record(IMAGES, &hash).await.unwrap().as_deref(), Some(&bytes[..]), "the bytes read back whole");
    let link: ImageInfo = serde_json::from_slice(&store.record(IMAGE_LINKS, &format!("p1/{hash}")).await.unwrap().unwrap()).unwrap();
    assert_eq!(link, info);
    assert_eq!(store.records(IMAGE_LINKS, "p1/").await.unwrap().len(), 1);
    assert!(store.records(IMAGE_LINKS, "p2/").await.unwrap().is_empty());
    let messages = store.messages("p1", 0, 10).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.image.as_ref().map(|i| i.hash.as_str())).collect::<Vec<_>>(), [Some(hash.as_str()), Some(hash.as_str())]);
    assert_eq!(messages[0].text, kefu::dialogue::IMAGE_TEXT);
    assert_eq!(store.message_by_client_id("p1", "photo-1").await.unwrap().unwrap().image, Some(info.clone()));
    let totals = team(&store.report_totals().await.unwrap());
    assert_eq!((totals.get("images.received"), totals.get("images.sent")), (Some(&1), Some(&1)), "{totals:?}");
    let hour = team(&store.report_hours(H, H + 1).await.unwrap());
    assert_eq!(hour.get("images.received"), Some(&1));
    if let Some(other) = place.another_node().await {
        assert_eq!(other.record(IMAGES, &hash).await.unwrap().map(|b| b.len()), Some(bytes.len()), "every node serves it");
    }
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        conformance!(sled: $($check),*);
        conformance!(postgres: $($check),*);
    };
}

every_backend!(
    messages_are_numbered_and_survive_reopening,
    a_stale_conversation_is_refused_not_interleaved,
    a_refused_change_does_not_take_others_down,
    racing_steps_of_one_conversation_leave_no_gaps,
    the_queue_orders_by_priority_then_waiting_time,
    assigned_handoffs_follow_their_agent,
    people_sessions_and_records_of_a_step,
    roles_and_quality_reviews,
    ids_are_unique_across_callers,
    records_are_kept_claimed_once_and_updated_atomically,
    history_is_summarised_as_steps_commit_and_searched_by_each_filter,
    report_counters_follow_each_change,
    report_counters_count_every_applied_change_once,
    named_counters_over_days_match_their_hours,
    tickets_move_on_by_version_and_count_breaches_once,
    tickets_due_follow_each_ticket_write,
    images_are_kept_whole_by_hash_with_their_message,
    records_of_a_step_are_written_with_it_or_not_at_all,
);
