//! Message bodies: the pushes WeChat sends (XML for 公众号, XML or JSON for 小程序) and the
//! passive replies kefu answers with. XML is read without DTDs or entity expansion: a
//! `<!DOCTYPE` is refused outright and only XML's five predefined entities and character
//! references are understood.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;

/// How a push was written, and so how its reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the body is not well-formed XML: {0}")]
    Xml(String),
    #[error("DTDs are not accepted in WeChat messages")]
    Dtd,
    #[error("the entity &{0}; is not accepted (only XML's predefined entities)")]
    Entity(String),
    #[error("the root element must be <xml>")]
    Root,
    #[error("the body is not a JSON object: {0}")]
    Json(String),
    #[error("the message lacks {0}")]
    Missing(&'static str),
    #[error("{0} is not a number")]
    NotNumber(&'static str),
}

/// The fields of one push, by name (`ToUserName`, `Content`, `Encrypt`…). Only top-level
/// fields are kept; WeChat's messages are flat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &'static str) -> Result<&str, MessageError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or(MessageError::Missing(name))
    }
}

/// Limits a push's nesting: WeChat's messages are two or three levels deep.
const MAX_DEPTH: usize = 8;

pub fn parse(body: &[u8], format: Format) -> Result<Fields, MessageError> {
    match format {
        Format::Xml => parse_xml(body),
        Format::Json => parse_json(body),
    }
}

pub fn parse_xml(body: &[u8]) -> Result<Fields, MessageError> {
    let text = std::str::from_utf8(body).map_err(|_| MessageError::Xml("not UTF-8".into()))?;
    // Text is not trimmed: a reference splits it, and the spaces around are the user's.
    let mut reader = Reader::from_str(text);
    let mut fields = HashMap::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<(String, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| MessageError::Xml(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(MessageError::Dtd),
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(MessageError::Xml("nested too deeply".into()));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if depth == 1 {
                    if seen_root || name != "xml" {
                        return Err(MessageError::Root);
                    }
                    seen_root = true;
                } else if depth == 2 {
                    current = Some((name, String::new()));
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if depth == 0 {
                    return Err(MessageError::Root);
                }
                if depth == 1 {
                    fields.entry(name).or_insert_with(String::new);
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value)) = current.take() {
                        fields.entry(name).or_insert(value);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| MessageError::Xml(e.to_string()))?;
                push_text(depth, &mut current, &s)?;
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| MessageError::Xml(e.to_string()))?;
                push_text(depth, &mut current, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(|e| MessageError::Xml(e.to_string()))? {
                        Some(c) => c.to_string(),
                        None => return Err(MessageError::Xml("a bad character reference".into())),
                    }
                } else {
                    let name = r.decode().map_err(|e| MessageError::Xml(e.to_string()))?;
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => return Err(MessageError::Entity(name.chars().take(40).collect())),
                    }
                };
                push_text(depth, &mut current, &resolved)?;
            }
            Event::Eof => break,
            // The XML declaration, comments and processing instructions carry nothing.
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !seen_root || depth != 0 {
        return Err(MessageError::Root);
    }
    Ok(Fields(fields))
}

fn push_text(depth: usize, current: &mut Option<(String, String)>, s: &str) -> Result<(), MessageError> {
    match (depth, current) {
        (2, Some((_, value))) => value.push_str(s),
        (0, _) if !s.trim().is_empty() => return Err(MessageError::Root),
        _ => {}
    }
    Ok(())
}

/// A 小程序 JSON push: a flat object; numbers (CreateTime, MsgId) are kept as their digits.
pub fn parse_json(body: &[u8]) -> Result<Fields, MessageError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| MessageError::Json(e.to_string()))?;
    let Value::Object(map) = value else { return Err(MessageError::Json("not an object".into())) };
    let fields = map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect();
    Ok(Fields(fields))
}

