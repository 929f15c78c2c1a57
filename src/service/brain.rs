//! The bot's knowledge: the answering engine, the intents and the agents' canned replies,
//! loaded together and swapped as one on reload, so a turn never sees a new knowledge base
//! with old intents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::handoff::{load_canned, Canned, CannedError};
use crate::knowledge::{self, Article, DataDir, Engine, KnowledgeError, Quiet, Ranker, Reply, Thresholds};
use crate::nlu::{IntentError, Intents};
use crate::semantic::WordTable;

/// Everything one turn consults, immutable once built.
pub struct Brain {
    pub engine: Engine,
    pub intents: Intents,
    /// Canned replies (快捷回复) shipped beside the knowledge.
    pub canned: Vec<Canned>,
    by_id: HashMap<String, usize>,
    /// The knowledge generation serving (see `knowledge::DataDir`).
    pub generation: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Intents(#[from] IntentError),
    #[error(transparent)]
    Canned(#[from] CannedError),
    #[error("{file}: intent {intent:?} answers with article {article:?}, which is not in the knowledge base")]
    UnknownArticle { file: String, intent: String, article: String },
}

/// Where the bot's knowledge comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// A knowledge folder, .jsonl or .csv.
    pub knowledge: PathBuf,
    pub intents: PathBuf,
    /// Where imported generations live.
    pub data: PathBuf,
    /// Configured thresholds; the one not set keeps the ranker's default.
    pub answer_threshold: Option<f32>,
    pub clarify_threshold: Option<f32>,
    /// The semantic word table, when one is installed (see `crate::semantic`).
    pub semantic: Option<Arc<WordTable>>,
}

impl Sources {
    /// Opens the imported generation in `dir` with the ranker for the semantic setting and
    /// the configured thresholds.
    fn open_engine(&self, dir: &DataDir) -> Result<Engine, KnowledgeError> {
        let ranker = Ranker::builtin_for(self.semantic.is_some());
        let defaults = ranker.thresholds;
        let mut engine = dir.open(ranker)?;
        engine.set_semantic(self.semantic.clone());
        let thresholds = Thresholds {
            answer: self.answer_threshold.unwrap_or(defaults.answer),
            clarify: self.clarify_threshold.unwrap_or(defaults.clarify),
        };
        engine.set_thresholds(thresholds.validate().map_err(|reason| KnowledgeError::Model { origin: "config".into(), reason })?);
        Ok(engine)
    }
}

/// A cheap summary of a source (paths, sizes, modification times), to notice edits.
pub fn fingerprint(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stack = vec![path.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else {
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos());
            entries.push((p, meta.len(), mtime));
        }
    }
    entries.sort();
    entries.hash(&mut h);
    h.finish()
}

impl Brain {
    /// Imports the knowledge source into a new generation (atomic swap on disk), opens it and
    /// loads the intents. On any error the caller keeps the brain it has.
    pub fn load(sources: &Sources) -> Result<Brain, BrainError> {
        let dir = DataDir::new(&sources.data);
        let loaded = knowledge::load(&sources.knowledge)?;
        let report = dir.import(&loaded, &Quiet)?;
        let engine = sources.open_engine(&dir)?;
        Brain::assemble(engine, sources, report.generation)
    }

    /// Opens the generation already imported (start-up when the source is unchanged).
    pub fn open(sources: &Sources) -> Result<Brain, BrainError> {
        let dir = DataDir::new(&sources.data);
        let engine = sources.open_engine(&dir)?;
        let generation = dir.current_generation()?;
        Brain::assemble(engine, sources, generation)
    }

    fn assemble(engine: Engine, sources: &Sources, generation: String) -> Result<Brain, BrainError> {
        let intents_dir = sources.intents.as_path();
        let canned = load_canned(&sources.knowledge)?;
        let intents = Intents::load_dir(intents_dir, engine.analyzer())?;
        let by_id = engine.articles().iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect::<HashMap<_, _>>();
        for intent in intents.all() {
            if let crate::nlu::IntentAction::Article { article } = &intent.action {
                if !by_id.contains_key(article) {
                    return Err(BrainError::UnknownArticle {
                        file: intents_dir.display().to_string(),
                        intent: intent.name.clone(),
                        article: article.clone(),
                    });
                }
            }
        }
        Ok(Brain { engine, intents, canned, by_id, generation })
    }

    pub fn article(&self, id: &str) -> Option<&Article> {
        self.by_id.get(id).map(|&i| self.engine.article(i))
    }

    pub fn ask(&self, text: &str) -> Result<Reply, KnowledgeError> {
        self.engine.ask(text)
    }
}
