//! The delivery worker: sends the outbox, signed, off the conversation path. Deliveries of one
//! conversation to one endpoint go one after the other in the outbox's order (the next waits
//! until the one before is delivered or given up); different conversations and endpoints go
//! side by side. A failed try waits (1 s, doubling up to `max_backoff_ms`); a delivery
//! failing for `give_up_secs` is logged as failed and kept. One node sends: it holds a
//! lease in the store, renewed every pass.
//!
//! A pass's outcomes (a delivery moved from the outbox to the log, a try's backoff) are
//! written together in one store commit at its end, through the store's one writer: writes
//! of their own beside the steps' transactions on the same records would make those retry,
//! and a crash before the commit only sends those deliveries again (at least once).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::*;

/// The sending node holds its lease this long, renewing it every pass.
const SENDER_MS: Millis = 5_000;
/// How often the worker looks without being woken (another node's events, backoffs ending).
const TICK: Duration = Duration::from_millis(500);
/// Conversation streams sent side by side.
const STREAMS: usize = 32;
/// The log keeps about this many deliveries (the oldest go first).
const LOG_KEEP: usize = 5_000;
/// Outbox entries one pass takes on, at most (its outcomes wait for its end).
const PASS_MAX: usize = 2_000;

impl Webhooks {
    /// Sends until aborted. Every node runs it: it keeps the endpoints fresh everywhere;
    /// the node holding the lease sends.
    pub async fn run(self: Arc<Self>) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.timeout_ms))
            // A receiver's redirect is its answer: a 3xx is a failed try, not a new target.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        let shared = self.store.notes().is_some();
        let mut logged = 0usize;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot read the webhook endpoints; using the last ones");
            }
            let sender = if shared { crate::store::lease::hold(&*self.store, SENDER, "lease", &self.node, now_ms() + SENDER_MS, now_ms()).await } else { Ok(true) };
            match sender {
                Ok(true) => match self.pass(&http).await {
                    Ok(n) => logged += n,
                    Err(e) => tracing::error!(error = %e, "the webhook outbox could not be sent"),
                },
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot tell which node sends webhooks"),
            }
            if logged > LOG_KEEP / 5 {
                logged = 0;
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "the webhook log could not be pruned");
                }
            }
            self.passes.fetch_add(1, Ordering::Release);
        }
    }

    /// One pass over the outbox; how many deliveries left it.
    pub(super) async fn pass(&self, http: &reqwest::Client) -> Result<usize, WebhookError> {
        // Only what the pass can take on is read: behind a receiver that is down the outbox
        // grows, and reading all of it every pass would cost the store more each time.
        let outbox = self.store.first_records(OUTBOX, PASS_MAX).await?;
        if outbox.is_empty() {
            return Ok(0);
        }
        // Streams in the order of their first entry; entries in key order within each.
        let mut streams: Vec<Vec<(String, Delivery)>> = Vec::new();
        let mut index: std::collections::HashMap<(String, Option<String>), usize> = Default::default();
        for (k, v) in outbox {
            let d: Delivery = match read("a delivery", &v) {
                Ok(d) => d,
                Err(e) => {
                    // Kept for a person to look at; it cannot block anything (no stream).
                    tracing::error!(key = %k.replace('\u{0}', "/"), error = %e, "an unreadable webhook delivery in the outbox");
                    continue;
                }
            };
            let at = *index.entry((d.endpoint.clone(), d.conversation.clone())).or_insert_with(|| {
                streams.push(Vec::new());
                streams.len() - 1
            });
            streams[at].push((k, d));
        }
        let endpoints = self.cached();
        let writes: Vec<Vec<RecordWrite>> =
            futures_util::stream::iter(streams).map(|s| self.send_stream(http, &endpoints, s)).buffer_unordered(STREAMS).collect().await;
        let records: Vec<RecordWrite> = writes.into_iter().flatten().collect();
        let left = records.iter().filter(|r| r.space == OUTBOX && r.value.is_none()).count();
        if !records.is_empty() {
            self.store.commit(Change { records, at_ms: now_ms(), ..Default::default() }).await?;
        }
        Ok(left)
    }

    /// Sends one conversation's deliveries to one endpoint in order, until one must wait;
    /// what the tries change, to be written.
    async fn send_stream(&self, http: &reqwest::Client, endpoints: &[Endpoint], stream: Vec<(String, Delivery)>) -> Vec<RecordWrite> {
        let mut out = Vec::new();
        let record = |space: &str, key: &str, value: Option<Vec<u8>>| RecordWrite { space: space.into(), key: key.into(), value };
        for (key, mut d) in stream {
            let now = now_ms();
            if d.next_ms > now {
                break;
            }
            let attempt = match endpoints.iter().find(|e| e.id == d.endpoint) {
                Some(e) => send(http, e, &d).await,
                None => Attempt { at_ms: now, duration_ms: 0, status: None, error: Some("the endpoint was removed".into()) },
            };
            let ok = attempt.error.is_none();
            let removed = !endpoints.iter().any(|e| e.id == d.endpoint);
            d.tries += 1;
            d.attempts.push(attempt);
            let excess = d.attempts.len().saturating_sub(ATTEMPTS_KEPT);
            d.attempts.drain(..excess);
            let given_up = removed || now.saturating_sub(d.since_ms) >= self.config.give_up_secs * 1000;
            if ok || given_up {
                d.status = if ok { Status::Delivered } else { Status::Failed };
                if !ok {
                    tracing::warn!(delivery = %d.id, event = %d.event, tries = d.tries, "a webhook delivery failed for good; kept in the log");
                }
                // Into the log and out of the outbox in one commit.
                out.push(record(LOG, &key, Some(write(&d))));
                out.push(record(OUTBOX, &key, None));
                continue;
            }
            let wait = 1_000u64.saturating_mul(1 << (d.tries - 1).min(30)).min(self.config.max_backoff_ms);
            d.next_ms = now + wait;
            out.push(record(OUTBOX, &key, Some(write(&d))));
            break;
        }
        out
    }

    /// Trims the log to the newest [`LOG_KEEP`] deliveries.
    async fn prune(&self) -> Result<(), WebhookError> {
        let log = self.store.records(LOG, "").await?;
        let excess = log.len().saturating_sub(LOG_KEEP);
        if excess > 0 {
            let records = log.into_iter().take(excess).map(|(key, _)| RecordWrite { space: LOG.into(), key, value: None }).collect();
            self.store.commit(Change { records, at_ms: now_ms(), ..Default::default() }).await?;
        }
        Ok(())
    }
}

