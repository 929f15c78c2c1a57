//! Learning the ranker's weights from labelled questions.
//!
//! The model is the softmax-with-none of `model.rs`, an article scoring as its best question.
//! Training maximises the likelihood of the right article (or of "none" for questions the
//! knowledge base cannot answer, and for those whose article retrieval missed) with L2
//! regularisation, by full-batch Adam. Out-of-fold predictions from k-fold cross-validation
//! give an honest estimate of quality on unseen questions and choose the thresholds.

use super::decide::Thresholds;
use super::eval::{metrics, LabeledQuery, Metrics};
use super::features::{Features, NUM_FEATURES};
use super::model::{confidences, Ranker};
use super::{CandidateFeatures, Engine, KnowledgeError, Reply};

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub folds: usize,
    pub iterations: usize,
    pub l2: f32,
    /// Answer precision the answer threshold must reach on out-of-fold predictions.
    pub target_precision: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options { folds: 5, iterations: 800, l2: 1e-3, target_precision: 0.92 }
    }
}

/// One labelled query's candidates: features per article per question, and which article is
/// right (`None`: none of them).
#[derive(Debug, Clone)]
pub struct Example {
    pub candidates: Vec<CandidateFeatures>,
    pub label: Option<usize>,
}

/// The result of training.
#[derive(Debug, Clone)]
pub struct Trained {
    pub ranker: Ranker,
    /// Metrics of out-of-fold predictions at the chosen thresholds.
    pub cross_validated: Metrics,
    /// Metrics of the final model on the training queries themselves.
    pub in_sample: Metrics,
}

/// Retrieves candidates and computes features for every labelled query.
pub fn examples(engine: &Engine, queries: &[LabeledQuery]) -> Result<Vec<Example>, KnowledgeError> {
    engine
        .parallel_map(queries, |engine, q| {
            let candidates = engine.candidate_features(&q.query)?;
            let label = q.expected.as_ref().and_then(|e| {
                candidates.iter().position(|c| &engine.article(c.article).id == e)
            });
            Ok(Example { candidates, label })
        })
        .into_iter()
        .collect()
}

/// Trains on `queries`: k-fold cross-validation first (for honest metrics and thresholds),
/// then a final fit on everything.
pub fn train(engine: &Engine, queries: &[LabeledQuery], options: Options) -> Result<Trained, KnowledgeError> {
    let data = examples(engine, queries)?;
    let folds = options.folds.max(2);
    let mut oof: Vec<Option<Reply>> = vec![None; data.len()];
    for fold in 0..folds {
        let train_set: Vec<&Example> = data.iter().enumerate().filter(|(i, _)| i % folds != fold).map(|(_, e)| e).collect();
        let weights = fit(&train_set, options);
        let ranker = Ranker::new(weights, engine.ranker().thresholds, String::new());
        for (i, e) in data.iter().enumerate().filter(|(i, _)| i % folds == fold) {
            oof[i] = Some(engine.rank(&e.candidates, &ranker, Thresholds { answer: 1.1, clarify: 1.1 }));
        }
    }
    let oof: Vec<Reply> = oof.into_iter().map(|r| r.expect("every query is in one fold")).collect();
    let thresholds = choose_thresholds(queries, &oof, options.target_precision);

    let all: Vec<&Example> = data.iter().collect();
    let weights = fit(&all, options);
    let note = format!(
        "trained by `kefu train` on {} labelled queries ({} folds, {} iterations, l2 {})",
        queries.len(),
        folds,
        options.iterations,
        options.l2
    );
    let ranker = Ranker::new(weights, thresholds, note);
    let decided = |replies: Vec<Reply>| -> Vec<Reply> {
        replies
            .into_iter()
            .map(|mut r| {
                r.action = if r.candidates.is_empty() { super::Action::None } else { thresholds.decide(r.confidence) };
                r
            })
            .collect()
    };
    let cross_validated = metrics(queries, &decided(oof));
    let in_sample_replies: Vec<Reply> = data.iter().map(|e| engine.rank(&e.candidates, &ranker, thresholds)).collect();
    let in_sample = metrics(queries, &in_sample_replies);
    Ok(Trained { ranker, cross_validated, in_sample })
}

