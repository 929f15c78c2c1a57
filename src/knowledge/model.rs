//! The ranker: two small linear models whose output is a calibrated confidence.
//!
//! 1. The *pair* model scores a query against each question of an article; the article takes
//!    its best question. Trained as a softmax over the candidates plus a "none of these"
//!    option with score 0, it ranks candidates and picks each article's best question.
//! 2. The *context* model looks at each candidate beside its rivals: its pair features, how
//!    far each feature is above or below the best rival's, and its pair score, probability
//!    and rank. A logistic regression on these gives P(this article answers the query).
//!    Context matters because "close" means little on its own: a 0.8 match is convincing
//!    when the runner-up is 0.3 and doubtful when it is 0.79.
//!
//! Both are trained by maximum likelihood (`kefu train`), which is what makes the
//! probabilities calibrated: among answers given at confidence ≥ 0.9, about 90 % are right.
//! The weights ship as `ranker.toml` beside this file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::decide::Thresholds;
use super::features::{Features, ARTICLE_VARIANTS, FEATURE_NAMES, NUM_FEATURES};
use super::KnowledgeError;

/// The shipped lexical model: the one used when no semantic word table is loaded (its
/// semantic weights are zero).
const BUILTIN: &str = include_str!("ranker.toml");
/// The shipped model trained with the semantic word table's features.
const BUILTIN_SEMANTIC: &str = include_str!("ranker-semantic.toml");

/// Number of base context features: bias, the pair features (without their bias), their
/// differences from the best rival, and pair score, probability and rank.
const BASE_CONTEXT: usize = 1 + 2 * (NUM_FEATURES - 1) + 3;
/// The base features, then each of them times the candidate's [`ARTICLE_VARIANTS`]. A
/// logistic regression over both blocks is in effect two calibrations, one for articles with
/// a single question and one for articles with many ways of asking, learned together: pooled
/// with one set of weights, the general-domain set (where right looks like a near-duplicate)
/// made the model far too doubtful of customers' colloquial questions against a shop's FAQ.
pub const NUM_CONTEXT: usize = 2 * BASE_CONTEXT;

/// One candidate's context features.
pub type Context = [f32; NUM_CONTEXT];

/// Names of the context features, in order.
pub fn context_names() -> Vec<String> {
    let mut names = vec!["bias".to_string()];
    names.extend(FEATURE_NAMES[1..].iter().map(|n| n.to_string()));
    names.extend(FEATURE_NAMES[1..].iter().map(|n| format!("{n}_vs_rival")));
    names.extend(["pair_score", "pair_probability", "pair_rank"].map(String::from));
    let interactions: Vec<String> = names.iter().map(|n| format!("{n}_x_variants")).collect();
    names.extend(interactions);
    names
}

/// The highest confidence reported.
const MAX_CONFIDENCE: f32 = 0.9999;

/// Weights and default thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranker {
    pair: Features,
    context: Context,
    /// Default decision thresholds chosen with these weights.
    pub thresholds: Thresholds,
    /// Where the weights came from, for humans.
    pub note: String,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    note: String,
    answer_threshold: f32,
    clarify_threshold: f32,
    pair_weights: BTreeMap<String, f32>,
    context_weights: BTreeMap<String, f32>,
}

/// A candidate after ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Index into the slice given to [`Ranker::rank`].
    pub candidate: usize,
    /// Which of the candidate's questions matched best.
    pub question: usize,
    /// The context model's score (log-odds).
    pub score: f32,
    /// Calibrated probability that the candidate answers the query.
    pub confidence: f32,
}

impl Ranker {
    /// The model shipped in the binary.
    pub fn builtin() -> Ranker {
        Ranker::from_toml(BUILTIN, "builtin").expect("the shipped ranker.toml is valid")
    }

    /// The shipped model trained with the semantic features.
    pub fn builtin_semantic() -> Ranker {
        Ranker::from_toml(BUILTIN_SEMANTIC, "builtin semantic").expect("the shipped ranker-semantic.toml is valid")
    }

    /// The shipped model for an engine with (`true`) or without a semantic word table.
    pub fn builtin_for(semantic: bool) -> Ranker {
        if semantic {
            Ranker::builtin_semantic()
        } else {
            Ranker::builtin()
        }
    }

    /// A model with the given weights.
    pub fn new(pair: Features, context: Context, thresholds: Thresholds, note: String) -> Ranker {
        Ranker { pair, context, thresholds, note }
    }

