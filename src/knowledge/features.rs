//! Question-to-question similarity features: how well a query matches one of an article's
//! questions, by term importance, characters, order, and meaning-flipping signals.

use std::collections::HashMap;

use crate::text::signals::{signals, Signals};
use crate::text::Analyzed;

/// Number of features per (query, question) pair.
pub const NUM_FEATURES: usize = 39;

/// Cosine of the query and the question in the semantic space (0 without a model).
pub const SEMANTIC_COSINE: usize = 36;
/// 1 when the question's article is the query's nearest article in meaning (agreement of
/// the semantic ranking with this candidate), else 0.
pub const SEMANTIC_TOP: usize = 37;
/// How many ways of asking the question's article keeps beside its title: 0 for a lone
/// question (the general-domain benchmark's one-question entries), 1 from four variants on
/// (a shop's FAQ with its `similar` lists). Set by the engine, constant over an article.
/// It tells the ranker which kind of knowledge base it is in: on one-question entries
/// "right" looks like a near-duplicate, on many-question articles a customer's colloquial
/// message sharing few words with the best variant is often right (see `model.rs`).
pub const ARTICLE_VARIANTS: usize = 38;

/// The value of [`ARTICLE_VARIANTS`] for an article of `questions` questions.
pub fn article_variants(questions: usize) -> f32 {
    (questions.saturating_sub(1) as f32 / 4.0).min(1.0)
}

/// One pair's features, each scaled to roughly 0..=1.
pub type Features = [f32; NUM_FEATURES];

/// Feature names, in order, as they appear in the ranker model file.
pub const FEATURE_NAMES: [&str; NUM_FEATURES] = [
    "bias",
    "query_coverage",
    "question_coverage",
    "min_coverage",
    "coverage_product",
    "bigram_dice",
    "char_dice",
    "lcs_query",
    "lcs_question",
    "negation_mismatch",
    "number_conflict",
    "number_one_side",
    "question_kind_conflict",
    "missing_query_term",
    "missing_question_term",
    "retrieval_ratio",
    "exact",
    "query_information",
    "char_query_coverage",
    "char_question_coverage",
    "missing_query_weight",
    "missing_question_weight",
    "containment",
    "edit_similarity",
    "term_jaccard",
    "question_kind_match",
    "length_ratio",
    "content_query_coverage",
    "content_question_coverage",
    "missing_content_query_weight",
    "missing_content_question_weight",
    "substitution",
    "content_substitution",
    "bigram_query_coverage",
    "bigram_question_coverage",
    "content_jaccard",
    "semantic_cosine",
    "semantic_top",
    "article_variants",
];

/// Term statistics of the knowledge base: a dense id and an IDF per term.
#[derive(Debug, Default)]
pub struct Vocabulary {
    ids: HashMap<String, u32>,
    idf: Vec<f32>,
    /// Whether each term is a function word (see `Analyzer::is_function_word`).
    function: Vec<bool>,
    unknown_idf: f32,
    /// IDF of single characters over the questions: importance that does not depend on how
    /// jieba happened to segment.
    char_idf: HashMap<char, f32>,
}

impl Vocabulary {
    /// Builds IDF from per-term question frequencies over `questions` questions.
    /// `char_freq` gives, per character, in how many questions it occurs.
    pub fn new(
        terms: Vec<String>,
        doc_freq: &[u32],
        char_freq: HashMap<char, u32>,
        questions: usize,
        is_function: impl Fn(&str) -> bool,
    ) -> Vocabulary {
        let function = terms.iter().map(|t| is_function(t)).collect();
        let n = questions as f32;
        let idf_of = |df: f32| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let idf = doc_freq.iter().map(|&df| idf_of(df as f32)).collect();
        let ids = terms.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let char_idf = char_freq.into_iter().map(|(c, df)| (c, idf_of(df as f32))).collect();
        Vocabulary { ids, idf, function, unknown_idf: idf_of(0.0), char_idf }
    }

    fn is_function(&self, id: u32) -> bool {
        self.function.get(id as usize).copied().unwrap_or(false)
    }

    fn char_idf(&self, c: char) -> f32 {
        self.char_idf.get(&c).copied().unwrap_or(self.unknown_idf)
    }

