//! The policy's decisions, turn by turn, over a fixture of three articles and two intents.

use super::*;
use crate::knowledge::Candidate;
use crate::text::{Analyzer, Lexicon};

const INTENTS: &str = r#"
name = "human"
priority = 100
keywords = ["转人工"]
[action]
kind = "handoff"
reason = "requested"
text = "马上为您转接。"
"#;
const ORDER: &str = r#"
name = "order_status"
patterns = ['^查订单$']
[[slots]]
name = "order_no"
kind = "order_number"
prompt = "请提供订单号"
retry_prompt = "没识别到，请再发一次"
retries = 1
[action]
kind = "collect"
template = "订单 {order_no} 已记下"
"#;

fn intents() -> Intents {
    let sources = [("human.toml".to_string(), INTENTS.to_string()), ("order.toml".to_string(), ORDER.to_string())];
    Intents::parse(&sources, &Analyzer::new(Lexicon::default())).unwrap()
}

fn articles() -> Vec<Article> {
    let a = |id: &str, title: &str| Article {
        id: id.into(),
        title: title.into(),
        similar: vec![],
        answer: format!("{title}的答案"),
        category: String::new(),
        tags: vec![],
        keywords: vec![],
    };
    vec![a("return", "怎么退货"), a("shipping-fee", "退货运费谁出"), a("refund-time", "退款多久到账")]
}

fn reply(action: Action, ids: &[(&str, f32)]) -> Reply {
    let candidates = ids
        .iter()
        .enumerate()
        .map(|(i, (id, c))| Candidate { id: id.to_string(), article: i, matched_question: String::new(), question: 0, score: 0.0, confidence: *c })
        .collect();
    Reply { action, confidence: ids.first().map_or(0.0, |x| x.1), candidates }
}

struct Fixture {
    rules: Rules,
    intents: Intents,
    articles: Vec<Article>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture { rules: Rules::default(), intents: intents(), articles: articles() }
    }

    fn step(&self, state: &State, ctx: &Context, turn: Turn<'_>) -> Outcome {
        let find = |id: &str| self.articles.iter().find(|a| a.id == id);
        let policy = Policy { rules: &self.rules, intents: &self.intents, article: &find };
        policy.step(state, ctx, &turn)
    }
}

fn available(_: &str) -> Availability {
    Availability::Available
}

fn turn<'a>(text: &'a str, intent: Option<&'a IntentMatch>, knowledge: Option<&'a Reply>) -> Turn<'a> {
    Turn { text, intent, knowledge, followup: None, availability: &available }
}

#[test]
fn availability_is_asked_once_for_the_skill_the_handoff_needs() {
    let f = Fixture::new();
    let m = f.intents.rule_match("我要转人工！").unwrap();
    let asked = std::cell::RefCell::new(Vec::new());
    let closed = |skill: &str| {
        asked.borrow_mut().push(skill.to_string());
        Availability::OutOfHours
    };
    let out = f.step(&State::Bot, &Context::default(), Turn { availability: &closed, ..turn("我要转人工！", Some(&m), None) });
    assert_eq!(out.replies[0].0, f.rules.out_of_hours_text);
    assert_eq!(out.context.ticket_reason, Some(Reason::Requested));
    assert_eq!(*asked.borrow(), ["general"]);
    // A question the bot answers asks nobody.
    let r = reply(Action::Answer, &[("return", 0.99)]);
    f.step(&State::Bot, &Context::default(), Turn { availability: &closed, ..turn("怎么退货", None, Some(&r)) });
    assert_eq!(asked.borrow().len(), 1);
}

#[test]
fn a_channel_with_its_own_agents_is_told_and_the_bot_stays() {
    let f = Fixture::new();
    let m = f.intents.rule_match("我要转人工！").unwrap();
    let ctx = Context { misses: 1, ..Default::default() };
    let out = f.step(&State::Bot, &ctx, Turn { availability: &|_| Availability::Elsewhere, ..turn("我要转人工！", Some(&m), None) });
    assert!(out.transferred && out.handoff.is_none());
    assert_eq!(out.state, State::Bot);
    assert_eq!(out.context.misses, 0);
    assert_eq!(out.replies[0].0, "马上为您转接。");
}

