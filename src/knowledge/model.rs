//! The ranker: a linear score over pair features, turned into calibrated confidences by a
//! softmax that includes a "none of these" option.
//!
//! P(article c is the answer) = exp(s_c) / (1 + Σ exp(s_k)), where the 1 is the "no article
//! answers this" outcome with score 0. Trained by maximum likelihood on labelled queries
//! (`kefu train`), the probabilities are calibrated: among answers given at confidence ≥ 0.9,
//! about 90 % are right. Weights ship as `ranker.toml` beside this file.

use serde::{Deserialize, Serialize};

use super::decide::Thresholds;
use super::features::{Features, FEATURE_NAMES, NUM_FEATURES};
use super::KnowledgeError;

/// The shipped model, trained on the development benchmark.
const BUILTIN: &str = include_str!("ranker.toml");

/// Weights and default thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranker {
    weights: Features,
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
    weights: std::collections::BTreeMap<String, f32>,
}

impl Ranker {
    /// The model shipped in the binary.
    pub fn builtin() -> Ranker {
        Ranker::from_toml(BUILTIN, "builtin").expect("the shipped ranker.toml is valid")
    }

    /// A model with the given weights.
    pub fn new(weights: Features, thresholds: Thresholds, note: String) -> Ranker {
        Ranker { weights, thresholds, note }
    }

    /// Reads a model file; every feature must have a weight and no unknown names appear.
    pub fn from_toml(text: &str, origin: &str) -> Result<Ranker, KnowledgeError> {
        let err = |reason: String| KnowledgeError::Model { origin: origin.to_string(), reason };
        let file: ModelFile = toml::from_str(text).map_err(|e| err(e.message().trim().to_string()))?;
        let mut weights = [0f32; NUM_FEATURES];
        for (i, name) in FEATURE_NAMES.iter().enumerate() {
            weights[i] = *file.weights.get(*name).ok_or_else(|| err(format!("missing weight `{name}`")))?;
            if !weights[i].is_finite() {
                return Err(err(format!("weight `{name}` is not a finite number")));
            }
        }
        if let Some(unknown) = file.weights.keys().find(|k| !FEATURE_NAMES.contains(&k.as_str())) {
            return Err(err(format!("unknown feature `{unknown}`")));
        }
        let thresholds = Thresholds { answer: file.answer_threshold, clarify: file.clarify_threshold }
            .validate()
            .map_err(err)?;
        Ok(Ranker { weights, thresholds, note: file.note })
    }

    /// The model as a TOML file.
    pub fn to_toml(&self) -> String {
        let file = ModelFile {
            note: self.note.clone(),
            answer_threshold: self.thresholds.answer,
            clarify_threshold: self.thresholds.clarify,
            weights: FEATURE_NAMES.iter().zip(self.weights).map(|(n, w)| (n.to_string(), w)).collect(),
        };
        format!(
            "# kefu ranker model: weights of the re-ranking features and default thresholds.\n\
             # Regenerate with `kefu train` (see README, \"Retraining the ranker\").\n{}",
            toml::to_string(&file).expect("a model serialises")
        )
    }

    pub fn weights(&self) -> &Features {
        &self.weights
    }

    /// The linear score of one pair.
    pub fn score(&self, f: &Features) -> f32 {
        self.weights.iter().zip(f).map(|(w, x)| w * x).sum()
    }
}

/// Softmax over candidate scores plus the "none" option with score 0.
pub fn confidences(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(0f32, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let total = (-max).exp() + exps.iter().sum::<f32>();
    exps.into_iter().map(|e| e / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_round_trips() {
        let r = Ranker::builtin();
        let again = Ranker::from_toml(&r.to_toml(), "round trip").unwrap();
        assert_eq!(r, again);
    }

    #[test]
    fn confidences_leave_room_for_none() {
        let c = confidences(&[0.0]);
        assert!((c[0] - 0.5).abs() < 1e-6);
        let c = confidences(&[50.0, 0.0]);
        assert!(c[0] > 0.99 && c[1] < 0.01);
        assert!(confidences(&[-50.0])[0] < 1e-6);
    }

    #[test]
    fn bad_model_files_are_named() {
        let err = Ranker::from_toml("note = 'x'\nanswer_threshold = 0.5\nclarify_threshold = 0.2\n[weights]\nbias = 1.0\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid ranker model m.toml: missing weight `query_coverage`");
    }
}
