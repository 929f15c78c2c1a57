//! The statistics (`/admin/stats`) and a 30-day report over 1,000,000 stored conversations,
//! on the sled store: target ≤ 200 ms each. Both read the hourly counters the store keeps as
//! it writes, so their cost follows the range (720 hours × scopes, plus the named counters
//! of those hours), not the number of conversations.
//!
//! `cargo bench --bench reports` generates the data once through the real write path —
//! `Store::commit`, batched by the sled writer as the server's steps are — into
//! `target/bench-reports/<N>` (kept between runs; delete it to regenerate), then times each
//! query with `Instant` (median, p90) and lets criterion measure them too. The data: N
//! conversations (`KEFU_BENCH_CONVERSATIONS`, default 1,000,000) spread evenly over 60 days,
//! each a visitor question and the bot's reply — 70 % an answer from one of 200 articles,
//! 20 % a decline with an unanswered question from a pool of 20,000, 10 % a clarification —
//! and every tenth handed off, assigned to one of 10 agents, answered, resolved and rated.
//! Under `cargo test --benches` 20,000 conversations keep the run short.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use kefu::dialogue::{BotMeta, Context, Conversation, NewMessage, Sender, State, Visitor};
use kefu::handoff::{Handoff, HandoffStatus, Priority, Rating, Reason};
use kefu::service::reports::{self, Range};
use kefu::store::report::{NameKind, HOUR_MS};
use kefu::store::{Change, SledStore, Store};

const DAYS: u64 = 60;
/// 2026-01-01 00:00 UTC.
const START_MS: u64 = 1_767_225_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A small deterministic generator (xorshift), so every run builds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn conversation(id: String, at: u64) -> Conversation {
    Conversation {
        id,
        token_hashes: vec![],
        visitor: Visitor::default(),
        state: State::Bot,
        context: Context::default(),
        handoff: None,
        created_ms: at,
        updated_ms: at,
        last_seq: 0,
    }
}

fn bot(kind: &str, article: Option<String>) -> NewMessage {
    NewMessage::bot("……", BotMeta { kind: kind.into(), article, ..Default::default() })
}

/// The changes of conversation `i`: its first step, then (every tenth) the handoff's.
fn steps(i: u64, n: u64, rng: &mut Rng) -> Vec<Change> {
    let at = START_MS + i * (DAYS * DAY_MS / n);
    let id = format!("bench-{i:08}");
    let mut conv = conversation(id.clone(), at);
    let roll = rng.below(10);
    let mut first = Change { conversation: Some(conv.clone()), at_ms: at, ..Default::default() };
    first.messages.push(NewMessage::visitor("问题", None));
    match roll {
        0..=6 => first.messages.push(bot("answer", Some(format!("article-{}", rng.below(200))))),
        7 | 8 => {
            first.messages.push(bot("none", None));
            first.unanswered.push(format!("没答上的问题{}", rng.below(20_000)));
        }
        _ => first.messages.push(bot("clarify", None)),
    }
    let mut out = vec![first];
    if i % 10 == 0 {
        conv.last_seq = 2;
        let agent = format!("agent{}", rng.below(10));
        let mut h = Handoff {
            id: i + 1,
            conversation: id.clone(),
            reason: Reason::Requested,
            detail: String::new(),
            priority: Priority::Normal,
            skill: "general".into(),
            intent: None,
            slots: Default::default(),
            candidates: vec![],
            visitor: Visitor::default(),
            transcript: vec![],
            created_ms: at + 1_000,
            status: HandoffStatus::Queued,
            agent: None,
            assigned_ms: None,
            closed_ms: None,
        };
        conv.handoff = Some(h.id);
        out.push(Change { conversation: Some(conv.clone()), messages: vec![NewMessage::visitor("转人工", None)], handoffs: vec![h.clone()], at_ms: at + 1_000, ..Default::default() });
        (h.status, h.agent, h.assigned_ms) = (HandoffStatus::Assigned, Some(agent.clone()), Some(at + 30_000));
        out.push(Change { handoffs: vec![h.clone()], at_ms: at + 30_000, ..Default::default() });
        conv.last_seq = 3;
        let reply = NewMessage { from: Sender::Agent { id: agent.clone(), name: agent.clone() }, text: "您好".into(), internal: false, bot: None, client_id: None, image: None };
        out.push(Change { conversation: Some(conv), messages: vec![reply], at_ms: at + 45_000, ..Default::default() });
        (h.status, h.closed_ms) = (HandoffStatus::Resolved, Some(at + 300_000));
        out.push(Change { handoffs: vec![h], at_ms: at + 300_000, ..Default::default() });
        let rating = Rating { conversation: id, handoff: Some(i + 1), agent: Some(agent), score: 1 + rng.below(5) as u8, comment: None, at_ms: at + 310_000 };
        out.push(Change { rating: Some(rating), at_ms: at + 310_000, ..Default::default() });
    }
    out
}

