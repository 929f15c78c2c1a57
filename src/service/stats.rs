//! The numbers the admin page shows: auto-resolution, handoffs by reason, messages per hour,
//! ratings, waiting times, answer feedback, photos received and sent, and the questions the bot could not answer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dialogue::Millis;
use crate::store::report::{self, Counts};
use crate::store::{Store, StoreError};

use super::{Result, ServiceError};

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub conversations: usize,
    /// Conversations with at least one visitor message.
    pub engaged: usize,
    /// Engaged conversations the bot resolved (see [`compute`]).
    pub auto_resolved: usize,
    pub auto_resolution_rate: f64,
    pub handoffs: usize,
    pub handoffs_by_reason: BTreeMap<String, usize>,
    pub queued_now: usize,
    pub tickets: usize,
    /// Median and 90th percentile wait from handoff to an agent, in ms: the upper bound of
    /// the histogram bucket (5 s, 10 s, 20 s, 30 s, 1, 2, 5, 10, 30, 60 min) it falls in.
    pub wait_p50_ms: Option<u64>,
    pub wait_p90_ms: Option<u64>,
    /// Visitor messages per hour for the last 48 hours: (hour start in ms, count).
    pub messages_per_hour: Vec<(Millis, u64)>,
    /// How many ratings of each score 1–5.
    pub ratings: [usize; 5],
    pub csat_mean: Option<f64>,
    pub feedback_helpful: usize,
    pub feedback_unhelpful: usize,
    /// Photos visitors (and channel users) sent, and photos agents sent.
    pub images_received: usize,
    pub images_sent: usize,
    pub unanswered: Vec<Unanswered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unanswered {
    pub question: String,
    pub count: u64,
}

/// A percentile of the wait histogram: the upper bound of the bucket it falls in (beyond
/// the last bound, the mean wait), so within that bucket's width of the true value.
fn percentile(totals: &Counts, p: f64) -> Option<u64> {
    let n = totals.get("wait.n").copied().unwrap_or(0);
    if n <= 0 {
        return None;
    }
    let rank = ((n - 1) as f64 * p).round() as i64 + 1;
    let mut seen = 0;
    for (bucket, bound) in report::WAIT_BUCKETS {
        seen += totals.get(*bucket).copied().unwrap_or(0);
        if seen >= rank {
            return Some(bound.unwrap_or_else(|| (totals.get("wait.ms").copied().unwrap_or(0) / n) as u64));
        }
    }
    None
}

/// The statistics, from the all-time counters the store keeps as it writes (see
/// `store::report`) and the queue's index: no conversation, handoff or rating is loaded, so
/// the cost does not grow with the store.
///
/// `auto_resolved` counts engaged conversations the bot resolved, defined in
/// [`report::outcome`]: the bot sent an article answer, there was no handoff and no ticket,
/// and its latest answer-or-decline was an answer (a conversation the bot declined and the
/// visitor then left is not resolved).
pub async fn compute(store: &dyn Store, now: Millis) -> Result<Stats> {
    let err = |e: StoreError| ServiceError::from(e);
    let totals = store.report_totals().await.map_err(err)?;
    let (team, _) = super::reports::by_scope(&totals);
    let bot = super::reports::bot_of(&team);
    let get = |k: &str| team.get(k).copied().unwrap_or(0).max(0) as usize;
    let hour_now = now / 3_600_000;
    let messages_per_hour = store
        .counters().await
        .map_err(err)?
        .messages_per_hour
        .into_iter()
        .filter(|(h, _)| *h + 48 > hour_now)
        .map(|(h, n)| (h * 3_600_000, n))
        .collect();
    let ratings = [1, 2, 3, 4, 5].map(|s| get(&format!("csat.{s}")));
    let rated = get("csat.n");
    Ok(Stats {
        conversations: get("conversations"),
        engaged: bot.engaged.max(0) as usize,
        auto_resolved: bot.auto_resolved.max(0) as usize,
        auto_resolution_rate: bot.auto_resolution_rate,
        handoffs: get("handoffs"),
        handoffs_by_reason: bot.handoffs_by_reason.iter().map(|(r, n)| (r.clone(), (*n).max(0) as usize)).collect(),
        queued_now: store.queue().await.map_err(err)?.len(),
        tickets: get("tickets"),
        wait_p50_ms: percentile(&team, 0.5),
        wait_p90_ms: percentile(&team, 0.9),
        messages_per_hour,
        ratings,
        csat_mean: (rated > 0).then(|| get("csat.sum") as f64 / rated as f64),
        feedback_helpful: get("feedback.helpful"),
        feedback_unhelpful: get("feedback.unhelpful"),
        images_received: get("images.received"),
        images_sent: get("images.sent"),
        unanswered: store
            .unanswered(50).await
            .map_err(err)?
            .into_iter()
            .map(|(question, count)| Unanswered { question, count })
            .collect(),
    })
}
