//! Report aggregates: counters per hour that both backends keep inside the transaction of
//! the change that causes them, so a report over any range reads a few thousand counter rows
//! instead of every conversation. This file holds the one derivation of counters from a
//! [`Change`] (pure: the backends read the old records it needs and write what it returns),
//! so sled and PostgreSQL cannot count differently.
//!
//! Why hours: a report's days are the caller's days (China is UTC+8, other sites are not),
//! and hour buckets sum into days of any whole-hour offset. Named counters (per article, per
//! question) are many per hour, so they are kept per UTC day too ([`Span`]): a long range
//! reads its whole UTC days as days and only its edges as hours.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Change, Feedback};
use crate::dialogue::{Millis, Sender};
use crate::handoff::{Handoff, HandoffStatus, Rating, Ticket};

pub const HOUR_MS: u64 = 3_600_000;

/// The scope of the team and the bot's counters; an agent's scope is `agent:<id>`.
pub const TEAM: &str = "";

/// The scope of agent `id`'s counters.
pub fn agent_scope(id: &str) -> String {
    format!("agent:{id}")
}

/// Counters of one scope in one hour (or all time): counter name → value.
pub type Counts = BTreeMap<String, i64>;

/// One hour's counters of one scope, as a report reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourCounts {
    /// Hours since the epoch.
    pub hour: u64,
    /// [`TEAM`] or `agent:<id>`.
    pub scope: String,
    pub counts: Counts,
}

/// Which named counters [`crate::store::Store::report_names`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Answers given per article id.
    Article,
    /// Unanswered questions (normalised text), without the ones answered since.
    Question,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Article => "article",
            NameKind::Question => "question",
        }
    }

    /// The name of the kind's counters in `span` buckets, as the stores key them.
    pub fn bucket_name(self, span: Span) -> &'static str {
        match (self, span) {
            (NameKind::Article, Span::Hour) => "article",
            (NameKind::Question, Span::Hour) => "question",
            (NameKind::Article, Span::Day) => "article.day",
            (NameKind::Question, Span::Day) => "question.day",
        }
    }
}

/// How long a named counter's bucket is. Each named counter is kept per hour and per UTC
/// day: a 30-day report then reads ~30 day rows per name plus the hours at its edges (the
/// local day's offset) instead of 720 hour rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Span {
    Hour,
    Day,
}

const DAY_HOURS: u64 = 24;

/// The buckets that cover hours `[from, until)`: the whole UTC days inside as days, the
/// hours before the first and after the last as hours. Each is `(span, from, until)` in
/// hours; a day bucket is keyed by the hour it starts.
pub fn name_buckets(from: u64, until: u64) -> Vec<(Span, u64, u64)> {
    if from >= until {
        return Vec::new();
    }
    let first_day = from.div_ceil(DAY_HOURS) * DAY_HOURS;
    let last_day = until / DAY_HOURS * DAY_HOURS;
    if first_day >= last_day {
        return vec![(Span::Hour, from, until)];
    }
    let mut out = Vec::with_capacity(3);
    if from < first_day {
        out.push((Span::Hour, from, first_day));
    }
    out.push((Span::Day, first_day, last_day));
    if last_day < until {
        out.push((Span::Hour, last_day, until));
    }
    out
}

/// What the store remembers of one conversation to classify it: each change moves the
/// conversation between outcome counters of the hour it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    /// Hours since the epoch when the conversation started.
    pub hour: u64,
    /// The visitor wrote at least one message.
    pub engaged: bool,
    /// The bot sent at least one article answer (`BotMeta.kind == "answer"`).
    pub answered: bool,
    /// A handoff to a human or a leave-a-message ticket was made.
    pub escalated: bool,
    /// The bot's latest answer-or-decline was a decline (`"none"` or `"clarify"`).
    pub declined_last: bool,
    /// The conversation's current handoff, when it was assigned, and whether its agent has
    /// written since (for first response times).
    #[serde(default)]
    pub handoff: Option<u64>,
    #[serde(default)]
    pub assigned_ms: Option<Millis>,
    #[serde(default)]
    pub responded: bool,
}

