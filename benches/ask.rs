//! Latency of `Engine::ask` on a 100k-article synthetic knowledge base, one thread, by words
//! only and with the semantic word table (`models/e5-static.kfv`, from `scripts/model`), side
//! by side in one run. Targets: by words median ≤ 0.5 ms, p99 ≤ 2 ms; with the table median
//! ≤ 3 ms, p99 ≤ 15 ms. Without the table the semantic half is skipped, and says so.
//!
//! `cargo bench --bench ask` builds the knowledge base once (outside any timing) through the
//! real path — JSONL file → `knowledge::load` → `DataDir::import` into a temporary directory →
//! `DataDir::open` — then:
//! 1. checks the answers are sane, so a broken path cannot post a fast time;
//! 2. times 20 000 individual calls with `Instant` and prints p50 / p90 / p99 / p99.9, since
//!    criterion reports means and medians of batches, not tail latency;
//! 3. lets criterion measure `ask` over a rotating set of queries.
//!
//! `KEFU_BENCH_ARTICLES` overrides the size. Under `cargo test --benches` (criterion's test
//! mode) a 2 000-article base keeps the run short.

#[path = "support/synth.rs"]
mod synth;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use kefu::knowledge::{self, Action, DataDir, Engine, Quiet, Ranker};

const KB_SEED: u64 = 42;
/// The same seed `examples/synth_kb.rs` uses for its queries, so figures are comparable.
const QUERY_SEED: u64 = KB_SEED + 1;
const QUERIES: usize = 5_000;
const TIMED_CALLS: usize = 20_000;

struct Fixture {
    /// Keeps the data directory alive as long as the engines read it.
    _dir: tempfile::TempDir,
    /// Words only.
    engine: Engine,
    /// The same index with the semantic table, when `models/` has one.
    semantic: Option<Engine>,
    queries: Vec<(String, Option<String>)>,
}

impl Fixture {
    fn engines(&self) -> impl Iterator<Item = (&'static str, &Engine)> {
        std::iter::once(("words", &self.engine)).chain(self.semantic.iter().map(|e| ("semantic", e)))
    }
}