#[test]
fn a_confident_answer_is_given_and_remembered() {
    let f = Fixture::new();
    let r = reply(Action::Answer, &[("return", 0.95)]);
    let out = f.step(&State::Bot, &Context { misses: 1, ..Default::default() }, turn("退货怎么弄", None, Some(&r)));
    assert_eq!(out.replies[0].0, "怎么退货的答案");
    assert_eq!(out.replies[0].1.article.as_deref(), Some("return"));
    assert_eq!(out.context.last_article.as_deref(), Some("return"));
    assert_eq!(out.context.misses, 0);
    assert_eq!(out.state, State::Bot);
}

#[test]
fn clarify_then_pick_by_number_or_by_clicking_the_question() {
    let f = Fixture::new();
    let r = reply(Action::Clarify, &[("return", 0.4), ("shipping-fee", 0.3), ("refund-time", 0.1)]);
    let out = f.step(&State::Bot, &Context::default(), turn("退的事", None, Some(&r)));
    assert!(out.replies[0].0.contains("1. 怎么退货") && out.replies[0].0.contains("2. 退货运费谁出"));
    let State::Clarifying { options } = &out.state else { panic!("{:?}", out.state) };
    assert_eq!(options.len(), 3);
    let picked = f.step(&out.state, &out.context, turn("２", None, None));
    assert_eq!(picked.replies[0].0, "退货运费谁出的答案");
    assert_eq!(picked.state, State::Bot);
    let clicked = f.step(&out.state, &out.context, turn("退款多久到账", None, None));
    assert_eq!(clicked.replies[0].1.article.as_deref(), Some("refund-time"));
    // Anything else is a new question.
    let other = reply(Action::Answer, &[("return", 0.9)]);
    let moved_on = f.step(&out.state, &out.context, turn("我想退货", None, Some(&other)));
    assert_eq!(moved_on.replies[0].1.article.as_deref(), Some("return"));
}

#[test]
fn a_follow_up_is_read_in_the_context_of_the_last_answer() {
    let f = Fixture::new();
    let ctx = Context { last_article: Some("return".into()), ..Default::default() };
    let alone = reply(Action::None, &[("refund-time", 0.02)]);
    let with_context = reply(Action::Answer, &[("shipping-fee", 0.8)]);
    let t = Turn { followup: Some(&with_context), ..turn("那运费呢？", None, Some(&alone)) };
    let out = f.step(&State::Bot, &ctx, t);
    assert_eq!(out.replies[0].1.article.as_deref(), Some("shipping-fee"));
}

#[test]
fn two_misses_in_a_row_hand_off_with_the_reason() {
    let f = Fixture::new();
    let none = reply(Action::None, &[("return", 0.01)]);
    let first = f.step(&State::Bot, &Context::default(), turn("量子纠缠是什么", None, Some(&none)));
    assert!(first.unanswered && first.handoff.is_none());
    assert_eq!(first.replies[0].0, f.rules.fallback);
    let second = f.step(&first.state, &first.context, turn("黑洞呢", None, Some(&none)));
    let h = second.handoff.expect("second miss hands off");
    assert_eq!(h.reason, "repeated_misses");
    assert_eq!(second.state, State::Queued);
    // …and a miss limit of 0 never hands off.
    let never = Fixture { rules: Rules { miss_limit: 0, ..Rules::default() }, ..Fixture::new() };
    let out = never.step(&first.state, &first.context, turn("黑洞呢", None, Some(&none)));
    assert!(out.handoff.is_none());
}

#[test]
fn asking_for_a_human_hands_off_at_once_or_offers_a_message_when_nobody_is_there() {
    let f = Fixture::new();
    let m = f.intents.rule_match("我要转人工！").unwrap();
    let out = f.step(&State::Bot, &Context::default(), turn("我要转人工！", Some(&m), None));
    assert_eq!(out.handoff.as_ref().unwrap().reason, "requested");
    assert_eq!(out.replies[0].0, "马上为您转接。");
    assert_eq!(out.state, State::Queued);

    let nobody = Turn { availability: &|_| Availability::NoAgents, ..turn("转人工", Some(&m), None) };
    let out = f.step(&State::Bot, &Context::default(), nobody);
    assert!(out.handoff.is_none());
    assert_eq!(out.state, State::LeavingMessage { asked_contact: false });
    assert_eq!(out.replies[0].0, f.rules.no_agents_text);
    // The message, then the contact when asked for it.
    let asked = f.step(&out.state, &out.context, turn("发票开错了要重开", None, None));
    assert_eq!(asked.state, State::LeavingMessage { asked_contact: true });
    let done = f.step(&asked.state, &asked.context, turn("13812345678", None, None));
    let ticket = done.ticket.unwrap();
    assert_eq!(ticket.contact.as_deref(), Some("13812345678"));
    assert_eq!(ticket.message, "发票开错了要重开\n13812345678");
    assert_eq!(ticket.reason, "requested");
    assert_eq!(done.state, State::Bot);
}