    pub fn id(&self, term: &str) -> Option<u32> {
        self.ids.get(term).copied()
    }

    pub fn idf(&self, id: u32) -> f32 {
        self.idf.get(id as usize).copied().unwrap_or(self.unknown_idf)
    }
}

/// A text prepared for matching: sorted term ids with weights, characters, bigrams, signals.
/// Questions are prepared once at load; a query once per request.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Sorted, unique term ids. Terms unknown to the vocabulary get ids from the top of the
    /// range (never equal to a real id), so they count as unmatched.
    terms: Vec<u32>,
    weights: Vec<f32>,
    weight_sum: f32,
    /// `weights` with function words zeroed, and their sum.
    content: Vec<f32>,
    content_sum: f32,
    chars: Vec<char>,
    /// `chars` as one string, for the containment feature: `str::contains` is linear where
    /// comparing every window was quadratic (a 1 900-character message took 27 ms).
    joined: String,
    char_set: Vec<char>,
    /// IDF of each character of `char_set`, and their sum.
    char_weights: Vec<f32>,
    char_weight_sum: f32,
    bigrams: Vec<u64>,
    signals: Signals,
}

/// Characters beyond this are ignored by the order features (LCS and edit distance), which
/// keep one bit per query character in a machine word.
const MAX_LCS_CHARS: usize = 64;

impl Prepared {
    /// Prepares a stored question: its normalised text and vocabulary term ids.
    pub fn from_stored(normalized: &str, term_ids: &[u32], terms: &[String], vocab: &Vocabulary) -> Prepared {
        let mut ids = term_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let words: Vec<&str> = term_ids.iter().map(|&t| terms[t as usize].as_str()).collect();
        Prepared::build(normalized, ids, signals(&words), vocab)
    }

    /// Prepares analysed text (a query) against a vocabulary.
    fn new(analyzed: &Analyzed, vocab: &Vocabulary) -> Prepared {
        let mut unknown = u32::MAX;
        let mut terms: Vec<u32> = analyzed
            .terms
            .iter()
            .map(|t| {
                vocab.id(t).unwrap_or_else(|| {
                    unknown -= 1;
                    unknown
                })
            })
            .collect();
        terms.sort_unstable();
        terms.dedup();
        // Unknown terms that repeat got distinct ids; that only over-weights a repeated
        // unknown word slightly, which is harmless.
        Prepared::build(&analyzed.normalized, terms, signals(&analyzed.terms), vocab)
    }

    fn build(normalized: &str, terms: Vec<u32>, signals: Signals, vocab: &Vocabulary) -> Prepared {
        let weights: Vec<f32> = terms.iter().map(|&id| vocab.idf(id)).collect();
        let weight_sum = weights.iter().sum();
        let content: Vec<f32> =
            terms.iter().zip(&weights).map(|(&id, &w)| if vocab.is_function(id) { 0.0 } else { w }).collect();
        let content_sum = content.iter().sum();
        let chars: Vec<char> = normalized.chars().filter(|c| *c != ' ').collect();
        let joined: String = chars.iter().collect();
        let mut char_set = chars.clone();
        char_set.sort_unstable();
        char_set.dedup();
        let mut bigrams = Vec::new();
        for chunk in normalized.split(' ') {
            let cs: Vec<char> = chunk.chars().collect();
            bigrams.extend(cs.windows(2).map(|w| ((w[0] as u64) << 21) | w[1] as u64));
        }
        bigrams.sort_unstable();
        bigrams.dedup();
        let char_weights: Vec<f32> = char_set.iter().map(|&c| vocab.char_idf(c)).collect();
        let char_weight_sum = char_weights.iter().sum();
        Prepared { terms, weights, weight_sum, content, content_sum, chars, joined, char_set, char_weights, char_weight_sum, bigrams, signals }
    }

    /// Whether nothing matchable is left (only punctuation, emoji…).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The sorted, unique vocabulary ids of a stored question's terms.
    pub fn term_ids(&self) -> &[u32] {
        &self.terms
    }
}

/// A query prepared for matching against many questions: its [`Prepared`] text plus, for
/// each distinct character among its first [`MAX_LCS_CHARS`], the bit mask of the positions
/// where it occurs. The masks let the order features (LCS, edit distance) run bit-parallel,
/// one machine word per question character instead of a quadratic table per pair.
#[derive(Debug, Clone, Default)]
pub struct PreparedQuery {
    text: Prepared,
    /// Sorted by character.
    positions: Vec<(char, u64)>,
}

