//! Where `DataDir::import` spends its time: stage timestamps taken from the progress
//! callbacks (analysing, indexing, then writing corpus.bin + fsync + swap), and the cost of
//! the text analysis it runs, measured piece by piece on one thread.
//!
//! cargo run --release --example import_profile -- --from KB.jsonl [--data DIR]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use kefu::knowledge::{self, DataDir, Progress};
use kefu::text::{normalize, Analyzer};

/// Records when each stage starts and when progress was last reported.
struct Stages {
    started: Instant,
    log: Mutex<Vec<(String, f64, f64)>>,
}

impl Progress for Stages {
    fn stage(&self, name: &str, _total: u64) {
        let now = self.started.elapsed().as_secs_f64();
        self.log.lock().unwrap().push((name.to_string(), now, now));
    }
    fn advance(&self, _done: u64) {
        let now = self.started.elapsed().as_secs_f64();
        if let Some(last) = self.log.lock().unwrap().last_mut() {
            last.2 = now;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let (mut from, mut data): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--from" => from = Some(value()?.into()),
            "--data" => data = Some(value()?.into()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let Some(from) = from else { anyhow::bail!("usage: import_profile --from KB.jsonl [--data DIR]") };
    let temp = tempfile::tempdir()?;
    let data = data.unwrap_or_else(|| temp.path().join("data"));

    let t = Instant::now();
    let loaded = knowledge::load(&from)?;
    println!("load (parse + checks): {:.2} s", t.elapsed().as_secs_f64());

    let stages = Stages { started: Instant::now(), log: Mutex::new(Vec::new()) };
    let report = DataDir::new(&data).import(&loaded, &stages)?;
    let total = stages.started.elapsed().as_secs_f64();
    let log = stages.log.lock().unwrap().clone();
    println!("import of {} articles ({} questions): {total:.2} s", report.articles, report.questions);
    let mut previous_end = 0.0;
    for (name, start, last) in &log {
        println!("  before {name:<10} {:>6.2} s", start - previous_end);
        println!("  {name:<17} {:>6.2} s (last progress at {last:.2} s)", last - start);
        previous_end = *last;
    }
    println!("  after indexing    {:>6.2} s (corpus.bin, fsyncs, swap)", total - previous_end);

    // Analysis costs on one thread, to split the stages further.
    let analyzer = Analyzer::new(loaded.lexicon.clone());
    let questions: Vec<&str> = loaded.articles.iter().flat_map(|a| a.questions()).collect();
    let t = Instant::now();
    let chars: usize = questions.iter().map(|q| normalize(q).len()).sum();
    let norm_q = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let terms: usize = questions.iter().map(|q| analyzer.analyze(q).terms.len()).sum();
    let analyse_q = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let bytes: usize = loaded.articles.iter().map(|a| normalize(&a.answer).len()).sum();
    let norm_a = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let answer_terms: usize = loaded.articles.iter().map(|a| analyzer.analyze(&a.answer).terms.len()).sum();
    let analyse_a = t.elapsed().as_secs_f64();
    println!("one thread: normalise {} questions {norm_q:.2} s, analyse (normalise + jieba) {analyse_q:.2} s; {terms} terms, {chars} bytes", questions.len());
    println!(
        "one thread: normalise {} answers {norm_a:.2} s, analyse {analyse_a:.2} s ({answer_terms} terms, {bytes} bytes): the body field's tokenizer does this inside tantivy",
        loaded.articles.len()
    );
    Ok(())
}
