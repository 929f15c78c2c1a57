//! The semantic signal: the shipped word table (`models/e5-static.kfv`, built by
//! `scripts/model`, which `scripts/test` runs first) orders known Chinese pairs as a person
//! would, finds an article that shares no word with the question, and the binary behaves
//! without a table (answers by words) and with a broken one (refuses to start, naming it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use kefu::knowledge::{Engine, Ranker};
use kefu::semantic::WordTable;

use crate::fixture::{imported, kefu, loaded};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn table_path() -> PathBuf {
    root().join(kefu::semantic::DEFAULT_PATH)
}

fn table() -> Arc<WordTable> {
    static TABLE: LazyLock<Arc<WordTable>> = LazyLock::new(|| {
        let path = table_path();
        assert!(path.exists(), "{} is missing: run scripts/model (scripts/test does)", path.display());
        Arc::new(WordTable::load(&path).expect("the shipped word table loads"))
    });
    TABLE.clone()
}

/// The demo knowledge base with the semantic table and the ranker trained with it.
fn engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
        let mut e = Engine::in_memory(loaded(), Ranker::builtin_semantic()).expect("the demo engine builds");
        e.set_semantic(Some(table()));
        e
    });
    &ENGINE
}

#[test]
fn known_pairs_are_ordered_by_meaning() {
    let e = engine();
    // (anchor, closer in meaning, farther in meaning)
    let triples = [
        ("我想退货", "东西不想要了能退回去吗", "发票怎么开"),
        ("快递到哪了", "包裹现在在什么位置", "会员积分怎么用"),
        ("可以开发票吗", "能给我开张票据吗", "收货地址怎么改"),
        ("付款失败了", "钱付不出去", "衣服尺码偏大吗"),
        ("优惠券用不了", "券没法抵扣", "怎么联系快递员"),
    ];
    for (anchor, near, far) in triples {
        let (n, f) = (e.similarity(anchor, near).unwrap(), e.similarity(anchor, far).unwrap());
        assert!(n > f, "{anchor}: {near} ({n:.3}) should be closer than {far} ({f:.3})");
    }
    assert!(e.similarity("退货", "😀").is_none(), "no known word: no vector");
}

#[test]
fn a_paraphrase_sharing_no_word_with_its_article_finds_it() {
    let e = engine();
    let query = "能给我开张票据吗";
    let target = "how-to-invoice";
    let article = e.articles().iter().find(|a| a.id == target).expect("the article exists");
    let analyzer = e.analyzer();
    let words: Vec<String> = analyzer.terms(query).into_iter().filter(|t| !analyzer.is_function_word(t)).collect();
    for q in article.questions() {
        let theirs = analyzer.terms(q);
        let shared: Vec<&String> = words.iter().filter(|w| theirs.contains(w)).collect();
        assert!(shared.is_empty(), "the query shares {shared:?} with {q:?}: not a test of meaning");
    }
    let reply = e.ask(query).unwrap();
    assert_eq!(reply.candidates.first().map(|c| c.id.as_str()), Some(target), "{query}: {:?}", reply.candidates);
    // Without the table the same question does not rank the article first.
    let lexical = Engine::in_memory(loaded(), Ranker::builtin()).unwrap().ask(query).unwrap();
    let first = lexical.candidates.first().map(|c| c.id.as_str());
    assert_ne!(first, Some(target), "the lexical engine already finds it: pick a harder query");
}

#[test]
fn without_a_table_the_binary_answers_by_words_and_says_so() {
    let data = imported();
    let out = kefu()
        .args(["ask", "--model", "/nonexistent/e5-static.kfv", "--data"])
        .arg(data.path())
        .arg("退货运费谁承担？")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("answer:     [return-shipping-fee]"), "{stdout}");
    assert!(stderr.contains("no semantic model") && stderr.contains("/nonexistent/e5-static.kfv"), "{stderr}");
}

#[test]
fn a_wrong_checksum_table_stops_the_binary_naming_the_file() {
    let data = imported();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.kfv");
    let mut bytes = std::fs::read(table_path()).expect("the shipped table exists (scripts/model)");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&broken, bytes).unwrap();
    let out = kefu().args(["ask", "--model"]).arg(&broken).arg("--data").arg(data.path()).arg("退货").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a corrupt table must not be used: {stderr}");
    assert!(stderr.contains(broken.to_str().unwrap()) && stderr.contains("checksum"), "{stderr}");
    // The server refuses to start too, before it listens.
    let served = dir.path().join("served");
    let out = kefu()
        .arg("serve")
        .env("KEFU_MODEL", &broken)
        .env("KEFU_DATA", &served)
        .env("KEFU_LISTEN", "127.0.0.1:0")
        .env("KEFU_KNOWLEDGE", root().join("knowledge"))
        .env("KEFU_INTENTS", root().join("intents"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(broken.to_str().unwrap()) && stderr.contains("checksum"), "{stderr}");
}
