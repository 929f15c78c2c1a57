//! Reports over a date range on the bot, the team and each agent, read from the hourly
//! counters the store keeps as it writes (`store::report`), never by loading conversations:
//! a 30-day report reads 720 hours of counters whatever the number of conversations.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::codes::Code;
use crate::store::report::{Counts, HourCounts, NameKind, HOUR_MS, TEAM};
use crate::store::Store;

use super::{Result, ServiceError};

/// The longest range a report covers, in days.
pub const MAX_DAYS: i64 = 366;

/// A report's days: `from` to `to` inclusive, in local time at `utc_offset_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Days since 1970-01-01.
    pub from: i64,
    pub to: i64,
    pub utc_offset_minutes: i32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of days since 1970-01-01, as `YYYY-MM-DD`.
pub fn date_of(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn bad(message: String) -> ServiceError {
    ServiceError::refused(Code::InvalidRange, message)
}

/// Parses `YYYY-MM-DD` (a real calendar date) into days since 1970-01-01.
pub fn parse_date(name: &str, s: &str) -> Result<i64> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad(format!("{name} {s:?} is not a date: write YYYY-MM-DD, e.g. 2026-03-01")));
    };
    let num = |p: &str, len: usize| (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u32>().ok()).flatten();
    let (Some(y), Some(m), Some(d)) = (num(y, 4), num(m, 2), num(d, 2)) else {
        return Err(bad(format!("{name} {s:?} is not a date: write YYYY-MM-DD, e.g. 2026-03-01")));
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[m as usize - 1] || y < 1970 {
        return Err(bad(format!("{name} {s:?} is not a calendar date from 1970 on")));
    }
    Ok(days_from_civil(y as i64, m, d))
}

impl Range {
    /// Checks a range from the API: both dates valid, `from` not after `to`, at most
    /// [`MAX_DAYS`] days, an offset of whole hours within ±14 h.
    pub fn parse(from: &str, to: &str, utc_offset_minutes: i32) -> Result<Range> {
        let (f, t) = (parse_date("from", from)?, parse_date("to", to)?);
        if f > t {
            return Err(bad(format!("from {from} is after to {to}")));
        }
        if t - f + 1 > MAX_DAYS {
            return Err(bad(format!("{from} to {to} is {} days; a report covers at most {MAX_DAYS}", t - f + 1)));
        }
        if utc_offset_minutes % 60 != 0 || utc_offset_minutes.abs() > 14 * 60 {
            return Err(bad(format!("utc_offset_minutes {utc_offset_minutes} is not a whole number of hours within ±14 h (reports count by hour)")));
        }
        Ok(Range { from: f, to: t, utc_offset_minutes })
    }

    /// The first hour (since the epoch, UTC) of local day `day`.
    fn hour_of_day(&self, day: i64) -> u64 {
        (day * 24 - self.utc_offset_minutes as i64 / 60).max(0) as u64
    }

    /// The local day an hour falls in.
    fn day_of_hour(&self, hour: u64) -> i64 {
        (hour as i64 + self.utc_offset_minutes as i64 / 60).div_euclid(24)
    }

    /// Hours covered: `[from, until)`.
    pub fn hours(&self) -> (u64, u64) {
        (self.hour_of_day(self.from), self.hour_of_day(self.to + 1))
    }
}

/// The bot's side of a report, counted as the doc of each field says.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BotReport {
    /// Conversations started in the range.
    pub conversations: i64,
    /// Of those, the ones where the visitor wrote at least once.
    pub engaged: i64,
    /// Engaged conversations the bot resolved: see [`crate::store::report::outcome`] (it answered from an
    /// article, no handoff or ticket followed, and its latest answer-or-decline was an answer).
    pub auto_resolved: i64,
    /// Engaged conversations handed to a human or turned into a ticket.
    pub escalated: i64,
    /// Engaged conversations the visitor left after the bot declined, without escalating.
    pub abandoned_after_decline: i64,
    /// Engaged conversations with none of those (greetings, prompts only).
    pub unresolved: i64,
    /// `auto_resolved / engaged` (0 without engaged conversations).
    pub auto_resolution_rate: f64,
    /// Handoffs made in the range and by reason.
    pub handoffs: i64,
    pub handoffs_by_reason: BTreeMap<String, i64>,
    /// `escalated / engaged`.
    pub handoff_rate: f64,
    pub tickets: i64,
    /// Article answers and declines the bot sent in the range.
    pub answers: i64,
    pub declines: i64,
    pub top_articles: Vec<Named>,
    /// Questions the bot could not answer in the range (once each time asked), and the most
    /// asked of them that are still unanswered (answered ones leave the list).
    pub unanswered: i64,
    pub unanswered_questions: Vec<Named>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Named {
    pub name: String,
    /// The article's title, for articles still in the knowledge base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub count: u64,
}

