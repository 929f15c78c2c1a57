//! History search over 1 000 000 stored conversations (issue 17: a search answers in
//! ≤ 300 ms), on the sled store, the default backend.
//!
//! The data is generated once through the real write path — `SledStore::commit`, one
//! `Change` per conversation with its messages, handoff, rating or ticket, so the history
//! index is built as the service builds it — into `$CARGO_TARGET_DIR/bench-history-N`
//! (kept between runs; delete it to regenerate). A deterministic generator (seed 17) spreads
//! the conversations over the last 365 days: web 70 %, 公众号 20 %, 小程序 10 %; 1–3 visitor
//! questions from 40 after-sales templates with product names and order numbers, a bot
//! answer for 60 %, a handoff to one of 20 agents with an agent's reply for 30 %, a rating
//! for 10 %, a ticket for 5 %, a verified user id for 40 %. One old conversation holds a
//! phrase found nowhere else: without the text index that search read every summary.
//!
//! Each query is first checked (so a broken path cannot post a fast time), then timed 21
//! times with `Instant` (median and max printed), then measured by criterion.
//! `KEFU_BENCH_CONVERSATIONS` overrides the size (criterion's test mode uses 20 000).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures_util::StreamExt;
use kefu::dialogue::{BotMeta, Context, Conversation, NewMessage, Sender, State, Visitor};
use kefu::handoff::{Handoff, HandoffStatus, Priority, Rating, Reason, Ticket};
use kefu::store::{Change, HistoryQuery, Outcome, SledStore, Store};

const SEED: u64 = 17;
const DAY: u64 = 86_400_000;
/// Where "now" is for the generated data: 2026-12-01 00:00 UTC.
const NOW: u64 = 1_796_083_200_000;
const RARE: &str = "紫罗兰色扫地机器人";

const QUESTIONS: &[&str] = &[
    "退货运费谁出？", "我想退货，怎么操作", "{p}坏了能换吗", "订单{o}什么时候发货", "{p}的发票怎么开", "快递到哪了，单号{o}",
    "{p}漏水了", "{p}不制冷怎么办", "退款多久到账", "我要投诉，{p}送来就是坏的", "能不能开专票", "{p}有保修吗",
    "怎么修改收货地址", "优惠券用不了", "{p}安装要收费吗", "订单{o}能取消吗", "七天无理由退货包括{p}吗", "上门取件要钱吗",
    "{p}噪音很大", "发错货了，我买的是{p}", "价格保护怎么申请", "运费险怎么理赔", "{p}缺少配件", "客服电话多少",
    "能货到付款吗", "{p}屏幕有划痕", "换货要多久", "积分怎么用", "会员有什么权益", "{p}说明书丢了",
    "退货地址是哪里", "我要转人工", "{p}能不能以旧换新", "物流一直不更新", "签收了但没收到", "{p}尺寸不合适",
    "发票抬头写错了", "订单{o}显示已签收", "可以分期付款吗", "{p}颜色和图片不一样",
];
const PRODUCTS: &[&str] = &["洗衣机", "冰箱", "空调", "电视", "吸尘器", "热水器", "微波炉", "电饭煲", "手机", "耳机", "净水器", "烤箱"];
const AGENT_REPLIES: &[&str] = &["您好，请提供一下订单号", "已为您登记，稍后会有师傅联系您", "给您带来不便非常抱歉", "已经为您申请退款", "请拍一张照片发给我"];

/// A small deterministic generator (splitmix64): the same data on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

fn question(rng: &mut Rng) -> String {
    let t = QUESTIONS[rng.below(QUESTIONS.len() as u64) as usize];
    t.replace("{p}", PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize]).replace("{o}", &format!("{:012}", rng.below(1_000_000_000_000)))
}

