//! Slot values: recognising an order number, a phone number, an e-mail address, a number or
//! one of a fixed set of values in what the visitor typed.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::text::normalize;

/// What kind of value a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// Letters (up to three) then 10–20 digits: DD20261123000123, 123456789012.
    OrderNumber,
    /// A mainland mobile number: 11 digits starting 13–19.
    Phone,
    Email,
    /// A number, in digits.
    Number,
    /// One of the slot's `values`.
    Enum,
    /// Anything non-empty.
    Text,
}

// The `regex` crate has no look-around, so boundaries are spelled out: a value must not be
// glued to more digits (or letters, for the start) on either side.
static ORDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^0-9A-Za-z])([A-Za-z]{0,3}[0-9]{10,20})(?:$|[^0-9])").unwrap());
static PHONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^0-9])(1[3-9][0-9]{9})(?:$|[^0-9])").unwrap());
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})").unwrap());
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"([0-9]+(?:\.[0-9]+)?)").unwrap());

/// Finds a value of `kind` in `text`. `custom` replaces the kind's own pattern (its first
/// capture group, or the whole match, is the value); `values` are the choices of an enum.
pub fn extract(kind: SlotKind, custom: Option<&Regex>, values: &[String], text: &str) -> Option<String> {
    // Full-width digits and letters (１２３, ＤＤ) are common from Chinese keyboards.
    let text: String = text.nfkc().collect();
    let text = text.trim();
    if let Some(re) = custom {
        let caps = re.captures(text)?;
        return Some(caps.get(1).or_else(|| caps.get(0))?.as_str().to_string());
    }
    let first = |re: &Regex| re.captures(text).map(|c| c[1].to_string());
    match kind {
        SlotKind::OrderNumber => first(&ORDER).map(|v| v.to_uppercase()),
        SlotKind::Phone => first(&PHONE),
        SlotKind::Email => first(&EMAIL),
        SlotKind::Number => first(&NUMBER),
        SlotKind::Enum => {
            let said = normalize(text).replace(' ', "");
            values.iter().find(|v| said.contains(&normalize(v).replace(' ', ""))).cloned()
        }
        SlotKind::Text => (!text.is_empty()).then(|| text.to_string()),
    }
}

/// A contact a visitor leaves with a message: a phone number or an e-mail address.
pub fn contact(text: &str) -> Option<String> {
    extract(SlotKind::Phone, None, &[], text).or_else(|| extract(SlotKind::Email, None, &[], text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_in_chinese_sentences() {
        let order = |t| extract(SlotKind::OrderNumber, None, &[], t);
        assert_eq!(order("我的订单号是DD202611230001").as_deref(), Some("DD202611230001"));
        assert_eq!(order("订单 ２０２６１１２３０００１２３ 到哪了").as_deref(), Some("20261123000123"));
        assert_eq!(order("dd2026112300012").as_deref(), Some("DD2026112300012"));
        assert_eq!(order("订单号12345"), None, "too short");
        assert_eq!(order("我不知道"), None);
    }

    #[test]
    fn phones_emails_numbers_and_enums() {
        assert_eq!(contact("电话13812345678，下午联系").as_deref(), Some("13812345678"));
        assert_eq!(contact("邮箱 wang.li@example.com 谢谢").as_deref(), Some("wang.li@example.com"));
        assert_eq!(contact("138123456789"), None, "12 digits is not a mobile number");
        assert_eq!(extract(SlotKind::Number, None, &[], "买了３件").as_deref(), Some("3"));
        let sizes = vec!["大号".to_string(), "中號".to_string()];
        assert_eq!(extract(SlotKind::Enum, None, &sizes, "要中号的").as_deref(), Some("中號"));
        let custom = Regex::new(r"SF(\d{12})").unwrap();
        assert_eq!(extract(SlotKind::Text, Some(&custom), &[], "运单SF123456789012").as_deref(), Some("123456789012"));
    }
}
