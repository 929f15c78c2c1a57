//! Canned replies (快捷回复) for agents: `canned.toml` beside the knowledge articles, typed in
//! the console as `/shortcut`. Loaded with the knowledge and swapped with it on reload.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name, in the knowledge folder (or beside a `.jsonl`/`.csv` knowledge file).
pub const CANNED_FILE: &str = "canned.toml";

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canned {
    /// What the agent types after `/`: ASCII letters, digits, `-` or `_`.
    pub shortcut: String,
    /// A short label for the picker.
    pub title: String,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedFile {
    #[serde(default)]
    reply: Vec<Canned>,
}

#[derive(Debug, thiserror::Error)]
pub enum CannedError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {reason}", path.display())]
    Invalid { path: PathBuf, line: usize, reason: String },
}

/// Where the canned replies of a knowledge source live.
pub fn canned_path(knowledge: &Path) -> PathBuf {
    if knowledge.is_dir() {
        knowledge.join(CANNED_FILE)
    } else {
        knowledge.parent().unwrap_or(Path::new(".")).join(CANNED_FILE)
    }
}

/// Loads the canned replies of a knowledge source; none when the file does not exist.
pub fn load_canned(knowledge: &Path) -> Result<Vec<Canned>, CannedError> {
    let path = canned_path(knowledge);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => return Err(CannedError::Read { path, source }),
    };
    parse_canned(&text).map_err(|(line, reason)| CannedError::Invalid { path, line, reason })
}

/// Parses and checks the file: (line, reason) on the first problem.
fn parse_canned(text: &str) -> Result<Vec<Canned>, (usize, String)> {
    let file: CannedFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        (line, e.message().to_string())
    })?;
    // Shortcuts are checked after parsing, so a bad one is located by searching for it.
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map_or(1, |i| i + 1);
    let mut seen = HashSet::new();
    for c in &file.reply {
        let quoted = format!("\"{}\"", c.shortcut);
        if c.shortcut.is_empty() || c.shortcut.len() > 32 || !c.shortcut.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err((line_of(&quoted), format!("shortcut {:?} must be 1 to 32 ASCII letters, digits, - or _", c.shortcut)));
        }
        if !seen.insert(c.shortcut.to_ascii_lowercase()) {
            return Err((line_of(&quoted), format!("shortcut {:?} is defined twice", c.shortcut)));
        }
        if c.text.trim().is_empty() || c.title.trim().is_empty() {
            return Err((line_of(&quoted), format!("shortcut {:?} needs a title and a text", c.shortcut)));
        }
    }
    Ok(file.reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let r = parse_canned("[[reply]]\nshortcut = \"hi\"\ntitle = \"问候\"\ntext = \"您好，请问有什么可以帮您？\"\n").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].shortcut, "hi");
        assert_eq!(r[0].text, "您好，请问有什么可以帮您？");
    }

    #[test]
    fn rejects_duplicates_bad_shortcuts_and_unknown_keys() {
        let dup = "[[reply]]\nshortcut = \"hi\"\ntitle = \"a\"\ntext = \"a\"\n[[reply]]\nshortcut = \"HI\"\ntitle = \"b\"\ntext = \"b\"\n";
        let (line, reason) = parse_canned(dup).unwrap_err();
        assert!(reason.contains("twice"), "{reason}");
        assert_eq!(line, 6);
        let (_, reason) = parse_canned("[[reply]]\nshortcut = \"退款\"\ntitle = \"a\"\ntext = \"a\"\n").unwrap_err();
        assert!(reason.contains("ASCII"), "{reason}");
        let (line, reason) = parse_canned("[[reply]]\nshortcut = \"a\"\ntitle = \"a\"\ntext = \"a\"\ntxet = \"b\"\n").unwrap_err();
        assert!(reason.contains("txet"), "{reason}");
        assert_eq!(line, 5);
    }

    #[test]
    fn a_missing_file_means_no_replies() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_canned(dir.path()).unwrap().is_empty());
    }
}
