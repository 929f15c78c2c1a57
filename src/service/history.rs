//! History: searching past conversations (text, visitor or verified user, agent, channel,
//! dates, outcome) through the store's history index, one past conversation read-only, and
//! the search's result as CSV.

use super::*;
use crate::store::{HistoryQuery, Outcome, Summary};

/// At most this many conversations per page.
pub const MAX_PAGE: usize = 200;
/// At most this many rows in one CSV export (the rest: narrow the search).
pub const MAX_EXPORT: usize = 10_000;
/// Summaries one search request examines at most (sled: about 150 ms under load, see
/// benches/history.rs); a search over more says where it stopped and the next page goes on.
pub const SCAN_BUDGET: usize = 50_000;

/// A history search as the API takes it: every field optional, dates as `YYYY-MM-DD` in the
/// business's time zone (`hours.utc_offset_minutes`), `to` inclusive.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryRequest {
    pub q: Option<String>,
    pub visitor: Option<String>,
    pub agent: Option<String>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub outcome: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<String>,
    pub limit: Option<usize>,
}

/// One page of results; `next` continues it. `complete` is false when the search stopped at
/// its budget before the end of the range: `next` then searches on (further matches may come).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    pub conversations: Vec<Summary>,
    pub next: Option<String>,
    pub complete: bool,
}

/// A past conversation, read-only: its summary, the conversation, its last handoff and every
/// message (notes included).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    pub summary: Option<Summary>,
    #[serde(flatten)]
    pub view: AgentView,
}

fn refused(message: String) -> ServiceError {
    ServiceError::refused(Code::InvalidHistoryQuery, message)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The start of a local day `YYYY-MM-DD` in epoch milliseconds.
fn day_start(field: &str, value: &str, utc_offset_minutes: i32) -> Result<Millis> {
    let bad = || refused(format!("{field} {value:?} is not a date such as 2026-03-01"));
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let (y, m, d): (i64, i64, i64) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let month_days = [31, if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(bad());
    }
    let ms = days_from_civil(y, m, d) * 86_400_000 - utc_offset_minutes as i64 * 60_000;
    Ok(ms.max(0) as Millis)
}

/// A local date and time for the CSV, in the business's time zone.
fn local_time(ms: Millis, utc_offset_minutes: i32) -> String {
    let local = ms as i64 + utc_offset_minutes as i64 * 60_000;
    let (days, rest) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000) / 1000);
    format!("{} {:02}:{:02}:{:02}", super::reports::date_of(days), rest / 3600, rest / 60 % 60, rest % 60)
}

fn cursor(s: &Summary) -> String {
    format!("{}:{}", s.created_ms, s.id)
}

impl Service {
    /// Checks a request and builds the store's query (text normalised as the index is).
    pub fn history_query(&self, r: &HistoryRequest) -> Result<HistoryQuery> {
        let offset = self.config.hours.utc_offset_minutes;
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let text = match given(&r.q) {
            Some(q) => {
                let n = q.chars().count();
                if n > self.config.max_message_chars {
                    return Err(ServiceError::refused(Code::MessageTooLong, format!("the search has {n} characters; at most {} are allowed", self.config.max_message_chars)));
                }
                // Normalised like the index; a search of only punctuation finds everything.
                Some(normalize(&q)).filter(|t| !t.is_empty())
            }
            None => None,
        };
        let from_ms = given(&r.from).map(|f| day_start("from", &f, offset)).transpose()?;
        let to_ms = given(&r.to).map(|t| day_start("to", &t, offset).map(|d| d + 86_400_000)).transpose()?;
        if let (Some(f), Some(t)) = (from_ms, to_ms) {
            if t <= f {
                return Err(refused(format!("to {:?} is before from {:?}", r.to.as_deref().unwrap_or(""), r.from.as_deref().unwrap_or(""))));
            }
        }
        let outcome = match given(&r.outcome) {
            Some(o) => Some(Outcome::parse(&o).ok_or_else(|| refused(format!("outcome {o:?} is not one of bot_answered, handed_off, ticket, rated")))?),
            None => None,
        };
        let before = match given(&r.before) {
            Some(b) => {
                let bad = || refused(format!("before {b:?} is not a cursor from a previous page's next"));
                let (ms, id) = b.split_once(':').ok_or_else(bad)?;
                Some((ms.parse().map_err(|_| bad())?, id.to_string()))
            }
            None => None,
        };
        let limit = r.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_PAGE {
            return Err(refused(format!("limit {limit} is not 1 to {MAX_PAGE}")));
        }
        Ok(HistoryQuery { text, visitor: given(&r.visitor), agent: given(&r.agent), channel: given(&r.channel), from_ms, to_ms, outcome, before, limit, budget: SCAN_BUDGET })
    }

    /// One page of a history search, newest first.
    pub async fn history(&self, r: &HistoryRequest) -> Result<HistoryPage> {
        let q = self.history_query(r)?;
        let hits = self.store.search_history(&q).await?;
        let next = match &hits.stopped_at {
            Some((ms, id)) => Some(format!("{ms}:{id}")),
            None => (hits.summaries.len() == q.limit).then(|| hits.summaries.last().map(cursor)).flatten(),
        };
        Ok(HistoryPage { complete: hits.stopped_at.is_none(), conversations: hits.summaries, next })
    }

    /// A past conversation, read-only.
    pub async fn history_view(&self, id: &str) -> Result<HistoryView> {
        let view = self.agent_view(id).await?;
        Ok(HistoryView { summary: self.store.summary(id).await?, view })
    }