/// Where an engaged conversation stands; `None` for one the visitor never wrote in.
///
/// **Auto-resolved**: the bot sent at least one article answer, there was no handoff and no
/// leave-a-message ticket, and the bot's latest reply that answered or declined was an answer
/// (a conversation whose last such reply was a decline — 「抱歉…」 or 「您是不是想问…」 — and
/// that the visitor left there is *abandoned after a decline*, not resolved). **Escalated**:
/// a handoff or a ticket, whatever else happened. **Abandoned**: not escalated, latest
/// answer-or-decline a decline. **Unresolved**: engaged, none of those (e.g. only greetings
/// or an intent's prompts).
pub fn outcome(m: &Marks) -> Option<&'static str> {
    if !m.engaged {
        None
    } else if m.escalated {
        Some("escalated")
    } else if m.declined_last {
        Some("abandoned")
    } else if m.answered {
        Some("auto_resolved")
    } else {
        Some("unresolved")
    }
}

/// Everything a change adds to the aggregates.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// (hour, scope) → counter → delta.
    pub counters: BTreeMap<(u64, String), Counts>,
    /// (kind, hour, name) → delta.
    pub names: BTreeMap<(NameKind, u64, String), i64>,
    /// Questions answered by this change: they leave the unanswered lists.
    pub answered: BTreeSet<String>,
    /// Questions unanswered again: no longer marked answered.
    pub unanswered: BTreeSet<String>,
}

impl PartialOrd for NameKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NameKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Tally {
    /// The named counters to add, each in its hour and in its day bucket:
    /// `(kind, span, bucket hour, name) → delta`.
    pub fn name_rows(&self) -> BTreeMap<(NameKind, Span, u64, &str), i64> {
        let mut rows = BTreeMap::new();
        for ((kind, hour, name), n) in &self.names {
            *rows.entry((*kind, Span::Hour, *hour, name.as_str())).or_default() += n;
            *rows.entry((*kind, Span::Day, hour - hour % DAY_HOURS, name.as_str())).or_default() += n;
        }
        rows
    }

    fn add(&mut self, at_ms: Millis, scope: &str, counter: &str, n: i64) {
        self.add_hour(at_ms / HOUR_MS, scope, counter, n);
    }

    fn add_hour(&mut self, hour: u64, scope: &str, counter: &str, n: i64) {
        if n != 0 {
            *self.counters.entry((hour, scope.to_string())).or_default().entry(counter.to_string()).or_default() += n;
        }
    }

    /// Merges another change's tally into this one (a batch writes them together).
    pub fn merge(&mut self, other: Tally) {
        for (k, counts) in other.counters {
            let into = self.counters.entry(k).or_default();
            for (c, n) in counts {
                *into.entry(c).or_default() += n;
            }
        }
        for (k, n) in other.names {
            *self.names.entry(k).or_default() += n;
        }
        for q in other.unanswered {
            self.answered.remove(&q);
            self.unanswered.insert(q);
        }
        for q in other.answered {
            self.unanswered.remove(&q);
            self.answered.insert(q);
        }
    }

    /// Per (hour, scope), the counters with their deltas, and the same summed into all time
    /// (`hour` [`ALL_TIME`]), which the statistics read without scanning every hour.
    pub fn rows(&self) -> BTreeMap<(u64, String), Counts> {
        let mut rows = self.counters.clone();
        for ((_, scope), counts) in &self.counters {
            let all = rows.entry((ALL_TIME, scope.clone())).or_default();
            for (c, n) in counts {
                *all.entry(c.clone()).or_default() += n;
            }
        }
        rows.retain(|_, c| {
            c.retain(|_, n| *n != 0);
            !c.is_empty()
        });
        rows
    }
}

/// The hour under which all-time totals are kept (no real hour comes near it).
pub const ALL_TIME: u64 = u64::MAX >> 1;

/// Conversations whose marks a change may move: its own and those of its handoffs, tickets,
/// ratings.
pub fn touched(change: &Change) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(c) = &change.conversation {
        out.insert(c.id.clone());
    }
    out.extend(change.handoffs.iter().map(|h| h.conversation.clone()));
    if let Some(t) = &change.ticket {
        out.insert(t.conversation.clone());
    }
    out
}

