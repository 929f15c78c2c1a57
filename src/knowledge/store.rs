//! A data directory of index generations, swapped atomically.
//!
//! `DIR/CURRENT` names the generation in use. An import builds a new generation in a
//! temporary folder, syncs it, renames it into place, then replaces `CURRENT` by an atomic
//! rename. A failed or killed import leaves `CURRENT`, and so the index in use, untouched.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::corpus::{Corpus, FORMAT_VERSION};
use super::engine::Engine;
use super::index::KnowledgeIndex;
use super::load::Loaded;
use super::model::Ranker;
use super::KnowledgeError;
use crate::text::Analyzer;

const CURRENT: &str = "CURRENT";
/// The analysed corpus, in postcard's compact binary form: an `ask` process reads it at
/// start, and parsing the 73 MB of JSON it replaced cost a 100k-entry base most of a second.
const CORPUS_FILE: &str = "corpus.bin";
/// Where format 1 kept the corpus, to tell an outdated generation from a damaged one.
const OLD_CORPUS_FILE: &str = "corpus.json";
const INDEX_DIR: &str = "index";
const GENERATION_PREFIX: &str = "gen-";
const TEMP_PREFIX: &str = "tmp-";

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub articles: usize,
    pub questions: usize,
    pub generation: String,
}

/// Progress of an import, for a progress bar.
pub trait Progress: Sync {
    /// A new stage begins with `total` steps.
    fn stage(&self, name: &str, total: u64);
    /// `done` steps of the current stage are complete.
    fn advance(&self, done: u64);
}

