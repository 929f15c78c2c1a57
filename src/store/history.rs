//! The history index: one [`Summary`] per conversation, which each backend updates in the
//! same transaction as the step it summarises, and the [`HistoryQuery`] searched over it.
//! Searching never loads conversations or messages; the summary carries what the filters
//! and the result list need.
//!
//! Text search goes through [`terms`]: every pair of adjacent characters of a summary's
//! text, which each backend keeps as an inverted index (sled: posting keys beside the
//! summaries; PostgreSQL: a generated `terms` column under a GIN index). A phrase of two or
//! more characters can only occur in a text holding every pair of [`query_terms`], so a
//! search intersects those posting lists instead of reading every summary, and
//! [`Summary::matches`] then checks the phrase itself. Pairs, not words: customers and agents
//! write without spaces, and a pair index finds any substring, as the scan it replaces did.
//!
//! Plain data and pure functions: the backends decide where the summaries live.

use serde::{Deserialize, Serialize};

use super::Change;
use crate::dialogue::{Conversation, Message, Millis, Sender, StateName};

/// How much of a conversation's text the summary keeps for text search (characters of the
/// normalised visitor and agent messages). Bot answers are article text: searching them
/// would find every conversation the same article answered.
pub const TEXT_CHARS: usize = 1_000;
/// The first question as shown in results and the CSV, in characters.
const FIRST_QUESTION_CHARS: usize = 100;

/// What happened in a conversation, as history filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The bot gave at least one answer from the knowledge base.
    BotAnswered,
    HandedOff,
    /// The visitor left a message (工单).
    Ticket,
    /// The visitor rated an agent's service.
    Rated,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "bot_answered" => Outcome::BotAnswered,
            "handed_off" => Outcome::HandedOff,
            "ticket" => Outcome::Ticket,
            "rated" => Outcome::Rated,
            _ => return None,
        })
    }
}

/// One conversation in the history index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub id: String,
    pub created_ms: Millis,
    pub updated_ms: Millis,
    pub channel: String,
    /// The verified customer id (signed widget identity, WeChat OpenID), if any.
    pub user_id: Option<String>,
    pub visitor_name: Option<String>,
    pub state: StateName,
    /// Every agent who served or wrote in it, in order of first appearance.
    pub agents: Vec<String>,
    pub bot_answered: bool,
    pub handed_off: bool,
    pub ticket: bool,
    /// The last rating's score.
    pub rating: Option<u8>,
    pub messages: u64,
    /// The visitor's first message, as written (shortened).
    pub first_question: String,
    /// Normalised (`crate::text::normalize`) visitor and agent messages, for text search;
    /// at most [`TEXT_CHARS`].
    pub text: String,
}

impl Summary {
    /// The summary after `change` committed `stored` (the messages it stored) on `conv` (the
    /// conversation as the change writes it), from the summary before (`None`: a new one).
    pub fn after(previous: Option<Summary>, conv: &Conversation, change: &Change, stored: &[Message]) -> Summary {
        let mut s = previous.unwrap_or_else(|| Summary {
            id: conv.id.clone(),
            created_ms: conv.created_ms,
            updated_ms: conv.created_ms,
            channel: conv.visitor.channel.clone(),
            user_id: None,
            visitor_name: None,
            state: conv.state.name(),
            agents: vec![],
            bot_answered: false,
            handed_off: false,
            ticket: false,
            rating: None,
            messages: 0,
            first_question: String::new(),
            text: String::new(),
        });
        s.updated_ms = change.at_ms.max(s.updated_ms);
        s.user_id = conv.visitor.user_id.clone();
        s.visitor_name = conv.visitor.name.clone();
        s.state = conv.state.name();
        for m in stored {
            s.messages += 1;
            match &m.from {
                Sender::Visitor => {
                    if s.first_question.is_empty() {
                        s.first_question = m.text.chars().take(FIRST_QUESTION_CHARS).collect();
                    }
                    s.add_text(&m.text);
                }
                Sender::Agent { id, .. } => {
                    s.add_agent(id);
                    if !m.internal {
                        s.add_text(&m.text);
                    }
                }
                Sender::Bot => s.bot_answered |= m.bot.as_ref().is_some_and(|b| b.kind == "answer"),
                Sender::System => {}
            }
        }
        for h in change.handoffs.iter().filter(|h| h.conversation == conv.id) {
            s.handed_off = true;
            if let Some(agent) = &h.agent {
                s.add_agent(agent);
            }
        }
        s.ticket |= change.ticket.as_ref().is_some_and(|t| t.conversation == conv.id);
        if let Some(r) = change.rating.as_ref().filter(|r| r.conversation == conv.id) {
            s.rating = Some(r.score);
        }
        s
    }

    fn add_agent(&mut self, agent: &str) {
        if !self.agents.iter().any(|a| a == agent) {
            self.agents.push(agent.to_string());
        }
    }

    fn add_text(&mut self, text: &str) {
        let room = TEXT_CHARS.saturating_sub(self.text.chars().count());
        if room == 0 {
            return;
        }
        if !self.text.is_empty() {
            // A separator the normaliser never produces, so a search cannot match across two
            // messages.
            self.text.push('\n');
        }
        self.text.extend(crate::text::normalize(text).chars().take(room));
    }

