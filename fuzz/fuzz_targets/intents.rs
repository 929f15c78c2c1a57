//! The intent loader on arbitrary TOML-ish text: a clean error naming the file, never a panic.
#![no_main]

use std::sync::LazyLock;

use kefu::nlu::Intents;
use kefu::text::{Analyzer, Lexicon};
use libfuzzer_sys::fuzz_target;

/// Built once: loading jieba's dictionary per input would cap the run at a few dozen a second.
static ANALYZER: LazyLock<Analyzer> = LazyLock::new(|| Analyzer::new(Lexicon::default()));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    drop(Intents::parse(&[("fuzz.toml".to_string(), text)], &ANALYZER));
});