/// A user's push, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The app's original id.
    pub to: String,
    /// The user's OpenID.
    pub from: String,
    pub create_time: i64,
    pub msg_type: String,
    pub content: Option<String>,
    pub msg_id: Option<String>,
    pub event: Option<String>,
    pub union_id: Option<String>,
    /// An image message's media, fetched through `media/get` (its `PicUrl` is not fetched:
    /// kefu reaches WeChat only through the configured API base).
    pub media_id: Option<String>,
}

impl Incoming {
    pub fn from_fields(f: &Fields) -> Result<Incoming, MessageError> {
        let msg_id = f.get("MsgId").map(str::to_string);
        if let Some(id) = &msg_id {
            id.parse::<u64>().map_err(|_| MessageError::NotNumber("MsgId"))?;
        }
        let from = f.require("FromUserName")?;
        if from.len() > 128 {
            return Err(MessageError::Xml("FromUserName is too long for an OpenID".into()));
        }
        Ok(Incoming {
            to: f.require("ToUserName")?.to_string(),
            from: from.to_string(),
            create_time: f.require("CreateTime")?.parse().map_err(|_| MessageError::NotNumber("CreateTime"))?,
            msg_type: f.require("MsgType")?.to_string(),
            content: f.get("Content").map(str::to_string),
            msg_id,
            event: f.get("Event").map(str::to_string),
            media_id: f.get("MediaId").filter(|m| !m.is_empty() && m.len() <= 256).map(str::to_string),
            union_id: f.get("UnionId").or_else(|| f.get("UnionID")).filter(|u| !u.is_empty() && u.len() <= 128).map(str::to_string),
        })
    }

    /// What identifies a delivery across WeChat's retries: the MsgId, or for events (which
    /// have none) the sender and time.
    pub fn dedupe_key(&self) -> String {
        match &self.msg_id {
            Some(id) => id.clone(),
            None => format!("{}@{}", self.from, self.create_time),
        }
    }
}

/// Inside CDATA only `]]>` needs care: it is split across two sections.
fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// A passive text reply (to = the user's OpenID, from = the app's original id).
pub fn text_reply(format: Format, to: &str, from: &str, time: i64, content: &str) -> String {
    match format {
        Format::Xml => format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{time}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
            cdata(to),
            cdata(from),
            cdata("text"),
            cdata(content)
        ),
        Format::Json => serde_json::json!({
            "ToUserName": to, "FromUserName": from, "CreateTime": time, "MsgType": "text", "Content": content
        })
        .to_string(),
    }
}

/// Moves the user to WeChat's own customer service, optionally to one agent account.
pub fn transfer_reply(format: Format, to: &str, from: &str, time: i64, kf_account: Option<&str>) -> String {
    match format {
        Format::Xml => {
            let trans = kf_account.map_or(String::new(), |a| format!("<TransInfo><KfAccount>{}</KfAccount></TransInfo>", cdata(a)));
            format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{time}</CreateTime><MsgType>{}</MsgType>{trans}</xml>",
                cdata(to),
                cdata(from),
                cdata("transfer_customer_service")
            )
        }
        Format::Json => {
            let mut v = serde_json::json!({
                "ToUserName": to, "FromUserName": from, "CreateTime": time, "MsgType": "transfer_customer_service"
            });
            if let Some(a) = kf_account {
                v["TransInfo"] = serde_json::json!({ "KfAccount": a });
            }
            v.to_string()
        }
    }
}