/// Whether `ticket` may replace `stored`: its version is the next one (a new ticket's is 1).
/// Both backends check it under the ticket's lock, so of two writers that read the same
/// version only the first is stored.
pub fn ticket_follows(ticket: &Ticket, stored: Option<&Ticket>) -> bool {
    ticket.version == stored.map_or(0, |s| s.version) + 1
}

/// What was stored before the change, that the derivation compares with.
#[derive(Default)]
pub struct Before {
    /// Marks of the [`touched`] conversations that have them.
    pub marks: HashMap<String, Marks>,
    pub handoffs: HashMap<u64, Handoff>,
    /// The change's ticket as stored before it, if it was.
    pub ticket: Option<Ticket>,
    /// The rating and feedback the change replaces.
    pub rating: Option<Rating>,
    pub feedback: Option<Feedback>,
}

fn wait_bucket(ms: u64) -> &'static str {
    // Upper bounds in seconds: the statistics read a percentile as its bucket's bound.
    const BOUNDS: &[(u64, &str)] = &[
        (5, "wait.le.5"),
        (10, "wait.le.10"),
        (20, "wait.le.20"),
        (30, "wait.le.30"),
        (60, "wait.le.60"),
        (120, "wait.le.120"),
        (300, "wait.le.300"),
        (600, "wait.le.600"),
        (1800, "wait.le.1800"),
        (3600, "wait.le.3600"),
    ];
    BOUNDS.iter().find(|(s, _)| ms <= s * 1000).map_or("wait.le.inf", |(_, k)| k)
}

/// The wait histogram's buckets in order, with their upper bounds in ms (`None`: unbounded).
pub const WAIT_BUCKETS: &[(&str, Option<u64>)] = &[
    ("wait.le.5", Some(5_000)),
    ("wait.le.10", Some(10_000)),
    ("wait.le.20", Some(20_000)),
    ("wait.le.30", Some(30_000)),
    ("wait.le.60", Some(60_000)),
    ("wait.le.120", Some(120_000)),
    ("wait.le.300", Some(300_000)),
    ("wait.le.600", Some(600_000)),
    ("wait.le.1800", Some(1_800_000)),
    ("wait.le.3600", Some(3_600_000)),
    ("wait.le.inf", None),
];

