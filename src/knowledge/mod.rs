//! The answering engine: knowledge articles, their loaders, the tantivy index, retrieval,
//! re-ranking with a calibrated confidence, and the answer / clarify / none decision.
//!
//! It knows nothing about conversations, channels or HTTP: it takes a question and returns a
//! [`Reply`].

mod article;
mod corpus;
mod decide;
mod edit;
mod engine;

pub mod eval;
mod features;
mod index;
mod load;
mod model;
mod store;
pub mod train;


use std::path::PathBuf;

pub use article::Article;
pub use decide::{Action, Thresholds};
pub use edit::add_similar;
pub use engine::{Candidate, CandidateFeatures, Engine, Reply, RETRIEVE_LIMIT};
pub use load::{load, parse, Loaded};
pub use model::Ranker;
pub use store::{DataDir, ImportReport, Progress, Quiet};

/// One bad place in a knowledge source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Everything that can go wrong loading, indexing or opening knowledge.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{}", format_problems("the knowledge", errors, *total, "; nothing was imported"))]
    Invalid { errors: Vec<SourceError>, total: usize },
    #[error("cannot edit the knowledge: {reason}")]
    Edit { reason: String },
    #[error("no articles found")]
    Empty,
    #[error("{}", format_problems("the query file", errors, *total, ""))]
    InvalidQueries { errors: Vec<SourceError>, total: usize },
    #[error("{}: unknown knowledge format (expected a folder, a .jsonl or a .csv file)", path.display())]
    UnknownFormat { path: PathBuf },
    // The cause is not repeated in the message: callers print the whole chain.
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Lexicon(#[from] crate::text::LexiconError),
    #[error("no knowledge has been imported into {} (run `kefu import --from PATH --data {}`)", path.display(), path.display())]
    NotImported { path: PathBuf },
    #[error("the index in {} is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("invalid ranker model {origin}: {reason}")]
    Model { origin: String, reason: String },
}

pub(crate) fn format_problems(what: &str, errors: &[SourceError], total: usize, consequence: &str) -> String {
    let mut s = format!("{what} has {total} problem{}{consequence}", if total == 1 { "" } else { "s" });
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    if total > errors.len() {
        s.push_str(&format!("\n  … and {} more", total - errors.len()));
    }
    s
}