/// Conversation `i` of `n` as one change (`i` 0 is the oldest).
fn conversation(i: u64, n: u64, rng: &mut Rng) -> Change {
    let created_ms = NOW - 365 * DAY + i * (365 * DAY / n) + rng.below(1000);
    let channel = match rng.below(10) {
        0..=6 => "web",
        7 | 8 => "wechat_mp",
        _ => "wechat_mini",
    };
    let user_id = rng.percent(40).then(|| format!("user-{:06}", rng.below(300_000)));
    let visitor = Visitor { channel: channel.into(), verified: user_id.is_some(), user_id, name: rng.percent(20).then(|| format!("顾客{}", rng.below(10_000))), page: None };
    let id = format!("c{i:08}");
    let mut conv = Conversation {
        id: id.clone(),
        token_hashes: vec![],
        visitor: visitor.clone(),
        state: State::Bot,
        context: Context::default(),
        handoff: None,
        created_ms,
        updated_ms: created_ms,
        last_seq: 0,
    };
    let mut messages = vec![];
    for _ in 0..1 + rng.below(3) {
        let q = if i == n / 100 && messages.is_empty() { format!("我的{RARE}不转了") } else { question(rng) };
        messages.push(NewMessage::visitor(q, None));
        if rng.percent(60) {
            messages.push(NewMessage::bot("退货运费由……承担，详见退换货政策。", BotMeta { kind: "answer".into(), ..Default::default() }));
        }
    }
    let mut change = Change { at_ms: created_ms + 60_000, ..Default::default() };
    if rng.percent(30) {
        let agent = format!("agent-{:02}", rng.below(20));
        let from = Sender::Agent { id: agent.clone(), name: format!("客服{agent}") };
        messages.push(NewMessage { from, text: AGENT_REPLIES[rng.below(AGENT_REPLIES.len() as u64) as usize].into(), internal: false, bot: None, client_id: None, image: None });
        let h = Handoff {
            id: i + 1,
            conversation: id.clone(),
            reason: Reason::Requested,
            detail: String::new(),
            priority: Priority::Normal,
            skill: "general".into(),
            intent: None,
            slots: Default::default(),
            candidates: vec![],
            visitor: visitor.clone(),
            transcript: vec![],
            created_ms,
            status: HandoffStatus::Resolved,
            agent: Some(agent.clone()),
            assigned_ms: Some(created_ms + 10_000),
            closed_ms: Some(created_ms + 60_000),
        };
        conv.handoff = Some(h.id);
        change.handoffs.push(h);
        if rng.percent(33) {
            let score = 1 + rng.below(5) as u8;
            change.rating = Some(Rating { conversation: id.clone(), handoff: Some(i + 1), agent: Some(agent), score, comment: None, at_ms: created_ms + 60_000 });
        }
    } else if rng.percent(7) {
        change.ticket = Some(Ticket {
            id: i + 1,
            conversation: id.clone(),
            contact: "13800138000".into(),
            message: "请尽快联系我".into(),
            reason: Reason::Requested,
            visitor,
            transcript: vec![],
            created_ms,
            version: 1,
            ..Default::default()
        });
    }
    change.conversation = Some(conv);
    change.messages = messages;
    change
}

fn data_dir(n: u64) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target).join(format!("bench-history-{n}"))
}

