//! The decision from a calibrated confidence: answer, offer choices, or decline.

use serde::{Deserialize, Serialize};

/// What the engine recommends doing with a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Confident enough to answer with the top article.
    Answer,
    /// Offer the best few questions ("您是不是想问…").
    Clarify,
    /// Nothing close enough: do not answer from the knowledge base.
    None,
}

/// Confidence thresholds. Defaults were chosen on the development benchmark
/// (`kefu train` prints the choice; see README "Retraining the ranker").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Answer when the top article's confidence is at least this.
    pub answer: f32,
    /// Offer choices when it is at least this (and below `answer`).
    pub clarify: f32,
}

impl Thresholds {
    /// Checks that `0 ≤ clarify ≤ answer ≤ 1`.
    pub fn validate(self) -> Result<Thresholds, String> {
        let ok = |x: f32| (0.0..=1.0).contains(&x);
        if !ok(self.answer) || !ok(self.clarify) {
            return Err(format!("thresholds must be within 0..=1 (answer {}, clarify {})", self.answer, self.clarify));
        }
        if self.clarify > self.answer {
            return Err(format!(
                "the clarify threshold {} is above the answer threshold {}",
                self.clarify, self.answer
            ));
        }
        Ok(self)
    }

    /// The action for a top confidence.
    pub fn decide(&self, confidence: f32) -> Action {
        if confidence >= self.answer {
            Action::Answer
        } else if confidence >= self.clarify {
            Action::Clarify
        } else {
            Action::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        let t = Thresholds { answer: 0.6, clarify: 0.2 };
        assert_eq!(t.decide(0.95), Action::Answer);
        assert_eq!(t.decide(0.6), Action::Answer);
        assert_eq!(t.decide(0.3), Action::Clarify);
        assert_eq!(t.decide(0.1), Action::None);
    }

    #[test]
    fn rejects_inverted_thresholds() {
        assert!(Thresholds { answer: 0.3, clarify: 0.5 }.validate().is_err());
        assert!(Thresholds { answer: 1.3, clarify: 0.5 }.validate().is_err());
    }
}