/// The team's or one agent's side of a report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AgentReport {
    /// The agent's id; `null` for the whole team.
    pub agent: Option<String>,
    /// Conversations assigned (claimed, auto-assigned or transferred to them) in the range.
    pub conversations: i64,
    /// Mean time from assignment to the agent's first message, over the first responses
    /// written in the range.
    pub first_responses: i64,
    pub first_response_mean_ms: Option<i64>,
    /// Mean time from assignment to resolving or returning to the bot, over those ended in
    /// the range.
    pub handled: i64,
    pub handle_mean_ms: Option<i64>,
    /// Ratings given in the range for this agent's conversations (team: every rating).
    pub csat_count: i64,
    pub csat_mean: Option<f64>,
    /// SLA clocks (first response, resolution) that tickets ran out of in the range; an
    /// agent's are those of tickets assigned to them when the clock ran out.
    pub sla_breaches: i64,
    /// Photos sent to customers in the range (team: by every agent).
    pub images_sent: i64,
}

/// One local day of the range.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DayReport {
    pub date: String,
    pub conversations: i64,
    pub engaged: i64,
    pub auto_resolved: i64,
    pub escalated: i64,
    pub handoffs: i64,
    pub unanswered: i64,
    pub csat_count: i64,
    pub csat_sum: i64,
    pub images_received: i64,
    pub images_sent: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub utc_offset_minutes: i32,
    /// Photos visitors and WeChat users sent in the range (after-sales runs on them).
    pub images_received: i64,
    pub bot: BotReport,
    pub team: AgentReport,
    pub agents: Vec<AgentReport>,
    pub days: Vec<DayReport>,
}

fn get(c: &Counts, k: &str) -> i64 {
    c.get(k).copied().unwrap_or(0)
}

fn mean(sum: i64, n: i64) -> Option<i64> {
    (n > 0).then(|| sum / n)
}