    /// The whole search (every page, up to [`MAX_EXPORT`] rows) as CSV, with a BOM so that
    /// spreadsheet programs read the Chinese as UTF-8. Times are in the business's time zone.
    pub async fn history_csv(&self, r: &HistoryRequest) -> Result<String> {
        let mut q = self.history_query(r)?;
        q.limit = MAX_PAGE;
        // A download may take its time: the whole range, not a budget's worth.
        q.budget = 0;
        let offset = self.config.hours.utc_offset_minutes;
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = ["id", "started", "last_activity", "channel", "visitor", "user_id", "agents", "bot_answered", "handed_off", "ticket", "rating", "messages", "state", "first_question"];
        let csv_error = |e: csv::Error| ServiceError::Internal(format!("writing the CSV: {e}"));
        w.write_record(header).map_err(csv_error)?;
        let mut rows = 0;
        while rows < MAX_EXPORT {
            let page = self.store.search_history(&q).await?.summaries;
            for s in &page {
                let yes = |b: bool| if b { "yes" } else { "no" };
                w.write_record([
                    s.id.as_str(),
                    &local_time(s.created_ms, offset),
                    &local_time(s.updated_ms, offset),
                    &s.channel,
                    s.visitor_name.as_deref().unwrap_or(""),
                    s.user_id.as_deref().unwrap_or(""),
                    &s.agents.join(" "),
                    yes(s.bot_answered),
                    yes(s.handed_off),
                    yes(s.ticket),
                    &s.rating.map(|r| r.to_string()).unwrap_or_default(),
                    &s.messages.to_string(),
                    s.state.as_str(),
                    &s.first_question,
                ])
                .map_err(csv_error)?;
            }
            rows += page.len();
            match page.last() {
                Some(last) if page.len() == q.limit => q.before = Some((last.created_ms, last.id.clone())),
                _ => break,
            }
        }
        let bytes = w.into_inner().map_err(|e| ServiceError::Internal(format!("writing the CSV: {e}")))?;
        Ok(format!("\u{feff}{}", String::from_utf8_lossy(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, code};
    use super::*;

    #[test]
    fn dates_are_local_days() {
        // 2026-03-01 00:00 in Beijing is 2026-02-28 16:00 UTC.
        assert_eq!(day_start("from", "2026-03-01", 480).unwrap(), 1_772_294_400_000);
        assert_eq!(local_time(1_772_294_400_000, 480), "2026-03-01 00:00:00");
        assert_eq!(local_time(0, 0), "1970-01-01 00:00:00");
        assert!(day_start("from", "2026-02-30", 480).unwrap_err().to_string().contains("2026-02-30"));
        assert!(day_start("to", "昨天", 480).is_err());
    }

    #[tokio::test]
    async fn searches_by_text_agent_and_outcome_and_exports_csv() {
        let f = testing::service(|_| {}).await;
        let a1 = f.agent("a1", true).await;
        let (one, t1) = f.visitor().await;
        f.service.visitor_message(&one, &t1, "退货运费谁出", None).await.unwrap();
        let (two, t2) = f.visitor().await;
        f.service.visitor_message(&two, &t2, "我的洗衣機漏水了", None).await.unwrap();
        f.service.request_human(&two, &t2, None).await.unwrap();
        f.service.claim(&a1, &two).await.unwrap();
        f.service.agent_message(&a1, &two, "请提供订单号").await.unwrap();
        let search = |r: HistoryRequest| {
            let s = f.service.clone();
            async move { s.history(&r).await.unwrap().conversations.into_iter().map(|c| c.id).collect::<Vec<_>>() }
        };
        assert_eq!(search(HistoryRequest::default()).await, [two.clone(), one.clone()], "newest first");
        // Traditional characters find the simplified text (and the other way round).
        assert_eq!(search(HistoryRequest { q: Some("洗衣机".into()), ..Default::default() }).await, [two.clone()]);
        assert_eq!(search(HistoryRequest { q: Some("订单号".into()), ..Default::default() }).await, [two.clone()], "an agent's words");
        assert_eq!(search(HistoryRequest { agent: Some("a1".into()), ..Default::default() }).await, [two.clone()]);
        assert_eq!(search(HistoryRequest { outcome: Some("handed_off".into()), ..Default::default() }).await, [two.clone()]);
        assert_eq!(search(HistoryRequest { outcome: Some("bot_answered".into()), ..Default::default() }).await, [one.clone()]);
        assert_eq!(search(HistoryRequest { visitor: Some(one.clone()), ..Default::default() }).await, [one.clone()]);
        let page = f.service.history(&HistoryRequest { limit: Some(1), ..Default::default() }).await.unwrap();
        let next = page.next.clone().expect("a second page");
        assert_eq!(search(HistoryRequest { before: Some(next), ..Default::default() }).await, [one.clone()]);
        let bad = f.service.history(&HistoryRequest { outcome: Some("won".into()), ..Default::default() }).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidHistoryQuery);
        assert!(bad.to_string().contains("\"won\""), "{bad}");
        assert_eq!(code(f.service.history(&HistoryRequest { from: Some("2026-03-02".into()), to: Some("2026-03-01".into()), ..Default::default() }).await), Code::InvalidHistoryQuery);
        let csv = f.service.history_csv(&HistoryRequest { q: Some("漏水".into()), ..Default::default() }).await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("\u{feff}id,started"), "{}", lines[0]);
        assert_eq!(lines.len(), 2, "{csv}");
        assert!(lines[1].starts_with(&two) && lines[1].contains("我的洗衣機漏水了") && lines[1].contains(",a1,"), "{}", lines[1]);
        let view = f.service.history_view(&two).await.unwrap();
        assert_eq!(view.summary.unwrap().agents, ["a1"]);
        assert!(view.view.messages.iter().any(|m| m.text == "请提供订单号"));
    }
}
