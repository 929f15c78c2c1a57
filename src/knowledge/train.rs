//! Learning the ranker's weights from labelled questions.
//!
//! Two stages, as in `model.rs`. The pair model is the softmax-with-none, an article scoring
//! as its best question; training maximises the likelihood of the right article (or of
//! "none" for questions the knowledge base cannot answer, and for those whose article
//! retrieval missed). The context model is a logistic regression over every candidate's
//! context features, labelled right or wrong. Both use L2 regularisation and full-batch Adam.
//! Several labelled sets, each over its own knowledge base, can be pooled: a model that has
//! seen both one-question articles of general questions and many-question customer-service
//! articles generalises to either. Out-of-fold predictions from k-fold cross-validation
//! give an honest estimate of quality on unseen questions and choose the thresholds.

use super::decide::Thresholds;
use super::eval::{calibration, metrics, Bin, LabeledQuery, Metrics};
use super::features::{Features, NUM_FEATURES};
use super::model::{context_features, dot, sigmoid, softmax_with_none, Context, Ranker, NUM_CONTEXT};
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
        Options { folds: 5, iterations: 1500, l2: 1e-5, target_precision: 0.905 }
    }
}

/// One labelled query's candidates: features per article per question, and which article is
/// right (`None`: none of them).
#[derive(Debug, Clone)]
pub struct Example {
    pub candidates: Vec<CandidateFeatures>,
    pub label: Option<usize>,
    /// Which labelled set (and so which engine) the query belongs to.
    pub set: usize,
}

/// The result of training.
#[derive(Debug, Clone)]
pub struct Trained {
    pub ranker: Ranker,
    /// Metrics of out-of-fold predictions at the chosen thresholds, per labelled set.
    pub cross_validated: Vec<Metrics>,
    /// Metrics of the final model on the training queries themselves, per labelled set.
    pub in_sample: Vec<Metrics>,
    /// Calibration of the out-of-fold confidences, per labelled set: "about 90 % right at
    /// confidence ≥ 0.9" must hold on each set separately, not only pooled.
    pub calibration: Vec<Vec<Bin>>,
}

/// Retrieves candidates and computes features for every labelled query.
pub fn examples(engine: &Engine, queries: &[LabeledQuery], set: usize) -> Result<Vec<Example>, KnowledgeError> {
    engine
        .parallel_map(queries, |engine, q| {
            let candidates = engine.candidate_features(&engine.analyzer().analyze(&q.query))?;
            let label = q.expected.as_ref().and_then(|e| {
                candidates.iter().position(|c| &engine.article(c.article).id == e)
            });
            Ok(Example { candidates, label, set })
        })
        .into_iter()
        .collect()
}