impl PreparedQuery {
    /// Prepares analysed text (a query) against a vocabulary.
    pub fn new(analyzed: &Analyzed, vocab: &Vocabulary) -> PreparedQuery {
        let text = Prepared::new(analyzed, vocab);
        let mut positions: Vec<(char, u64)> = Vec::new();
        for (i, &c) in text.chars.iter().take(MAX_LCS_CHARS).enumerate() {
            match positions.binary_search_by_key(&c, |p| p.0) {
                Ok(at) => positions[at].1 |= 1 << i,
                Err(at) => positions.insert(at, (c, 1 << i)),
            }
        }
        PreparedQuery { text, positions }
    }

    /// Whether nothing matchable is left (only punctuation, emoji…).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Positions of `c` among the query's first [`MAX_LCS_CHARS`] characters.
    fn positions_of(&self, c: char) -> u64 {
        self.positions.binary_search_by_key(&c, |p| p.0).map_or(0, |at| self.positions[at].1)
    }

    /// Length of the longest common subsequence of the query's first `MAX_LCS_CHARS`
    /// characters and `other` (Allison–Dix / Hyyrö bit-parallel LCS: the zero bits of `v`
    /// count the matched query positions).
    fn lcs(&self, other: &[char]) -> usize {
        let m = self.text.chars.len().min(MAX_LCS_CHARS);
        if m == 0 || other.is_empty() {
            return 0;
        }
        let mut v = u64::MAX;
        for &c in other {
            let u = v & self.positions_of(c);
            v = v.wrapping_add(u) | (v - u);
        }
        (!v & low_bits(m)).count_ones() as usize
    }

    /// Edit distance between the query's first `MAX_LCS_CHARS` characters and `other`
    /// (Myers' bit-vector algorithm in Hyyrö's form: `pv`/`mv` hold the +1/−1 vertical deltas
    /// of the current column, `score` tracks the last row).
    fn levenshtein(&self, other: &[char]) -> usize {
        let m = self.text.chars.len().min(MAX_LCS_CHARS);
        if m == 0 {
            return other.len();
        }
        let last = 1u64 << (m - 1);
        let (mut pv, mut mv, mut score) = (low_bits(m), 0u64, m);
        for &c in other {
            let eq = self.positions_of(c);
            let xv = eq | mv;
            let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
            let ph = mv | !(xh | pv);
            let mh = pv & xh;
            if ph & last != 0 {
                score += 1;
            } else if mh & last != 0 {
                score -= 1;
            }
            // The first row of the table is 0, 1, 2…: each column starts one edit further.
            let ph = (ph << 1) | 1;
            let mh = mh << 1;
            pv = mh | !(xv | ph);
            mv = ph & xv;
        }
        score
    }
}

/// A word with the low `n` bits set (`n` ≤ 64).
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1 << n) - 1
    }
}

