//! Answering one question: analyse → retrieve → re-rank question by question → calibrate →
//! decide.

use std::collections::HashMap;

use serde::Serialize;

use super::corpus::Corpus;
use super::decide::{Action, Thresholds};
use super::features::{article_variants, features, Features, Prepared, PreparedQuery, Vocabulary, ARTICLE_VARIANTS, SEMANTIC_COSINE, SEMANTIC_TOP};
use super::index::KnowledgeIndex;
use super::load::Loaded;
use super::model::Ranker;
use super::{Article, KnowledgeError};
use crate::semantic::{Quantized, QueryCodes, Sketches, Space, WordTable};
use crate::text::{char_bigrams, Analyzed, Analyzer};

/// Index of the query-coverage feature (share of the query's term weight matched).
const QUERY_COVERAGE: usize = 1;
/// Index of the feature: the query is a stored question character for character.
const EXACT: usize = 16;
/// Below this query coverage the engine never answers outright.
const MIN_ANSWER_COVERAGE: f32 = 0.3;
/// ...unless the matched question is this close in meaning (semantic cosine)...
const MEANING_VOUCHES: f32 = 0.45;
/// ...or the query holds at least this share of the matched question's content-word weight: a
/// customer who tells a story around the question (订单号…，昨天买的…，想问下运费险怎么理赔)
/// matches little of their own words, all of the question's.
const QUESTION_COVERED: f32 = 0.6;
/// Index of the feature: the share of the question's content-word weight the query matches.
const CONTENT_QUESTION_COVERAGE: usize = 28;

/// The features of the question that matched `top` best.
fn ranked_features<'a>(scored: &'a [CandidateFeatures], top: Option<&Candidate>) -> Option<&'a Features> {
    let top = top?;
    let c = scored.iter().find(|c| c.article == top.article)?;
    c.questions.get(top.question)
}

/// How many articles retrieval hands to the re-ranker.
pub const RETRIEVE_LIMIT: usize = 20;
/// How many of the articles nearest in meaning join the lexical candidates: an article that
/// shares no word with the query can still be found.
pub const SEMANTIC_CANDIDATES: usize = 5;
/// The semantic space is fitted on at most this many questions (see `set_semantic`).
const FIT_SAMPLE: usize = 20_000;
/// From this many questions on, the nearest articles are looked for among the questions of
/// the `SKETCH_SHORTLIST` nearest sketches rather than in every vector (see [`Sketches`]).
/// Reading the shortlist's vectors (scattered, 384 bytes each) is most of the cost: at 252k
/// questions a shortlist of 4 000 / 2 000 / 1 000 gave p50 4.5 / 3.2 / 2.5 ms and the same
/// synthetic hit@1 (0.762–0.764; 0.763 scanning everything). With 128 bits a question at
/// cosine 0.6 sits about 4 standard deviations nearer than the bulk, well inside 1 000.
const SKETCH_MIN: usize = 50_000;
const SKETCH_SHORTLIST: usize = 1_000;

/// One ranked article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The article's id.
    pub id: String,
    /// Position of the article in the engine (see [`Engine::article`]).
    #[serde(skip)]
    pub article: usize,
    /// The article question that matched best.
    pub matched_question: String,
    /// Its position among the article's questions (0: the title).
    #[serde(skip)]
    pub question: usize,
    /// The ranker's linear score.
    pub score: f32,
    /// Calibrated probability that this article answers the query.
    pub confidence: f32,
}

/// The engine's verdict on a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub action: Action,
    /// Confidence of the best candidate (0 when there is none).
    pub confidence: f32,
    /// Best first, at most [`RETRIEVE_LIMIT`].
    pub candidates: Vec<Candidate>,
}

impl Reply {
    /// The article to answer with, when the action is `Answer`.
    pub fn answer(&self) -> Option<&Candidate> {
        (self.action == Action::Answer).then(|| self.candidates.first()).flatten()
    }
}

