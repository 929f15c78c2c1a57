//! Where one `ask` spends its time, stage by stage, using only the public API: analysis
//! (normalise + jieba), retrieval + feature computation (`candidate_features`), and ranking.
//! Also a handy single-threaded loop to run under `perf record`.
//!
//! cargo run --release --example ask_profile -- --data DIR --queries FILE.jsonl [--rounds 3]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kefu::knowledge::{eval, DataDir, Ranker};

fn main() -> anyhow::Result<()> {
    let mut data: Option<PathBuf> = None;
    let mut queries: Option<PathBuf> = None;
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--data" => data = Some(value()?.into()),
            "--queries" => queries = Some(value()?.into()),
            "--rounds" => rounds = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let (Some(data), Some(queries)) = (data, queries) else {
        anyhow::bail!("usage: ask_profile --data DIR --queries FILE.jsonl [--rounds N]");
    };
    // Memory: what jieba's dictionary alone costs, then the whole engine.
    println!("rss at start: {}", rss());
    let lone = kefu::text::Analyzer::new(kefu::text::Lexicon::default());
    println!("rss with one extra analyser (jieba dictionary): {}", rss());
    drop(lone);
    let started = Instant::now();
    let engine = DataDir::new(&data).open(Ranker::builtin())?;
    println!("open: {:.2} s; rss after open: {}", started.elapsed().as_secs_f64(), rss());
    let queries: Vec<String> = eval::read_queries(&queries)?.into_iter().map(|q| q.query).collect();

    let (mut analyse, mut retrieve_features, mut rank) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut candidates, mut pairs, mut terms) = (0usize, 0usize, 0usize);
    let mut per_query: Vec<(Duration, usize, usize)> = Vec::new();
    for _ in 0..rounds {
        for q in &queries {
            let t = Instant::now();
            let analyzed = black_box(engine.analyzer().analyze(q));
            analyse += t.elapsed();
            terms += analyzed.terms.len();

            let t = Instant::now();
            let scored = engine.candidate_features(&analyzed)?;
            let d = t.elapsed();
            retrieve_features += d;
            let n_pairs: usize = scored.iter().map(|c| c.questions.len()).sum();
            candidates += scored.len();
            pairs += n_pairs;
            per_query.push((d, analyzed.terms.len(), n_pairs));

            let t = Instant::now();
            black_box(engine.rank(&scored, engine.ranker(), engine.thresholds()));
            rank += t.elapsed();
        }
    }
    let calls = (rounds * queries.len()) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / calls;
    println!(
        "per query (mean over {calls}): analyse {:.1} µs; candidate_features (analyse again + retrieve + features) {:.1} µs; rank {:.1} µs",
        us(analyse),
        us(retrieve_features),
        us(rank)
    );
    println!(
        "per query: {:.1} terms, {:.1} candidate articles, {:.1} question pairs scored",
        terms as f64 / calls,
        candidates as f64 / calls,
        pairs as f64 / calls
    );
    // Cost by number of query terms: retrieval cost grows with posting lists touched.
    per_query.sort_by_key(|p| p.1);
    println!("candidate_features by query terms: terms -> n, mean µs");
    let mut i = 0;
    while i < per_query.len() {
        let t = per_query[i].1;
        let group: Vec<_> = per_query[i..].iter().take_while(|p| p.1 == t).collect();
        let mean = group.iter().map(|p| p.0.as_secs_f64()).sum::<f64>() / group.len() as f64 * 1e6;
        println!("  {t:>2} -> {:>6}, {mean:>8.1}", group.len());
        i += group.len();
    }
    println!("rss at the end: {}", rss());
    Ok(())
}

/// Current and peak resident memory, from /proc (Linux).
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0)
    };
    format!("{} MB (peak {} MB)", field("VmRSS:") / 1024, field("VmHWM:") / 1024)
}