/// The features of `query` against `question`. `retrieval_ratio` is the article's retrieval
/// score over the best retrieval score of this query (1 for the top hit).
pub fn features(prepared: &PreparedQuery, question: &Prepared, retrieval_ratio: f32) -> Features {
    let query = &prepared.text;
    let mut f = [0f32; NUM_FEATURES];
    f[0] = 1.0;

    // Weighted term overlap, and the most important term each side leaves unmatched.
    let (mut shared, mut missing_q, mut missing_d) = (0f32, 0f32, 0f32);
    let (mut missing_q_sum, mut missing_d_sum, mut shared_count) = (0f32, 0f32, 0usize);
    let (mut shared_content, mut missing_cq, mut missing_cd) = (0f32, 0f32, 0f32);
    let (mut content_shared, mut content_q, mut content_d) = (0usize, 0usize, 0usize);
    let (mut i, mut j) = (0, 0);
    while i < query.terms.len() || j < question.terms.len() {
        let a = query.terms.get(i).copied().unwrap_or(u32::MAX);
        let b = question.terms.get(j).copied().unwrap_or(u32::MAX);
        if i < query.terms.len() && (j >= question.terms.len() || a < b) {
            missing_q = missing_q.max(query.weights[i]);
            missing_q_sum += query.weights[i];
            missing_cq += query.content[i];
            content_q += (query.content[i] > 0.0) as usize;
            i += 1;
        } else if j < question.terms.len() && (i >= query.terms.len() || b < a) {
            missing_d = missing_d.max(question.weights[j]);
            missing_d_sum += question.weights[j];
            missing_cd += question.content[j];
            content_d += (question.content[j] > 0.0) as usize;
            j += 1;
        } else {
            shared += query.weights[i];
            shared_count += 1;
            shared_content += query.content[i];
            content_shared += (query.content[i] > 0.0) as usize;
            i += 1;
            j += 1;
        }
    }
    let cov_q = ratio(shared, query.weight_sum);
    let cov_d = ratio(shared, question.weight_sum);
    f[1] = cov_q;
    f[2] = cov_d;
    f[3] = cov_q.min(cov_d);
    f[4] = cov_q * cov_d;

    // Each sorted set is merged once: its count gives the dice and coverage features, the
    // characters' weights the weighted coverage.
    let shared_bigrams = overlap(&query.bigrams, &question.bigrams);
    f[5] = dice(shared_bigrams, query.bigrams.len(), question.bigrams.len());
    let (shared_char_count, shared_chars) = weighted_overlap(&query.char_set, &query.char_weights, &question.char_set);
    f[6] = dice(shared_char_count, query.char_set.len(), question.char_set.len());

    let lcs = prepared.lcs(&question.chars[..question.chars.len().min(MAX_LCS_CHARS)]) as f32;
    f[7] = ratio(lcs, query.chars.len().min(MAX_LCS_CHARS) as f32);
    f[8] = ratio(lcs, question.chars.len().min(MAX_LCS_CHARS) as f32);

    let (sq, sd) = (&query.signals, &question.signals);
    f[9] = (sq.negated != sd.negated) as u8 as f32;
    let (nq, nd) = (!sq.numbers.is_empty(), !sd.numbers.is_empty());
    f[10] = (nq && nd && sq.numbers != sd.numbers) as u8 as f32;
    f[11] = (nq != nd) as u8 as f32;
    f[12] = (sq.kinds != 0 && sd.kinds != 0 && sq.kinds & sd.kinds == 0) as u8 as f32;

    let max_q = query.weights.iter().copied().fold(0f32, f32::max);
    let max_d = question.weights.iter().copied().fold(0f32, f32::max);
    f[13] = ratio(missing_q, max_q);
    f[14] = ratio(missing_d, max_d);
    f[15] = retrieval_ratio;
    f[16] = (query.chars == question.chars) as u8 as f32;
    // Short, vague queries ("怎么办") carry little information and deserve less trust.
    f[17] = query.weight_sum / (query.weight_sum + 10.0);

    f[18] = ratio(shared_chars, query.char_weight_sum);
    f[19] = ratio(shared_chars, question.char_weight_sum);
    // Absolute information left unmatched: one rare word missing matters even in a long
    // question, which the ratios above understate.
    f[20] = 1.0 - (-missing_q_sum / 4.0).exp();
    f[21] = 1.0 - (-missing_d_sum / 4.0).exp();
    f[22] = (contains(&query.joined, &question.joined) || contains(&question.joined, &query.joined)) as u8 as f32;
    let (lq, ld) = (query.chars.len().min(MAX_LCS_CHARS), question.chars.len().min(MAX_LCS_CHARS));
    f[23] = 1.0 - ratio(prepared.levenshtein(&question.chars[..ld]) as f32, lq.max(ld) as f32);
    let union = query.terms.len() + question.terms.len() - shared_count;
    f[24] = ratio(shared_count as f32, union as f32);
    f[25] = (sq.kinds & sd.kinds != 0) as u8 as f32;
    f[26] = ratio(lq.min(ld) as f32, lq.max(ld) as f32);
    f[27] = ratio(shared_content, query.content_sum);
    f[28] = ratio(shared_content, question.content_sum);
    f[29] = 1.0 - (-missing_cq / 4.0).exp();
    f[30] = 1.0 - (-missing_cd / 4.0).exp();
    // Both sides keep an important word of their own: one thing was swapped for another
    // (安徽卫视 / 东方卫视), the typical near-miss that is a different question.
    f[31] = f[13].min(f[14]);
    f[32] = f[29].min(f[30]);
    let shared_bigrams = shared_bigrams as f32;
    f[33] = ratio(shared_bigrams, query.bigrams.len() as f32);
    f[34] = ratio(shared_bigrams, question.bigrams.len() as f32);
    f[35] = ratio(content_shared as f32, (content_shared + content_q + content_d) as f32);
    f
}