/// No progress reporting.
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// A data directory holding index generations.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Builds a new generation from `loaded` and makes it current.
    pub fn import(&self, loaded: &Loaded, progress: &dyn Progress) -> Result<ImportReport, KnowledgeError> {
        // Never replace a working index with an empty one.
        if loaded.articles.is_empty() {
            return Err(KnowledgeError::Empty);
        }
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KnowledgeError::Write { path, source }
        };
        fs::create_dir_all(&self.root).map_err(write_err(&self.root))?;
        self.remove_abandoned();

        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let name = format!("{stamp}-{}", std::process::id());
        let temp = self.root.join(format!("{TEMP_PREFIX}{name}"));
        fs::create_dir(&temp).map_err(write_err(&temp))?;
        let built = (|| {
            let analyzer = Analyzer::new(loaded.lexicon.clone());
            progress.stage("analysing", loaded.articles.len() as u64);
            let corpus = Corpus::analyze(loaded, &analyzer, &|n| progress.advance(n));
            let index_dir = temp.join(INDEX_DIR);
            fs::create_dir(&index_dir).map_err(write_err(&index_dir))?;
            progress.stage("indexing", corpus.questions.len() as u64);
            KnowledgeIndex::build(&corpus, &analyzer, Some(&index_dir), &|n| progress.advance(n))?;
            let path = temp.join(CORPUS_FILE);
            let file = fs::File::create(&path).map_err(write_err(&path))?;
            let mut out = std::io::BufWriter::new(file);
            postcard::to_io(&corpus, &mut out).map_err(|e| KnowledgeError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            let file = out.into_inner().map_err(|e| KnowledgeError::Write { path: path.clone(), source: e.into_error() })?;
            file.sync_all().map_err(write_err(&path))?;
            sync_dir(&index_dir)?;
            sync_dir(&temp)?;
            Ok::<_, KnowledgeError>((corpus.articles.len(), corpus.questions.len()))
        })();
        let (articles, questions) = match built {
            Ok(counts) => counts,
            Err(e) => {
                let _ = fs::remove_dir_all(&temp);
                return Err(e);
            }
        };

        let generation = format!("{GENERATION_PREFIX}{name}");
        let final_dir = self.root.join(&generation);
        fs::rename(&temp, &final_dir).map_err(write_err(&final_dir))?;
        let pointer = self.root.join(format!("{CURRENT}.tmp"));
        {
            let mut f = fs::File::create(&pointer).map_err(write_err(&pointer))?;
            f.write_all(format!("{generation}\n").as_bytes()).map_err(write_err(&pointer))?;
            f.sync_all().map_err(write_err(&pointer))?;
        }
        let current = self.root.join(CURRENT);
        let previous = self.current_generation().ok();
        fs::rename(&pointer, &current).map_err(write_err(&current))?;
        sync_dir(&self.root)?;
        self.remove_old_generations(&generation, previous.as_deref());
        Ok(ImportReport { articles, questions, generation })
    }

    /// Opens the current generation.
    pub fn open(&self, ranker: Ranker) -> Result<Engine, KnowledgeError> {
        let generation = self.current_generation()?;
        let dir = self.root.join(&generation);
        let corrupt = |reason: String| KnowledgeError::Corrupt { path: dir.clone(), reason };
        let outdated = |format: u32| {
            corrupt(format!("format {format} is not the supported {FORMAT_VERSION}; import the knowledge again"))
        };
        let path = dir.join(CORPUS_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.join(OLD_CORPUS_FILE).exists() => {
                return Err(outdated(1));
            }
            Err(source) => return Err(KnowledgeError::Read { path, source }),
        };
        // The format number comes first, so a corpus of another layout is named as such
        // rather than failing to decode.
        let (format, _) =
            postcard::take_from_bytes::<u32>(&bytes).map_err(|e| corrupt(format!("{CORPUS_FILE}: {e}")))?;
        if format != FORMAT_VERSION {
            return Err(outdated(format));
        }
        let corpus: Corpus = postcard::from_bytes(&bytes).map_err(|e| corrupt(format!("{CORPUS_FILE}: {e}")))?;
        // The raw file is as large as the parsed corpus: free it before building the engine
        // so the two never sit in memory together.
        drop(bytes);
        let analyzer = Analyzer::new(corpus.lexicon()?);
        let index = KnowledgeIndex::open(&dir.join(INDEX_DIR), &analyzer)?;
        Ok(Engine::assemble(corpus, analyzer, index, ranker))
    }

    /// The name of the current generation.
    pub fn current_generation(&self) -> Result<String, KnowledgeError> {
        let path = self.root.join(CURRENT);
        match fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Ok(_) => Err(KnowledgeError::Corrupt { path, reason: "CURRENT is empty".into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KnowledgeError::NotImported { path: self.root.clone() })
            }
            Err(source) => Err(KnowledgeError::Read { path, source }),
        }
    }

    /// Keeps the current and the previous generation (a server may still be reading the
    /// previous one); removes older ones. Failures only leave garbage behind.
    fn remove_old_generations(&self, current: &str, previous: Option<&str>) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(GENERATION_PREFIX) && name != current && Some(name.as_str()) != previous {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Removes temporary folders left by imports that died: those whose process is gone.
    fn remove_abandoned(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(TEMP_PREFIX) else { continue };
            let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), KnowledgeError> {
    // Directories can be opened and fsynced on Unix; elsewhere this is best effort.
    match fs::File::open(dir).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(unix) => Err(KnowledgeError::Write { path: dir.to_path_buf(), source: e }),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_import_never_replaces_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Loaded { articles: Vec::new(), lexicon: crate::text::Lexicon::default() };
        let err = DataDir::new(dir.path()).import(&empty, &Quiet).unwrap_err();
        assert!(matches!(err, KnowledgeError::Empty), "{err}");
        assert!(!dir.path().join(CURRENT).exists());
    }

    #[test]
    fn a_generation_in_the_json_format_asks_for_a_new_import() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("gen-1")).unwrap();
        fs::write(dir.path().join("gen-1").join(OLD_CORPUS_FILE), "{}").unwrap();
        fs::write(dir.path().join(CURRENT), "gen-1\n").unwrap();
        let err = DataDir::new(dir.path()).open(Ranker::builtin()).unwrap_err().to_string();
        assert!(err.ends_with("format 1 is not the supported 2; import the knowledge again"), "{err}");
    }
}
