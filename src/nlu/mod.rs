//! Intents: loading the `intents/` files and recognising them in a visitor's message.
//!
//! Explicit rules (keywords, regular expressions) win; otherwise the examples are matched
//! like knowledge questions, by the same analyser and ranker, and give a confidence.

pub mod followup;
pub mod slots;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::handoff::Priority;
use crate::knowledge::{Action, Article, Engine, KnowledgeError, Ranker, SourceError};
use crate::text::{normalize, Analyzed, Analyzer};
pub use followup::{followup, Followup};
pub use slots::SlotKind;

/// What an intent does once recognised (and its slots are filled).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IntentAction {
    /// Reply with a fixed text.
    Reply { text: String },
    /// Answer with a knowledge article.
    Article { article: String },
    /// Collect the intent's slots, then reply from a template naming them as {slot}.
    Collect { template: String },
    /// Hand the conversation to a human.
    Handoff {
        reason: crate::handoff::Reason,
        #[serde(default)]
        priority: Priority,
        #[serde(default = "general")]
        skill: String,
        /// Said to the visitor when the conversation is queued.
        #[serde(default)]
        text: Option<String>,
    },
}

fn general() -> String {
    "general".into()
}

/// A slot an intent collects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDef {
    pub name: String,
    pub kind: SlotKind,
    /// How the bot asks for it.
    pub prompt: String,
    /// How the bot re-asks after a value it could not read (defaults to the prompt).
    #[serde(default)]
    pub retry_prompt: Option<String>,
    /// Re-asks after a bad value before giving up (and handing off).
    #[serde(default = "two")]
    pub retries: u32,
    /// The choices of an `enum` slot.
    #[serde(default)]
    pub values: Vec<String>,
    /// A regular expression replacing the kind's own; its first group is the value.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(skip)]
    pub compiled: Option<Regex>,
}

fn two() -> u32 {
    2
}

impl SlotDef {
    /// The slot's value in `text`, if there is one.
    pub fn extract(&self, text: &str) -> Option<String> {
        slots::extract(self.kind, self.compiled.as_ref(), &self.values, text)
    }
}

/// One intent file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Among explicit rules that fire together, the higher priority wins.
    #[serde(default)]
    pub priority: i32,
    /// Utterances matched like knowledge questions.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Any of these in the (normalised) message fires the intent.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions over the normalised message (spaces removed).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Words that veto the broad rules and the examples: the message is about something else
    /// (service hours, 人工费, thanks to an agent).
    #[serde(default)]
    pub unless: Vec<String>,
    /// Regular expressions of an unmistakable request ("给我转人工"): they fire even beside an
    /// `unless` word (快递员态度差，给我转人工), and only `refusals` veto them.
    #[serde(default)]
    pub explicit: Vec<String>,
    /// Words that veto everything, explicit requests included ("不用转人工").
    #[serde(default)]
    pub refusals: Vec<String>,
    /// The confidence an example match needs (default: the knowledge answer threshold).
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub slots: Vec<SlotDef>,
    pub action: IntentAction,
    #[serde(skip)]
    compiled: Vec<Regex>,
    #[serde(skip)]
    normalized_keywords: Vec<String>,
    #[serde(skip)]
    normalized_unless: Vec<String>,
    #[serde(skip)]
    compiled_explicit: Vec<Regex>,
    #[serde(skip)]
    normalized_refusals: Vec<String>,
}

impl Intent {
    /// Whether the broad rules and examples are vetoed for this message.
    fn vetoed(&self, squeezed: &str) -> bool {
        self.refused(squeezed) || self.normalized_unless.iter().any(|u| squeezed.contains(u.as_str()))
    }

    fn refused(&self, squeezed: &str) -> bool {
        self.normalized_refusals.iter().any(|u| squeezed.contains(u.as_str()))
    }

    fn fires(&self, squeezed: &str) -> bool {
        if self.refused(squeezed) {
            return false;
        }
        if self.compiled_explicit.iter().any(|re| re.is_match(squeezed)) {
            return true;
        }
        if self.vetoed(squeezed) {
            return false;
        }
        self.normalized_keywords.iter().any(|k| squeezed.contains(k.as_str()))
            || self.compiled.iter().any(|re| re.is_match(squeezed))
    }

    pub fn slot(&self, name: &str) -> Option<&SlotDef> {
        self.slots.iter().find(|s| s.name == name)
    }
}

/// How an intent was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Rule,
    Example,
}