/// How many of `a`'s elements are also in `b` (both sorted, unique), and the sum of their
/// weights.
fn weighted_overlap(a: &[char], weights: &[f32], b: &[char]) -> (usize, f32) {
    let (mut i, mut j, mut shared, mut sum) = (0, 0, 0usize, 0f32);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                sum += weights[i];
                i += 1;
                j += 1;
            }
        }
    }
    (shared, sum)
}

/// Whether `needle` occurs contiguously in `haystack` (and is not empty).
fn contains(haystack: &str, needle: &str) -> bool {
    !needle.is_empty() && haystack.contains(needle)
}

fn ratio(a: f32, b: f32) -> f32 {
    if b > 0.0 {
        (a / b).min(1.0)
    } else {
        0.0
    }
}

/// Dice coefficient of two sets of sizes `a` and `b` sharing `shared` elements.
fn dice(shared: usize, a: usize, b: usize) -> f32 {
    if a == 0 && b == 0 {
        return 0.0;
    }
    2.0 * shared as f32 / (a + b) as f32
}

/// Number of shared elements of two sorted, unique slices.
fn overlap<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Character edit distance.
    fn levenshtein_table(a: &[char], b: &[char]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        let mut cur = vec![0; b.len() + 1];
        for (i, &ca) in a.iter().enumerate() {
            cur[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + (ca != cb) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        prev[b.len()]
    }

    /// Length of the longest common subsequence of two character slices.
    fn lcs_table(a: &[char], b: &[char]) -> usize {
        if a.is_empty() || b.is_empty() {
            return 0;
        }
        let mut prev = vec![0u16; b.len() + 1];
        let mut cur = vec![0u16; b.len() + 1];
        for &ca in a {
            for (j, &cb) in b.iter().enumerate() {
                cur[j + 1] = if ca == cb { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        prev[b.len()] as usize
    }

    /// A query over the given text, as the bit-parallel algorithms see it.
    fn query(text: &str) -> PreparedQuery {
        let vocab = Vocabulary::default();
        let analyzed = Analyzed { normalized: text.to_string(), terms: vec![text.to_string()] };
        PreparedQuery::new(&analyzed, &vocab)
    }

    #[test]
    fn lcs_and_dice() {
        let b: Vec<char> = "退款怎么申请".chars().collect();
        assert_eq!(query("怎么申请退款").lcs(&b), 4);
        assert_eq!(dice(overlap(&[1, 2, 3], &[2, 3, 4]), 3, 3), 2.0 * 2.0 / 6.0);
        assert_eq!(dice(0, 0, 0), 0.0);
        assert!(contains("怎么申请退款", "申请退款") && !contains("申请退款", "怎么申请退款"));
        assert!(!contains("申请退款", ""), "an empty text is contained nowhere");
        assert_eq!(query("怎么申请退款").levenshtein(&b), 4);
    }

    #[test]
    fn bit_parallel_order_features_match_the_tables() {
        // Small alphabets force repeated characters; lengths straddle the 64-character word.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let alphabet: Vec<char> = "退款运费到账怎么的".chars().collect();
        for round in 0..3000 {
            let letters = 1 + round % alphabet.len();
            let (la, lb) = (next(80), next(80));
            let a: String = (0..la).map(|_| alphabet[next(letters)]).collect();
            let b: Vec<char> = (0..lb).map(|_| alphabet[next(letters)]).collect();
            let b = &b[..b.len().min(MAX_LCS_CHARS)];
            let q = query(&a);
            let a: Vec<char> = a.chars().take(MAX_LCS_CHARS).collect();
            assert_eq!(q.lcs(b), lcs_table(&a, b), "lcs {a:?} {b:?}");
            assert_eq!(q.levenshtein(b), levenshtein_table(&a, b), "levenshtein {a:?} {b:?}");
        }
    }
}
