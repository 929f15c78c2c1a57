//! The `kefu` command line: parses arguments and hands off to the library.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kefu::knowledge::{self, eval, train, DataDir, Engine, Ranker, Thresholds};
use serde::Serialize;

/// kefu (客服): a Chinese-first customer-service bot.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// What to do; with none, `serve` (the demo on 127.0.0.1:8080).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the chat API, WebSockets and pages (the default command).
    Serve(ServeArgs),
    /// Bring a PostgreSQL store's schema up to this build's (serve does it too, at start).
    Migrate {
        /// The store's URL, postgres://user@host:5432/db.
        #[arg(long, env = "KEFU_STORE")]
        store: String,
    },
    /// Import a knowledge folder, .jsonl or .csv into a data directory (atomic swap).
    Import {
        /// Knowledge folder, .jsonl or .csv file.
        #[arg(long, default_value = "knowledge", env = "KEFU_KNOWLEDGE")]
        from: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Answer a question, or a batch of questions as JSON lines.
    Ask {
        #[command(flatten)]
        engine: EngineArgs,
        /// The question.
        #[arg(required_unless_present = "batch", conflicts_with = "batch")]
        question: Option<String>,
        /// A file of {"query": …} lines; writes one JSON line per query, in input order.
        #[arg(long)]
        batch: Option<PathBuf>,
    },
    /// Print quality metrics on a labelled question set ({"query", "expected"} lines).
    Eval {
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        queries: PathBuf,
    },
    /// Learn ranker weights and thresholds from labelled question sets. Give `--data` and
    /// `--queries` once per set, in pairs: each set is asked against its own data directory.
    Train {
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        #[arg(long, required = true)]
        queries: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Where to write the model (TOML); default: print it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cross-validation folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        #[arg(long, default_value_t = 1500)]
        iterations: usize,
        /// L2 regularisation strength.
        #[arg(long, default_value_t = 1e-5)]
        l2: f32,
        /// Answer precision the answer threshold must reach on held-out folds.
        #[arg(long, default_value_t = 0.905)]
        target_precision: f64,
        /// Also write every training example's features as JSON lines here, for analysis.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
}

#[derive(Args)]
struct DataArgs {
    /// Data directory holding the index.
    #[arg(long, default_value = "data", env = "KEFU_DATA")]
    data: PathBuf,
}

#[derive(Args)]
struct ModelArgs {
    /// The semantic word table (built by scripts/model); when the file is missing kefu
    /// answers by words only.
    #[arg(long = "model", default_value = kefu::semantic::DEFAULT_PATH, env = "KEFU_MODEL")]
    path: PathBuf,
    /// Answer by words only, even when the table exists.
    #[arg(long)]
    no_model: bool,
}

impl ModelArgs {
    fn load(&self) -> anyhow::Result<Option<std::sync::Arc<kefu::semantic::WordTable>>> {
        if self.no_model {
            return Ok(None);
        }
        Ok(kefu::semantic::load_optional(&self.path)?)
    }
}

#[derive(Args)]
struct EngineArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// A ranker model file (TOML) to use instead of the built-in one.
    #[arg(long, env = "KEFU_RANKER")]
    ranker: Option<PathBuf>,
    /// Answer when the confidence is at least this (default: the ranker's).
    #[arg(long, env = "KEFU_ANSWER_THRESHOLD")]
    answer_threshold: Option<f32>,
    /// Offer choices when the confidence is at least this (default: the ranker's).
    #[arg(long, env = "KEFU_CLARIFY_THRESHOLD")]
    clarify_threshold: Option<f32>,
}

impl EngineArgs {
    fn open(&self) -> anyhow::Result<Engine> {
        let table = self.model.load()?;
        let ranker = match &self.ranker {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                Ranker::from_toml(&text, &path.display().to_string())?
            }
            None => Ranker::builtin_for(table.is_some()),
        };
        let defaults = ranker.thresholds;
        let thresholds = Thresholds {
            answer: self.answer_threshold.unwrap_or(defaults.answer),
            clarify: self.clarify_threshold.unwrap_or(defaults.clarify),
        }
        .validate()
        .map_err(anyhow::Error::msg)?;
        // A server's data directory keeps its index in `knowledge/`.
        let dir = &self.data.data;
        let server_index = dir.join("knowledge");
        let dir = if !dir.join("CURRENT").exists() && server_index.join("CURRENT").exists() { &server_index } else { dir };
        let mut engine = DataDir::new(dir).open(ranker)?;
        engine.set_semantic(table);
        engine.set_thresholds(thresholds);
        Ok(engine)
    }
}