/// Trains on labelled sets, each with the engine of its knowledge base: k-fold
/// cross-validation first (for honest metrics and thresholds), then a final fit on
/// everything.
pub fn train(sets: &[(&Engine, &[LabeledQuery])], options: Options) -> Result<Trained, KnowledgeError> {
    let mut data = Vec::new();
    for (i, (engine, queries)) in sets.iter().enumerate() {
        data.extend(examples(engine, queries, i)?);
    }
    let labels: Vec<&LabeledQuery> = sets.iter().flat_map(|(_, q)| q.iter()).collect();
    let reply = |e: &Example, ranker: &Ranker, thresholds: Thresholds| sets[e.set].0.rank(&e.candidates, ranker, thresholds);
    let start = sets.first().map_or_else(Ranker::builtin, |(engine, _)| engine.ranker().clone());
    let folds = options.folds.max(2);
    let never = Thresholds { answer: 1.0, clarify: 1.0 };
    let mut oof: Vec<Option<Reply>> = vec![None; data.len()];
    for fold in 0..folds {
        let train_set: Vec<&Example> = data.iter().enumerate().filter(|(i, _)| i % folds != fold).map(|(_, e)| e).collect();
        let ranker = fit(&train_set, options, start.thresholds, String::new());
        for (i, e) in data.iter().enumerate().filter(|(i, _)| i % folds == fold) {
            oof[i] = Some(reply(e, &ranker, never));
        }
    }
    let oof: Vec<Reply> = oof.into_iter().map(|r| r.expect("every query is in one fold")).collect();
    let owned_labels: Vec<LabeledQuery> = labels.iter().map(|l| (*l).clone()).collect();
    let thresholds = choose_thresholds(&owned_labels, &oof, options.target_precision);

    let all: Vec<&Example> = data.iter().collect();
    let note = format!(
        "trained by `kefu train` on {} labelled queries in {} set(s) ({} folds, {} iterations, l2 {}, target precision {})",
        labels.len(),
        sets.len(),
        folds,
        options.iterations,
        options.l2,
        options.target_precision
    );
    let ranker = fit(&all, options, thresholds, note);
    let decided: Vec<Reply> = oof
        .into_iter()
        .map(|mut r| {
            r.action = if r.candidates.is_empty() { super::Action::None } else { thresholds.decide(r.confidence) };
            r
        })
        .collect();
    let in_sample: Vec<Reply> = data.iter().map(|e| reply(e, &ranker, thresholds)).collect();
    let per_set = |replies: &[Reply]| -> Vec<Metrics> {
        let mut start = 0;
        sets.iter()
            .map(|(_, queries)| {
                let m = metrics(queries, &replies[start..start + queries.len()]);
                start += queries.len();
                m
            })
            .collect()
    };
    let mut start = 0;
    let calibration = sets
        .iter()
        .map(|(_, queries)| {
            let bins = calibration(queries, &decided[start..start + queries.len()]);
            start += queries.len();
            bins
        })
        .collect();
    Ok(Trained { cross_validated: per_set(&decided), in_sample: per_set(&in_sample), calibration, ranker })
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

/// Fits both stages on `data`.
pub fn fit(data: &[&Example], options: Options, thresholds: Thresholds, note: String) -> Ranker {
    let start = Ranker::builtin();
    let pair = fit_pair(data, options, *start.pair_weights());
    let with_pair = Ranker::new(pair, *start.context_weights(), thresholds, String::new());
    let mut rows: Vec<(Context, bool)> = Vec::new();
    for e in data {
        let questions: Vec<&[Features]> = e.candidates.iter().map(|c| c.questions.as_slice()).collect();
        let best = with_pair.best_questions(&questions);
        for (k, ctx) in context_features(&questions, &best).into_iter().enumerate() {
            rows.push((ctx, e.label == Some(k)));
        }
    }
    let context = fit_context(&rows, options);
    Ranker::new(pair, context, thresholds, note)
}

/// One step of Adam on `w` with gradient `g` (the bias, index 0, is not regularised).
struct Adam<const N: usize> {
    m: [f32; N],
    v: [f32; N],
    step: i32,
}

impl<const N: usize> Adam<N> {
    fn new() -> Self {
        Adam { m: [0.0; N], v: [0.0; N], step: 0 }
    }

    fn update(&mut self, w: &mut [f32; N], grad: &[f32; N], n: f32, l2: f32) {
        let (lr, b1, b2, eps) = (0.05f32, 0.9f32, 0.999f32, 1e-8f32);
        self.step += 1;
        for j in 0..N {
            let reg = if j == 0 { 0.0 } else { 2.0 * l2 * w[j] };
            let g = grad[j] / n + reg;
            self.m[j] = b1 * self.m[j] + (1.0 - b1) * g;
            self.v[j] = b2 * self.v[j] + (1.0 - b2) * g * g;
            let mh = self.m[j] / (1.0 - b1.powi(self.step));
            let vh = self.v[j] / (1.0 - b2.powi(self.step));
            w[j] -= lr * mh / (vh.sqrt() + eps);
        }
    }
}

fn rounded<const N: usize>(mut w: [f32; N]) -> [f32; N] {
    for x in &mut w {
        *x = (*x * 10_000.0).round() / 10_000.0;
    }
    w
}

/// The pair model: negative log-likelihood of the softmax-with-none, an article scoring as
/// its best question.
fn fit_pair(data: &[&Example], options: Options, start: Features) -> Features {
    let mut w = start;
    let mut adam = Adam::<NUM_FEATURES>::new();
    let n = data.len().max(1) as f32;
    let (mut scores, mut best) = (Vec::new(), Vec::new());
    for _ in 0..options.iterations {
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
            let probs = softmax_with_none(&scores);
            for (k, c) in e.candidates.iter().enumerate() {
                let f = &c.questions[best[k]];
                let g = probs[k] - (e.label == Some(k)) as u8 as f32;
                for j in 0..NUM_FEATURES {
                    grad[j] += g * f[j];
                }
            }
        }
        adam.update(&mut w, &grad, n, options.l2);
    }
    rounded(w)
}

/// The context model: logistic regression of "this candidate is right". Features are
/// standardised while fitting (they range from ranks to score differences, and Adam
/// converges far better on a common scale), then the weights are folded back to raw units.
fn fit_context(rows: &[(Context, bool)], options: Options) -> Context {
    let n = rows.len().max(1) as f32;
    let (mut mean, mut std) = ([0f32; NUM_CONTEXT], [1f32; NUM_CONTEXT]);
    for j in 1..NUM_CONTEXT {
        mean[j] = rows.iter().map(|r| r.0[j]).sum::<f32>() / n;
        let var = rows.iter().map(|r| (r.0[j] - mean[j]).powi(2)).sum::<f32>() / n;
        std[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
    }
    let scaled: Vec<(Context, f32)> = rows
        .iter()
        .map(|(x, right)| {
            let mut z = [0f32; NUM_CONTEXT];
            z[0] = 1.0;
            for j in 1..NUM_CONTEXT {
                z[j] = (x[j] - mean[j]) / std[j];
            }
            (z, *right as u8 as f32)
        })
        .collect();
    let mut w = [0f32; NUM_CONTEXT];
    let mut adam = Adam::<NUM_CONTEXT>::new();
    for _ in 0..options.iterations {
        let mut grad = [0f32; NUM_CONTEXT];
        for (z, y) in &scaled {
            let g = sigmoid(dot(&w, z)) - y;
            for j in 0..NUM_CONTEXT {
                grad[j] += g * z[j];
            }
        }
        adam.update(&mut w, &grad, n, options.l2);
    }
    let mut raw = [0f32; NUM_CONTEXT];
    raw[0] = w[0];
    for j in 1..NUM_CONTEXT {
        raw[j] = w[j] / std[j];
        raw[0] -= w[j] * mean[j] / std[j];
    }
    rounded(raw)
}
