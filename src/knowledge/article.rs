//! A knowledge article: one standard question, its paraphrases, and the answer.

use serde::{Deserialize, Serialize};

/// One article of the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    /// Stable identifier, unique in the knowledge base.
    pub id: String,
    /// The standard question (标准问).
    pub title: String,
    /// Other ways people ask the same thing (相似问法).
    #[serde(default)]
    pub similar: Vec<String>,
    /// The answer, in Markdown.
    pub answer: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A few decisive words, indexed with the category and tags.
    #[serde(default)]
    pub keywords: Vec<String>,
}

impl Article {
    /// The title followed by the similar questions: what a query is matched against.
    pub fn questions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.title.as_str()).chain(self.similar.iter().map(String::as_str))
    }

    /// Category, tags and keywords as one text, for the metadata field.
    pub fn meta_text(&self) -> String {
        let mut s = self.category.replace('/', " ");
        for t in self.tags.iter().chain(&self.keywords) {
            s.push(' ');
            s.push_str(t);
        }
        s
    }
}