#[test]
fn the_bot_is_silent_while_a_human_owns_the_conversation() {
    let f = Fixture::new();
    let r = reply(Action::Answer, &[("return", 0.99)]);
    for state in [State::Queued, State::WithAgent { agent: "wang".into() }, State::Closed] {
        let out = f.step(&state, &Context::default(), turn("怎么退货", None, Some(&r)));
        assert!(out.replies.is_empty() && out.handoff.is_none(), "{state:?}");
        assert_eq!(out.state, state);
    }
}

#[test]
fn slots_are_collected_and_a_bad_value_is_asked_again() {
    let f = Fixture::new();
    let m = f.intents.rule_match("查订单").unwrap();
    let out = f.step(&State::Bot, &Context::default(), turn("查订单", Some(&m), None));
    assert_eq!(out.replies[0].0, "请提供订单号");
    let bad = f.step(&out.state, &out.context, turn("不记得了", None, None));
    assert_eq!(bad.replies[0].0, "没识别到，请再发一次");
    let good = f.step(&bad.state, &bad.context, turn("DD202611230001", None, None));
    assert_eq!(good.replies[0].0, "订单 DD202611230001 已记下");
    assert_eq!(good.state, State::Bot);
    // Out of retries: a human takes over.
    let gave_up = f.step(&bad.state, &bad.context, turn("还是不记得", None, None));
    assert_eq!(gave_up.handoff.unwrap().reason, "slot_failed");
}

#[test]
fn an_explicit_rule_interrupts_slot_collection() {
    let f = Fixture::new();
    let state = State::Collecting { intent: "order_status".into(), slot: "order_no".into(), retries: 2 };
    let m = f.intents.rule_match("转人工").unwrap();
    let out = f.step(&state, &Context::default(), turn("转人工", Some(&m), None));
    assert_eq!(out.handoff.unwrap().reason, "requested");
}

#[test]
fn a_rating_after_resolution_is_recorded() {
    let f = Fixture::new();
    let ctx = Context { rating_requested: true, ..Default::default() };
    let out = f.step(&State::Bot, &ctx, turn("5", None, None));
    assert_eq!(out.rating, Some(5));
    assert!(!out.context.rating_requested);
    let not_a_rating = f.step(&State::Bot, &Context::default(), turn("5", None, None));
    assert_eq!(not_a_rating.rating, None);
}

#[test]
fn a_confidence_floor_hands_off_instead_of_guessing() {
    let f = Fixture { rules: Rules { confidence_floor: 0.2, ..Rules::default() }, ..Fixture::new() };
    let weak = reply(Action::Clarify, &[("return", 0.1)]);
    let out = f.step(&State::Bot, &Context::default(), turn("嗯？", None, Some(&weak)));
    assert_eq!(out.handoff.unwrap().reason, "low_confidence");
}

#[test]
fn a_weak_clarification_is_a_miss_not_a_list_of_unrelated_questions() {
    let f = Fixture::new();
    let weak = reply(Action::Clarify, &[("shipping-fee", 0.1)]);
    let out = f.step(&State::Bot, &Context::default(), turn("明天天气怎么样", None, Some(&weak)));
    assert!(out.unanswered);
    assert_eq!(out.replies[0].0, f.rules.fallback);
    assert_eq!(out.state, State::Bot);
}

#[test]
fn choices_are_read_in_several_forms() {
    assert_eq!(choice("2", 3), Some(1));
    assert_eq!(choice("第三个", 3), Some(2));
    assert_eq!(choice("３", 3), Some(2));
    assert_eq!(choice("4", 3), None);
    assert_eq!(choice("2块钱", 3), None);
}

#[test]
fn after_misses_a_channel_with_its_own_agents_hears_the_miss_sentence_too() {
    let f = Fixture::new();
    let none = reply(Action::None, &[("return", 0.01)]);
    let elsewhere = |_: &str| Availability::Elsewhere;
    let first = f.step(&State::Bot, &Context::default(), Turn { availability: &elsewhere, ..turn("量子纠缠是什么", None, Some(&none)) });
    let second = f.step(&first.state, &first.context, Turn { availability: &elsewhere, ..turn("黑洞呢", None, Some(&none)) });
    assert!(second.transferred && second.handoff.is_none());
    assert_eq!(second.replies.last().unwrap().0, f.rules.miss_handoff_text);
}
