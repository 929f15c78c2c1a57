//! Meaning-flipping signals in a question: negation, numbers and the kind of question asked.
//!
//! Two questions can share almost every word and still ask different things: 为什么不能退款
//! vs 怎么退款, 3天 vs 7天. The ranker compares these signals between a query and a
//! candidate question.

use super::normalize::is_cjk;

/// What kind of answer a question wants, from its question words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum QuestionKind {
    /// 怎么 / 如何 / 怎样 / 咋: a procedure.
    How = 1 << 0,
    /// 为什么 / 为何 / 为啥: a reason.
    Why = 1 << 1,
    /// 多少 / 几: an amount or count.
    HowMuch = 1 << 2,
    /// 哪里 / 在哪 / 哪儿: a place.
    Where = 1 << 3,
    /// 什么时候 / 多久 / 何时 / 几天: a time or duration.
    When = 1 << 4,
    /// 谁: a person.
    Who = 1 << 5,
    /// 能不能 / 可以吗 / 是否 / 吗: yes or no.
    YesNo = 1 << 6,
}

/// The signals of one analysed question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Whether the question is negated (an odd number of negation words).
    pub negated: bool,
    /// Numbers mentioned, as written in digits (Chinese numerals converted), sorted, deduplicated.
    pub numbers: Vec<u64>,
    /// Bit set of [`QuestionKind`]s.
    pub kinds: u8,
}

const NEGATIONS: &[&str] = &[
    "不", "没", "没有", "无", "未", "别", "非", "莫", "勿", "甭", "不要", "不能", "不会", "不是",
    "不可以", "不用", "无法", "不了", "不到", "不行", "没法", "不想", "不让", "不肯", "不够",
    "不再", "不给", "未能", "不必", "不准",
];

fn kind_of(term: &str) -> u8 {
    use QuestionKind::*;
    let kind = match term {
        "怎么" | "怎样" | "如何" | "怎么样" | "咋" | "咋样" | "怎么办" | "咋办" | "怎么弄" | "怎么做"
        | "怎么回事" | "咋回事" | "怎么才能" | "怎样才能" | "如何才能" => How,
        "为什么" | "为何" | "为啥" | "干嘛" | "干吗" | "怎么会" | "凭什么" => Why,
        "多少" | "多少钱" | "几" | "几个" | "几次" | "多大" | "多高" | "多重" | "多远" => HowMuch,
        "哪里" | "哪儿" | "在哪" | "在哪里" | "在哪儿" | "何处" | "哪" => Where,
        "什么时候" | "多久" | "何时" | "多长时间" | "几天" | "几号" | "几点" | "多少天" | "啥时候" => When,
        "谁" | "哪位" => Who,
        "吗" | "是否" | "能不能" | "可不可以" | "是不是" | "会不会" | "有没有" | "能否" | "可否" | "行不行"
        | "要不要" => YesNo,
        _ => return 0,
    };
    kind as u8
}

fn is_negation(term: &str) -> bool {
    NEGATIONS.contains(&term)
}

/// Reads the signals from a question's analysed terms.
pub fn signals<S: AsRef<str>>(terms: &[S]) -> Signals {
    let mut s = Signals::default();
    let mut negations = 0usize;
    for term in terms.iter().map(AsRef::as_ref) {
        if is_negation(term) {
            negations += 1;
        }
        s.kinds |= kind_of(term);
        if let Some(n) = number(term) {
            s.numbers.push(n);
        }
    }
    s.negated = negations % 2 == 1;
    s.numbers.sort_unstable();
    s.numbers.dedup();
    s
}

/// The number a term states: ASCII digits, or Chinese numerals (两, 十五, 三百, 一万) with an
/// optional trailing unit character (3天 / 三天 → 3). A lone 一 is not a number: it is far
/// more often an article or part of a word (一下, 一直).
fn number(term: &str) -> Option<u64> {
    let chars: Vec<char> = term.chars().collect();
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        let rest = chars.len() - digits;
        if rest <= 1 && (rest == 0 || is_cjk(chars[digits])) {
            let s: String = chars[..digits].iter().collect();
            return s.parse().ok();
        }
        return None;
    }
    let numerals = chars.iter().take_while(|c| chinese_digit(**c).is_some()).count();
    if numerals == 0 || chars.len() - numerals > 1 || (numerals == 1 && chars[0] == '一') {
        return None;
    }
    chinese_number(&chars[..numerals])
}

fn chinese_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        '万' => 10_000,
        _ => return None,
    })
}

/// Converts a run of Chinese numerals (十五 → 15, 三百二 → 320 is read as 302 by nobody,
/// so we keep the plain positional reading: 三百零二 → 302).
fn chinese_number(chars: &[char]) -> Option<u64> {
    let mut total = 0u64;
    let mut section = 0u64;
    let mut digit = 0u64;
    for &c in chars {
        let v = chinese_digit(c)?;
        match v {
            10 | 100 | 1000 => {
                section += if digit == 0 { 1 } else { digit } * v;
                digit = 0;
            }
            10_000 => {
                total += (section + digit) * v;
                section = 0;
                digit = 0;
            }
            _ => digit = digit * 10 + v,
        }
    }
    Some(total + section + digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(ts: &[&str]) -> Vec<String> {
        ts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn negation_parity() {
        assert!(signals(&terms(&["为什么", "不能", "退款"])).negated);
        assert!(!signals(&terms(&["不是", "不能", "退款"])).negated);
        assert!(!signals(&terms(&["怎么", "退款"])).negated);
    }

    #[test]
    fn numbers_from_digits_and_numerals() {
        assert_eq!(signals(&terms(&["7", "天", "无理由"])).numbers, vec![7]);
        assert_eq!(signals(&terms(&["十五天", "三百", "两"])).numbers, vec![2, 15, 300]);
        assert_eq!(signals(&terms(&["一下", "一", "统一"])).numbers, Vec::<u64>::new());
        assert_eq!(chinese_number(&['三', '百', '零', '二']), Some(302));
        assert_eq!(chinese_number(&['一', '万', '五', '千']), Some(15000));
    }

    #[test]
    fn question_kinds() {
        let how = signals(&terms(&["怎么", "退款"])).kinds;
        let why = signals(&terms(&["为什么", "退款"])).kinds;
        assert_eq!(how, QuestionKind::How as u8);
        assert_eq!(why, QuestionKind::Why as u8);
        assert_eq!(how & why, 0);
    }
}
