//! The analyser: the one pipeline from raw customer text to terms, shared by index and query.

use kefu::text::{Analyzer, Lexicon};

use crate::fixture::knowledge_dir;

/// The analyser with the shipped user dictionary and synonyms.
fn shipped() -> Analyzer {
    Analyzer::new(Lexicon::load_dir(&knowledge_dir()).expect("the shipped lexicon parses"))
}

fn has(terms: &[String], term: &str) -> bool {
    terms.iter().any(|t| t == term)
}

#[test]
fn traditional_characters_analyse_like_simplified() {
    let a = shipped();
    for (traditional, simplified) in [
        ("退貨", "退货"),
        ("發票", "发票"),
        ("我要退貨，運費誰出", "我要退货，运费谁出"),
        ("發票怎麼開", "发票怎么开"),
        ("帳號被盜了", "帐号被盗了"),
    ] {
        assert_eq!(a.analyze(traditional), a.analyze(simplified), "{traditional} vs {simplified}");
    }
    assert!(has(&a.terms("退貨"), "退货"));
    assert!(has(&a.terms("電子發票在哪裡下載"), "电子发票"));
}

#[test]
fn full_width_folds_to_half_width() {
    let a = shipped();
    assert_eq!(a.analyze("ＡＰＰ登錄不了").normalized, "app登录不了");
    assert_eq!(a.analyze("满１００减２０").normalized, "满100减20");
    assert_eq!(a.terms("ＶＸ付款"), a.terms("vx付款"));
}

#[test]
fn punctuation_and_emoji_are_removed() {
    let a = shipped();
    let x = a.analyze("退款！！！到账了吗？？😭😭【急】");
    assert_eq!(x.normalized, "退款 到账了吗 急");
    for t in &x.terms {
        assert!(t.chars().all(char::is_alphanumeric), "term {t:?} keeps a symbol");
    }
    assert_eq!(a.terms("退款到账了吗"), a.terms("退款，到账了吗？"));
    assert!(a.analyze("👍👍🙏～～。。。").terms.is_empty());
    assert!(a.analyze("").terms.is_empty());
}

#[test]
fn spaces_typed_inside_chinese_words_are_ignored() {
    let a = shipped();
    assert_eq!(a.analyze("退 货 运 费").normalized, "退货运费");
    assert_eq!(a.terms("退 货 运 费"), a.terms("退货运费"));
    assert_eq!(a.terms("发 票  怎么 开"), a.terms("发票怎么开"));
    // Between Latin words or digits a space is still a boundary.
    assert_eq!(a.analyze("iphone 15 退 货").normalized, "iphone 15 退货");
}

#[test]
fn user_dictionary_words_stay_whole() {
    let a = shipped();
    assert!(has(&a.terms("我买了运费险吗"), "运费险"));
    assert!(has(&a.terms("支持七天无理由退货吗"), "七天无理由"));
    assert!(has(&a.terms("能用花呗付款吗"), "花呗"));
    assert!(has(&a.terms("想申请仅退款"), "仅退款"));

    // A word a general dictionary does not know is split without the user dictionary and
    // kept whole with it.
    let plain = Analyzer::new(Lexicon::parse("", "").unwrap());
    let custom = Analyzer::new(Lexicon::parse("鲸喜卡 20 n\n", "").unwrap());
    assert!(!has(&plain.terms("鲸喜卡怎么激活"), "鲸喜卡"), "{:?}", plain.terms("鲸喜卡怎么激活"));
    assert!(has(&custom.terms("鲸喜卡怎么激活"), "鲸喜卡"), "{:?}", custom.terms("鲸喜卡怎么激活"));
}

#[test]
fn synonyms_fold_onto_the_canonical_word() {
    let a = shipped();
    // synonyms.txt: 退款 退钱 返款 · 运费 邮费 快递费 · 登录 登陆 · 账号 账户 帐号 帐户
    assert_eq!(a.terms("什么时候退钱"), a.terms("什么时候退款"));
    assert!(has(&a.terms("返款到哪了"), "退款"));
    assert!(has(&a.terms("邮费谁出"), "运费"));
    assert!(has(&a.terms("快递费谁出"), "运费"));
    assert!(has(&a.terms("登陆不上去"), "登录"));
    // Script, width and synonyms together: traditional 帳號 → 帐号 → 账号.
    assert!(has(&a.terms("帳號被盜"), "账号"), "{:?}", a.terms("帳號被盜"));
    // Words that only look alike stay apart (退货 ≠ 退款).
    assert!(!has(&a.terms("我要退货"), "退款"));
}