async fn open_or_generate(n: u64) -> Arc<dyn Store> {
    let dir = data_dir(n);
    let done = dir.join("generated");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("store")).expect("the store opens"));
        let started = Instant::now();
        let mut rng = Rng(SEED);
        {
            // Generated as they are committed (1 M changes at once would take gigabytes), many in
            // flight as under load: the writer batches them into shared flushes.
            let changes = (0..n).map(|i| conversation(i, n, &mut rng));
            let mut commits = futures_util::stream::iter(changes.map(|c| store.commit(c))).buffer_unordered(512);
            let mut written = 0u64;
            while let Some(r) = commits.next().await {
                r.expect("a generated conversation commits");
                written += 1;
                if written % 100_000 == 0 {
                    eprintln!("history bench: {written} of {n} conversations written ({:.0} s)", started.elapsed().as_secs_f64());
                }
            }
        }
        store.durable().await.unwrap();
        eprintln!("history bench: generated {n} conversations in {:.0} s", started.elapsed().as_secs_f64());
        drop(store);
        std::fs::write(&done, n.to_string()).unwrap();
        // sled lets go of its lock a moment after the last handle.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..100 {
        if let Ok(s) = SledStore::open(&dir.join("store")) {
            return Arc::new(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bench store at {} does not open", dir.display());
}

/// A query as the API runs it: a page of 50 within the service's scan budget.
fn q(f: impl FnOnce(&mut HistoryQuery)) -> HistoryQuery {
    let mut q = HistoryQuery { limit: 50, budget: kefu::service::SCAN_BUDGET, ..Default::default() };
    f(&mut q);
    q
}

/// Median and max of 21 timed runs of `f`.
fn time(mut f: impl FnMut()) -> (f64, f64) {
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[10].as_secs_f64() * 1e3, times[20].as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not (criterion's test mode).
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("KEFU_BENCH_CONVERSATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(if test_mode { 20_000 } else { 1_000_000 });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = rt.block_on(open_or_generate(n));
    let count = rt.block_on(store.conversation_count()).unwrap();
    assert_eq!(count as u64, n, "the store holds the generated conversations");
    let search = |q: &HistoryQuery| rt.block_on(store.search_history(q)).unwrap();
    let rare = kefu::text::normalize(RARE);
    let queries: Vec<(&str, HistoryQuery)> = vec![
        ("text, common (退货), all time", q(|q| q.text = Some(kefu::text::normalize("退货")))),
        ("text, in one old conversation only, first page", q(|q| q.text = Some(rare.clone()))),
        ("agent + rated, last 30 days", q(|q| {
            q.agent = Some("agent-07".into());
            q.outcome = Some(Outcome::Rated);
            q.from_ms = Some(NOW - 30 * DAY);
        })),
        ("verified user id, all time", q(|q| q.visitor = Some("user-123456".into()))),
        ("part of a visitor's name (顾客1234), all time", q(|q| q.visitor = Some("顾客1234".into()))),
        ("channel 小程序 + ticket, all time", q(|q| {
            q.channel = Some("wechat_mini".into());
            q.outcome = Some(Outcome::Ticket);
        })),
        ("text (退货) + 30 days", q(|q| {
            q.text = Some(kefu::text::normalize("退货"));
            q.from_ms = Some(NOW - 30 * DAY);
        })),
        ("no filter, newest page", q(|_| {})),
        ("text, every pair common (洗衣机漏水)", q(|q| q.text = Some(kefu::text::normalize("洗衣机漏水")))),
        // Its words (退货, 洗衣机) meet in many conversations but the phrase in none: only
        // the pair across them (货洗) rules those out.
        ("text, words meet often, phrase never (退货洗衣机)", q(|q| q.text = Some(kefu::text::normalize("退货洗衣机")))),
    ];
    // Sanity first: a broken index cannot post a fast time.
    let common = search(&queries[0].1).summaries;
    assert_eq!(common.len(), 50);
    assert!(common.windows(2).all(|w| w[0].created_ms >= w[1].created_ms), "newest first");
    let rated = search(&queries[2].1).summaries;
    assert!(!rated.is_empty() && rated.iter().all(|s| s.agents == ["agent-07"] && s.rating.is_some() && s.created_ms >= NOW - 30 * DAY));
    let user = search(&queries[3].1);
    assert!(user.stopped_at.is_none() && !user.summaries.is_empty(), "the user's conversations, in one request");
    assert!(user.summaries.iter().all(|s| s.user_id.as_deref() == Some("user-123456")));
    let named = search(&queries[4].1).summaries;
    assert!(!named.is_empty() && named.iter().all(|s| s.visitor_name.as_deref().is_some_and(|n| n.contains("顾客1234"))));
    // The rare phrase, followed page by page as the console's 「加载更多」 does.
    let mut follow = queries[1].1.clone();
    let (mut found, mut pages) = (vec![], 0);
    let started = Instant::now();
    loop {
        pages += 1;
        let hits = search(&follow);
        found.extend(hits.summaries.into_iter().map(|s| s.id));
        match hits.stopped_at {
            Some(at) => follow.before = Some(at),
            None => break,
        }
    }
    let whole = started.elapsed();
    assert_eq!(found, [format!("c{:08}", n / 100)], "the rare phrase is in one conversation");
    println!("history search over {n} conversations (sled; one request examines at most {} summaries):", kefu::service::SCAN_BUDGET);
    for (name, query) in &queries {
        let (median, max) = time(|| drop(black_box(search(query))));
        let hits = search(query);
        let more = if hits.stopped_at.is_some() { ", stopped at its budget" } else { "" };
        println!("  {name:<50} median {median:>7.1} ms  max {max:>7.1} ms  ({} results{more})", hits.summaries.len());
    }
    // What the rare phrase cost before the text index, in the same run: a search that must
    // read every summary (an agent no conversation had: agents are not indexed), followed
    // through every page.
    let mut reading = q(|q| q.agent = Some("nobody-at-all".into()));
    let (mut read_pages, started) = (0, Instant::now());
    loop {
        read_pages += 1;
        let hits = search(&reading);
        assert!(hits.summaries.is_empty());
        match hits.stopped_at {
            Some(at) => reading.before = Some(at),
            None => break,
        }
    }
    let read_all = started.elapsed();
    println!(
        "  the rare phrase through every page: {pages} request(s), {:.1} ms in all; reading every summary instead (a filter the index does not serve): {read_pages} requests, {:.0} ms in all",
        whole.as_secs_f64() * 1e3,
        read_all.as_secs_f64() * 1e3
    );
    let mut c = Criterion::default().configure_from_args().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, query) in queries.iter().take(2) {
        c.bench_function(&format!("history/{name}"), |b| b.iter(|| search(black_box(query))));
    }
    c.final_summary();
}
