//! The knowledge loaders (Markdown front matter, JSONL, CSV) and the lexicon files on
//! arbitrary text: a clean error or articles, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match kind % 4 {
        0 => drop(kefu::knowledge::parse(&text, "fuzz/article.md")),
        1 => drop(kefu::knowledge::parse(&text, "fuzz/faq.jsonl")),
        2 => drop(kefu::knowledge::parse(&text, "fuzz/faq.csv")),
        _ => {
            let (dict, synonyms) = text.split_once('\u{0}').unwrap_or((&text, ""));
            drop(kefu::text::Lexicon::parse(dict, synonyms));
        }
    }
});