/// A recognised intent.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    pub intent: String,
    pub confidence: f32,
    pub by: MatchedBy,
    /// An example matched, but the message has content words the example lacks (我买的东西
    /// **坏了**怎么办 against 我买的东西到哪了): it may be another question that merely shares
    /// words with the example, so the policy lets the knowledge base speak first.
    pub partial: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("{}", crate::knowledge::format_problems("the intents", errors, errors.len(), "; nothing was loaded"))]
    Invalid { errors: Vec<SourceError> },
    #[error("cannot read {}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("building the intent example index failed")]
    Index(#[from] KnowledgeError),
}

/// The loaded intents and the index of their examples.
pub struct Intents {
    intents: Vec<Intent>,
    examples: Option<Engine>,
    default_threshold: f32,
}

impl std::fmt::Debug for Intents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intents").field("intents", &self.intents.iter().map(|i| &i.name).collect::<Vec<_>>()).finish()
    }
}

fn squeeze(text: &str) -> String {
    normalize(text).replace(' ', "")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses one intent file; problems are pushed with their line.
fn parse_intent(text: &str, file: &str, problems: &mut Vec<SourceError>) -> Option<Intent> {
    let at = |line: usize, reason: String| SourceError { file: file.to_string(), line, reason };
    let mut intent: Intent = match toml::from_str(text) {
        Ok(i) => i,
        Err(e) => {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            problems.push(at(line, e.message().to_string()));
            return None;
        }
    };
    let find = |needle: &str| text.find(needle).map_or(1, |o| line_of(text, o));
    let before = problems.len();
    if intent.name.trim().is_empty() {
        problems.push(at(find("name"), "the intent has an empty name".into()));
    }
    if intent.examples.is_empty() && intent.keywords.is_empty() && intent.patterns.is_empty() {
        problems.push(at(1, "the intent has no examples, keywords or patterns, so nothing can match it".into()));
    }
    for p in &intent.patterns {
        match Regex::new(p) {
            Ok(re) => intent.compiled.push(re),
            Err(e) => problems.push(at(find(p), format!("pattern {p:?} is not a valid regular expression: {e}"))),
        }
    }
    for p in &intent.explicit {
        match Regex::new(p) {
            Ok(re) => intent.compiled_explicit.push(re),
            Err(e) => problems.push(at(find(p), format!("explicit pattern {p:?} is not a valid regular expression: {e}"))),
        }
    }
    let mut names = HashSet::new();
    for slot in &mut intent.slots {
        if !names.insert(slot.name.clone()) {
            problems.push(at(find(&slot.name), format!("slot {:?} is defined twice", slot.name)));
        }
        if slot.kind == SlotKind::Enum && slot.values.is_empty() {
            problems.push(at(find(&slot.name), format!("enum slot {:?} has no values", slot.name)));
        }
        if let Some(p) = &slot.pattern {
            match Regex::new(p) {
                Ok(re) => slot.compiled = Some(re),
                Err(e) => problems.push(at(find(p), format!("slot pattern {p:?} is not a valid regular expression: {e}"))),
            }
        }
    }
    match &intent.action {
        IntentAction::Collect { template } => {
            if intent.slots.is_empty() {
                problems.push(at(find("collect"), "a collect action needs at least one slot".into()));
            }
            for name in placeholders(template) {
                if !names.contains(name) {
                    problems.push(at(find(template), format!("the template names {{{name}}}, which is not a slot")));
                }
            }
        }
        _ if !intent.slots.is_empty() => {
            problems.push(at(find("[[slots]]"), "slots are only collected by a collect action".into()));
        }
        _ => {}
    }
    if let Some(t) = intent.threshold {
        if !(0.0..=1.0).contains(&t) {
            problems.push(at(find("threshold"), format!("threshold {t} is not between 0 and 1")));
        }
    }
    intent.normalized_keywords = intent.keywords.iter().map(|k| squeeze(k)).filter(|k| !k.is_empty()).collect();
    intent.normalized_unless = intent.unless.iter().map(|k| squeeze(k)).filter(|k| !k.is_empty()).collect();
    intent.normalized_refusals = intent.refusals.iter().map(|k| squeeze(k)).filter(|k| !k.is_empty()).collect();
    (problems.len() == before).then_some(intent)
}

/// The `{name}` placeholders of a template.
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Fills a template's `{name}` placeholders.
pub fn fill(template: &str, slots: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in slots {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl Intents {
    /// Loads every `*.toml` file of `dir` (sorted by name). Fails naming each bad place.
    pub fn load_dir(dir: &Path, analyzer: &Analyzer) -> Result<Intents, IntentError> {
        let read = |path: &Path| std::fs::read_to_string(path).map_err(|source| IntentError::Read { path: path.to_path_buf(), source });
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| IntentError::Read { path: dir.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        for path in files {
            sources.push((path.display().to_string(), read(&path)?));
        }
        Intents::parse(&sources, analyzer)
    }

    /// Parses intent files given as (name, text).
    pub fn parse(sources: &[(String, String)], analyzer: &Analyzer) -> Result<Intents, IntentError> {
        let mut problems = Vec::new();
        let mut intents: Vec<Intent> = Vec::new();
        for (file, text) in sources {
            if let Some(intent) = parse_intent(text.trim_start_matches('\u{feff}'), file, &mut problems) {
                if intents.iter().any(|i| i.name == intent.name) {
                    problems.push(SourceError { file: file.clone(), line: 1, reason: format!("intent {:?} is defined twice", intent.name) });
                } else {
                    intents.push(intent);
                }
            }
        }
        if !problems.is_empty() {
            return Err(IntentError::Invalid { errors: problems });
        }
        let ranker = Ranker::builtin();
        let default_threshold = ranker.thresholds.answer;
        let articles: Vec<Article> = intents
            .iter()
            .filter(|i| !i.examples.is_empty())
            .map(|i| Article {
                id: i.name.clone(),
                title: i.examples[0].clone(),
                similar: i.examples[1..].to_vec(),
                answer: i.description.clone(),
                category: "intent".into(),
                tags: vec![],
                keywords: vec![],
            })
            .collect();
        let examples = if articles.is_empty() {
            None
        } else {
            Some(Engine::in_memory_with(analyzer, articles, ranker)?)
        };
        Ok(Intents { intents, examples, default_threshold })
    }

    pub fn get(&self, name: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.name == name)
    }

    pub fn all(&self) -> &[Intent] {
        &self.intents
    }

    /// The intent an explicit rule fires for, the highest priority first.
    pub fn rule_match(&self, text: &str) -> Option<IntentMatch> {
        let squeezed = squeeze(text);
        self.intents
            .iter()
            .filter(|i| i.fires(&squeezed))
            .max_by_key(|i| i.priority)
            .map(|i| IntentMatch { intent: i.name.clone(), confidence: 1.0, by: MatchedBy::Rule, partial: false })
    }

    /// The best intent by its examples, when it clears the intent's threshold.
    pub fn example_match(&self, text: &str, analyzed: &Analyzed) -> Result<Option<IntentMatch>, KnowledgeError> {
        let Some(engine) = &self.examples else { return Ok(None) };
        let reply = engine.ask_analyzed(analyzed)?;
        let Some(best) = reply.candidates.first() else { return Ok(None) };
        let intent = self.get(&best.id).expect("example articles are named after intents");
        let threshold = intent.threshold.unwrap_or(self.default_threshold);
        let vetoed = intent.vetoed(&squeeze(text));
        if best.confidence < threshold || reply.action == Action::None || vetoed {
            return Ok(None);
        }
        let analyzer = engine.analyzer();
        let example = analyzer.analyze(&best.matched_question);
        // ASCII tokens are order numbers, phone numbers and the like: slots, not a topic.
        let partial = analyzed
            .terms
            .iter()
            .any(|t| !example.terms.contains(t) && !t.is_ascii() && !analyzer.is_function_word(t));
        Ok(Some(IntentMatch { intent: best.id.clone(), confidence: best.confidence, by: MatchedBy::Example, partial }))
    }

    /// Rules first, then examples. `analyzed` is `text` through the analyser the intents were
    /// loaded with (the knowledge engine's: one analysis serves both).
    pub fn recognise(&self, text: &str, analyzed: &Analyzed) -> Result<Option<IntentMatch>, KnowledgeError> {
        match self.rule_match(text) {
            Some(m) => Ok(Some(m)),
            None => self.example_match(text, analyzed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped intents, with the analyser of an empty lexicon (rules do not need the
    /// knowledge base's words).
    fn shipped() -> Intents {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
        Intents::load_dir(&dir, &crate::text::Analyzer::new(crate::text::Lexicon::default())).expect("the shipped intents load")
    }

    #[test]
    fn an_explicit_request_beats_the_words_that_veto_broad_rules() {
        let intents = shipped();
        let rule = |text: &str| intents.rule_match(text).map(|m| m.intent);
        // 快递员 and 周末 veto the broad rules (questions about couriers and hours) but not a
        // plain request to be transferred.
        assert_eq!(rule("快递员态度太差了，给我转人工").as_deref(), Some("human"));
        assert_eq!(rule("周末也没人回我，我要找人工客服").as_deref(), Some("human"));
        // A refusal vetoes even the explicit form; hours questions stay knowledge questions.
        assert_ne!(rule("先不用转人工，我自己看看").as_deref(), Some("human"));
        assert_ne!(rule("人工客服几点上班").as_deref(), Some("human"));
    }
}