/// Features of every question of one retrieved article (for training).
#[derive(Debug, Clone)]
pub struct CandidateFeatures {
    pub article: usize,
    pub questions: Vec<Features>,
}

/// A knowledge base ready to answer: analyser, index, prepared questions and ranker.
pub struct Engine {
    analyzer: Analyzer,
    index: KnowledgeIndex,
    articles: Vec<Article>,
    /// Every question, prepared; those of article `a` are `questions[ranges[a].0..ranges[a].1]`.
    questions: Vec<Prepared>,
    ranges: Vec<(u32, u32)>,
    vocab: Vocabulary,
    /// The vocabulary's terms by id (question term ids index it).
    terms: Vec<String>,
    semantic: Option<SemanticIndex>,
    ranker: Ranker,
    thresholds: Thresholds,
}

/// Every question's vector in the knowledge base's own semantic space.
struct SemanticIndex {
    table: std::sync::Arc<WordTable>,
    space: Space,
    /// Question `i`'s unit vector is the `i`th (zero when none of its words is known).
    vectors: Quantized,
    /// On a base of at least [`SKETCH_MIN`] questions: their sketches, and the article of
    /// each question.
    sketches: Option<(Sketches, Vec<u32>)>,
}

impl SemanticIndex {
    /// The unit vector of an analysed query, or `None` when the table knows none of its words.
    fn query(&self, analyzed: &Analyzed) -> Option<Vec<f32>> {
        self.table.sentence(&analyzed.terms).map(|v| self.space.project(&v))
    }

    /// The `k` articles whose best question is nearest `query`, nearest first. Exact on a
    /// small base; on a large one among the questions of the nearest sketches.
    fn nearest_articles(&self, query: &[f32], codes: &QueryCodes, ranges: &[(u32, u32)], k: usize) -> Vec<(usize, f32)> {
        let mut best: Vec<(usize, f32)> = match &self.sketches {
            None => {
                let cos = self.vectors.dots(codes);
                ranges
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.1 > r.0)
                    .map(|(a, r)| (a, cos[r.0 as usize..r.1 as usize].iter().copied().fold(f32::MIN, f32::max)))
                    .collect()
            }
            Some((sketches, owner)) => {
                let mut by_article: HashMap<usize, f32> = HashMap::new();
                for i in sketches.nearest(query, SKETCH_SHORTLIST) {
                    let c = self.vectors.dot(i as usize, codes);
                    let e = by_article.entry(owner[i as usize] as usize).or_insert(f32::MIN);
                    *e = e.max(c);
                }
                by_article.into_iter().collect()
            }
        };
        let k = k.min(best.len());
        if k == 0 {
            return Vec::new();
        }
        best.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        best.truncate(k);
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        best
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("articles", &self.articles.len())
            .field("questions", &self.questions.len())
            .field("thresholds", &self.thresholds)
            .finish()
    }
}

impl Engine {
    /// Builds an engine entirely in memory (tests, tools); nothing touches the disk.
    pub fn in_memory(loaded: &Loaded, ranker: Ranker) -> Result<Engine, KnowledgeError> {
        Engine::build_in_memory(Analyzer::new(loaded.lexicon.clone()), loaded, ranker)
    }

    /// [`Engine::in_memory`] over `articles` with an analyser already built (and its
    /// lexicon): engines that share one can share an analysed query too.
    pub fn in_memory_with(analyzer: &Analyzer, articles: Vec<Article>, ranker: Ranker) -> Result<Engine, KnowledgeError> {
        let loaded = Loaded { articles, lexicon: analyzer.lexicon().clone() };
        Engine::build_in_memory(analyzer.clone(), &loaded, ranker)
    }