#[derive(Args, Default)]
struct ServeArgs {
    /// A TOML config file (see README "Configuration"); KEFU_* variables override it.
    #[arg(long, env = "KEFU_CONFIG")]
    config: Option<PathBuf>,
}

fn migrate(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("--store must be a postgres://… URL (the sled store needs no migration), not {:?}", kefu::store::redact_url(url));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = kefu::store::PgStore::new(url)?;
        let applied = store.migrate().await?;
        println!("kefu: {} migration(s) applied to {}; the schema is at version {}", applied, kefu::store::redact_url(url), kefu::store::PgStore::SCHEMA_VERSION);
        Ok(())
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = kefu::config::Config::load(args.config.as_deref())?;
    if let Some(path) = args.config.as_deref().filter(|p| kefu::config::Config::readable_by_others(p)) {
        tracing::warn!(file = %path.display(), "the config file is readable by other users and may hold secrets; chmod 600 it");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let at = listener.local_addr()?;
        // The address comes first and alone: scripts (and tests/crash.rs) read it from here.
        println!("kefu: serving on http://{at} (the demo store with the chat widget: http://{at}/demo; agent console /agent, admin page /admin, API /api/v1, see docs/api.md)");
        Ok(kefu::run(config, listener, shutdown_signal()).await?)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kefu=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Migrate { store } => migrate(&store),
        Command::Import { from, data } => import(&from, &data.data),
        Command::Ask { engine, question: Some(q), batch: None } => ask_one(&engine.open()?, &q),
        Command::Ask { engine, batch: Some(file), .. } => ask_batch(&engine.open()?, &file),
        Command::Ask { .. } => unreachable!("clap requires a question or --batch"),
        Command::Eval { engine, queries } => evaluate(&engine.open()?, &queries),
        Command::Train { data, queries, model, out, folds, iterations, l2, target_precision, dump } => {
            if data.len() != queries.len() {
                anyhow::bail!("give --data and --queries in pairs ({} data directories, {} query files)", data.len(), queries.len());
            }
            // Training starts from the shipped model for the same setting (with or without
            // the semantic table).
            let table = model.load()?;
            let engines = data
                .iter()
                .map(|d| {
                    let mut engine = DataDir::new(d).open(Ranker::builtin_for(table.is_some()))?;
                    engine.set_semantic(table.clone());
                    Ok(engine)
                })
                .collect::<Result<Vec<_>, knowledge::KnowledgeError>>()?;
            let labels = queries.iter().map(|q| eval::read_queries(q)).collect::<Result<Vec<_>, _>>()?;
            if let Some(path) = dump {
                let mut out = BufWriter::new(std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?);
                for (set, (engine, labels)) in engines.iter().zip(&labels).enumerate() {
                    for (label, example) in labels.iter().zip(train::examples(engine, labels, set)?) {
                        let line = serde_json::json!({
                            "set": set,
                            "query": label.query,
                            "label": example.label,
                            "answerable": label.expected.is_some(),
                            "candidates": example.candidates.iter().map(|c| c.questions.iter().map(|f| f.to_vec()).collect::<Vec<_>>()).collect::<Vec<_>>(),
                        });
                        serde_json::to_writer(&mut out, &line)?;
                        out.write_all(b"\n")?;
                    }
                }
                out.flush()?;
            }
            let sets: Vec<(&Engine, &[eval::LabeledQuery])> = engines.iter().zip(&labels).map(|(e, l)| (e, l.as_slice())).collect();
            let options = train::Options { folds, iterations, l2, target_precision };
            let trained = train::train(&sets, options)?;
            for (i, path) in queries.iter().enumerate() {
                eprintln!("{}:", path.display());
                eprintln!("  cross-validated ({folds} folds): {}", serde_json::to_string(&trained.cross_validated[i])?);
                eprintln!("  in-sample:                 {}", serde_json::to_string(&trained.in_sample[i])?);
                eprintln!("  calibration (cross-validated): {}", calibration_line(&trained.calibration[i]));
            }
            eprintln!("thresholds: answer {} clarify {}", trained.ranker.thresholds.answer, trained.ranker.thresholds.clarify);
            match out {
                Some(path) => std::fs::write(&path, trained.ranker.to_toml())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{}", trained.ranker.to_toml()),
            }
            Ok(())
        }
    }
}

