//! The numbers the admin page shows: auto-resolution, handoffs by reason, messages per hour,
//! ratings, waiting times, answer feedback and the questions the bot could not answer.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::dialogue::Millis;
use crate::handoff::HandoffStatus;
use crate::store::{Store, StoreError};

use super::{Result, ServiceError};

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub conversations: usize,
    /// Conversations with at least one visitor message.
    pub engaged: usize,
    /// Engaged conversations that never needed a human or a ticket.
    pub auto_resolved: usize,
    pub auto_resolution_rate: f64,
    pub handoffs: usize,
    pub handoffs_by_reason: BTreeMap<String, usize>,
    pub queued_now: usize,
    pub tickets: usize,
    /// Median and 90th percentile wait from handoff to an agent, in ms.
    pub wait_p50_ms: Option<u64>,
    pub wait_p90_ms: Option<u64>,
    /// Visitor messages per hour for the last 48 hours: (hour start in ms, count).
    pub messages_per_hour: Vec<(Millis, u64)>,
    /// How many ratings of each score 1–5.
    pub ratings: [usize; 5],
    pub csat_mean: Option<f64>,
    pub feedback_helpful: usize,
    pub feedback_unhelpful: usize,
    pub unanswered: Vec<Unanswered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unanswered {
    pub question: String,
    pub count: u64,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

pub async fn compute(store: &dyn Store, now: Millis) -> Result<Stats> {
    let err = |e: StoreError| ServiceError::from(e);
    let handoffs = store.handoffs().await.map_err(err)?;
    let tickets = store.tickets().await.map_err(err)?;
    let mut needed_human: std::collections::HashSet<&str> = handoffs.iter().map(|h| h.conversation.as_str()).collect();
    needed_human.extend(tickets.iter().map(|t| t.conversation.as_str()));
    let mut conversations = 0;
    let mut engaged = 0;
    let mut auto_resolved = 0;
    for c in store.conversations().await.map_err(err)? {
        conversations += 1;
        if c.last_seq > 0 {
            engaged += 1;
            if !needed_human.contains(c.id.as_str()) {
                auto_resolved += 1;
            }
        }
    }
    let mut by_reason = BTreeMap::new();
    let mut waits = Vec::new();
    for h in &handoffs {
        *by_reason.entry(h.reason.to_string()).or_insert(0) += 1;
        if let Some(a) = h.assigned_ms {
            waits.push(a.saturating_sub(h.created_ms));
        }
    }
    waits.sort_unstable();
    let hour_now = now / 3_600_000;
    let messages_per_hour = store
        .counters().await
        .map_err(err)?
        .messages_per_hour
        .into_iter()
        .filter(|(h, _)| *h + 48 > hour_now)
        .map(|(h, n)| (h * 3_600_000, n))
        .collect();
    let mut ratings = [0usize; 5];
    let mut sum = 0u64;
    // One per resolution, the latest: stores written before ratings were keyed by handoff
    // may hold several.
    let mut latest: HashMap<(String, Option<u64>), crate::handoff::Rating> = HashMap::new();
    for r in store.ratings().await.map_err(err)? {
        let key = (r.conversation.clone(), r.handoff);
        if latest.get(&key).is_none_or(|old| old.at_ms <= r.at_ms) {
            latest.insert(key, r);
        }
    }
    let all_ratings: Vec<_> = latest.into_values().collect();
    for r in &all_ratings {
        ratings[(r.score.clamp(1, 5) - 1) as usize] += 1;
        sum += r.score as u64;
    }
    let feedback = store.feedback().await.map_err(err)?;
    Ok(Stats {
        conversations,
        engaged,
        auto_resolved,
        auto_resolution_rate: if engaged == 0 { 0.0 } else { auto_resolved as f64 / engaged as f64 },
        handoffs: handoffs.len(),
        handoffs_by_reason: by_reason,
        queued_now: handoffs.iter().filter(|h| h.status == HandoffStatus::Queued).count(),
        tickets: tickets.len(),
        wait_p50_ms: percentile(&waits, 0.5),
        wait_p90_ms: percentile(&waits, 0.9),
        messages_per_hour,
        ratings,
        csat_mean: (!all_ratings.is_empty()).then(|| sum as f64 / all_ratings.len() as f64),
        feedback_helpful: feedback.iter().filter(|f| f.helpful).count(),
        feedback_unhelpful: feedback.iter().filter(|f| !f.helpful).count(),
        unanswered: store
            .unanswered(50).await
            .map_err(err)?
            .into_iter()
            .map(|(question, count)| Unanswered { question, count })
            .collect(),
    })
}