/// The envelope of an encrypted passive reply.
pub fn encrypted_reply(format: Format, encrypt: &str, signature: &str, timestamp: &str, nonce: &str) -> String {
    match format {
        Format::Xml => format!(
            "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>{}</Nonce></xml>",
            cdata(encrypt),
            cdata(signature),
            cdata(nonce)
        ),
        Format::Json => serde_json::json!({
            "Encrypt": encrypt, "MsgSignature": signature, "TimeStamp": timestamp, "Nonce": nonce
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser1]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[退货运费谁出？]]></Content><MsgId>23637352235060880</MsgId></xml>";

    #[test]
    fn reads_a_text_push() {
        let m = Incoming::from_fields(&parse_xml(TEXT.as_bytes()).unwrap()).unwrap();
        assert_eq!(m.to, "gh_123");
        assert_eq!(m.from, "oUser1");
        assert_eq!(m.create_time, 1714037059);
        assert_eq!(m.msg_type, "text");
        assert_eq!(m.content.as_deref(), Some("退货运费谁出？"));
        assert_eq!(m.msg_id.as_deref(), Some("23637352235060880"));
        assert_eq!(m.dedupe_key(), "23637352235060880");
    }

    #[test]
    fn predefined_entities_and_character_references_are_read() {
        let body = "<?xml version=\"1.0\"?><xml><!-- c --><Content>a &lt;b&gt; &amp; &#20320;&#x597D;</Content><Other><Deep>x</Deep></Other></xml>";
        let f = parse_xml(body.as_bytes()).unwrap();
        assert_eq!(f.get("Content"), Some("a <b> & 你好"));
    }

    #[test]
    fn dtds_and_custom_entities_are_refused() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><xml><Content>&lol2;</Content></xml>";
        assert_eq!(parse_xml(bomb.as_bytes()), Err(MessageError::Dtd));
        let xxe = "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><Content>&x;</Content></xml>";
        assert_eq!(parse_xml(xxe.as_bytes()), Err(MessageError::Dtd));
        // An entity used without a DTD is refused too, never left as text.
        assert_eq!(parse_xml(b"<xml><Content>&x;</Content></xml>"), Err(MessageError::Entity("x".into())));
    }

    #[test]
    fn malformed_bodies_get_clean_errors() {
        for bad in ["", "<xml>", "<xml><a></b></xml>", "<root><a>1</a></root>", "<xml/><xml/>", "not xml at all", "<xml></xml>trailing"] {
            assert!(parse_xml(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_xml(&[0xff, 0xfe, b'<']).is_err());
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert!(parse_xml(deep.as_bytes()).is_err());
        let no_from = "<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>";
        assert_eq!(Incoming::from_fields(&parse_xml(no_from.as_bytes()).unwrap()), Err(MessageError::Missing("FromUserName")));
        let bad_id = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>x1</MsgId></xml>";
        assert_eq!(Incoming::from_fields(&parse_xml(bad_id.as_bytes()).unwrap()), Err(MessageError::NotNumber("MsgId")));
    }

    #[test]
    fn json_pushes_of_mini_programs() {
        let body = r#"{"ToUserName":"gh_mini","FromUserName":"oMini","CreateTime":1714037059,"MsgType":"text","Content":"怎么开发票","MsgId":1234567890123456}"#;
        let m = Incoming::from_fields(&parse_json(body.as_bytes()).unwrap()).unwrap();
        assert_eq!((m.from.as_str(), m.content.as_deref(), m.msg_id.as_deref()), ("oMini", Some("怎么开发票"), Some("1234567890123456")));
        assert!(parse_json(b"[1,2]").is_err());
        assert!(parse_json(b"{").is_err());
    }

    #[test]
    fn replies_escape_cdata_and_read_back() {
        let xml = text_reply(Format::Xml, "oUser1", "gh_123", 5, "a ]]> b <c>");
        let f = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(f.get("Content"), Some("a ]]> b <c>"));
        assert_eq!(f.get("MsgType"), Some("text"));
        let json = text_reply(Format::Json, "o", "g", 5, "你好");
        assert_eq!(parse_json(json.as_bytes()).unwrap().get("Content"), Some("你好"));
    }

    #[test]
    fn transfer_customer_service_xml() {
        assert_eq!(
            transfer_reply(Format::Xml, "oUser1", "gh_123", 1399197672, Some("test1@test")),
            "<xml><ToUserName><![CDATA[oUser1]]></ToUserName><FromUserName><![CDATA[gh_123]]></FromUserName><CreateTime>1399197672</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType><TransInfo><KfAccount><![CDATA[test1@test]]></KfAccount></TransInfo></xml>"
        );
        assert_eq!(
            transfer_reply(Format::Xml, "o", "g", 1, None),
            "<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[g]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType></xml>"
        );
    }
}
