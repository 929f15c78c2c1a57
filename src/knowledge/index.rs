//! The tantivy side: schema, building an index from analysed questions, and turning a query's
//! analysed terms into a boosted disjunction (never the default `QueryParser`, which makes an
//! unspaced Chinese sentence one phrase query that a reworded question cannot match).

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{doc, Index, IndexReader, ReloadPolicy, Term};

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
/// rescue segmentation differences; body and metadata only break ties.
const QUESTION_BOOST: f32 = 1.0;
const BIGRAM_BOOST: f32 = 0.4;
const BODY_BOOST: f32 = 0.15;
const META_BOOST: f32 = 0.3;
/// Terms in more than this share of documents are left out of retrieval (not re-ranking).
const COMMON_TERM_SHARE: f64 = 0.05;
/// At most this many bigram clauses, and body plus metadata clauses, per query.
const MAX_BIGRAM_CLAUSES: usize = 6;
const MAX_SECONDARY_CLAUSES: usize = 4;

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
    /// The article column of each segment, by segment ordinal. Loaded once: a generation's
    /// index is never modified, so its segments never change.
    article_columns: Vec<tantivy::columnar::Column<u64>>,
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
        let article_columns = reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|segment| segment.fast_fields().u64("article"))
            .collect::<Result<_, _>>()?;
        Ok(KnowledgeIndex { fields, reader, article_columns })
    }

    /// The best articles for a query's terms and bigrams: `(article, score)` best first,
    /// at most `limit` articles, each scored by its best question document.
    pub fn retrieve(
        &self,
        terms: &[&str],
        bigrams: &[String],
        limit: usize,
    ) -> Result<Vec<(u32, f32)>, KnowledgeError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        // A term in more than this share of the documents barely moves BM25 but costs a long
        // posting list: on a 100k-entry base such terms (怎么, 的, 什么) made retrieval ten
        // times slower. They still count in re-ranking, which sees every query term.
        let common = (searcher.num_docs() as f64 * COMMON_TERM_SHARE).max(64.0) as u64;
        let mut wanted: Vec<(Term, f32, u64)> = Vec::with_capacity(terms.len() * 3 + bigrams.len());
        let mut consider = |field: Field, text: &str, boost: f32| -> Result<(), KnowledgeError> {
            let term = Term::from_field_text(field, text);
            let df = searcher.doc_freq(&term)?;
            if df > 0 {
                wanted.push((term, boost, df));
            }
            Ok(())
        };
        for t in terms {
            consider(f.question, t, QUESTION_BOOST)?;
            consider(f.body, t, BODY_BOOST)?;
            consider(f.meta, t, META_BOOST)?;
        }
        for g in bigrams {
            consider(f.bigrams, g, BIGRAM_BOOST)?;
        }
        let question_terms = wanted.iter().filter(|w| w.0.field() == f.question).count();
        let rare_question_terms =
            wanted.iter().filter(|w| w.0.field() == f.question && w.2 <= common).count();
        // Keep common question terms when the query has nothing else to go on (怎么办).
        let keep_common = rare_question_terms == 0 && question_terms > 0;
        wanted.retain(|(term, _, df)| *df <= common || (keep_common && term.field() == f.question));
        // Block-WAND's cost grows with the number of clauses, so the secondary fields only
        // contribute their rarest, most telling terms: a few bigrams (for segmentation
        // differences) and a few body and metadata terms (tie-breakers).
        wanted.sort_by_key(|w| w.2);
        let mut taken = [0usize; 3];
        wanted.retain(|(term, _, _)| {
            let slot = if term.field() == f.bigrams {
                0
            } else if term.field() == f.body || term.field() == f.meta {
                1
            } else {
                return true;
            };
            taken[slot] += 1;
            taken[slot] <= [MAX_BIGRAM_CLAUSES, MAX_SECONDARY_CLAUSES][slot]
        });
        let clauses: Vec<(Occur, Box<dyn Query>)> = wanted
            .into_iter()
            .map(|(term, boost, _)| {
                let q = TermQuery::new(term, IndexRecordOption::WithFreqs);
                (Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost)) as Box<dyn Query>)
            })
            .collect();
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let query = BooleanQuery::new(clauses);
        // Articles have several questions: fetch enough documents to fill `limit` articles.
        let hits = searcher.search(&query, &TopDocs::with_limit(limit * 3).order_by_score())?;
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(limit);
        for (score, addr) in hits {
            let Some(article) = self.article_columns[addr.segment_ord as usize].first(addr.doc_id) else { continue };
            let article = article as u32;
            if !out.iter().any(|(a, _)| *a == article) {
                out.push((article, score));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
