//! Follow-ups: an elliptical message ("那运费呢？", "如果超过七天") read as a question about
//! the last answered article. Pure functions over text; the service decides when to ask.

use crate::text::{normalize, Analyzer};

/// A message that reads as a follow-up to the last answer, reduced to what it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followup {
    /// The message without its elliptical markers (那…呢), which only say "about the last
    /// topic" and, left in, pull the reading towards unrelated questions that contain them.
    pub core: String,
}

/// Openings that mark a follow-up.
const OPENINGS: [&str; 7] = ["那", "还有", "如果", "要是", "另外", "那如果", "那要是"];
/// Openings stripped from the core (如果/要是 carry meaning and stay).
const STRIPPED: [&str; 4] = ["那么", "那", "还有", "另外"];

/// Whether `text` is a follow-up: short, and opening with 那/还有/如果… or closing with 呢.
/// Anything else is a new question and is not mixed with the old topic. The text is
/// normalised once, here.
pub fn followup(text: &str) -> Option<Followup> {
    let t = normalize(text).replace(' ', "");
    let short = t.chars().count() <= 12;
    let opens = OPENINGS.iter().any(|p| t.starts_with(p));
    if !(short && (opens || t.ends_with('呢'))) {
        return None;
    }
    let core = STRIPPED.iter().find_map(|p| t.strip_prefix(p)).unwrap_or(&t);
    Some(Followup { core: core.trim_end_matches('呢').to_string() })
}

/// The topic of an article for follow-ups: the content words of its question.
pub fn topic(analyzer: &Analyzer, title: &str) -> String {
    analyzer.terms(title).into_iter().filter(|t| !analyzer.is_function_word(t)).collect()
}

impl Followup {
    /// The question to ask the knowledge: the last topic with what the follow-up adds.
    pub fn query(&self, topic: &str) -> String {
        format!("{topic} {}", self.core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_elliptical_messages_are_followups() {
        assert_eq!(followup("那运费呢？").unwrap().core, "运费");
        assert_eq!(followup("还有发票").unwrap().core, "发票");
        // 如果 carries the condition and stays in the question.
        assert_eq!(followup("如果超过七天").unwrap().core, "如果超过七天");
        assert_eq!(followup("那么 退款呢").unwrap().core, "退款");
        assert_eq!(followup("运费呢").unwrap().core, "运费");
    }

    #[test]
    fn new_questions_are_not_followups() {
        assert_eq!(followup("退货运费谁出"), None);
        assert_eq!(followup("如果我买的东西超过七天了还没有收到货怎么办呢"), None, "too long to be elliptical");
        assert_eq!(followup(""), None);
    }

    #[test]
    fn the_query_joins_topic_and_core() {
        assert_eq!(followup("那运费呢").unwrap().query("退货"), "退货 运费");
    }
}
