//! Properties of the WeChat channel's parsers and crypto: whatever bytes arrive, they return
//! a value or a clean error and never panic; what kefu writes, it reads back.

use base64::Engine;
use kefu::channels::wechat::crypto::Cipher;
use kefu::channels::wechat::message::{self, Format, Incoming};
use kefu::channels::wechat::signature;
use proptest::prelude::*;

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// Strings that look like pushes: XML-ish fragments, entities, CDATA and Chinese text.
fn xmlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<xml>".to_string()),
        Just("</xml>".to_string()),
        Just("<Content>".to_string()),
        Just("</Content>".to_string()),
        Just("<![CDATA[".to_string()),
        Just("]]>".to_string()),
        Just("&lt;".to_string()),
        Just("&lol;".to_string()),
        Just("&#x4F60;".to_string()),
        Just("&#99999999;".to_string()),
        Just("<!DOCTYPE x [<!ENTITY a \"b\">]>".to_string()),
        Just("<?xml version=\"1.0\"?>".to_string()),
        Just("<MsgId>".to_string()),
        Just("</MsgId>".to_string()),
        "[退货运费谁出？<>&\"' a-z0-9]{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn xml_parser_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(fields) = message::parse_xml(&body) {
            let _ = Incoming::from_fields(&fields);
        }
    }

    #[test]
    fn xml_parser_never_panics_on_xmlish_text(body in xmlish()) {
        match message::parse_xml(body.as_bytes()) {
            Ok(fields) => { let _ = Incoming::from_fields(&fields); }
            // A refusal says which rule the body broke.
            Err(e) => {
                let s = e.to_string();
                let named = ["not well-formed XML", "DTDs are not accepted", "is not accepted (only XML", "root element must be <xml>", "the message lacks", "is not a number"];
                prop_assert!(named.iter().any(|n| s.contains(n)), "an unexplained refusal: {}", s);
            }
        }
    }

    #[test]
    fn doctype_is_always_refused(before in "[a-z<>]{0,10}", after in xmlish()) {
        let body = format!("<?xml version=\"1.0\"?><!DOCTYPE {before}>{after}");
        prop_assert!(message::parse_xml(body.as_bytes()).is_err());
    }

    #[test]
    fn json_parser_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(fields) = message::parse_json(&body) {
            let _ = Incoming::from_fields(&fields);
        }
    }

    #[test]
    fn replies_read_back_exactly(content in "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\r]{0,200}") {
        for format in [Format::Xml, Format::Json] {
            let body = message::text_reply(format, "oUser", "gh_x", 1, &content);
            let fields = message::parse(body.as_bytes(), format).unwrap();
            prop_assert_eq!(fields.get("Content"), Some(content.as_str()));
        }
    }

    #[test]
    fn signatures_verify_their_own_parts_only(a in ".{0,20}", b in ".{0,20}", c in ".{0,20}", forged in ".{0,60}") {
        let good = signature::sign(&[&a, &b, &c]);
        prop_assert!(signature::verify(&good, &[&c, &a, &b]));
        prop_assert_eq!(signature::verify(&forged, &[&a, &b, &c]), forged.eq_ignore_ascii_case(&good));
    }

    #[test]
    fn decryption_never_panics(sealed in ".{0,200}", raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let cipher = Cipher::new(KEY, "wxprop").unwrap();
        let _ = cipher.decrypt(&sealed);
        // Well-formed base64 of whole blocks of garbage: a clean error (or, rarely, a message).
        let blocks = &raw[..raw.len() / 16 * 16];
        let _ = cipher.decrypt(&base64::engine::general_purpose::STANDARD.encode(blocks));
    }

    #[test]
    fn sealing_round_trips(message in prop::collection::vec(any::<u8>(), 0..600), appid in "[a-z0-9]{1,20}") {
        let cipher = Cipher::new(KEY, &appid).unwrap();
        prop_assert_eq!(cipher.decrypt(&cipher.encrypt(&message)).unwrap(), message);
    }

    #[test]
    fn keys_never_panic(key in ".{0,60}") {
        let _ = Cipher::new(&key, "wx");
    }
}
