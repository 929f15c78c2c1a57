//! Loaders for the three knowledge formats: a folder of Markdown articles with TOML front
//! matter, JSONL, and CSV. A load either yields every article or fails naming each bad
//! place (file, line, reason): nothing is half-imported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Article, KnowledgeError, SourceError};
use crate::text::{normalize, Lexicon};

/// What a load produced: the articles and, for a knowledge folder, its lexicon.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub articles: Vec<Article>,
    pub lexicon: Lexicon,
}

/// How many problems one failed load reports at most; the rest are counted.
const MAX_REPORTED: usize = 50;

/// Loads a knowledge folder, a `.jsonl` or a `.csv` file.
pub fn load(path: &Path) -> Result<Loaded, KnowledgeError> {
    let meta = std::fs::metadata(path)
        .map_err(|source| KnowledgeError::Read { path: path.to_path_buf(), source })?;
    let mut problems = Problems::default();
    let (articles, lexicon) = if meta.is_dir() {
        let lexicon = Lexicon::load_dir(path)?;
        (load_folder(path, &mut problems)?, lexicon)
    } else {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let text = std::fs::read_to_string(path)
            .map_err(|source| KnowledgeError::Read { path: path.to_path_buf(), source })?;
        let file = path.display().to_string();
        let articles = match ext.as_str() {
            "jsonl" | "ndjson" => parse_jsonl(&text, &file, &mut problems),
            "csv" => parse_csv(&text, &file, &mut problems),
            _ => {
                return Err(KnowledgeError::UnknownFormat { path: path.to_path_buf() });
            }
        };
        (articles, Lexicon::default())
    };
    problems.into_result(articles, lexicon)
}

/// Parses the text of one knowledge file, its format chosen by the extension of `file`
/// (`.md` article, `.jsonl`/`.ndjson`, `.csv`): what [`load`] does once it has read a file,
/// for callers that already hold the text (and for the property tests).
pub fn parse(text: &str, file: &str) -> Result<Vec<Article>, KnowledgeError> {
    let mut problems = Problems::default();
    let ext = Path::new(file).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let articles = match ext.as_str() {
        "md" => parse_markdown(text, file, "", &mut problems).map(|a| (a, file.to_string(), 1)).into_iter().collect(),
        "jsonl" | "ndjson" => parse_jsonl(text, file, &mut problems),
        "csv" => parse_csv(text, file, &mut problems),
        _ => return Err(KnowledgeError::UnknownFormat { path: file.into() }),
    };
    problems.into_result(articles, Lexicon::default()).map(|l| l.articles)
}

/// Problems found so far, with where each article came from for duplicate-id reports.
#[derive(Default)]
struct Problems {
    errors: Vec<SourceError>,
    total: usize,
}

impl Problems {
    fn push(&mut self, file: &str, line: usize, reason: impl Into<String>) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(SourceError { file: file.to_string(), line, reason: reason.into() });
        }
    }

    fn into_result(
        mut self,
        located: Vec<(Article, String, usize)>,
        lexicon: Lexicon,
    ) -> Result<Loaded, KnowledgeError> {
        let mut seen: HashMap<String, (String, usize)> = HashMap::new();
        for (article, file, line) in &located {
            if let Some((first_file, first_line)) = seen.get(&article.id) {
                let reason =
                    format!("duplicate id `{}` (first used at {first_file}:{first_line})", article.id);
                self.push(file, *line, reason);
            } else {
                seen.insert(article.id.clone(), (file.clone(), *line));
            }
        }
        if self.total > 0 {
            return Err(KnowledgeError::Invalid { errors: self.errors, total: self.total });
        }
        if located.is_empty() {
            return Err(KnowledgeError::Empty);
        }
        Ok(Loaded { articles: located.into_iter().map(|(a, _, _)| a).collect(), lexicon })
    }
}

/// Checks an article's required fields, reporting problems at `file:line`.
fn check(article: &Article, file: &str, line: usize, problems: &mut Problems) -> bool {
    let before = problems.total;
    let id = article.id.trim();
    if id.is_empty() {
        problems.push(file, line, "empty id");
    } else if id.chars().any(char::is_control) || id.len() > 200 {
        problems.push(file, line, format!("id `{}` has control characters or is over 200 bytes", id.escape_debug()));
    }
    if normalize(&article.title).is_empty() {
        problems.push(file, line, "empty question (the title has no words)");
    }
    for (i, q) in article.similar.iter().enumerate() {
        if normalize(q).is_empty() {
            problems.push(file, line, format!("similar question {} is empty", i + 1));
        }
    }
    if article.answer.trim().is_empty() {
        problems.push(file, line, "empty answer");
    }
    problems.total == before
}

fn trimmed(mut a: Article) -> Article {
    a.id = a.id.trim().to_string();
    a.title = a.title.trim().to_string();
    a.similar = a.similar.into_iter().map(|s| s.trim().to_string()).collect();
    a.answer = a.answer.trim().to_string();
    a.category = a.category.trim().to_string();
    a
}

// ---------------------------------------------------------------------------- Markdown folder

/// Front matter of a Markdown article. Unknown keys are errors: a typo such as `simlar`
/// would otherwise silently drop an article's paraphrases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: String,
    title: String,
    #[serde(default)]
    similar: Vec<String>,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

