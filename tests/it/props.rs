//! Property tests: the analyser, the lexicon, the knowledge loaders (Markdown front matter,
//! JSONL, CSV) and the intent loader never panic on arbitrary input, and a refusal always
//! names the file and a line. Case counts keep the debug binary well under a minute.

use std::sync::OnceLock;

use kefu::knowledge::{self, KnowledgeError};
use kefu::nlu::{IntentError, Intents};
use kefu::text::{normalize, Analyzer, Lexicon, LexiconError};
use proptest::prelude::*;

fn analyzer() -> &'static Analyzer {
    static A: OnceLock<Analyzer> = OnceLock::new();
    A.get_or_init(|| Analyzer::new(Lexicon::parse("运费险 20 n\n", "退款 退钱 返款\n").unwrap()))
}

/// Text that stresses the analyser: control characters, lone combining marks, zero-width
/// and bidi marks, surrogate-adjacent and private-use code points, full-width forms,
/// traditional characters, emoji with joiners, and plain Chinese.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(String::from),
        "[\\x00-\\x1f\\x7f]".prop_map(String::from),
        "[\u{300}-\u{36f}\u{20d0}-\u{20ff}]{1,8}",
        "[\u{200b}-\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{feff}]",
        "[\u{e000}-\u{f8ff}\u{fff0}-\u{ffff}]",
        "[\u{ff01}-\u{ff5e}\u{3000}]{1,6}",
        Just("退貨運費誰出？".to_string()),
        Just("👨‍👩‍👧‍👦🏳️‍🌈".to_string()),
        "[退款运费发票密码订单怎么多久到账的了吗]{1,12}",
        "[ \t\r\n]{1,4}",
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

/// Where a refusal points: every problem names the given file and a line from 1.
fn assert_located(errors: &[knowledge::SourceError], file: &str, text: &str) {
    assert!(!errors.is_empty(), "a refusal without a reason");
    let lines = text.lines().count().max(1) + 1;
    for e in errors {
        assert_eq!(e.file, file, "{e}");
        assert!(e.line >= 1 && e.line <= lines, "line {} outside 1..={lines}: {e}", e.line);
        assert!(!e.reason.trim().is_empty(), "{e}");
        assert!(e.to_string().starts_with(&format!("{file}:{}", e.line)), "{e}");
    }
}

fn check_knowledge(text: &str, file: &str) {
    match knowledge::parse(text, file) {
        Ok(articles) => {
            assert!(!articles.is_empty());
            for a in &articles {
                assert!(!a.id.is_empty() && !a.answer.trim().is_empty(), "{a:?}");
                assert!(!normalize(&a.title).is_empty(), "{a:?}");
            }
        }
        Err(KnowledgeError::Invalid { errors, total }) => {
            assert!(total >= errors.len());
            assert_located(&errors, file, text);
        }
        Err(KnowledgeError::Empty) => {}
        Err(other) => panic!("unexpected kind of error for {file}: {other}"),
    }
}

/// Front matter built from pieces that are almost right: real keys, typos, wrong types,
/// unclosed strings and fences.
fn front_matter() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("id = \"refund\"".to_string()),
        Just("title = \"退款多久到账？\"".to_string()),
        Just("similar = [\"退款几天到\", \"钱什么时候退\"]".to_string()),
        Just("simlar = [\"typo\"]".to_string()),
        Just("tags = \"not a list\"".to_string()),
        Just("id = 3".to_string()),
        Just("title = \"unclosed".to_string()),
        Just("+++".to_string()),
        Just("[table]".to_string()),
        hostile_text(),
    ];
    (prop::bool::ANY, prop::collection::vec(line, 0..8), hostile_text())
        .prop_map(|(open, lines, body)| format!("{}{}\n+++\n{body}", if open { "+++\n" } else { "" }, lines.join("\n")))
}

