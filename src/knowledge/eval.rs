//! Quality metrics on a labelled question set, as defined by the benchmark's scorer
//! (`shared/bench/score.py`), plus a calibration table for the confidence.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Action, KnowledgeError, Reply, SourceError};

/// A question and the article that answers it (`None`: nothing in the knowledge base does).
#[derive(Debug, Clone, Deserialize)]
pub struct LabeledQuery {
    pub query: String,
    pub expected: Option<String>,
}

/// Reads a JSONL file of `{"query": …, "expected": id or null}`; `expected` may be absent
/// (batch input is the same format without labels).
pub fn read_queries(path: &Path) -> Result<Vec<LabeledQuery>, KnowledgeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| KnowledgeError::Read { path: path.to_path_buf(), source })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let file = path.display().to_string();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LabeledQuery>(line) {
            Ok(q) => out.push(q),
            Err(e) => errors.push(SourceError { file: file.clone(), line: i + 1, reason: format!("malformed query line: {e}") }),
        }
    }
    if !errors.is_empty() {
        let total = errors.len();
        errors.truncate(50);
        return Err(KnowledgeError::InvalidQueries { errors, total });
    }
    Ok(out)
}

/// The benchmark's metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub queries: usize,
    #[serde(rename = "hit@1")]
    pub hit1: f64,
    #[serde(rename = "hit@5")]
    pub hit5: f64,
    #[serde(rename = "mrr@10")]
    pub mrr10: f64,
    pub auto_resolved: f64,
    pub answer_precision: f64,
    pub wrong_answer_rate: f64,
    pub unanswerable_declined: f64,
    /// Share of all queries answered with a clarification offer.
    pub clarified: f64,
    /// Of the clarifications on answerable queries, the share whose top 3 held the answer.
    pub clarify_useful: f64,
}

/// One calibration bin: answers whose confidence fell in `[low, high)`.
#[derive(Debug, Clone, Serialize)]
pub struct Bin {
    pub low: f32,
    pub high: f32,
    pub count: usize,
    pub mean_confidence: f64,
    /// Share of these top candidates that were right.
    pub accuracy: f64,
}

/// Scores replies against labels (same order).
pub fn metrics(labels: &[LabeledQuery], replies: &[Reply]) -> Metrics {
    let n = labels.len();
    let (mut answerable, mut hit1, mut hit5, mut mrr) = (0usize, 0usize, 0usize, 0f64);
    let (mut answered, mut right, mut wrong, mut unans, mut declined) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut clarified, mut clarify_answerable, mut clarify_useful) = (0usize, 0usize, 0usize);
    for (label, reply) in labels.iter().zip(replies) {
        let ids: Vec<&str> = reply.candidates.iter().take(10).map(|c| c.id.as_str()).collect();
        if let Some(e) = &label.expected {
            answerable += 1;
            if let Some(pos) = ids.iter().position(|id| id == e) {
                hit1 += (pos == 0) as usize;
                hit5 += (pos < 5) as usize;
                mrr += 1.0 / (pos + 1) as f64;
            }
        } else {
            unans += 1;
        }
        match reply.answer() {
            Some(c) => {
                answered += 1;
                if label.expected.as_deref() == Some(c.id.as_str()) {
                    right += 1;
                } else {
                    wrong += 1;
                }
            }
            None if label.expected.is_none() => declined += 1,
            None => {}
        }
        if reply.action == Action::Clarify {
            clarified += 1;
            if let Some(e) = &label.expected {
                clarify_answerable += 1;
                clarify_useful += ids.iter().take(3).any(|id| id == e) as usize;
            }
        }
    }
    let r = |a: usize, b: usize| if b == 0 { 0.0 } else { ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0 };
    Metrics {
        queries: n,
        hit1: r(hit1, answerable),
        hit5: r(hit5, answerable),
        mrr10: ((mrr / answerable.max(1) as f64) * 10_000.0).round() / 10_000.0,
        auto_resolved: r(right, answerable),
        answer_precision: r(right, answered),
        wrong_answer_rate: r(wrong, n),
        unanswerable_declined: r(declined, unans),
        clarified: r(clarified, n),
        clarify_useful: r(clarify_useful, clarify_answerable),
    }
}

/// Reliability of the top candidate's confidence, in ten equal bins.
pub fn calibration(labels: &[LabeledQuery], replies: &[Reply]) -> Vec<Bin> {
    let mut bins: Vec<(usize, f64, usize)> = vec![(0, 0.0, 0); 10];
    for (label, reply) in labels.iter().zip(replies) {
        let Some(top) = reply.candidates.first() else { continue };
        let b = ((top.confidence * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += top.confidence as f64;
        bins[b].2 += (label.expected.as_deref() == Some(top.id.as_str())) as usize;
    }
    bins.into_iter()
        .enumerate()
        .map(|(i, (count, sum, right))| Bin {
            low: i as f32 / 10.0,
            high: (i + 1) as f32 / 10.0,
            count,
            mean_confidence: if count == 0 { 0.0 } else { sum / count as f64 },
            accuracy: if count == 0 { 0.0 } else { right as f64 / count as f64 },
        })
        .collect()
}
