//! Time of `DataDir::import` of a 100k-article synthetic knowledge base (analysis, tantivy
//! index, corpus file, fsyncs, generation swap). Target: ≤ 15 s.
//!
//! Parsing the JSONL (`knowledge::load`) is timed once and printed but kept out of the
//! measurement; `scripts/compare_speed.sh` times the whole `kefu import` command.
//! `KEFU_BENCH_ARTICLES` overrides the size; criterion's test mode (`cargo test --benches`)
//! uses 2 000 articles.

#[path = "support/synth.rs"]
mod synth;

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode};
use kefu::knowledge::{self, DataDir, Quiet};

fn main() {
    let (benchmarking, articles) = synth::bench_size();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("kb.jsonl");
    synth::write_knowledge(&synth::knowledge(articles, 42), &file).expect("the knowledge base is written");
    let started = Instant::now();
    let loaded = knowledge::load(&file).expect("the synthetic knowledge base loads");
    println!("load (JSONL parse + checks) of {articles} articles: {:.2} s", started.elapsed().as_secs_f64());

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("import");
    // One import takes seconds: the fewest samples criterion allows, one import each.
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(if benchmarking { 150 } else { 5 }));
    group.bench_function(format!("{}k", articles / 1000), |b| {
        b.iter_batched(
            || tempfile::tempdir_in(dir.path()).expect("a data directory"),
            |data| {
                let report = DataDir::new(data.path()).import(&loaded, &Quiet).expect("import succeeds");
                assert_eq!(report.articles, articles, "every article is imported");
                // Returned so the directory is deleted outside the timed region.
                data
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    c.final_summary();
}
