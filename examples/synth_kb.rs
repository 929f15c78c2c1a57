//! Writes the deterministic synthetic knowledge base and queries used by the speed
//! benchmarks, so tools outside Rust (scripts/compare_speed.sh, the Python baseline) see
//! exactly the text the criterion benches see.
//!
//! cargo run --release --example synth_kb -- --out-kb kb.jsonl --out-queries queries.jsonl \
//!     [--articles 100000] [--queries 6000] [--seed 42]

#[path = "../benches/support/synth.rs"]
mod synth;

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut out_kb: Option<PathBuf> = None;
    let mut out_queries: Option<PathBuf> = None;
    let (mut articles, mut queries, mut seed) = (100_000usize, 6_000usize, 42u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--out-kb" => out_kb = Some(value()?.into()),
            "--out-queries" => out_queries = Some(value()?.into()),
            "--articles" => articles = value()?.parse()?,
            "--queries" => queries = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "-h" | "--help" => {
                println!("usage: synth_kb --out-kb FILE.jsonl --out-queries FILE.jsonl [--articles N] [--queries N] [--seed S]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other} (try --help)"),
        }
    }
    if out_kb.is_none() && out_queries.is_none() {
        anyhow::bail!("nothing to do: give --out-kb and/or --out-queries");
    }

    let started = std::time::Instant::now();
    let kb = synth::knowledge(articles, seed);
    if let Some(path) = &out_kb {
        synth::write_knowledge(&kb, path)?;
    }
    let qs = synth::queries(&kb, queries, seed.wrapping_add(1));
    if let Some(path) = &out_queries {
        synth::write_queries(&qs, path)?;
    }

    // A summary on stderr, to eyeball that the statistics look like real text.
    let questions: usize = kb.iter().map(|a| 1 + a.similar.len()).sum();
    let chars: usize = kb.iter().flat_map(|a| a.questions()).map(|q| q.chars().count()).sum();
    let answer_chars: usize = kb.iter().map(|a| a.answer.chars().count()).sum();
    let off = qs.iter().filter(|q| q.1.is_none()).count();
    eprintln!(
        "{} articles, {} questions (mean {:.1} chars), mean answer {:.0} chars; {} queries ({} off-topic) in {:.1} s",
        kb.len(),
        questions,
        chars as f64 / questions.max(1) as f64,
        answer_chars as f64 / kb.len().max(1) as f64,
        qs.len(),
        off,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