    /// `analyzer` must be built from `loaded.lexicon`: the corpus records that lexicon as
    /// the one it was analysed with.
    fn build_in_memory(analyzer: Analyzer, loaded: &Loaded, ranker: Ranker) -> Result<Engine, KnowledgeError> {
        let corpus = Corpus::analyze(loaded, &analyzer, &|_| {});
        let index = KnowledgeIndex::build(&corpus, &analyzer, None, &|_| {})?;
        Ok(Engine::assemble(corpus, analyzer, index, ranker))
    }

    /// Puts an engine together from an analysed corpus and its index.
    pub(super) fn assemble(corpus: Corpus, analyzer: Analyzer, index: KnowledgeIndex, ranker: Ranker) -> Engine {
        let df = corpus.doc_freqs();
        let mut char_freq: std::collections::HashMap<char, u32> = std::collections::HashMap::new();
        for q in &corpus.questions {
            let mut chars: Vec<char> = q.normalized.chars().filter(|c| *c != ' ').collect();
            chars.sort_unstable();
            chars.dedup();
            for c in chars {
                *char_freq.entry(c).or_default() += 1;
            }
        }
        let vocab = Vocabulary::new(corpus.vocab.clone(), &df, char_freq, corpus.questions.len(), |t| {
            analyzer.is_function_word(t)
        });
        let mut ranges = vec![(0u32, 0u32); corpus.articles.len()];
        for (i, q) in corpus.questions.iter().enumerate() {
            let r = &mut ranges[q.article as usize];
            if r.1 == 0 {
                r.0 = i as u32;
            }
            r.1 = i as u32 + 1;
        }
        // Preparing every question is most of the cost of opening a large base: share it
        // among the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        let chunk = corpus.questions.len().div_ceil(threads).max(1);
        let questions: Vec<Prepared> = std::thread::scope(|scope| {
            let handles: Vec<_> = corpus
                .questions
                .chunks(chunk)
                .map(|part| {
                    let (terms, vocab) = (&corpus.vocab, &vocab);
                    scope.spawn(move || {
                        part.iter().map(|q| Prepared::from_stored(&q.normalized, &q.terms, terms, vocab)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("preparing questions panicked")).collect()
        });
        let thresholds = ranker.thresholds;
        let terms = corpus.vocab;
        Engine { analyzer, index, articles: corpus.articles, questions, ranges, vocab, terms, semantic: None, ranker, thresholds }
    }

    /// Gives the engine a semantic word table (or takes it away): every question is embedded
    /// and the space fitted on them. A few microseconds per question, so there is nothing to
    /// cache between imports. The ranker must be one trained with (or without) the table:
    /// see [`Ranker::builtin_for`].
    pub fn set_semantic(&mut self, table: Option<std::sync::Arc<WordTable>>) {
        self.semantic = table.map(|table| {
            let dims = table.dims();
            let sentence = |q: &Prepared| {
                let words: Vec<&str> = q.term_ids().iter().map(|&t| self.terms[t as usize].as_str()).collect();
                table.sentence(&words)
            };
            // The space (centre, dominant direction) is fitted on at most FIT_SAMPLE questions
            // spread over the base; embedding a question from the static table costs
            // microseconds, so the full pass embeds again rather than keeping every f32
            // vector (154 MB at 100k questions) alive.
            let step = self.questions.len().div_ceil(FIT_SAMPLE).max(1);
            let sample: Vec<Vec<f32>> = self.questions.iter().step_by(step).filter_map(sentence).collect();
            let space = Space::fit(&sample, dims);
            drop(sample);
            let mut vectors = Quantized::new(dims);
            let mut sketches = (self.questions.len() >= SKETCH_MIN).then(|| Sketches::new(dims));
            let zero = vec![0.0; dims];
            for q in &self.questions {
                let v = sentence(q).map(|v| space.project(&v));
                let v = v.as_deref().unwrap_or(&zero);
                vectors.push(v);
                if let Some(s) = &mut sketches {
                    s.push(v);
                }
            }
            let sketches = sketches.map(|s| {
                let mut owner = vec![0u32; self.questions.len()];
                for (a, r) in self.ranges.iter().enumerate() {
                    owner[r.0 as usize..r.1 as usize].fill(a as u32);
                }
                (s, owner)
            });
            SemanticIndex { table, space, vectors, sketches }
        });
    }

    /// Cosine of two texts in this knowledge base's semantic space, or `None` without a table
    /// or when the table knows none of the words of one of them.
    pub fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        let s = self.semantic.as_ref()?;
        let (a, b) = (s.query(&self.analyzer.analyze(a))?, s.query(&self.analyzer.analyze(b))?);
        Some(crate::semantic::dot(&a, &b))
    }

    /// The semantic word table in use, if any.
    pub fn semantic_table(&self) -> Option<&WordTable> {
        self.semantic.as_ref().map(|s| &*s.table)
    }

    /// Uses `thresholds` instead of the ranker's defaults.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) {
        self.thresholds = thresholds;
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Uses another ranker (its thresholds too).
    pub fn set_ranker(&mut self, ranker: Ranker) {
        self.thresholds = ranker.thresholds;
        self.ranker = ranker;
    }

    pub fn articles(&self) -> &[Article] {
        &self.articles
    }

    /// The article at position `ord`.
    pub fn article(&self, ord: usize) -> &Article {
        &self.articles[ord]
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Answers one question.
    pub fn ask(&self, query: &str) -> Result<Reply, KnowledgeError> {
        self.ask_analyzed(&self.analyzer.analyze(query))
    }

    /// Answers a question already analysed by this engine's analyser.
    pub fn ask_analyzed(&self, query: &Analyzed) -> Result<Reply, KnowledgeError> {
        let scored = self.candidate_features(query)?;
        let mut reply = self.rank(&scored, &self.ranker, self.thresholds);
        // A lone topic word (发票, 退款) names a shelf of articles, not a question: offer the
        // choices unless it is a stored question word for word. The ranker, trained on terse
        // customer questions that do pick one article (改尺码, 商品破损), cannot tell the two
        // apart from the features of one pair.
        if reply.action == Action::Answer {
            let mut content: Vec<&str> =
                query.terms.iter().map(String::as_str).filter(|t| !self.analyzer.is_function_word(t)).collect();
            content.sort_unstable();
            content.dedup();
            let exact = ranked_features(&scored, reply.candidates.first()).is_some_and(|f| f[EXACT] > 0.5);
            if content.len() < 2 && !exact {
                reply.action = Action::Clarify;
            }
        }
        Ok(reply)
    }

    /// Ranks scored candidates with `ranker` and decides with `thresholds`.
    pub fn rank(&self, scored: &[CandidateFeatures], ranker: &Ranker, thresholds: Thresholds) -> Reply {
        let questions: Vec<&[Features]> = scored.iter().map(|c| c.questions.as_slice()).collect();
        let candidates: Vec<Candidate> = ranker
            .rank(&questions)
            .into_iter()
            .map(|r| {
                let article = scored[r.candidate].article;
                let a = &self.articles[article];
                Candidate {
                    id: a.id.clone(),
                    article,
                    matched_question: a.questions().nth(r.question).unwrap_or(&a.title).to_string(),
                    question: r.question,
                    score: r.score,
                    confidence: r.confidence,
                }
            })
            .collect();
        let confidence = candidates.first().map_or(0.0, |c| c.confidence);
        let mut action = if candidates.is_empty() { Action::None } else { thresholds.decide(confidence) };
        // A floor under the learned model: never answer when the matched question shares
        // too little of the query's term weight. The model can be fooled by a lone match
        // among rivals that match nothing (keyboard mash sharing the bigram "df" with PDF);
        // a wrong confident answer is worse than offering choices.
        if action == Action::Answer {
            let top = &ranked_features(scored, candidates.first());
            // A close meaning vouches for a paraphrase that shares few words (a mash has no
            // known words, so no meaning either).
            let doubtful = |f: &Features| {
                f[QUERY_COVERAGE] < MIN_ANSWER_COVERAGE
                    && f[SEMANTIC_COSINE] < MEANING_VOUCHES
                    && f[CONTENT_QUESTION_COVERAGE] < QUESTION_COVERED
            };
            if top.map_or(true, doubtful) {
                action = Action::Clarify;
            }
        }
        Reply { action, confidence, candidates }
    }

    /// The ranker in use.
    pub fn ranker(&self) -> &Ranker {
        &self.ranker
    }

    /// Retrieves candidate articles for an analysed query and computes the features of each
    /// of their questions. Empty when the query has no words.
    pub fn candidate_features(&self, analyzed: &Analyzed) -> Result<Vec<CandidateFeatures>, KnowledgeError> {
        let prepared = PreparedQuery::new(analyzed, &self.vocab);
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let mut terms: Vec<&str> = analyzed.terms.iter().map(String::as_str).collect();
        terms.sort_unstable();
        terms.dedup();
        let mut bigrams = char_bigrams(&analyzed.normalized);
        bigrams.sort_unstable();
        bigrams.dedup();
        let mut hits = self.index.retrieve(&terms, &bigrams, RETRIEVE_LIMIT)?;
        let top = hits.first().map_or(1.0, |h| h.1).max(f32::MIN_POSITIVE);
        // Meaning: every question's cosine, each article's best, and the nearest articles
        // joining the candidates with a retrieval score of 0.
        let semantic = self.semantic.as_ref().and_then(|s| s.query(analyzed).map(|q| (s, s.vectors.prepare(&q), q)));
        let mut nearest_article = None;
        if let Some((s, codes, q)) = &semantic {
            let best = s.nearest_articles(q, codes, &self.ranges, SEMANTIC_CANDIDATES);
            nearest_article = best.first().map(|b| b.0);
            for (a, _) in best {
                if !hits.iter().any(|h| h.0 as usize == a) {
                    hits.push((a as u32, 0.0));
                }
            }
        }
        Ok(hits
            .into_iter()
            .map(|(article, score)| {
                let (start, end) = self.ranges[article as usize];
                let ratio = score / top;
                let top_flag = (nearest_article == Some(article as usize)) as u8 as f32;
                let variants = article_variants((end - start) as usize);
                CandidateFeatures {
                    article: article as usize,
                    questions: (start as usize..end as usize)
                        .map(|i| {
                            let mut f = features(&prepared, &self.questions[i], ratio);
                            f[ARTICLE_VARIANTS] = variants;
                            if let Some((s, codes, _)) = &semantic {
                                f[SEMANTIC_COSINE] = s.vectors.dot(i, codes).max(0.0);
                                f[SEMANTIC_TOP] = top_flag;
                            }
                            f
                        })
                        .collect(),
                }
            })
            .collect())
    }
}

impl Engine {
    /// Runs `f` over `items` on all cores, keeping input order in the output.
    pub fn parallel_map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&Engine, &T) -> R + Sync) -> Vec<R> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
        if threads == 1 || items.len() < 64 {
            return items.iter().map(|item| f(self, item)).collect();
        }
        // Small blocks handed out from a shared counter keep both cores busy even when
        // some queries are slower than others.
        const BLOCK: usize = 32;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut blocks: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (next, f) = (&next, &f);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let start = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
                            if start >= items.len() {
                                break done;
                            }
                            let end = (start + BLOCK).min(items.len());
                            done.push((start, items[start..end].iter().map(|item| f(self, item)).collect()));
                        }
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("worker thread panicked")).collect()
        });
        blocks.sort_by_key(|b| b.0);
        blocks.into_iter().flat_map(|b| b.1).collect()
    }

    /// Answers many questions on all cores; replies are in input order.
    pub fn ask_batch(&self, queries: &[String]) -> Vec<Result<Reply, KnowledgeError>> {
        self.parallel_map(queries, |engine, q| engine.ask(q))
    }
}