    pub fn has(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::BotAnswered => self.bot_answered,
            Outcome::HandedOff => self.handed_off,
            Outcome::Ticket => self.ticket,
            Outcome::Rated => self.rating.is_some(),
        }
    }

    /// Whether this summary is one `q` asks for (every filter; the backends may narrow first).
    pub fn matches(&self, q: &HistoryQuery) -> bool {
        q.from_ms.is_none_or(|f| self.created_ms >= f)
            && q.to_ms.is_none_or(|t| self.created_ms < t)
            && q.before.as_ref().is_none_or(|b| self.created_ms < b.0 || (self.created_ms == b.0 && self.id.as_str() > b.1.as_str()))
            && q.text.as_deref().is_none_or(|t| self.text.contains(t))
            && q.channel.as_deref().is_none_or(|c| self.channel == c)
            && q.agent.as_deref().is_none_or(|a| self.agents.iter().any(|x| x == a))
            && q.outcome.is_none_or(|o| self.has(o))
            && q.visitor.as_deref().is_none_or(|v| {
                self.id == v || self.user_id.as_deref() == Some(v) || self.visitor_name.as_deref().is_some_and(|n| n.contains(v))
            })
    }
}

/// The index terms of a summary's text: each pair of adjacent characters within one
/// message (messages are separated by `\n`, so no pair spans two), once each.
/// PostgreSQL computes the same pairs in SQL (`kefu_history_terms`, migration 5).
pub fn terms(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in text.split('\n') {
        let chars: Vec<char> = line.chars().collect();
        for pair in chars.windows(2) {
            out.insert(pair.iter().collect());
        }
    }
    out
}

/// The pairs a text search looks up: every pair of `phrase`, once each. All of them, not
/// only enough to cover it: the pair that spans two common words (货洗 in 退货洗衣机) is
/// the rare one that rules out the conversations holding both words apart. Empty when the
/// phrase is shorter than two characters (one character is not indexed: the backends
/// scan instead).
pub fn query_terms(phrase: &str) -> Vec<String> {
    let chars: Vec<char> = phrase.chars().collect();
    if chars.contains(&'\n') {
        return vec![];
    }
    let mut out: Vec<String> = Vec::new();
    for pair in chars.windows(2) {
        let pair: String = pair.iter().collect();
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

/// The index term of a verified user id: its conversations, exactly. `\u{1}` first, which
/// normalised text never holds, so no text pair is one.
pub fn user_term(user_id: &str) -> String {
    format!("\u{1}{user_id}")
}

/// The index terms of a visitor's name (each pair of its characters, marked `\u{2}`, apart
/// from the text's pairs), so a part of a name is found as a phrase is.
pub fn name_terms(name: &str) -> std::collections::BTreeSet<String> {
    terms(name).into_iter().map(|p| format!("\u{2}{p}")).collect()
}

/// Every index term of a summary: its text's pairs, its verified user, its visitor's name.
pub fn summary_terms(s: &Summary) -> std::collections::BTreeSet<String> {
    let mut out = terms(&s.text);
    out.extend(s.user_id.as_deref().map(user_term));
    out.extend(s.visitor_name.as_deref().map(name_terms).unwrap_or_default());
    out
}

/// A history search. Every filter is optional; results come newest first (by when the
/// conversation started, then by id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// Normalised text (`crate::text::normalize`) the visitor's or an agent's messages contain.
    pub text: Option<String>,
    /// A conversation id, a verified user id, or part of the visitor's name.
    pub visitor: Option<String>,
    pub agent: Option<String>,
    pub channel: Option<String>,
    /// Started at or after.
    pub from_ms: Option<Millis>,
    /// Started before.
    pub to_ms: Option<Millis>,
    pub outcome: Option<Outcome>,
    /// Only conversations after this one in the order (started descending, id ascending):
    /// the page after the one that ended there.
    pub before: Option<(Millis, String)>,
    pub limit: usize,
    /// Examine at most this many summaries (0: no bound), so that one request's time stays
    /// bounded however rare the match; a backend that stops there says where
    /// ([`Hits::stopped_at`]) and the next request continues from it. A backend may also
    /// ignore it (PostgreSQL's planner reads what it needs).
    pub budget: usize,
}

/// What a search found: at most `limit` summaries, and where it stopped early when it spent
/// its budget before finding `limit` (more may match further on: continue with `before`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    pub summaries: Vec<Summary>,
    pub stopped_at: Option<(Millis, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_the_pairs_within_each_message() {
        let t = terms("退货运费\n谁出");
        let got: Vec<&str> = t.iter().map(String::as_str).collect();
        assert_eq!(got, vec!["谁出", "货运", "运费", "退货"], "in byte order");
        assert!(!t.contains("费谁"), "no pair spans two messages");
        assert!(terms("好").is_empty());
    }

    #[test]
    fn users_and_names_have_terms_of_their_own() {
        let s = Summary {
            id: "c1".into(), created_ms: 0, updated_ms: 0, channel: "web".into(), user_id: Some("u-9".into()), visitor_name: Some("王小明".into()),
            state: StateName::Bot, agents: vec![], bot_answered: false, handed_off: false, ticket: false, rating: None, messages: 1,
            first_question: String::new(), text: "小明".into(),
        };
        let t = summary_terms(&s);
        assert!(t.contains("小明") && t.contains(&user_term("u-9")) && t.contains("\u{2}小明") && t.contains("\u{2}王小"));
        assert!(!t.contains("王小"), "a name's pairs are not the text's");
    }

    #[test]
    fn a_phrase_is_looked_up_by_each_of_its_pairs() {
        assert_eq!(query_terms("退货洗衣机"), vec!["退货", "货洗", "洗衣", "衣机"]);
        assert_eq!(query_terms("退货"), vec!["退货"]);
        assert_eq!(query_terms("哈哈哈哈"), vec!["哈哈"]);
        assert!(query_terms("退").is_empty());
        // Every pair a phrase is looked up by is among the terms of a text containing it.
        let text = "我买的紫罗兰色扫地机器人坏了";
        assert!(query_terms("紫罗兰色扫地机器人").iter().all(|p| terms(text).contains(p)));
    }
}