/// Derives what `change` adds to the aggregates and the touched conversations' new marks
/// (returned for the backend to store; only those that changed).
///
/// Conversations are counted in the hour they started (`conversations`, and one of
/// `outcome.*` once engaged, moving between outcomes as later steps change them); events in
/// the hour they happen: `bot.answers`, `bot.declines`, `unanswered`, `handoffs`,
/// `handoff.reason.<reason>`, `tickets`, `wait.n`/`wait.ms`/`wait.le.*` (queue to
/// assignment), `csat.n`/`csat.sum`/`csat.<score>`, `feedback.helpful`/`feedback.unhelpful`, `images.received` (visitors' and channel users'
/// photos) and `images.sent` (agents', also in the agent's scope);
/// per agent `assigned`, `first_response.n`/`.ms` (assignment to the agent's first message),
/// `handled.n`/`.ms` (assignment to resolving or returning), `csat.n`/`csat.sum`; for the
/// team and a ticket's assignee `sla.breaches` (SLA clocks a ticket ran out of).
pub fn derive(change: &Change, before: &Before) -> (Tally, BTreeMap<String, Marks>) {
    let mut t = Tally::default();
    let at = change.at_ms;
    let mut marks: BTreeMap<String, Marks> = BTreeMap::new();
    let mark = |marks: &mut BTreeMap<String, Marks>, t: &mut Tally, id: &str, created_ms: Millis| -> Marks {
        if let Some(m) = marks.get(id) {
            return *m;
        }
        let m = match before.marks.get(id) {
            Some(m) => *m,
            None => {
                // First sight of the conversation: it started in its creation hour.
                let m = Marks { hour: created_ms / HOUR_MS, ..Default::default() };
                t.add_hour(m.hour, TEAM, "conversations", 1);
                m
            }
        };
        marks.insert(id.to_string(), m);
        m
    };
    if let Some(conv) = &change.conversation {
        let mut m = mark(&mut marks, &mut t, &conv.id, conv.created_ms);
        for msg in &change.messages {
            if msg.image.is_some() && !msg.internal {
                match &msg.from {
                    Sender::Visitor => t.add(at, TEAM, "images.received", 1),
                    Sender::Agent { id, .. } => {
                        t.add(at, TEAM, "images.sent", 1);
                        t.add(at, &agent_scope(id), "images.sent", 1);
                    }
                    _ => {}
                }
            }
            match &msg.from {
                Sender::Visitor => m.engaged = true,
                Sender::Bot => match msg.bot.as_ref().map(|b| b.kind.as_str()) {
                    Some("answer") => {
                        m.answered = true;
                        m.declined_last = false;
                        t.add(at, TEAM, "bot.answers", 1);
                        if let Some(a) = msg.bot.as_ref().and_then(|b| b.article.clone()) {
                            *t.names.entry((NameKind::Article, at / HOUR_MS, a)).or_default() += 1;
                        }
                    }
                    Some("none" | "clarify") => {
                        m.declined_last = true;
                        t.add(at, TEAM, "bot.declines", 1);
                    }
                    _ => {}
                },
                Sender::Agent { id, .. } if !msg.internal => {
                    if let (Some(_), Some(assigned), false) = (m.handoff, m.assigned_ms, m.responded) {
                        let scope = agent_scope(id);
                        t.add(at, &scope, "first_response.n", 1);
                        t.add(at, &scope, "first_response.ms", at.saturating_sub(assigned) as i64);
                        t.add(at, TEAM, "first_response.n", 1);
                        t.add(at, TEAM, "first_response.ms", at.saturating_sub(assigned) as i64);
                        m.responded = true;
                    }
                }
                _ => {}
            }
        }
        marks.insert(conv.id.clone(), m);
    }
    for h in &change.handoffs {
        let old = before.handoffs.get(&h.id);
        let created = change.conversation.as_ref().filter(|c| c.id == h.conversation).map_or(h.created_ms, |c| c.created_ms);
        let mut m = mark(&mut marks, &mut t, &h.conversation, created);
        if old.is_none() {
            t.add(at, TEAM, "handoffs", 1);
            t.add(at, TEAM, &format!("handoff.reason.{}", h.reason), 1);
            m.escalated = true;
            m.handoff = Some(h.id);
            m.assigned_ms = None;
            m.responded = false;
        }
        let was_assigned_to = old.filter(|o| o.status == HandoffStatus::Assigned).and_then(|o| o.agent.as_deref());
        let now_assigned_to = (h.status == HandoffStatus::Assigned).then_some(h.agent.as_deref()).flatten();
        if let Some(agent) = was_assigned_to {
            // The agent's part ended: resolved or returned to the bot (a transfer passes it on
            // and is the next agent's to finish).
            if now_assigned_to != Some(agent) && matches!(h.status, HandoffStatus::Resolved | HandoffStatus::Returned) {
                let since = if m.handoff == Some(h.id) { m.assigned_ms } else { None };
                let since = since.or(old.and_then(|o| o.assigned_ms)).unwrap_or(at);
                let ms = h.closed_ms.unwrap_or(at).saturating_sub(since) as i64;
                let scope = agent_scope(agent);
                t.add(at, &scope, "handled.n", 1);
                t.add(at, &scope, "handled.ms", ms);
                t.add(at, TEAM, "handled.n", 1);
                t.add(at, TEAM, "handled.ms", ms);
            }
        }
        if let Some(agent) = now_assigned_to.filter(|a| Some(*a) != was_assigned_to) {
            t.add(at, &agent_scope(agent), "assigned", 1);
            t.add(at, TEAM, "assigned", 1);
            if old.is_none_or(|o| o.assigned_ms.is_none()) {
                let wait = h.assigned_ms.unwrap_or(at).saturating_sub(h.created_ms);
                t.add(at, TEAM, "wait.n", 1);
                t.add(at, TEAM, "wait.ms", wait as i64);
                t.add(at, TEAM, wait_bucket(wait), 1);
            }
            // A transfer hands the conversation on: the new agent's first response counts.
            if m.handoff == Some(h.id) {
                m.assigned_ms = Some(at);
                m.responded = false;
            }
        }
        marks.insert(h.conversation.clone(), m);
    }
    if let Some(ticket) = &change.ticket {
        let mut m = mark(&mut marks, &mut t, &ticket.conversation, ticket.created_ms);
        if before.ticket.is_none() {
            t.add(at, TEAM, "tickets", 1);
            m.escalated = true;
        }
        // A breach counts once, when the ticket first records it, for the team and for the
        // agent the ticket is assigned to then.
        let breaches = ticket.sla.breaches() as i64 - before.ticket.as_ref().map_or(0, |old| old.sla.breaches() as i64);
        if breaches > 0 {
            t.add(at, TEAM, "sla.breaches", breaches);
            if let Some(agent) = &ticket.assignee {
                t.add(at, &agent_scope(agent), "sla.breaches", breaches);
            }
        }
        marks.insert(ticket.conversation.clone(), m);
    }
    if let Some(r) = &change.rating {
        let mut count = |r: &Rating, sign: i64| {
            let score = r.score.clamp(1, 5) as i64;
            t.add(r.at_ms, TEAM, "csat.n", sign);
            t.add(r.at_ms, TEAM, "csat.sum", sign * score);
            t.add(r.at_ms, TEAM, &format!("csat.{score}"), sign);
            if let Some(a) = &r.agent {
                t.add(r.at_ms, &agent_scope(a), "csat.n", sign);
                t.add(r.at_ms, &agent_scope(a), "csat.sum", sign * score);
            }
        };
        if let Some(old) = &before.rating {
            count(old, -1);
        }
        count(r, 1);
    }
    if let Some(f) = &change.feedback {
        let name = |f: &Feedback| if f.helpful { "feedback.helpful" } else { "feedback.unhelpful" };
        if let Some(old) = &before.feedback {
            t.add(old.at_ms, TEAM, name(old), -1);
        }
        t.add(f.at_ms, TEAM, name(f), 1);
    }
    for q in &change.unanswered {
        t.add(at, TEAM, "unanswered", 1);
        *t.names.entry((NameKind::Question, at / HOUR_MS, q.clone())).or_default() += 1;
        t.unanswered.insert(q.clone());
    }
    for q in &change.answered {
        if !t.unanswered.contains(q) {
            t.answered.insert(q.clone());
        }
    }
    // Each touched conversation moves from its old outcome to its new one, in its start hour.
    let mut changed = BTreeMap::new();
    for (id, m) in marks {
        let old = before.marks.get(&id);
        let (was, now) = (old.and_then(outcome), outcome(&m));
        if was != now {
            if let Some(w) = was {
                t.add_hour(m.hour, TEAM, &format!("outcome.{w}"), -1);
            }
            if let Some(n) = now {
                t.add_hour(m.hour, TEAM, &format!("outcome.{n}"), 1);
            }
        }
        if old != Some(&m) {
            changed.insert(id, m);
        }
    }
    (t, changed)
}

/// Sums hour rows into one count per counter.
pub fn sum<'a>(rows: impl IntoIterator<Item = &'a Counts>) -> Counts {
    let mut out = Counts::new();
    for counts in rows {
        for (c, n) in counts {
            *out.entry(c.clone()).or_default() += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{name_buckets, Span};

    #[test]
    fn a_range_reads_whole_days_as_days_and_its_edges_as_hours() {
        // A China-time day (UTC+8) starts at 16:00 UTC: 8 hours before the first UTC day.
        let from = 20_000 * 24 - 8;
        assert_eq!(
            name_buckets(from, from + 30 * 24),
            vec![
                (Span::Hour, from, 20_000 * 24),
                (Span::Day, 20_000 * 24, 20_029 * 24),
                (Span::Hour, 20_029 * 24, from + 30 * 24)
            ]
        );
        assert_eq!(name_buckets(48, 96), vec![(Span::Day, 48, 96)]);
        assert_eq!(name_buckets(50, 60), vec![(Span::Hour, 50, 60)]);
        assert_eq!(name_buckets(50, 74), vec![(Span::Hour, 50, 74)]);
        assert_eq!(name_buckets(60, 60), vec![]);
    }
}