fn ratio(a: i64, b: i64) -> f64 {
    if b <= 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The bot's figures from summed team counters (names filled in by the caller).
pub fn bot_of(c: &Counts) -> BotReport {
    let outcome = |o: &str| get(c, &format!("outcome.{o}"));
    let engaged = ["auto_resolved", "escalated", "abandoned", "unresolved"].iter().map(|o| outcome(o)).sum();
    BotReport {
        conversations: get(c, "conversations"),
        engaged,
        auto_resolved: outcome("auto_resolved"),
        escalated: outcome("escalated"),
        abandoned_after_decline: outcome("abandoned"),
        unresolved: outcome("unresolved"),
        auto_resolution_rate: ratio(outcome("auto_resolved"), engaged),
        handoffs: get(c, "handoffs"),
        handoffs_by_reason: c
            .iter()
            .filter_map(|(k, n)| k.strip_prefix("handoff.reason.").filter(|_| *n != 0).map(|r| (r.to_string(), *n)))
            .collect(),
        handoff_rate: ratio(outcome("escalated"), engaged),
        tickets: get(c, "tickets"),
        answers: get(c, "bot.answers"),
        declines: get(c, "bot.declines"),
        top_articles: Vec::new(),
        unanswered: get(c, "unanswered"),
        unanswered_questions: Vec::new(),
    }
}

/// An agent's (or with `None` the team's) figures from summed counters.
pub fn agent_of(agent: Option<String>, c: &Counts) -> AgentReport {
    let csat_count = get(c, "csat.n");
    AgentReport {
        agent,
        conversations: get(c, "assigned"),
        first_responses: get(c, "first_response.n"),
        first_response_mean_ms: mean(get(c, "first_response.ms"), get(c, "first_response.n")),
        handled: get(c, "handled.n"),
        handle_mean_ms: mean(get(c, "handled.ms"), get(c, "handled.n")),
        csat_count,
        csat_mean: (csat_count > 0).then(|| get(c, "csat.sum") as f64 / csat_count as f64),
        sla_breaches: get(c, "sla.breaches"),
        images_sent: get(c, "images.sent"),
    }
}

/// Groups counter rows by scope and sums them: the team's and each agent's.
pub fn by_scope(rows: &[HourCounts]) -> (Counts, BTreeMap<String, Counts>) {
    let mut team = Counts::new();
    let mut agents: BTreeMap<String, Counts> = BTreeMap::new();
    for r in rows {
        let into = match r.scope.strip_prefix("agent:") {
            Some(id) => agents.entry(id.to_string()).or_default(),
            None if r.scope == TEAM => &mut team,
            None => continue,
        };
        for (k, n) in &r.counts {
            *into.entry(k.clone()).or_default() += n;
        }
    }
    (team, agents)
}

/// How many named entries (articles, questions) a report lists.
pub const TOP: usize = 20;

/// The report over `range`. `title` names an article by id.
pub async fn compute(store: &dyn Store, range: Range, title: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Report> {
    let (from_hour, until_hour) = range.hours();
    let rows = store.report_hours(from_hour, until_hour).await?;
    let (team_counts, agent_counts) = by_scope(&rows);
    let mut bot = bot_of(&team_counts);
    bot.top_articles = store
        .report_names(NameKind::Article, from_hour, until_hour, TOP)
        .await?
        .into_iter()
        .map(|(name, count)| Named { title: title(&name), name, count })
        .collect();
    bot.unanswered_questions = store
        .report_names(NameKind::Question, from_hour, until_hour, TOP)
        .await?
        .into_iter()
        .map(|(name, count)| Named { name, title: None, count })
        .collect();
    let mut days: Vec<DayReport> = (range.from..=range.to).map(|d| DayReport { date: date_of(d), ..Default::default() }).collect();
    for r in rows.iter().filter(|r| r.scope == TEAM) {
        let Some(day) = days.get_mut((range.day_of_hour(r.hour) - range.from) as usize) else { continue };
        let c = &r.counts;
        day.conversations += get(c, "conversations");
        for o in ["auto_resolved", "escalated", "abandoned", "unresolved"] {
            day.engaged += get(c, &format!("outcome.{o}"));
        }
        day.auto_resolved += get(c, "outcome.auto_resolved");
        day.escalated += get(c, "outcome.escalated");
        day.handoffs += get(c, "handoffs");
        day.unanswered += get(c, "unanswered");
        day.csat_count += get(c, "csat.n");
        day.csat_sum += get(c, "csat.sum");
        day.images_received += get(c, "images.received");
        day.images_sent += get(c, "images.sent");
    }
    Ok(Report {
        from: date_of(range.from),
        to: date_of(range.to),
        utc_offset_minutes: range.utc_offset_minutes,
        images_received: get(&team_counts, "images.received"),
        bot,
        team: agent_of(None, &team_counts),
        agents: agent_counts.into_iter().map(|(id, c)| agent_of(Some(id), &c)).collect(),
        days,
    })
}

/// Which table of a report a CSV export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Days,
    Agents,
    Articles,
    Questions,
}

impl Table {
    pub fn parse(s: &str) -> Result<Table> {
        match s {
            "days" => Ok(Table::Days),
            "agents" => Ok(Table::Agents),
            "articles" => Ok(Table::Articles),
            "questions" => Ok(Table::Questions),
            other => Err(ServiceError::refused(Code::BadRequest, format!("table {other:?} is not one of days, agents, articles, questions"))),
        }
    }
}

/// One table of a report as CSV (UTF-8 with a BOM, which spreadsheet programs need to read
/// Chinese text correctly).
pub fn csv(report: &Report, table: Table) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let fail = |e: csv::Error| ServiceError::Internal(e.to_string());
    match table {
        Table::Days => {
            w.write_record(["date", "conversations", "engaged", "auto_resolved", "escalated", "handoffs", "unanswered", "csat_count", "csat_mean", "images_received", "images_sent"])
                .map_err(fail)?;
            for d in &report.days {
                let csat = if d.csat_count > 0 { format!("{:.2}", d.csat_sum as f64 / d.csat_count as f64) } else { String::new() };
                w.write_record([
                    d.date.clone(),
                    d.conversations.to_string(),
                    d.engaged.to_string(),
                    d.auto_resolved.to_string(),
                    d.escalated.to_string(),
                    d.handoffs.to_string(),
                    d.unanswered.to_string(),
                    d.csat_count.to_string(),
                    csat,
                    d.images_received.to_string(),
                    d.images_sent.to_string(),
                ])
                .map_err(fail)?;
            }
        }
        Table::Agents => {
            w.write_record(["agent", "conversations", "first_responses", "first_response_mean_ms", "handled", "handle_mean_ms", "csat_count", "csat_mean", "sla_breaches", "images_sent"])
                .map_err(fail)?;
            for a in std::iter::once(&report.team).chain(&report.agents) {
                w.write_record([
                    a.agent.clone().unwrap_or_else(|| "(team)".into()),
                    a.conversations.to_string(),
                    a.first_responses.to_string(),
                    opt(a.first_response_mean_ms),
                    a.handled.to_string(),
                    opt(a.handle_mean_ms),
                    a.csat_count.to_string(),
                    a.csat_mean.map(|m| format!("{m:.2}")).unwrap_or_default(),
                    a.sla_breaches.to_string(),
                    a.images_sent.to_string(),
                ])
                .map_err(fail)?;
            }
        }
        Table::Articles | Table::Questions => {
            let (head, list) = match table {
                Table::Articles => ("article", &report.bot.top_articles),
                _ => ("question", &report.bot.unanswered_questions),
            };
            w.write_record([head, "title", "count"]).map_err(fail)?;
            for n in list {
                w.write_record([n.name.clone(), n.title.clone().unwrap_or_default(), n.count.to_string()]).map_err(fail)?;
            }
        }
    }
    w.into_inner().map_err(|e| ServiceError::Internal(e.to_string()))
}