/// The answer threshold: the lowest confidence at which answers still reach the target
/// precision (so as many questions as possible are resolved). The clarify threshold: the
/// lowest confidence at which the top three still hold the right article for at least half
/// of the questions offered choices.
pub fn choose_thresholds(labels: &[LabeledQuery], replies: &[Reply], target_precision: f64) -> Thresholds {
    let mut tops: Vec<(f32, bool, bool)> = labels
        .iter()
        .zip(replies)
        .filter_map(|(l, r)| {
            let top = r.candidates.first()?;
            let right = l.expected.as_deref() == Some(top.id.as_str());
            let in_top3 = l.expected.as_ref().is_some_and(|e| r.candidates.iter().take(3).any(|c| &c.id == e));
            Some((top.confidence, right, in_top3))
        })
        .collect();
    tops.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Walk down from the most confident answer, keeping the lowest threshold that still
    // meets the target precision.
    let (mut right, mut answer) = (0usize, 1.0f32);
    for (i, &(conf, ok, _)) in tops.iter().enumerate() {
        right += ok as usize;
        if right as f64 / (i + 1) as f64 >= target_precision {
            answer = conf;
        }
    }
    let below: Vec<&(f32, bool, bool)> = tops.iter().filter(|t| t.0 < answer).collect();
    let (mut useful, mut clarify) = (0usize, answer);
    for (i, &&(conf, _, in3)) in below.iter().enumerate() {
        useful += in3 as usize;
        if useful as f64 / (i + 1) as f64 >= 0.5 {
            clarify = conf;
        }
    }
    let round = |x: f32| (x * 1000.0).round() / 1000.0;
    Thresholds { answer: round(answer), clarify: round(clarify.min(answer)) }
}

/// Fits weights by full-batch Adam on the negative log-likelihood plus L2 (the bias is not
/// regularised).
pub fn fit(data: &[&Example], options: Options) -> Features {
    let mut w = Ranker::builtin().weights().to_owned();
    let (mut m, mut v) = ([0f32; NUM_FEATURES], [0f32; NUM_FEATURES]);
    let (lr, b1, b2, eps) = (0.05f32, 0.9f32, 0.999f32, 1e-8f32);
    let n = data.len().max(1) as f32;
    let mut scores = Vec::new();
    let mut best = Vec::new();
    for step in 1..=options.iterations {
        let mut grad = [0f32; NUM_FEATURES];
        for e in data {
            scores.clear();
            best.clear();
            for c in &e.candidates {
                let (bi, bs) = c
                    .questions
                    .iter()
                    .map(|f| dot(&w, f))
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (i, s)| if s > b.1 { (i, s) } else { b });
                scores.push(bs);
                best.push(bi);
            }
            let probs = confidences(&scores);
            for (k, c) in e.candidates.iter().enumerate() {
                let f = &c.questions[best[k]];
                let y = (e.label == Some(k)) as u8 as f32;
                let g = probs[k] - y;
                for j in 0..NUM_FEATURES {
                    grad[j] += g * f[j];
                }
            }
        }
        for j in 0..NUM_FEATURES {
            let reg = if j == 0 { 0.0 } else { 2.0 * options.l2 * w[j] };
            let g = grad[j] / n + reg;
            m[j] = b1 * m[j] + (1.0 - b1) * g;
            v[j] = b2 * v[j] + (1.0 - b2) * g * g;
            let mh = m[j] / (1.0 - b1.powi(step as i32));
            let vh = v[j] / (1.0 - b2.powi(step as i32));
            w[j] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    for x in &mut w {
        *x = (*x * 10_000.0).round() / 10_000.0;
    }
    w
}

fn dot(w: &Features, f: &Features) -> f32 {
    w.iter().zip(f).map(|(a, b)| a * b).sum()
}