fn build(articles: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    let kb = synth::knowledge(articles, KB_SEED);
    let queries = synth::queries(&kb, QUERIES, QUERY_SEED);
    let file = dir.path().join("kb.jsonl");
    synth::write_knowledge(&kb, &file).expect("the knowledge base is written");
    let generated = started.elapsed();

    let started = Instant::now();
    let loaded = knowledge::load(&file).expect("the synthetic knowledge base loads");
    let load = started.elapsed();
    let data = DataDir::new(dir.path().join("data"));
    let started = Instant::now();
    let report = data.import(&loaded, &Quiet).expect("the synthetic knowledge base imports");
    let import = started.elapsed();
    drop(loaded);
    let started = Instant::now();
    let engine = data.open(Ranker::builtin()).expect("the imported index opens");
    let open = started.elapsed();
    println!(
        "fixture: {} articles, {} questions; generate {:.2} s, load {:.2} s, import {:.2} s, open {:.2} s",
        report.articles,
        report.questions,
        generated.as_secs_f64(),
        load.as_secs_f64(),
        import.as_secs_f64(),
        open.as_secs_f64()
    );
    let table = kefu::semantic::load_optional(std::path::Path::new(kefu::semantic::DEFAULT_PATH)).expect("the semantic table is readable");
    let semantic = table.map(|table| {
        let started = Instant::now();
        let mut engine = data.open(Ranker::builtin_semantic()).expect("the imported index opens");
        let open = started.elapsed();
        let started = Instant::now();
        engine.set_semantic(Some(table));
        println!(
            "semantic: open {:.2} s, embedding every question {:.2} s",
            open.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        engine
    });
    if semantic.is_none() {
        println!("semantic: no table at {} (run scripts/model): timing words only", kefu::semantic::DEFAULT_PATH);
    }
    Fixture { _dir: dir, engine, semantic, queries }
}

/// Fails loudly unless the engine finds what it should: a fast but broken engine (empty
/// index, every query declined) must not post a good time.
fn check_sanity(f: &Fixture) {
    for (name, engine) in f.engines() {
        check_engine(name, engine, f);
    }
}

fn check_engine(name: &str, engine: &Engine, f: &Fixture) {
    // Titles asked verbatim must come back first (they are unique in the synthetic base).
    let titles: Vec<&kefu::knowledge::Article> = engine.articles().iter().step_by(97).take(300).collect();
    let mut exact = 0;
    for a in &titles {
        let reply = engine.ask(&a.title).expect("ask succeeds");
        exact += (reply.candidates.first().map(|c| c.id.as_str()) == Some(a.id.as_str())) as usize;
    }
    // Paraphrased queries: hit@1 among the answerable ones, and some answers at all.
    let (mut answerable, mut hit1, mut answered, mut empty) = (0usize, 0usize, 0usize, 0usize);
    for (q, expected) in &f.queries {
        let reply = engine.ask(q).expect("ask succeeds");
        empty += reply.candidates.is_empty() as usize;
        answered += (reply.action == Action::Answer) as usize;
        if let Some(e) = expected {
            answerable += 1;
            hit1 += (reply.candidates.first().map(|c| &c.id) == Some(e)) as usize;
        }
    }
    let exact_rate = exact as f64 / titles.len() as f64;
    let hit_rate = hit1 as f64 / answerable.max(1) as f64;
    println!(
        "sanity ({name}): verbatim titles top-1 {:.3} ({exact}/{}); paraphrases hit@1 {:.3}; answered {:.3}; no candidates {:.3}",
        exact_rate,
        titles.len(),
        hit_rate,
        answered as f64 / f.queries.len() as f64,
        empty as f64 / f.queries.len() as f64,
    );
    assert!(exact_rate >= 0.9, "verbatim titles should come back first ({exact_rate:.3})");
    assert!(hit_rate >= 0.3, "paraphrased queries should often find their article ({hit_rate:.3})");
    assert!(answered > 0, "the engine never answers");
}

/// Percentiles of single calls, timed one by one; returns the median.
fn percentiles(name: &str, engine: &Engine, f: &Fixture, calls: usize, (p50_target, p99_target): (Duration, Duration)) -> Duration {
    let queries = &f.queries;
    // Warm caches and page in the index before measuring.
    for (q, _) in queries.iter().take(1_000) {
        black_box(engine.ask(q).expect("ask succeeds"));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(calls);
    let mut off_topic: Vec<Duration> = Vec::new();
    let started = Instant::now();
    for i in 0..calls {
        let (q, expected) = &queries[i % queries.len()];
        let t = Instant::now();
        black_box(engine.ask(black_box(q)).expect("ask succeeds"));
        let d = t.elapsed();
        times.push(d);
        if expected.is_none() {
            off_topic.push(d);
        }
    }
    let wall = started.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    let mean = wall / calls as u32;
    let (p50, p90, p99, p999) =
        (pct(&mut times, 0.50), pct(&mut times, 0.90), pct(&mut times, 0.99), pct(&mut times, 0.999));
    let max = *times.last().expect("calls > 0");
    println!(
        "ask latency ({name}) over {calls} calls (1 thread): mean {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        ms(mean), ms(p50), ms(p90), ms(p99), ms(p999), ms(max)
    );
    if !off_topic.is_empty() {
        println!(
            "  off-topic queries only ({}): p50 {:.3} ms, p99 {:.3} ms",
            off_topic.len(),
            ms(pct(&mut off_topic, 0.5)),
            ms(pct(&mut off_topic, 0.99))
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets ({name}): median ≤ {:?} {}; p99 ≤ {:?} {}",
        p50_target,
        verdict(p50 <= p50_target),
        p99_target,
        verdict(p99 <= p99_target)
    );
    p50
}

fn main() {
    let (benchmarking, articles) = synth::bench_size();

    let fixture = build(articles);
    check_sanity(&fixture);
    let calls = if benchmarking { TIMED_CALLS } else { 1_000 };
    let words = percentiles("words", &fixture.engine, &fixture, calls, (Duration::from_micros(500), Duration::from_millis(2)));
    if let Some(engine) = &fixture.semantic {
        let semantic = percentiles("semantic", engine, &fixture, calls, (Duration::from_millis(3), Duration::from_millis(15)));
        println!("semantic / words median: {:.2}×", semantic.as_secs_f64() / words.as_secs_f64());
    }

    let mut c = Criterion::default().configure_from_args();
    for (name, engine) in fixture.engines() {
        let mut next = 0usize;
        c.bench_function(&format!("ask/{}k/{name}", articles / 1000), |b| {
            b.iter(|| {
                // Rotate through the queries so no single query's cost dominates.
                let (q, _) = &fixture.queries[next % fixture.queries.len()];
                next += 1;
                black_box(engine.ask(black_box(q)).expect("ask succeeds"))
            })
        });
    }
    c.final_summary();
}