/// One signed try.
async fn send(http: &reqwest::Client, e: &Endpoint, d: &Delivery) -> Attempt {
    let at_ms = now_ms();
    let started = Instant::now();
    let timestamp = (at_ms / 1000).to_string();
    let result = http
        .post(&e.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("kefu-webhooks/", env!("CARGO_PKG_VERSION")))
        .header(sign::TIMESTAMP, &timestamp)
        .header(sign::SIGNATURE, sign::sign(&e.secret, &timestamp, d.body.as_bytes()))
        .header(sign::EVENT, &d.event)
        .header(sign::DELIVERY, &d.id)
        .body(d.body.clone())
        .send()
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(r) if r.status().is_success() => Attempt { at_ms, duration_ms, status: Some(r.status().as_u16()), error: None },
        Ok(r) => Attempt { at_ms, duration_ms, status: Some(r.status().as_u16()), error: Some(format!("the receiver answered {}", r.status())) },
        Err(err) => {
            let why = if err.is_timeout() {
                "no answer within webhooks.timeout_ms".to_string()
            } else if err.is_connect() {
                "cannot connect to the receiver".to_string()
            } else {
                format!("the request failed: {err}")
            };
            Attempt { at_ms, duration_ms, status: None, error: Some(why) }
        }
    }
}