    /// Reads a model file; every feature must have a weight and no unknown names appear.
    pub fn from_toml(text: &str, origin: &str) -> Result<Ranker, KnowledgeError> {
        let err = |reason: String| KnowledgeError::Model { origin: origin.to_string(), reason };
        let file: ModelFile = toml::from_str(text).map_err(|e| err(e.message().trim().to_string()))?;
        let read = |table: &BTreeMap<String, f32>, section: &str, names: &[String], out: &mut [f32]| {
            for (i, name) in names.iter().enumerate() {
                let w = *table.get(name).ok_or_else(|| err(format!("missing {section} weight `{name}`")))?;
                if !w.is_finite() {
                    return Err(err(format!("{section} weight `{name}` is not a finite number")));
                }
                out[i] = w;
            }
            match table.keys().find(|k| !names.contains(k)) {
                Some(unknown) => Err(err(format!("unknown {section} feature `{unknown}`"))),
                None => Ok(()),
            }
        };
        let mut pair = [0f32; NUM_FEATURES];
        let pair_names: Vec<String> = FEATURE_NAMES.iter().map(|n| n.to_string()).collect();
        read(&file.pair_weights, "pair", &pair_names, &mut pair)?;
        let mut context = [0f32; NUM_CONTEXT];
        read(&file.context_weights, "context", &context_names(), &mut context)?;
        let thresholds = Thresholds { answer: file.answer_threshold, clarify: file.clarify_threshold }
            .validate()
            .map_err(err)?;
        Ok(Ranker { pair, context, thresholds, note: file.note })
    }

    /// The model as a TOML file.
    pub fn to_toml(&self) -> String {
        let file = ModelFile {
            note: self.note.clone(),
            answer_threshold: self.thresholds.answer,
            clarify_threshold: self.thresholds.clarify,
            pair_weights: FEATURE_NAMES.iter().zip(self.pair).map(|(n, w)| (n.to_string(), w)).collect(),
            context_weights: context_names().into_iter().zip(self.context).collect(),
        };
        format!(
            "# kefu ranker model: weights of the re-ranking features and default thresholds.\n\
             # Regenerate with `kefu train` (see README, \"Retraining the ranker\").\n{}",
            toml::to_string(&file).expect("a model serialises")
        )
    }

    pub fn pair_weights(&self) -> &Features {
        &self.pair
    }

    pub fn context_weights(&self) -> &Context {
        &self.context
    }

    /// The pair model's score of one (query, question) pair.
    pub fn pair_score(&self, f: &Features) -> f32 {
        dot(&self.pair, f)
    }

    /// Each candidate's best question (by pair score) and that score.
    pub fn best_questions(&self, candidates: &[&[Features]]) -> Vec<(usize, f32)> {
        candidates
            .iter()
            .map(|questions| {
                questions
                    .iter()
                    .map(|f| self.pair_score(f))
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (i, s)| if s > b.1 { (i, s) } else { b })
            })
            .collect()
    }

    /// Ranks candidates (each a list of its questions' features), best first.
    pub fn rank(&self, candidates: &[&[Features]]) -> Vec<Ranked> {
        let best = self.best_questions(candidates);
        let contexts = context_features(candidates, &best);
        let mut ranked: Vec<Ranked> = contexts
            .iter()
            .enumerate()
            .map(|(i, ctx)| {
                let score = dot(&self.context, ctx);
                // Never quite 1 (sigmoid saturates in f32): an answer threshold of 1 means
                // "never answer outright".
                Ranked { candidate: i, question: best[i].0, score, confidence: sigmoid(score).min(MAX_CONFIDENCE) }
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        ranked
    }
}

/// Context features of every candidate, given each one's best question and pair score.
pub fn context_features(candidates: &[&[Features]], best: &[(usize, f32)]) -> Vec<Context> {
    let chosen: Vec<&Features> = candidates.iter().zip(best).map(|(qs, (q, _))| &qs[*q]).collect();
    let scores: Vec<f32> = best.iter().map(|b| b.1).collect();
    let probs = softmax_with_none(&scores);
    // Rank by pair score, and per feature the best and second-best value with the holder
    // of the best, so "best rival" is O(1) per candidate and feature.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut rank = vec![0usize; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let mut top = [(f32::NEG_INFINITY, usize::MAX, f32::NEG_INFINITY); NUM_FEATURES];
    for (i, f) in chosen.iter().enumerate() {
        for j in 0..NUM_FEATURES {
            let t = &mut top[j];
            if f[j] > t.0 {
                *t = (f[j], i, t.0);
            } else if f[j] > t.2 {
                t.2 = f[j];
            }
        }
    }
    chosen
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut c = [0f32; NUM_CONTEXT];
            c[0] = 1.0;
            let n = NUM_FEATURES - 1;
            for j in 1..NUM_FEATURES {
                let rival = if top[j].1 == i { top[j].2 } else { top[j].0 };
                c[j] = f[j];
                // With no rival at all, compare with nothing (0).
                c[n + j] = f[j] - if rival.is_finite() { rival } else { 0.0 };
            }
            c[2 * n + 1] = scores[i] / 10.0;
            c[2 * n + 2] = probs[i];
            c[2 * n + 3] = rank[i] as f32 / 20.0;
            let variants = f[ARTICLE_VARIANTS];
            for j in 0..BASE_CONTEXT {
                c[BASE_CONTEXT + j] = c[j] * variants;
            }
            c
        })
        .collect()
}

