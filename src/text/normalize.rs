//! Character-level normalisation: width, case, script and punctuation.

use std::sync::OnceLock;

use ferrous_opencc::{config::BuiltinConfig, OpenCC};
use unicode_normalization::UnicodeNormalization;

/// The traditional → simplified converter. Built once: loading its dictionaries costs
/// milliseconds, converting a question costs microseconds.
fn t2s() -> &'static OpenCC {
    static T2S: OnceLock<OpenCC> = OnceLock::new();
    T2S.get_or_init(|| {
        OpenCC::from_config(BuiltinConfig::T2s).expect("the embedded t2s OpenCC config is valid")
    })
}

/// Normalises `text` for matching: NFKC (full-width letters, digits and punctuation become
/// half-width), lower case, traditional → simplified Chinese, and every character that is not
/// a letter or digit (punctuation, symbols, emoji, white space) becomes a boundary. Runs of
/// boundaries collapse to one space, except that white space alone between two CJK characters
/// is dropped: people type "退 货" but mean 退货.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let simplified = if folded.chars().any(is_cjk) { t2s().convert(&folded) } else { folded };

    let mut out = String::with_capacity(simplified.len());
    // What separates the last kept character from the next one: nothing, only white space,
    // or punctuation/symbols (a real boundary).
    #[derive(PartialEq)]
    enum Gap {
        None,
        Space,
        Hard,
    }
    let mut gap = Gap::None;
    let mut last: Option<char> = None;
    let chars: Vec<char> = simplified.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // Keep the decimal point of a number such as 1.5 and the dot-free form otherwise.
        let is_decimal_point = c == '.'
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_alphanumeric() || is_decimal_point {
            if let Some(prev) = last {
                let join = match gap {
                    Gap::None => true,
                    Gap::Space => is_cjk(prev) && is_cjk(c),
                    Gap::Hard => false,
                };
                if !join {
                    out.push(' ');
                }
            }
            out.push(c);
            last = Some(c);
            gap = Gap::None;
        } else if c.is_whitespace() {
            if gap == Gap::None {
                gap = Gap::Space;
            }
        } else {
            gap = Gap::Hard;
        }
    }
    out
}

/// CJK ideographs (the unified blocks and their extensions that customers actually type).
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn folds_width_case_and_script() {
        assert_eq!(normalize("ＡＰＰ登錄不了？"), "app登录不了");
        assert_eq!(normalize("發票怎麼開"), "发票怎么开");
    }

    #[test]
    fn keeps_numbers_and_decimal_points() {
        assert_eq!(normalize("满１００减２０，还有0.5折？"), "满100减20 还有0.5折");
    }

    #[test]
    fn drops_emoji_and_symbols() {
        assert_eq!(normalize("😡😡 退款呢!!!"), "退款呢");
        assert_eq!(normalize("【急】订单#123"), "急 订单 123");
    }

    #[test]
    fn empty_and_symbol_only_input_normalises_to_nothing() {
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("？？！！ 😊"), "");
    }
}
