//! Live edits of a knowledge folder from the admin page: adding a similar question to an
//! article's Markdown file, keeping the rest of the file exactly as the operator wrote it.

use std::path::{Path, PathBuf};

use super::load::{collect_markdown, split_front_matter};
use super::KnowledgeError;

/// Appends `question` to the `similar` list of article `id` in the folder `dir`; returns the
/// file it changed. The file is replaced atomically.
pub fn add_similar(dir: &Path, id: &str, question: &str) -> Result<PathBuf, KnowledgeError> {
    let unsupported = || KnowledgeError::Edit {
        reason: format!("{} is not a knowledge folder; questions can only be added to Markdown articles", dir.display()),
    };
    if !dir.is_dir() {
        return Err(unsupported());
    }
    let mut files = Vec::new();
    collect_markdown(dir, &mut files)?;
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| KnowledgeError::Read { path: path.clone(), source })?;
        let bom = if text.starts_with('\u{feff}') { "\u{feff}" } else { "" };
        let body = &text[bom.len()..];
        let Ok((start, end, _)) = split_front_matter(body) else { continue };
        let Ok(mut doc) = body[start..end].parse::<toml_edit::DocumentMut>() else { continue };
        if doc.get("id").and_then(|v| v.as_str()) != Some(id) {
            continue;
        }
        let title = doc.get("title").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let similar = doc
            .entry("similar")
            .or_insert(toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .ok_or_else(|| KnowledgeError::Edit { reason: format!("{}: `similar` is not a list", path.display()) })?;
        if title == question || similar.iter().any(|v| v.as_str() == Some(question)) {
            return Err(KnowledgeError::Edit { reason: format!("article {id} already has the question {question:?}") });
        }
        similar.push(question);
        let updated = format!("{bom}{}{}{}", &body[..start], doc, &body[end..]);
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, updated).map_err(|source| KnowledgeError::Write { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, &path).map_err(|source| KnowledgeError::Write { path: path.clone(), source })?;
        return Ok(path);
    }
    Err(KnowledgeError::Edit { reason: format!("no article with id {id:?} in {}", dir.display()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_question_and_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "+++\n# 退货政策\nid = \"return\"\ntitle = \"怎么退货\"\nsimilar = [\"退货流程\"] # 常见问法\n+++\n\n## 答案\n七天无理由。\n";
        std::fs::write(dir.path().join("return.md"), text).unwrap();
        add_similar(dir.path(), "return", "东西不想要了怎么退").unwrap();
        let after = std::fs::read_to_string(dir.path().join("return.md")).unwrap();
        assert!(after.contains("# 退货政策") && after.contains("# 常见问法"), "{after}");
        assert!(after.contains("\"退货流程\", \"东西不想要了怎么退\""), "{after}");
        assert!(after.ends_with("+++\n\n## 答案\n七天无理由。\n"));
        let again = add_similar(dir.path(), "return", "东西不想要了怎么退").unwrap_err();
        assert!(again.to_string().contains("already has"), "{again}");
        let missing = add_similar(dir.path(), "nope", "问题").unwrap_err();
        assert!(missing.to_string().contains("no article with id \"nope\""), "{missing}");
    }
}
