//! Bad knowledge is refused with errors naming the file, the line and the reason, and a
//! failed import leaves the index in use untouched.

use std::path::Path;

use kefu::knowledge::{self, Action, DataDir, KnowledgeError, Quiet, Ranker};

use crate::fixture::{loaded, write};

/// Loads `path` expecting failure; returns the error message.
fn load_error(path: &Path) -> String {
    match knowledge::load(path) {
        Ok(l) => panic!("{} loaded {} articles but should fail", path.display(), l.articles.len()),
        Err(e) => {
            assert!(matches!(e, KnowledgeError::Invalid { .. }), "{e:?}");
            e.to_string()
        }
    }
}

/// Asserts that `message` holds the line `  FILE:LINE: REASON…`.
#[track_caller]
fn assert_names(message: &str, file: &Path, line: usize, reason: &str) {
    let expected = format!("{}:{line}: {reason}", file.display());
    assert!(
        message.lines().any(|l| l.trim_start().starts_with(&expected)),
        "expected a line starting with {expected:?} in:\n{message}"
    );
}

const GOOD: &str = "+++\nid = \"good\"\ntitle = \"怎么退款？\"\n+++\n在订单详情里点“申请退款”。\n";

#[test]
fn malformed_front_matter() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.md", GOOD);
    let bad =
        write(dir.path(), "退款/bad.md", "+++\nid = \"bad\"\ntitle = \"怎么退货\nsimilar = []\n+++\n答案\n");
    let message = load_error(dir.path());
    assert!(message.starts_with("the knowledge has 1 problem; nothing was imported"), "{message}");
    assert_names(&message, &bad, 3, "front matter:");
}

#[test]
fn front_matter_without_closing_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad =
        write(dir.path(), "bad.md", "+++\nid = \"bad\"\ntitle = \"怎么退货\"\n\n退货在订单详情里申请。\n");
    assert_names(&load_error(dir.path()), &bad, 1, "front matter is not closed by a `+++` line");
}

#[test]
fn file_without_front_matter() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.md", "# 怎么退货\n\n退货在订单详情里申请。\n");
    assert_names(&load_error(dir.path()), &bad, 1, "missing front matter");
}

#[test]
fn unknown_front_matter_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.md",
        "+++\nid = \"bad\"\ntitle = \"怎么退货\"\nsimlar = [\"退货流程\"]\n+++\n答案\n",
    );
    let message = load_error(dir.path());
    assert_names(&message, &bad, 4, "front matter: unknown field `simlar`");
}

#[test]
fn empty_title_and_empty_similar_question() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.md", "+++\nid = \"empty\"\ntitle = \"\"\n+++\n答案\n");
    let symbols = write(
        dir.path(),
        "symbols.md",
        "+++\nid = \"symbols\"\ntitle = \"？？\"\nsimilar = [\"退款\", \"  \"]\n+++\n答案\n",
    );
    let message = load_error(dir.path());
    assert!(message.starts_with("the knowledge has 3 problems"), "{message}");
    assert_names(&message, &empty, 1, "empty question");
    assert_names(&message, &symbols, 1, "empty question");
    assert_names(&message, &symbols, 1, "similar question 2 is empty");
}

#[test]
fn duplicate_id_across_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "a/one.md", "+++\nid = \"same\"\ntitle = \"怎么退款\"\n+++\n答案一\n");
    let second = write(dir.path(), "b/two.md", "+++\nid = \"same\"\ntitle = \"怎么退货\"\n+++\n答案二\n");
    let message = load_error(dir.path());
    assert_names(&message, &second, 1, &format!("duplicate id `same` (first used at {}:1)", first.display()));
}

#[test]
fn malformed_jsonl_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "faq.jsonl",
        "{\"id\": \"a\", \"question\": \"怎么退款\", \"answer\": \"申请退款\"}\n\
         \n\
         {\"id\": \"b\", \"question\": \"怎么退货\" \"answer\": \"申请退货\"}\n\
         {\"id\": \"c\", \"question\": \"怎么换货\", \"answer\": \"申请换货\"}\n",
    );
    assert_names(&load_error(&file), &file, 3, "malformed JSON");
}

#[test]
fn csv_with_a_missing_column_and_an_empty_question() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "faq.csv",
        "id,question,similar_questions,answer\n\
         a,怎么退款,退钱|返款,在订单详情里申请退款\n\
         b,,,空问题\n\
         c,怎么退货,退货流程\n",
    );
    let message = load_error(&file);
    assert!(message.starts_with("the knowledge has 2 problems"), "{message}");
    assert_names(&message, &file, 3, "empty question");
    assert_names(&message, &file, 4, "malformed CSV row");

    let header = write(dir.path(), "no-answer.csv", "id,question\na,怎么退款\n");
    assert_names(&load_error(&header), &header, 1, "missing column `answer`");
}

#[test]
fn csv_multi_valued_cells_split_on_bars() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "faq.csv",
        "id,question,similar_questions,answer,category,tags,keywords\n\
         a,怎么退款,\"退钱 | 返款|\",在订单详情里申请退款,退款,退款|售后,到账\n",
    );
    let loaded = knowledge::load(&file).unwrap();
    let a = &loaded.articles[0];
    assert_eq!(a.similar, ["退钱", "返款"]);
    assert_eq!(a.tags, ["退款", "售后"]);
    assert_eq!(a.keywords, ["到账"]);
    assert_eq!(a.category, "退款");
}

#[test]
fn failed_import_keeps_the_previous_index_answering() {
    let data = tempfile::tempdir().unwrap();
    let dir = DataDir::new(data.path());
    dir.import(loaded(), &Quiet).expect("the demo knowledge imports");
    let before = dir.current_generation().unwrap();

    // Make the last step of the next import, writing the new CURRENT pointer, fail.
    std::fs::create_dir(data.path().join("CURRENT.tmp")).unwrap();
    assert!(dir.import(loaded(), &Quiet).is_err(), "the import should fail");
    std::fs::remove_dir(data.path().join("CURRENT.tmp")).unwrap();

    assert_eq!(dir.current_generation().unwrap(), before);
    let engine = dir.open(Ranker::builtin()).expect("the previous index still opens");
    let reply = engine.ask("退货运费谁承担？").unwrap();
    assert_eq!(reply.action, Action::Answer);
    assert_eq!(reply.candidates[0].id, "return-shipping-fee");

    // And a later import works again.
    dir.import(loaded(), &Quiet).expect("importing again after the failure");
    assert_ne!(dir.current_generation().unwrap(), before);
    assert_eq!(
        dir.open(Ranker::builtin()).unwrap().ask("退货运费谁承担？").unwrap().candidates[0].id,
        "return-shipping-fee"
    );
}
