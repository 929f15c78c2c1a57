//! The analyser on arbitrary text: normalisation, t2s, jieba and synonyms must never panic.
#![no_main]

use std::sync::OnceLock;

use kefu::text::{Analyzer, Lexicon};
use libfuzzer_sys::fuzz_target;

fn analyzer() -> &'static Analyzer {
    static A: OnceLock<Analyzer> = OnceLock::new();
    A.get_or_init(|| Analyzer::new(Lexicon::parse("运费险 10 n\n七天无理由 10 n\n", "退款 退钱 返款\n发票 票据\n").unwrap()))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let a = analyzer().analyze(&text);
    for t in &a.terms {
        let _ = analyzer().is_function_word(t);
    }
});