fn jsonl_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"id":"a","question":"怎么退货","answer":"在订单页申请"}"#.to_string()),
        Just(r#"{"id":"a","question":"怎么退货","answer":"重复的 id"}"#.to_string()),
        Just(r#"{"id":"b","question":"？？？","answer":"x"}"#.to_string()),
        Just(r#"{"id":"c","question":"发票","answer":""}"#.to_string()),
        Just(r#"{"id":"d","question":"发票","answer":"x","extra":1}"#.to_string()),
        Just(r#"[1,2,3]"#.to_string()),
        Just(format!("{}1{}", "[".repeat(300), "]".repeat(300))),
        Just(r#"{"id":"e","question":"发票"#.to_string()),
        hostile_text().prop_map(|t| serde_json::json!({"id": t, "question": t, "answer": t}).to_string()),
        hostile_text(),
    ]
}

fn csv_text() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just("id,question,answer".to_string()),
        Just("id,question,similar_questions,answer,tags".to_string()),
        Just("id,question".to_string()),
        Just("id,questoin,answer".to_string()),
        hostile_text(),
    ];
    let row = prop_oneof![
        Just("r1,退款多久到账,三天内".to_string()),
        Just("r1,退款多久到账|几天到,三天内,x|y".to_string()),
        Just("r2,\"带,逗号\",\"多行\n答案\"".to_string()),
        Just("r3,\"未闭合引号,x".to_string()),
        Just("r4,only-two".to_string()),
        Just(",,".to_string()),
        hostile_text(),
    ];
    (header, prop::collection::vec(row, 0..6)).prop_map(|(h, rows)| format!("{h}\n{}", rows.join("\n")))
}

fn intent_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("name = \"order_status\"".to_string()),
        Just("priority = 50".to_string()),
        Just("keywords = [\"订单\"]".to_string()),
        Just("patterns = ['^(帮我)?查(一下)?订单$']".to_string()),
        Just("patterns = ['(unclosed']".to_string()),
        Just("patterns = ['a{99999999}']".to_string()),
        Just("threshold = 7.5".to_string()),
        Just("[action]\nkind = \"reply\"\ntext = \"好的\"".to_string()),
        Just("[action]\nkind = \"collect\"\ntemplate = \"{missing}\"".to_string()),
        Just("[action]\nkind = \"teleport\"".to_string()),
        Just("[[slots]]\nname = \"order_no\"\nkind = \"order_number\"\nprompt = \"订单号？\"".to_string()),
        Just("[[slots]]\nname = \"x\"\nkind = \"enum\"".to_string()),
        Just("nmae = \"typo\"".to_string()),
        hostile_text(),
    ];
    prop::collection::vec(line, 0..8).prop_map(|v| v.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_analyser_never_panics_and_yields_clean_terms(text in hostile_text()) {
        let a = analyzer().analyze(&text);
        prop_assert!(!a.normalized.chars().any(char::is_control), "control character survived: {:?}", a.normalized);
        for t in &a.terms {
            prop_assert!(!t.is_empty() && !t.chars().any(|c| c.is_whitespace() || c.is_control()), "bad term {t:?} from {text:?}");
        }
        // The normalised form is what the tokenizer splits on single spaces: only letters,
        // digits, decimal points and single inner spaces may remain.
        let n = &a.normalized;
        prop_assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "), "stray spaces in {n:?}");
        prop_assert!(n.chars().all(|c| c.is_alphanumeric() || c == '.' || c == ' '), "unexpected character in {n:?}");
    }

    #[test]
    fn the_lexicon_parses_or_names_the_line(dict in hostile_text(), synonyms in hostile_text()) {
        match Lexicon::parse(&dict, &synonyms) {
            Ok(lexicon) => { analyzer(); let _ = Analyzer::new(lexicon).terms("退款运费险"); }
            Err(LexiconError::Invalid { line, reason, .. }) => prop_assert!(line >= 1 && !reason.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn markdown_articles_load_or_name_file_and_line(text in front_matter()) {
        check_knowledge(&text, "kb/退款/article.md");
    }

    #[test]
    fn jsonl_loads_or_names_file_and_line(lines in prop::collection::vec(jsonl_line(), 0..6)) {
        check_knowledge(&lines.join("\n"), "faq.jsonl");
    }

    #[test]
    fn csv_loads_or_names_file_and_line(text in csv_text()) {
        check_knowledge(&text, "faq.csv");
    }

    #[test]
    fn any_text_in_any_format_is_a_clean_result(text in any::<String>(), ext in prop::sample::select(vec!["md", "jsonl", "csv"])) {
        check_knowledge(&text, &format!("kb.{ext}"));
    }
}

proptest! {
    // Each loaded intent builds a small in-memory index, so fewer cases.
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn intents_load_or_name_file_and_line(a in intent_text(), b in intent_text()) {
        let sources = vec![("intents/a.toml".to_string(), a.clone()), ("intents/b.toml".to_string(), b)];
        match Intents::parse(&sources, analyzer()) {
            Ok(intents) => {
                for i in intents.all() {
                    prop_assert!(!i.name.is_empty());
                }
                let text = "帮我查一下订单 12345678";
                let _ = intents.recognise(text, &analyzer().analyze(text));
            }
            Err(IntentError::Invalid { errors }) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.file == "intents/a.toml" || e.file == "intents/b.toml", "{e}");
                    prop_assert!(e.line >= 1 && !e.reason.is_empty(), "{e}");
                }
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Files as they come from disk: arbitrary bytes (invalid UTF-8 included) through `load`.
    #[test]
    fn arbitrary_bytes_on_disk_are_refused_by_name(bytes in prop::collection::vec(any::<u8>(), 0..2048), ext in prop::sample::select(vec!["jsonl", "csv"])) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("kb.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        match knowledge::load(&path) {
            Ok(l) => prop_assert!(!l.articles.is_empty()),
            Err(e) => {
                let shown = format!("{e:#}");
                prop_assert!(shown.contains("kb.") || matches!(e, KnowledgeError::Empty), "error does not name the file: {shown}");
            }
        }
        // The same bytes as one article in a knowledge folder.
        let folder = dir.path().join("kb");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("a.md"), &bytes).unwrap();
        if let Err(e) = knowledge::load(&folder) {
            prop_assert!(e.to_string().contains("a.md") || matches!(e, KnowledgeError::Empty), "{e}");
        }
    }
}

/// Huge inputs: a 1 MB message of mixed text is analysed without a panic or a blow-up.
#[test]
fn a_megabyte_of_text_is_analysed() {
    let piece = "退款多久到账？Ｒｅｆｕｎｄ\u{0301}\u{200b}\u{0007}😀 ";
    let text = piece.repeat(1_000_000 / piece.len());
    let t = std::time::Instant::now();
    let a = analyzer().analyze(&text);
    assert!(a.terms.len() > 10_000, "{} terms", a.terms.len());
    assert!(!a.normalized.chars().any(char::is_control));
    eprintln!("1 MB analysed in {:?}", t.elapsed());
}
