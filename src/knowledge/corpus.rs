//! The analysed knowledge base: articles plus every question's normalised text and term ids.
//! It is what an import stores beside the tantivy index, so opening an index never re-runs
//! segmentation over the whole knowledge base.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::load::Loaded;
use super::Article;
use crate::text::{Analyzed, Analyzer, Lexicon};

/// Bumped when the stored layout changes; an index of another version must be re-imported.
/// 2: the corpus is stored with postcard instead of JSON.
pub const FORMAT_VERSION: u32 = 2;

/// One question of an article, analysed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredQuestion {
    /// Position of its article in `Corpus::articles`.
    pub article: u32,
    pub normalized: String,
    /// Ids into `Corpus::vocab`, in text order.
    pub terms: Vec<u32>,
}

/// Articles, lexicon and analysed questions. Questions of one article are contiguous and in
/// article order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Corpus {
    /// [`FORMAT_VERSION`]; first, so it can be read before the rest.
    pub format: u32,
    pub articles: Vec<Article>,
    pub user_dict: String,
    pub synonyms: String,
    pub vocab: Vec<String>,
    pub questions: Vec<StoredQuestion>,
}

impl Corpus {
    /// Analyses every question of `loaded` with `analyzer`, on all cores.
    /// `progress` is called with the number of articles analysed so far.
    pub fn analyze(loaded: &Loaded, analyzer: &Analyzer, progress: &(dyn Fn(u64) + Sync)) -> Corpus {
        let articles = &loaded.articles;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        let chunk = articles.len().div_ceil(threads).max(1);
        let done = AtomicU64::new(0);
        let analysed: Vec<Vec<Vec<Analyzed>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = articles
                .chunks(chunk)
                .map(|part| {
                    let done = &done;
                    scope.spawn(move || {
                        part.iter()
                            .map(|a| {
                                let qs = a.questions().map(|q| analyzer.analyze(q)).collect();
                                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                                if n % 512 == 0 {
                                    progress(n);
                                }
                                qs
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("analysis thread panicked")).collect()
        });
        progress(articles.len() as u64);

        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut vocab = Vec::new();
        let mut questions = Vec::new();
        for (ord, article_questions) in analysed.into_iter().flatten().enumerate() {
            for q in article_questions {
                let terms = q
                    .terms
                    .into_iter()
                    .map(|t| {
                        *ids.entry(t).or_insert_with_key(|t| {
                            vocab.push(t.clone());
                            (vocab.len() - 1) as u32
                        })
                    })
                    .collect();
                questions.push(StoredQuestion { article: ord as u32, normalized: q.normalized, terms });
            }
        }
        Corpus {
            format: FORMAT_VERSION,
            articles: articles.clone(),
            user_dict: loaded.lexicon.user_dict_text().to_string(),
            synonyms: loaded.lexicon.synonyms_text().to_string(),
            vocab,
            questions,
        }
    }

    /// The lexicon the corpus was analysed with.
    pub fn lexicon(&self) -> Result<Lexicon, crate::text::LexiconError> {
        Lexicon::parse(&self.user_dict, &self.synonyms)
    }

    /// In how many questions each vocabulary term occurs.
    pub fn doc_freqs(&self) -> Vec<u32> {
        let mut df = vec![0u32; self.vocab.len()];
        let mut seen: Vec<u32> = Vec::new();
        for q in &self.questions {
            seen.clear();
            seen.extend(&q.terms);
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                df[t as usize] += 1;
            }
        }
        df
    }
}
