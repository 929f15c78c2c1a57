//! Text analysis: the one pipeline that turns raw customer text into terms.
//!
//! Indexing and querying both go through [`Analyzer`], so they can never drift apart:
//! Unicode NFKC (full-width → half-width), lower case, traditional → simplified Chinese,
//! punctuation and emoji removed, jieba segmentation with the operators' user dictionary,
//! then synonyms folded onto one canonical term. This module knows nothing about articles,
//! indexes or HTTP.

mod lexicon;
mod normalize;
pub mod signals;
mod tokenizer;

use std::sync::Arc;

use jieba_rs::Jieba;

pub use lexicon::{Lexicon, LexiconError};
pub use normalize::normalize;
pub use tokenizer::{register_tokenizers, BIGRAM_TOKENIZER, TERM_TOKENIZER};

/// A piece of text after analysis: its normalised form and its terms in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    /// NFKC, lower-cased, simplified, punctuation replaced by single spaces.
    pub normalized: String,
    /// Segmented terms with synonyms folded, in text order (duplicates kept).
    pub terms: Vec<String>,
}

/// The analyser shared by the index and every query. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Analyzer {
    inner: Arc<Inner>,
}

struct Inner {
    jieba: Jieba,
    lexicon: Lexicon,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("lexicon", &self.inner.lexicon).finish()
    }
}

impl Analyzer {
    /// Builds the analyser: jieba's default dictionary plus the lexicon's user words and the
    /// words of every synonym group (so a multi-character synonym is segmented as one term).
    pub fn new(lexicon: Lexicon) -> Analyzer {
        let mut jieba = Jieba::new();
        for entry in lexicon.user_words() {
            jieba.add_word(&entry.word, entry.freq, entry.tag.as_deref());
        }
        for word in lexicon.synonym_words() {
            if word.chars().count() > 1 && !jieba.has_word(word) {
                jieba.add_word(word, None, None);
            }
        }
        Analyzer { inner: Arc::new(Inner { jieba, lexicon }) }
    }

    /// The lexicon this analyser was built from.
    pub fn lexicon(&self) -> &Lexicon {
        &self.inner.lexicon
    }

    /// Normalises and segments `text`.
    pub fn analyze(&self, text: &str) -> Analyzed {
        let normalized = normalize(text);
        let terms = self.segment(&normalized);
        Analyzed { normalized, terms }
    }

    /// The terms of `text` (see [`Analyzer::analyze`]).
    pub fn terms(&self, text: &str) -> Vec<String> {
        self.analyze(text).terms
    }

    /// Whether `term` is a function word (particle, modal, pronoun, adverb, preposition,
    /// conjunction, interjection) by jieba's part-of-speech dictionary, or one of the words
    /// that frame a request (greetings, politeness, wanting and being able to). Such words
    /// carry the grammar or the manners of a question, not its topic: 吗, 的, 怎么, 我, 都,
    /// 你好, 请问, 想. jieba tags the framing words as verbs or idioms, so without the list
    /// "你好，我想退货" missed two content words of "怎么退货".
    pub fn is_function_word(&self, term: &str) -> bool {
        if FRAMING_WORDS.contains(&term) {
            return true;
        }
        let tags = self.inner.jieba.tag(term, false);
        let [tag] = tags.as_slice() else { return false };
        let t = tag.tag;
        t.starts_with('u') || t.starts_with('r') || matches!(t, "y" | "e" | "c" | "p" | "d" | "o" | "zg" | "x")
    }

    /// Segments already-normalised text: jieba (with HMM for unknown words) on each
    /// space-separated chunk, then synonyms folded.
    pub fn segment(&self, normalized: &str) -> Vec<String> {
        let mut terms = Vec::new();
        for chunk in normalized.split(' ').filter(|c| !c.is_empty()) {
            for token in self.inner.jieba.cut(chunk, true) {
                let word = token.word.trim();
                if word.is_empty() {
                    continue;
                }
                terms.push(self.inner.lexicon.canonical(word).unwrap_or(word).to_string());
            }
        }
        terms
    }
}

/// Greetings, politeness and the modal verbs of a request, in simplified Chinese.
const FRAMING_WORDS: &[&str] = &[
    "你好", "您好", "哈喽", "嗨", "请问", "请", "问下", "问一下", "想问", "咨询", "麻烦", "一下", "下", "亲",
    "谢谢", "多谢", "感谢", "帮", "帮忙", "帮我", "想", "想要", "要", "能", "能够", "可以", "会", "得",
    "需要", "应该", "求", "求助", "求教", "请教", "跪求", "急求", "急", "在线等", "大神",
];

/// Character bigrams of normalised text, chunk by chunk (a chunk of one character yields
/// itself). They make matching robust to segmentation differences: 退货运费 and 退货 的运费
/// share 退货/货运/运费 whatever jieba decides.
pub fn char_bigrams(normalized: &str) -> Vec<String> {
    let mut grams = Vec::new();
    for chunk in normalized.split(' ').filter(|c| !c.is_empty()) {
        let chars: Vec<char> = chunk.chars().collect();
        if chars.len() == 1 {
            grams.push(chars[0].to_string());
        }
        for pair in chars.windows(2) {
            let mut gram = String::with_capacity(8);
            gram.push(pair[0]);
            gram.push(pair[1]);
            grams.push(gram);
        }
    }
    grams
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new(Lexicon::parse("运费险 10 n\n七天无理由 10 n\n", "退款 退钱 返款\n").unwrap())
    }

    #[test]
    fn traditional_and_full_width_fold_to_simplified_half_width() {
        let a = analyzer();
        assert_eq!(a.analyze("退貨ＡＢＣ１２３").normalized, "退货abc123");
        assert_eq!(a.terms("我要退貨"), a.terms("我要退货"));
    }

    #[test]
    fn punctuation_and_emoji_become_boundaries() {
        let a = analyzer();
        let x = a.analyze("退款！！到账了吗？😊😊");
        assert_eq!(x.normalized, "退款 到账了吗");
        assert!(!x.terms.iter().any(|t| t.contains('！') || t.contains('😊')));
    }

    #[test]
    fn spaces_inside_chinese_are_typos_not_boundaries() {
        let a = analyzer();
        assert_eq!(a.analyze("退 货 运费").normalized, "退货运费");
        assert_eq!(a.analyze("iphone 15 怎么 退货").normalized, "iphone 15 怎么退货");
    }

    #[test]
    fn user_dictionary_keeps_domain_words_whole() {
        let a = analyzer();
        assert!(a.terms("买了运费险吗").contains(&"运费险".to_string()));
        assert!(a.terms("支持七天无理由退货吗").contains(&"七天无理由".to_string()));
    }

    #[test]
    fn synonyms_fold_to_the_canonical_word() {
        let a = analyzer();
        assert!(a.terms("什么时候退钱").contains(&"退款".to_string()));
        assert!(a.terms("返款到哪里了").contains(&"退款".to_string()));
    }

    #[test]
    fn function_words_are_told_from_content_words() {
        let a = analyzer();
        for w in ["吗", "的", "怎么", "我", "都", "和", "你好", "请问", "想", "可以"] {
            assert!(a.is_function_word(w), "{w}");
        }
        for w in ["退款", "手机", "发票", "运费险"] {
            assert!(!a.is_function_word(w), "{w}");
        }
    }

    #[test]
    fn bigrams_cover_each_chunk() {
        assert_eq!(char_bigrams("退货运费 a"), vec!["退货", "货运", "运费", "a"]);
    }
}
