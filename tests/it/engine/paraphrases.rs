//! Customers' own wording finds the right demo article. These paraphrases are written for the
//! test (not copied from the articles' titles or similar questions) and mix traditional
//! characters, full-width letters and punctuation, emoji and stray spaces.

use crate::fixture::engine;

/// (query, the article that answers it).
const PARAPHRASES: &[(&str, &str)] = &[
    // traditional characters
    ("退貨的運費要我自己出嗎？", "return-shipping-fee"),
    ("過了七天還可以退貨嗎", "return-after-seven-days"),
    ("支付密碼想不起來了", "payment-password"),
    ("我的包裹現在到哪裡了", "track-package"),
    // full-width letters and punctuation
    ("ｖｘ可以付款吗", "payment-methods"),
    ("优惠券过期了，还能再用吗？", "coupon-expired"),
    ("刚买完就降价了，差价能退吗？", "price-protection"),
    ("电子发票在哪儿下载？", "e-invoice-download"),
    ("手机收不到验证码！！", "verification-code"),
    ("号被人盗了怎么办！", "account-hacked"),
    // emoji and stray spaces
    ("退 款 到 账 要几天啊😭", "refund-arrival-time"),
    ("钱被扣了两次😡😡", "duplicate-charge"),
    // plain customer wording
    ("买的衣服尺码不对，能换一件大号的吗", "exchange-process"),
    ("快递已经三四天没有更新物流了", "tracking-not-updated"),
    ("订单下错了，想取消掉怎么弄", "cancel-order"),
    ("我不记得登录密码了", "forgot-password"),
    ("我想注销我的账号", "delete-account"),
    ("怎么换绑新的手机号", "change-phone"),
    ("有没有货到付款", "cash-on-delivery"),
    ("可以用花呗分期买吗", "installment"),
    ("过了保修还能修吗，要收钱吗", "out-of-warranty-repair"),
    ("退款被商家拒绝了怎么办", "refund-rejected"),
    ("退款显示成功了，可是银行卡里没看到钱", "refund-success-not-received"),
    ("下单后一般几天能发货", "shipping-time"),
    ("满多少钱可以免运费", "shipping-fee"),
    ("能指定发顺丰快递吗", "choose-courier"),
    ("快递显示签收了，但我根本没收到", "signed-not-received"),
    ("退货能叫快递上门来取吗", "pickup-service"),
    ("专票怎么开，需要什么材料", "vat-special-invoice"),
    ("积分可以换什么", "points-redeem"),
    ("会员怎么升级到更高等级", "member-levels"),
    ("如何实名认证", "real-name-verify"),
    ("怎么联系人工客服", "after-sales-phone"),
    ("取消订单以后钱什么时候退给我", "cancel-order-refund"),
    ("钱已经付了，订单却显示没付款", "paid-but-unpaid-status"),
    ("付款老是失败", "payment-failed"),
    ("我的订单找不到了", "order-not-found"),
    ("快递员态度很差，我要投诉他", "courier-complaint"),
    ("收到的东西是坏的，包装都压扁了", "damaged-on-arrival"),
    ("满减券用不了是怎么回事", "coupon-not-applicable"),
    ("西藏能不能送到", "remote-area-delivery"),
    ("东西送错了，颜色跟我买的不一样", "wrong-item-received"),
];

#[test]
fn paraphrases_find_their_article() {
    let engine = engine();
    for (_, expected) in PARAPHRASES {
        assert!(
            engine.articles().iter().any(|a| a.id == *expected),
            "no article `{expected}` in the demo knowledge"
        );
    }
    let mut failures = Vec::new();
    for (query, expected) in PARAPHRASES {
        let reply = engine.ask(query).expect("asking never fails on the in-memory index");
        let got = reply.candidates.first().map_or("(nothing)", |c| c.id.as_str());
        if got != *expected {
            failures.push(format!(
                "{query} → got {got} ({:?}, {:.3}), expected {expected}",
                reply.action, reply.confidence
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} paraphrases missed their article:\n  {}",
        failures.len(),
        PARAPHRASES.len(),
        failures.join("\n  ")
    );
}

#[test]
fn batch_answers_keep_input_order_and_match_single_asks() {
    let engine = engine();
    // Over 64 queries, so the batch runs on several threads.
    let queries: Vec<String> =
        PARAPHRASES.iter().cycle().take(3 * PARAPHRASES.len()).map(|(q, _)| q.to_string()).collect();
    let batch = engine.ask_batch(&queries);
    assert_eq!(batch.len(), queries.len());
    for (query, reply) in queries.iter().zip(batch) {
        assert_eq!(reply.expect("asking never fails"), engine.ask(query).unwrap(), "{query}");
    }
}
