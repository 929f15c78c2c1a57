//! The tantivy side: schema, building an index from analysed questions, and turning a query's
//! analysed terms into a boosted disjunction (never the default `QueryParser`, which makes an
//! unspaced Chinese sentence one phrase query that a reworded question cannot match).

use std::path::Path;

use std::cell::RefCell;

use tantivy::fieldnorm::FieldNormReader;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{doc, DocId, Index, IndexReader, ReloadPolicy, Searcher, Term};

use super::corpus::Corpus;
use super::KnowledgeError;
use crate::text::{char_bigrams, register_tokenizers, Analyzer, BIGRAM_TOKENIZER, TERM_TOKENIZER};

/// The fields of the index. One tantivy document per question; the article's body and
/// metadata are indexed on its first question's document only.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Position of the article in the corpus (fast field).
    pub article: Field,
    /// The question's terms.
    pub question: Field,
    /// The question's character bigrams.
    pub bigrams: Field,
    /// The answer body's terms.
    pub body: Field,
    /// Category, tags and keywords.
    pub meta: Field,
}

/// Relative weight of each field's matches in retrieval. Questions matter most; bigrams
/// rescue segmentation differences; metadata and body break ties.
const QUESTION_BOOST: f32 = 1.0;
const BIGRAM_BOOST: f32 = 0.4;
const BODY_BOOST: f32 = 0.15;
const META_BOOST: f32 = 0.3;
/// Terms in more than this share of documents are left out of retrieval (not re-ranking).
/// At 5 % a 100k-entry base still walked 26k postings per query; 3 % cuts a third of them
/// at the same lcqmc-dev hit@1 and answer precision.
const COMMON_TERM_SHARE: f64 = 0.03;
/// At most this many bigram and metadata clauses per query, and body plus further
/// metadata clauses in the fallback (see [`KnowledgeIndex::retrieve`]).
const MAX_BIGRAM_CLAUSES: usize = 6;
const MAX_META_CLAUSES: usize = 2;
const MAX_FALLBACK_CLAUSES: usize = 4;

fn schema() -> (Schema, Fields) {
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let mut b = Schema::builder();
    let fields = Fields {
        article: b.add_u64_field("article", FAST),
        question: b.add_text_field("question", text(TERM_TOKENIZER)),
        bigrams: b.add_text_field("bigrams", text(BIGRAM_TOKENIZER)),
        body: b.add_text_field("body", text(TERM_TOKENIZER)),
        meta: b.add_text_field("meta", text(TERM_TOKENIZER)),
    };
    (b.build(), fields)
}

fn fields_of(schema: &Schema) -> Result<Fields, tantivy::TantivyError> {
    Ok(Fields {
        article: schema.get_field("article")?,
        question: schema.get_field("question")?,
        bigrams: schema.get_field("bigrams")?,
        body: schema.get_field("body")?,
        meta: schema.get_field("meta")?,
    })
}

fn pre_tokenized(words: Vec<String>) -> PreTokenizedString {
    let tokens = words
        .into_iter()
        .enumerate()
        .map(|(position, text)| Token { position, text, ..Token::default() })
        .collect();
    PreTokenizedString { text: String::new(), tokens }
}

/// An opened index and its reader (one reader for the index's life; a searcher per query).
pub struct KnowledgeIndex {
    pub fields: Fields,
    reader: IndexReader,
    /// What scoring needs of each segment, by segment ordinal. Loaded once: a generation's
    /// index is never modified, so its segments never change.
    segments: Vec<SegmentData>,
    /// BM25's length normalisation of each searched field, by fieldnorm code.
    norms: Vec<(Field, Bm25Norms)>,
    num_docs: u64,
}

/// Per segment: the article of each document and the searched fields' length codes.
struct SegmentData {
    /// `article[doc]`, or `u32::MAX` for a document without one.
    article: Vec<u32>,
    fieldnorms: Vec<(Field, FieldNormReader)>,
}