/// Opens the store of `n` conversations, generating it first if it is not complete.
async fn fixture(n: u64) -> Arc<dyn Store> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-reports").join(n.to_string());
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SledStore::open(&dir.join("data")).unwrap();
        let started = Instant::now();
        let mut rng = Rng(0x6b65_6675);
        // Steps of one conversation go in order; different conversations' steps in flight
        // together, as on a busy server, so the writer batches them.
        const WAVE: u64 = 512;
        let mut commits = 0;
        for wave in (0..n).step_by(WAVE as usize) {
            let all: Vec<Vec<Change>> = (wave..(wave + WAVE).min(n)).map(|i| steps(i, n, &mut rng)).collect();
            let depth = all.iter().map(Vec::len).max().unwrap_or(0);
            let mut all: Vec<std::vec::IntoIter<Change>> = all.into_iter().map(Vec::into_iter).collect();
            for _ in 0..depth {
                let pending: Vec<_> = all.iter_mut().filter_map(|s| s.next()).map(|c| store.commit(c)).collect();
                commits += pending.len();
                for r in futures_util::future::join_all(pending).await {
                    r.expect("a generated change commits");
                }
            }
            if wave % 102_400 == 0 && wave > 0 {
                eprintln!("  {wave} conversations in {:.0?}", started.elapsed());
            }
        }
        store.durable().await.unwrap();
        eprintln!("generated {n} conversations ({commits} commits) in {:.1?}", started.elapsed());
        drop(store);
        std::fs::write(&done, b"").unwrap();
    }
    for _ in 0..500 {
        if let Ok(s) = SledStore::open(&dir.join("data")) {
            return Arc::new(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the bench store does not open");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench(c: &mut Criterion) {
    let test_mode = std::env::args().any(|a| a == "--test");
    let n: u64 = std::env::var("KEFU_BENCH_CONVERSATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(if test_mode { 20_000 } else { 1_000_000 });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(fixture(n));
    let end_ms = START_MS + DAYS * DAY_MS;
    // The last 30 days of the data, in China's days.
    let last = reports::date_of((end_ms / DAY_MS) as i64 - 1);
    let first = reports::date_of((end_ms / DAY_MS) as i64 - 30);
    let range = Range::parse(&first, &last, 480).unwrap();
    let title = |_: &str| None;

    // Sanity first, so a broken path cannot post a fast time.
    let stats = rt.block_on(kefu::service::stats::compute(&*store, end_ms)).unwrap();
    assert_eq!(stats.conversations as u64, n, "every conversation is counted");
    assert_eq!(stats.handoffs as u64, n.div_ceil(10));
    let report = rt.block_on(reports::compute(&*store, range, &title)).unwrap();
    let in_range = report.bot.conversations as u64;
    assert!(in_range > n * 45 / 100 && in_range < n * 55 / 100, "about half the conversations are in the last 30 days: {in_range}");
    assert_eq!(report.days.len(), 30);
    assert_eq!(report.agents.len(), 10);
    assert_eq!(report.bot.top_articles.len(), reports::TOP);
    eprintln!(
        "stats: {} conversations, auto-resolution {:.3}; 30-day report: {} conversations, {} handoffs, {} unanswered",
        stats.conversations, stats.auto_resolution_rate, in_range, report.bot.handoffs, report.bot.unanswered
    );

    let stats_once = || {
        rt.block_on(kefu::service::stats::compute(&*store, end_ms)).unwrap();
    };
    let report_once = || {
        rt.block_on(reports::compute(&*store, range, &title)).unwrap();
    };
    // The named counters alone, as the report reads them (whole UTC days as day rows, the
    // edges as hours) and, for comparison in the same run, read hour by hour: 30 ranges of
    // 24 hours that each straddle a UTC midnight hold no whole day, so they read only hour rows
    // (what the report read before the day rows existed).
    let (from_hour, until_hour) = range.hours();
    assert_ne!(from_hour % 24, 0, "a China day starts inside a UTC day");
    let names_by_day = || {
        for kind in [NameKind::Article, NameKind::Question] {
            black_box(rt.block_on(store.report_names(kind, from_hour, until_hour, reports::TOP)).unwrap());
        }
    };
    let names_by_hour = || {
        for kind in [NameKind::Article, NameKind::Question] {
            for day in 0..30 {
                let from = from_hour + day * 24;
                black_box(rt.block_on(store.report_names(kind, from, from + 24, reports::TOP)).unwrap());
            }
        }
    };
    let runs: [(&str, &dyn Fn()); 4] =
        [("stats", &stats_once), ("report_30_days", &report_once), ("named_counters_by_day", &names_by_day), ("named_counters_by_hour", &names_by_hour)];
    for (name, run) in runs {
        let mut times: Vec<Duration> = (0..if test_mode { 3 } else { 50 })
            .map(|_| {
                let t = Instant::now();
                run();
                t.elapsed()
            })
            .collect();
        times.sort();
        eprintln!("{name} over {n} conversations: median {:.1?}, p90 {:.1?}, max {:.1?}", percentile(&times, 0.5), percentile(&times, 0.9), times[times.len() - 1]);
    }

    let mut g = c.benchmark_group("reports");
    g.sample_size(20);
    g.bench_function("stats", |b| b.iter(|| black_box(rt.block_on(kefu::service::stats::compute(&*store, end_ms)).unwrap())));
    g.bench_function("report_30_days", |b| b.iter(|| black_box(rt.block_on(reports::compute(&*store, range, &title)).unwrap())));
    g.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