/// The hour `now` falls in (for the statistics' last 48 hours).
pub fn hour_of(now: u64) -> u64 {
    now / HOUR_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Range>) -> Code {
        r.unwrap_err().code()
    }

    #[test]
    fn dates_round_trip_and_bad_ones_are_named() {
        for d in [0, 1, 59, 365, 10_957, 20_000, 20_454] {
            let s = date_of(d);
            assert_eq!(parse_date("from", &s).unwrap(), d, "{s}");
        }
        assert_eq!(date_of(20_454), "2026-01-01");
        assert_eq!(code(Range::parse("2026-02-30", "2026-03-01", 480)), Code::InvalidRange);
        assert_eq!(code(Range::parse("2026-3-1", "2026-03-01", 480)), Code::InvalidRange);
        assert_eq!(code(Range::parse("2026-03-02", "2026-03-01", 480)), Code::InvalidRange);
        assert_eq!(code(Range::parse("2025-01-01", "2026-03-01", 480)), Code::InvalidRange);
        assert_eq!(code(Range::parse("2026-03-01", "2026-03-01", 90)), Code::InvalidRange);
        let e = Range::parse("2026-02-30", "2026-03-01", 480).unwrap_err().to_string();
        assert!(e.contains("from") && e.contains("2026-02-30"), "{e}");
        assert!(Range::parse("2024-02-29", "2024-12-31", 0).is_ok());
    }

    #[test]
    fn local_days_map_to_utc_hours() {
        // 2026-01-01 in China starts at 2025-12-31 16:00 UTC.
        let r = Range::parse("2026-01-01", "2026-01-02", 480).unwrap();
        let (from, until) = r.hours();
        assert_eq!(from, 20_454 * 24 - 8);
        assert_eq!(until - from, 48);
        assert_eq!(r.day_of_hour(from), r.from);
        assert_eq!(r.day_of_hour(until - 1), r.to);
    }

    #[test]
    fn figures_come_from_the_counters() {
        let c: Counts = [
            ("conversations", 5),
            ("outcome.auto_resolved", 2),
            ("outcome.escalated", 1),
            ("outcome.abandoned", 1),
            ("handoffs", 1),
            ("handoff.reason.requested", 1),
            ("csat.n", 2),
            ("csat.sum", 9),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        let b = bot_of(&c);
        assert_eq!((b.conversations, b.engaged, b.auto_resolved, b.abandoned_after_decline), (5, 4, 2, 1));
        assert_eq!(b.auto_resolution_rate, 0.5);
        assert_eq!(b.handoffs_by_reason.get("requested"), Some(&1));
        assert_eq!(agent_of(None, &c).csat_mean, Some(4.5));
    }
}