/// BM25 (tantivy's constants: k1 = 1.2, b = 0.75) for one field: `norm[code]` is
/// `k1 · (1 − b + b · length / average length)` for each of tantivy's 256 length codes.
struct Bm25Norms {
    norm: [f32; 256],
}

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

impl Bm25Norms {
    fn new(average_length: f32) -> Bm25Norms {
        let mut norm = [0.0; 256];
        for (code, n) in norm.iter_mut().enumerate() {
            let length = FieldNormReader::id_to_fieldnorm(code as u8) as f32;
            *n = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length);
        }
        Bm25Norms { norm }
    }
}

/// The inverse document frequency, as tantivy's BM25 computes it.
fn idf(doc_freq: u64, num_docs: u64) -> f32 {
    let x = (num_docs.saturating_sub(doc_freq) as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

/// Scratch space of term-at-a-time scoring, reused by each thread's queries: a score per
/// document of the largest segment seen, and the documents touched by the current query
/// (reset to zero after it, so a query costs what it touches, not the segment's size).
#[derive(Default)]
struct Accumulator {
    scores: Vec<f32>,
    /// `touched[..len]` are the documents scored so far. Sized one past the segment, so a
    /// document can be written at `len` unconditionally and counted only when it is new:
    /// a branch there mispredicted on about every other posting.
    touched: Vec<DocId>,
    len: usize,
}

thread_local! {
    static ACCUMULATOR: RefCell<Accumulator> = RefCell::new(Accumulator::default());
}

impl KnowledgeIndex {
    /// Builds the index for `corpus` in `dir`, or in RAM when `dir` is `None`.
    /// `progress` is called with the number of questions added so far.
    pub fn build(
        corpus: &Corpus,
        analyzer: &Analyzer,
        dir: Option<&Path>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<KnowledgeIndex, KnowledgeError> {
        let (schema, fields) = schema();
        let index = match dir {
            Some(dir) => Index::create_in_dir(dir, schema)?,
            None => Index::create_in_ram(schema),
        };
        register_tokenizers(index.tokenizers(), analyzer);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(threads, 64_000_000 * threads)?;
        let mut previous_article = u32::MAX;
        for (i, q) in corpus.questions.iter().enumerate() {
            let mut document = doc!(
                fields.article => q.article as u64,
                fields.question => pre_tokenized(q.terms.iter().map(|&t| corpus.vocab[t as usize].clone()).collect()),
                fields.bigrams => pre_tokenized(char_bigrams(&q.normalized)),
            );
            if q.article != previous_article {
                let article = &corpus.articles[q.article as usize];
                document.add_text(fields.body, &article.answer);
                document.add_text(fields.meta, article.meta_text());
                previous_article = q.article;
            }
            writer.add_document(document)?;
            if i % 1024 == 0 {
                progress(i as u64);
            }
        }
        writer.commit()?;
        // One segment: each query then walks one posting list per term instead of one per
        // indexing thread's segment (about twice as fast on a 100k-entry base).
        let segments = index.searchable_segment_ids()?;
        if segments.len() > 1 {
            writer.merge(&segments).wait()?;
        }
        writer.wait_merging_threads()?;
        progress(corpus.questions.len() as u64);
        Self::with_reader(index, fields)
    }

    /// Opens an index built by [`KnowledgeIndex::build`].
    pub fn open(dir: &Path, analyzer: &Analyzer) -> Result<KnowledgeIndex, KnowledgeError> {
        let index = Index::open_in_dir(dir)?;
        register_tokenizers(index.tokenizers(), analyzer);
        let fields = fields_of(&index.schema())?;
        Self::with_reader(index, fields)
    }

    fn with_reader(index: Index, fields: Fields) -> Result<KnowledgeIndex, KnowledgeError> {
        // The index of a generation never changes after it is built: no reloading needed.
        let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let searcher = reader.searcher();
        let searched = [fields.question, fields.bigrams, fields.body, fields.meta];
        let num_docs = searcher.num_docs();
        let mut norms = Vec::with_capacity(searched.len());
        for field in searched {
            let mut tokens = 0u64;
            for segment in searcher.segment_readers() {
                tokens += segment.inverted_index(field)?.total_num_tokens();
            }
            let average = if num_docs == 0 { 1.0 } else { (tokens as f32 / num_docs as f32).max(f32::MIN_POSITIVE) };
            norms.push((field, Bm25Norms::new(average)));
        }
        let mut segments = Vec::new();
        for segment in searcher.segment_readers() {
            // A dense array: on a 100k-entry base the column's block-wise decoding was a
            // few percent of every query, for 4 bytes a document.
            let column = segment.fast_fields().u64("article")?;
            let article = (0..segment.max_doc()).map(|doc| column.first(doc).map_or(u32::MAX, |a| a as u32)).collect();
            let fieldnorms = searched
                .iter()
                .map(|&field| Ok((field, segment.get_fieldnorms_reader(field)?)))
                .collect::<Result<_, tantivy::TantivyError>>()?;
            segments.push(SegmentData { article, fieldnorms });
        }
        Ok(KnowledgeIndex { fields, reader, segments, norms, num_docs })
    }

    /// The best articles for a query's terms and bigrams: `(article, score)` best first,
    /// at most `limit` articles, each scored by its best question document.
    ///
    /// Every query searches the questions, their bigrams and the metadata's rarest terms.
    /// The answer body is searched only as a fallback: when that finds fewer than `limit`
    /// articles, or when a query term occurs in no question but in some answer or metadata
    /// (a word only the answers use). On a large base body clauses add long posting lists
    /// to most queries and, when the questions already match, they only reshuffle near-ties:
    /// top-1 on the synthetic 100k base was 0.825 both with them in every query and with them
    /// as a fallback, and 0.819 without the metadata clauses (with the 5 % common-term share
    /// of the time).
    pub fn retrieve(
        &self,
        terms: &[&str],
        bigrams: &[String],
        limit: usize,
    ) -> Result<Vec<(u32, f32)>, KnowledgeError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        // A term in more than a small share of the documents barely moves BM25 but costs a
        // long posting list: on a 100k-entry base such terms (怎么, 的, 什么) made retrieval
        // ten times slower. They still count in re-ranking, which sees every query term.
        let common = (searcher.num_docs() as f64 * COMMON_TERM_SHARE).max(64.0) as u64;
        let lookup = |field: Field, text: &str, boost: f32| -> Result<Option<Clause>, KnowledgeError> {
            let term = Term::from_field_text(field, text);
            let df = searcher.doc_freq(&term)?;
            Ok((df > 0).then_some(Clause { term, df, boost }))
        };
        let mut questions = Vec::with_capacity(terms.len());
        let mut meta = Vec::new();
        let mut only_in_answers = false;
        for t in terms {
            let in_meta = lookup(f.meta, t, META_BOOST)?;
            match lookup(f.question, t, QUESTION_BOOST)? {
                Some(clause) => questions.push(clause),
                None => only_in_answers |= in_meta.is_some() || lookup(f.body, t, BODY_BOOST)?.is_some(),
            }
            meta.extend(in_meta.filter(|c| c.df <= common));
        }
        // When every question term is common, keep the rarest one so the query still finds
        // something (怎么办); all of them cost up to 200k postings, milliseconds per query.
        if questions.iter().any(|c| c.df <= common) {
            questions.retain(|c| c.df <= common);
        } else {
            questions.sort_by_key(|c| c.df);
            questions.truncate(1);
        }
        let mut grams = Vec::with_capacity(bigrams.len());
        for g in bigrams {
            grams.extend(lookup(f.bigrams, g, BIGRAM_BOOST)?.filter(|c| c.df <= common));
        }
        // Each clause costs its posting list, so the secondary fields only contribute their
        // rarest, most telling terms: bigrams for segmentation differences, metadata (a
        // product, brand or place in the tags) to tell apart articles whose questions read
        // alike.
        grams.sort_by_key(|c| c.df);
        grams.truncate(MAX_BIGRAM_CLAUSES);
        meta.sort_by_key(|c| c.df);
        let rest_of_meta = meta.split_off(meta.len().min(MAX_META_CLAUSES));
        let mut clauses: Vec<Clause> = questions.into_iter().chain(grams).chain(meta).collect();
        // Rarest first, so equal scores are summed in the same order on every run.
        clauses.sort_by_key(|c| c.df);
        let found = self.top_articles(&searcher, &clauses, limit)?;
        if found.len() == limit && !only_in_answers {
            return Ok(found);
        }
        let mut fallback = rest_of_meta;
        for t in terms {
            fallback.extend(lookup(f.body, t, BODY_BOOST)?.filter(|c| c.df <= common));
        }
        if fallback.is_empty() {
            return Ok(found);
        }
        fallback.sort_by_key(|c| c.df);
        fallback.truncate(MAX_FALLBACK_CLAUSES);
        clauses.extend(fallback);
        clauses.sort_by_key(|c| c.df);
        self.top_articles(&searcher, &clauses, limit)
    }

    /// The `limit` best articles for a disjunction of boosted term clauses, each article
    /// scored by its best document (BM25, summed over the clauses it matches); of equal
    /// scores the lower document wins.
    ///
    /// Scored term at a time into a per-thread accumulator rather than through tantivy's
    /// `BooleanQuery`: every matching document must be scored anyway (block-WAND pruning
    /// skipped little here: each term's bound assumes an unbounded term frequency, about
    /// twice what a short question scores), and walking each posting list block by block
    /// into a flat array costs less than tantivy's union merging a dozen lists a window at a
    /// time. The sums add the clauses in the same order as the union did.
    fn top_articles(&self, searcher: &Searcher, clauses: &[Clause], limit: usize) -> Result<Vec<(u32, f32)>, KnowledgeError> {
        if clauses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut top = TopArticles::new(limit);
        ACCUMULATOR.with(|cell| -> Result<(), KnowledgeError> {
            let mut acc = cell.borrow_mut();
            let acc = &mut *acc;
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                let data = &self.segments[ord];
                if acc.scores.len() < segment.max_doc() as usize {
                    acc.scores.resize(segment.max_doc() as usize, 0.0);
                    acc.touched.resize(segment.max_doc() as usize + 1, 0);
                }
                let result = self.accumulate(segment, data, clauses, acc);
                // Reset what was touched even when reading failed, so the next query starts
                // from zero.
                for &doc in &acc.touched[..acc.len] {
                    let score = std::mem::take(&mut acc.scores[doc as usize]);
                    // `>=`: documents come in no particular order, so an equal score may
                    // belong to a lower article; `TopArticles` orders ties by article.
                    if result.is_ok() && score >= top.threshold() {
                        let article = data.article[doc as usize];
                        if article != u32::MAX {
                            top.offer(article, score);
                        }
                    }
                }
                acc.len = 0;
                result?;
            }
            Ok(())
        })?;
        Ok(top.into_sorted())
    }

    /// Adds every clause's BM25 score into `acc` for the documents of one segment.
    fn accumulate(
        &self,
        segment: &tantivy::SegmentReader,
        data: &SegmentData,
        clauses: &[Clause],
        acc: &mut Accumulator,
    ) -> Result<(), KnowledgeError> {
        for clause in clauses {
            let field = clause.term.field();
            let (Some((_, norms)), Some((_, fieldnorms))) =
                (self.norms.iter().find(|(f, _)| *f == field), data.fieldnorms.iter().find(|(f, _)| *f == field))
            else {
                continue;
            };
            let inverted = segment.inverted_index(field)?;
            let Some(mut postings) = inverted.read_block_postings(&clause.term, IndexRecordOption::WithFreqs).map_err(tantivy::TantivyError::from)? else {
                continue;
            };
            let weight = idf(clause.df, self.num_docs) * (1.0 + BM25_K1) * clause.boost;
            loop {
                let docs = postings.docs();
                if docs.is_empty() {
                    break;
                }
                for (&doc, &tf) in docs.iter().zip(postings.freqs()) {
                    let tf = tf as f32;
                    let score = weight * (tf / (tf + norms.norm[fieldnorms.fieldnorm_id(doc) as usize]));
                    let slot = &mut acc.scores[doc as usize];
                    acc.touched[acc.len] = doc;
                    acc.len += (*slot == 0.0) as usize;
                    *slot += score;
                }
                postings.advance();
            }
        }
        Ok(())
    }
}

/// A term of the query present in the index, with its document frequency and boost.
struct Clause {
    term: Term,
    df: u64,
    boost: f32,
}

/// The best `limit` articles seen so far, each with its best score and the document that
/// scored it (for ties). Every document of the union passes through here, so accepting one
/// is a comparison and a push; the buffer is cut back to the best document of each of the
/// best `limit` articles only when it fills up, which also raises the threshold.
struct TopArticles {
    limit: usize,
    /// (article, score).
    entries: Vec<(u32, f32)>,
    /// The score a document must beat: that of the `limit`-th article at the last cut.
    worst: f32,
}

/// Documents buffered between two cuts.
const TOP_BUFFER: usize = 64;

impl TopArticles {
    fn new(limit: usize) -> TopArticles {
        TopArticles { limit, entries: Vec::with_capacity(TOP_BUFFER + limit), worst: f32::MIN }
    }

    fn threshold(&self) -> f32 {
        self.worst
    }

    /// Takes a document that scores at least the threshold; the cut orders equal scores by
    /// article, whatever order they arrived in.
    fn offer(&mut self, article: u32, score: f32) {
        self.entries.push((article, score));
        if self.entries.len() >= TOP_BUFFER + self.limit {
            self.cut();
        }
    }

    /// Keeps the best document of each of the best `limit` articles.
    fn cut(&mut self) {
        self.entries.sort_unstable_by(|a, b| rank(a).cmp(&rank(b)));
        let mut kept = 0;
        for i in 0..self.entries.len() {
            if kept == self.limit {
                break;
            }
            let entry = self.entries[i];
            if !self.entries[..kept].iter().any(|e| e.0 == entry.0) {
                self.entries[kept] = entry;
                kept += 1;
            }
        }
        self.entries.truncate(kept);
        if kept == self.limit {
            self.worst = self.entries[kept - 1].1;
        }
    }

    fn into_sorted(mut self) -> Vec<(u32, f32)> {
        self.cut();
        self.entries
    }
}

/// Sort key of a held article: best score first, then the lower article. Not the document:
/// import indexes on several threads, so documents land in segments in a different order each
/// time, and ties at the cut kept different articles from one import to the next (lcqmc-dev
/// hit@1 moved between 0.9296 and 0.9302 on the same data). Articles keep their source order.
fn rank(entry: &(u32, f32)) -> (std::cmp::Reverse<OrderedScore>, u32) {
    (std::cmp::Reverse(OrderedScore(entry.1)), entry.0)
}

/// A score with a total order (scores are never NaN).
#[derive(PartialEq, PartialOrd)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}


#[cfg(test)]
mod tests {
    use super::TopArticles;

    /// Whatever order tied documents arrive in (it depends on how import threads filled the
    /// segments), the same articles survive the cut, in the same order.
    #[test]
    fn ties_at_the_cut_are_kept_by_article_not_arrival() {
        let offers = [(7, 2.0), (3, 1.0), (9, 1.0), (1, 1.0), (5, 1.0), (3, 0.5)];
        let mut forward = TopArticles::new(3);
        for &(a, s) in &offers {
            forward.offer(a, s);
        }
        let mut backward = TopArticles::new(3);
        for &(a, s) in offers.iter().rev() {
            backward.offer(a, s);
        }
        let (forward, backward) = (forward.into_sorted(), backward.into_sorted());
        assert_eq!(forward, vec![(7, 2.0), (1, 1.0), (3, 1.0)]);
        assert_eq!(forward, backward);
    }
}