/// The calibration bins of one set on one line: `[low,high) n right%` for the non-empty bins
/// from 0.5 up, where answering happens.
fn calibration_line(bins: &[eval::Bin]) -> String {
    bins.iter()
        .filter(|b| b.count > 0 && b.low >= 0.5)
        .map(|b| format!("[{:.1},{:.1}) n={} {:.1}% right (mean {:.3})", b.low, b.high, b.count, 100.0 * b.accuracy, b.mean_confidence))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shows import progress on a terminal (indicatif hides itself when stderr is not one).
struct Bar(ProgressBar);

impl knowledge::Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }
    fn advance(&self, done: u64) {
        self.0.set_position(done);
    }
}

fn import(from: &Path, data: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = knowledge::load(from)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let report = DataDir::new(data).import(&loaded, &Bar(bar.clone()))?;
    bar.finish_and_clear();
    eprintln!(
        "imported {} articles ({} questions) from {} into {} as {} in {:.2} s",
        report.articles,
        report.questions,
        from.display(),
        data.display(),
        report.generation,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ask_one(engine: &Engine, question: &str) -> anyhow::Result<()> {
    let reply = engine.ask(question)?;
    // Write through a handle (not println!) so a closed pipe is an error, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(out, "action:     {}", serde_json::to_value(reply.action)?.as_str().unwrap_or_default())?;
    writeln!(out, "confidence: {:.3}", reply.confidence)?;
    if let Some(top) = reply.answer() {
        let article = engine.article(top.article);
        writeln!(out, "answer:     [{}] {}\n\n{}\n", article.id, article.title, article.answer)?;
    }
    writeln!(out, "candidates:")?;
    for (i, c) in reply.candidates.iter().take(5).enumerate() {
        writeln!(out, "  {}. {:<28} {:.3}  {}", i + 1, c.id, c.confidence, c.matched_question)?;
    }
    Ok(())
}

/// One line of `ask --batch` output. This shape is how the project is measured: keep it.
#[derive(Serialize)]
struct BatchLine<'a> {
    query: &'a str,
    candidates: Vec<&'a str>,
    answer_id: Option<&'a str>,
    action: knowledge::Action,
    confidence: f32,
}

fn ask_batch(engine: &Engine, file: &Path) -> anyhow::Result<()> {
    let queries: Vec<String> = eval::read_queries(file)?.into_iter().map(|q| q.query).collect();
    let replies = engine.ask_batch(&queries);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for (query, reply) in queries.iter().zip(replies) {
        let reply = reply?;
        let line = BatchLine {
            query,
            candidates: reply.candidates.iter().take(10).map(|c| c.id.as_str()).collect(),
            answer_id: reply.answer().map(|c| c.id.as_str()),
            action: reply.action,
            confidence: (reply.confidence * 10_000.0).round() / 10_000.0,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn evaluate(engine: &Engine, file: &Path) -> anyhow::Result<()> {
    let labels = eval::read_queries(file)?;
    let queries: Vec<String> = labels.iter().map(|q| q.query.clone()).collect();
    let started = Instant::now();
    let replies = engine.ask_batch(&queries).into_iter().collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    let metrics = eval::metrics(&labels, &replies);
    println!("{}", serde_json::to_string(&metrics)?);
    eprintln!(
        "{} queries in {:.2} s; thresholds answer {} clarify {}",
        labels.len(),
        elapsed.as_secs_f64(),
        engine.thresholds().answer,
        engine.thresholds().clarify
    );
    eprintln!("calibration of the top candidate's confidence:");
    for bin in eval::calibration(&labels, &replies) {
        if bin.count > 0 {
            eprintln!(
                "  [{:.1}, {:.1})  n={:<5} mean confidence {:.3}  accuracy {:.3}",
                bin.low, bin.high, bin.count, bin.mean_confidence, bin.accuracy
            );
        }
    }
    Ok(())
}
