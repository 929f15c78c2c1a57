//! WeChat's push parsers (XML without DTDs, JSON) and AES decryption on arbitrary bytes.
#![no_main]

use std::sync::OnceLock;

use kefu::channels::wechat::crypto::Cipher;
use kefu::channels::wechat::message::{parse_json, parse_xml};
use libfuzzer_sys::fuzz_target;

fn cipher() -> &'static Cipher {
    static C: OnceLock<Cipher> = OnceLock::new();
    C.get_or_init(|| Cipher::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxfuzz").unwrap())
}

fuzz_target!(|data: &[u8]| {
    drop(parse_xml(data));
    drop(parse_json(data));
    drop(cipher().decrypt(&String::from_utf8_lossy(data)));
});
