//! The intent loader on arbitrary TOML-ish text: a clean error naming the file, never a panic.
#![no_main]

use kefu::nlu::Intents;
use kefu::text::Lexicon;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    drop(Intents::parse(&[("fuzz.toml".to_string(), text)], &Lexicon::default()));
});