/// Softmax over candidate scores plus the "none" option with score 0.
pub fn softmax_with_none(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(0f32, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let total = (-max).exp() + exps.iter().sum::<f32>();
    exps.into_iter().map(|e| e / total).collect()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub fn dot(w: &[f32], f: &[f32]) -> f32 {
    w.iter().zip(f).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_round_trips() {
        for r in [Ranker::builtin(), Ranker::builtin_semantic()] {
            let again = Ranker::from_toml(&r.to_toml(), "round trip").unwrap();
            assert_eq!(r, again);
        }
    }

    #[test]
    fn the_lexical_model_gives_meaning_no_weight() {
        use crate::knowledge::features::{SEMANTIC_COSINE, SEMANTIC_TOP};
        let r = Ranker::builtin();
        assert_eq!((r.pair[SEMANTIC_COSINE], r.pair[SEMANTIC_TOP]), (0.0, 0.0));
    }

    #[test]
    fn softmax_leaves_room_for_none() {
        let c = softmax_with_none(&[0.0]);
        assert!((c[0] - 0.5).abs() < 1e-6);
        let c = softmax_with_none(&[50.0, 0.0]);
        assert!(c[0] > 0.99 && c[1] < 0.01);
        assert!(softmax_with_none(&[-50.0])[0] < 1e-6);
    }

    #[test]
    fn rival_differences_compare_with_the_best_other_candidate() {
        let mut a = [0f32; NUM_FEATURES];
        let mut b = [0f32; NUM_FEATURES];
        a[1] = 0.9;
        b[1] = 0.4;
        let ctx = context_features(&[&[a][..], &[b][..]], &[(0, 2.0), (0, 1.0)]);
        let n = NUM_FEATURES - 1;
        assert!((ctx[0][n + 1] - 0.5).abs() < 1e-6);
        assert!((ctx[1][n + 1] + 0.5).abs() < 1e-6);
        assert_eq!(ctx[0][2 * n + 3], 0.0);
        assert_eq!(ctx[1][2 * n + 3], 1.0 / 20.0);
    }

    #[test]
    fn the_second_block_is_the_first_times_the_articles_variants() {
        use crate::knowledge::features::article_variants;
        assert_eq!((article_variants(1), article_variants(3), article_variants(20)), (0.0, 0.5, 1.0));
        let mut faq = [0f32; NUM_FEATURES];
        let mut lone = [0f32; NUM_FEATURES];
        faq[1] = 0.4;
        faq[ARTICLE_VARIANTS] = 1.0;
        lone[1] = 0.7;
        let ctx = context_features(&[&[faq][..], &[lone][..]], &[(0, 1.0), (0, 2.0)]);
        assert_eq!(ctx[0][BASE_CONTEXT..], ctx[0][..BASE_CONTEXT], "a many-question article: both blocks alike");
        assert!(ctx[1][BASE_CONTEXT..].iter().all(|&x| x == 0.0), "a lone question: the second block is zero");
        assert_eq!(context_names().len(), NUM_CONTEXT);
        assert_eq!(context_names()[BASE_CONTEXT], "bias_x_variants");
    }

    #[test]
    fn bad_model_files_are_named() {
        let text = "note = 'x'\nanswer_threshold = 0.5\nclarify_threshold = 0.2\n[pair_weights]\nbias = 1.0\n[context_weights]\n";
        let err = Ranker::from_toml(text, "m.toml").unwrap_err().to_string();
        assert_eq!(err, "invalid ranker model m.toml: missing pair weight `query_coverage`");
    }
}