fn load_folder(root: &Path, problems: &mut Problems) -> Result<Vec<(Article, String, usize)>, KnowledgeError> {
    let mut files = Vec::new();
    collect_markdown(root, &mut files)?;
    files.sort();
    let mut articles = Vec::new();
    for path in files {
        let text = std::fs::read(&path)
            .map_err(|source| KnowledgeError::Read { path: path.clone(), source })?;
        let file = path.display().to_string();
        let Ok(text) = String::from_utf8(text) else {
            problems.push(&file, 1, "not valid UTF-8");
            continue;
        };
        let category = path
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map(|p| p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
            .unwrap_or_default();
        if let Some(article) = parse_markdown(&text, &file, &category, problems) {
            articles.push((article, file, 1));
        }
    }
    Ok(articles)
}

/// Every `*.md` under `dir` except README.md files and anything hidden or starting with `_`.
pub(super) fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), KnowledgeError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| KnowledgeError::Read { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| KnowledgeError::Read { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            collect_markdown(&path, out)?;
        } else if name.ends_with(".md") && !name.eq_ignore_ascii_case("readme.md") {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one Markdown article: a `+++` line, TOML front matter, a `+++` line, then the
/// answer body.
/// Where a Markdown article's TOML front matter starts and ends, and where the body starts.
pub(super) fn split_front_matter(text: &str) -> Result<(usize, usize, usize), &'static str> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or_default();
    if first.trim_end() != "+++" {
        return Err("missing front matter: the file must start with a `+++` line");
    }
    let mut pos = first.len();
    for line in lines {
        if line.trim_end() == "+++" {
            return Ok((first.len(), pos, pos + line.len()));
        }
        pos += line.len();
    }
    Err("front matter is not closed by a `+++` line")
}

fn parse_markdown(text: &str, file: &str, category: &str, problems: &mut Problems) -> Option<Article> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front_start, front_end, body_start) = match split_front_matter(text) {
        Ok(parts) => parts,
        Err(reason) => {
            problems.push(file, 1, reason);
            return None;
        }
    };
    let front = &text[front_start..front_end];
    let fm: FrontMatter = match toml::from_str(front) {
        Ok(fm) => fm,
        Err(e) => {
            // Line numbers count from the file's first line, the opening `+++`.
            let line = e.span().map(|s| 2 + front[..s.start.min(front.len())].matches('\n').count());
            problems.push(file, line.unwrap_or(2), format!("front matter: {}", e.message().trim()));
            return None;
        }
    };
    let article = trimmed(Article {
        id: fm.id,
        title: fm.title,
        similar: fm.similar,
        answer: text[body_start..].to_string(),
        category: fm.category.unwrap_or_else(|| category.to_string()),
        tags: fm.tags,
        keywords: fm.keywords,
    });
    check(&article, file, 1, problems).then_some(article)
}

// ---------------------------------------------------------------------------------- JSONL

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    id: String,
    question: String,
    #[serde(default)]
    similar_questions: Vec<String>,
    answer: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

impl From<JsonEntry> for Article {
    fn from(e: JsonEntry) -> Article {
        trimmed(Article {
            id: e.id,
            title: e.question,
            similar: e.similar_questions,
            answer: e.answer,
            category: e.category,
            tags: e.tags,
            keywords: e.keywords,
        })
    }
}

fn parse_jsonl(text: &str, file: &str, problems: &mut Problems) -> Vec<(Article, String, usize)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<JsonEntry>(line) {
            Ok(entry) => {
                let article = Article::from(entry);
                if check(&article, file, line_no, problems) {
                    out.push((article, file.to_string(), line_no));
                }
            }
            Err(e) => problems.push(file, line_no, format!("malformed JSON: {e}")),
        }
    }
    out
}

// ------------------------------------------------------------------------------------ CSV

/// Column names a CSV may use; multi-valued cells separate values with `|`.
const CSV_COLUMNS: &[&str] = &["id", "question", "similar_questions", "answer", "category", "tags", "keywords"];

fn parse_csv(text: &str, file: &str, problems: &mut Problems) -> Vec<(Article, String, usize)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect::<Vec<_>>(),
        Err(e) => {
            problems.push(file, 1, format!("malformed header row: {e}"));
            return Vec::new();
        }
    };
    for h in &headers {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            problems.push(file, 1, format!("unknown column `{h}` (expected some of: {})", CSV_COLUMNS.join(", ")));
        }
    }
    for required in ["id", "question", "answer"] {
        if !headers.iter().any(|h| h == required) {
            problems.push(file, 1, format!("missing column `{required}`"));
        }
    }
    if problems.total > 0 {
        return Vec::new();
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let split = |s: &str| -> Vec<String> {
        s.split('|').map(str::trim).filter(|v| !v.is_empty()).map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                problems.push(file, line, format!("malformed CSV row: {e}"));
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let cell = |name: &str| col(name).and_then(|i| record.get(i)).unwrap_or("").to_string();
        let article = trimmed(Article {
            id: cell("id"),
            title: cell("question"),
            similar: split(&cell("similar_questions")),
            answer: cell("answer"),
            category: cell("category"),
            tags: split(&cell("tags")),
            keywords: split(&cell("keywords")),
        });
        if check(&article, file, line, problems) {
            out.push((article, file.to_string(), line));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_with_a_byte_order_mark_loads() {
        let mut problems = Problems::default();
        let text = "\u{feff}{\"id\":\"a\",\"question\":\"怎么退货\",\"answer\":\"在订单页申请\"}\n";
        let articles = parse_jsonl(text, "faq.jsonl", &mut problems);
        assert_eq!(problems.total, 0, "{:?}", problems.errors);
        assert_eq!(articles[0].0.id, "a");
    }
}
