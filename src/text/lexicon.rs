//! The operators' lexicon: a jieba user dictionary and synonym groups, both plain text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::normalize;

/// File name of the user dictionary inside a knowledge folder.
pub const USER_DICT_FILE: &str = "userdict.txt";
/// File name of the synonym list inside a knowledge folder.
pub const SYNONYMS_FILE: &str = "synonyms.txt";

/// A problem in a lexicon file, naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("{file}:{line}: {reason}")]
    Invalid { file: String, line: usize, reason: String },
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

/// One user-dictionary word: `word [freq] [tag]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWord {
    pub word: String,
    pub freq: Option<usize>,
    pub tag: Option<String>,
}

/// User dictionary plus synonym groups. Keeps the source text so an index can store exactly
/// the lexicon it was built with and queries can be analysed the same way later.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    user_dict_text: String,
    synonyms_text: String,
    words: Vec<UserWord>,
    /// synonym (normalised) → canonical (normalised), the canonical one included.
    canonical: HashMap<String, String>,
}

impl Lexicon {
    /// Parses the two files' contents. Lines starting with `#` and blank lines are skipped.
    pub fn parse(user_dict: &str, synonyms: &str) -> Result<Lexicon, LexiconError> {
        Self::parse_named(user_dict, USER_DICT_FILE, synonyms, SYNONYMS_FILE)
    }

    /// Reads `userdict.txt` and `synonyms.txt` from a knowledge folder; a missing file is an
    /// empty one.
    pub fn load_dir(dir: &Path) -> Result<Lexicon, LexiconError> {
        let read = |name: &str| -> Result<(String, String), LexiconError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok((text, path.display().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok((String::new(), path.display().to_string()))
                }
                Err(source) => Err(LexiconError::Read { path, source }),
            }
        };
        let (dict, dict_name) = read(USER_DICT_FILE)?;
        let (syn, syn_name) = read(SYNONYMS_FILE)?;
        Self::parse_named(&dict, &dict_name, &syn, &syn_name)
    }

    fn parse_named(
        user_dict: &str,
        dict_name: &str,
        synonyms: &str,
        syn_name: &str,
    ) -> Result<Lexicon, LexiconError> {
        let invalid = |file: &str, line: usize, reason: String| LexiconError::Invalid {
            file: file.to_string(),
            line,
            reason,
        };
        let mut words = Vec::new();
        for (i, line) in content_lines(user_dict) {
            let mut parts = line.split_whitespace();
            let raw = parts.next().unwrap_or_default();
            let word = normalize(raw);
            if word.is_empty() || word.contains(' ') {
                return Err(invalid(dict_name, i, format!("`{raw}` is not a single word")));
            }
            let freq = match parts.next() {
                None => None,
                Some(f) => Some(f.parse::<usize>().map_err(|_| {
                    invalid(dict_name, i, format!("frequency `{f}` is not a whole number"))
                })?),
            };
            let tag = parts.next().map(str::to_string);
            if let Some(extra) = parts.next() {
                return Err(invalid(dict_name, i, format!("unexpected `{extra}` after the tag")));
            }
            words.push(UserWord { word, freq, tag });
        }

        let mut canonical = HashMap::new();
        for (i, line) in content_lines(synonyms) {
            let group: Vec<&str> =
                line.split(|c: char| c.is_whitespace() || c == ',' || c == '，').filter(|w| !w.is_empty()).collect();
            if group.len() < 2 {
                return Err(invalid(syn_name, i, "a synonym group needs at least two words".into()));
            }
            let head = normalize(group[0]);
            for raw in &group {
                let word = normalize(raw);
                if word.is_empty() || word.contains(' ') {
                    return Err(invalid(syn_name, i, format!("`{raw}` is not a single word")));
                }
                if let Some(previous) = canonical.get(&word) {
                    if *previous != head {
                        return Err(invalid(
                            syn_name,
                            i,
                            format!("`{raw}` is already a synonym of `{previous}`"),
                        ));
                    }
                }
                canonical.insert(word, head.clone());
            }
        }
        Ok(Lexicon {
            user_dict_text: user_dict.to_string(),
            synonyms_text: synonyms.to_string(),
            words,
            canonical,
        })
    }

    /// The user dictionary's words.
    pub fn user_words(&self) -> &[UserWord] {
        &self.words
    }

    /// Every word that appears in a synonym group.
    pub fn synonym_words(&self) -> impl Iterator<Item = &str> {
        self.canonical.keys().map(String::as_str)
    }

    /// The canonical form of `word` if it belongs to a synonym group.
    pub fn canonical(&self, word: &str) -> Option<&str> {
        self.canonical.get(word).map(String::as_str)
    }

    /// The source text of the user dictionary (stored with an index).
    pub fn user_dict_text(&self) -> &str {
        &self.user_dict_text
    }

    /// The source text of the synonym list (stored with an index).
    pub fn synonyms_text(&self) -> &str {
        &self.synonyms_text
    }
}

/// Non-blank, non-comment lines with their 1-based numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_and_groups() {
        let lex = Lexicon::parse("# 注释\n运费险 10 n\n花唄\n", "退款, 退錢，返款\n").unwrap();
        assert_eq!(lex.user_words().len(), 2);
        assert_eq!(lex.user_words()[1].word, "花呗");
        assert_eq!(lex.canonical("退钱"), Some("退款"));
        assert_eq!(lex.canonical("退款"), Some("退款"));
        assert_eq!(lex.canonical("退货"), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = Lexicon::parse("好词 10\n坏词 many\n", "").unwrap_err().to_string();
        assert_eq!(err, "userdict.txt:2: frequency `many` is not a whole number");
        let err = Lexicon::parse("", "退款 退钱\n\n单独\n").unwrap_err().to_string();
        assert_eq!(err, "synonyms.txt:3: a synonym group needs at least two words");
        let err = Lexicon::parse("", "退款 退钱\n退货 退钱\n").unwrap_err().to_string();
        assert!(err.starts_with("synonyms.txt:2: `退钱` is already a synonym of `退款`"), "{err}");
    }
}
