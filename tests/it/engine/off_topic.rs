//! Questions the demo knowledge base cannot answer must not get an answer.

use kefu::knowledge::Action;

use crate::fixture::engine;

#[test]
fn off_topic_questions_get_no_answer() {
    let engine = engine();
    let queries = [
        "明天北京天气怎么样",
        "今天会下雨吗",
        "推荐几只能涨的股票",
        "帮我写一首关于春天的诗",
        "给我讲个笑话",
        "世界上最高的山是哪座",
        "量子力学是什么",
        "qwerty uiop",
        // Shares only the Latin bigram "df" with an article's "PDF".
        "asdfghjkl qwerty",
        "啊啊啊啊啊啊",
        "😀😀😀",
        "🙏",
        "",
    ];
    let mut failures = Vec::new();
    for q in queries {
        let reply = engine.ask(q).expect("asking never fails on the in-memory index");
        if reply.action == Action::Answer || reply.answer().is_some() {
            let top = reply.candidates.first().map_or("-", |c| c.id.as_str());
            failures.push(format!("{q:?} → answered {top} ({:.3})", reply.confidence));
        }
    }
    assert!(failures.is_empty(), "off-topic questions answered:\n  {}", failures.join("\n  "));
}

#[test]
fn empty_and_punctuation_only_queries_get_none() {
    let engine = engine();
    for q in ["", " ", "\t\n", "？？？", "。。。！！", "……", "~!@#$%^&*()", "😊👍", "【】《》"]
    {
        let reply = engine.ask(q).expect("asking never fails");
        assert_eq!(reply.action, Action::None, "{q:?}");
        assert!(reply.candidates.is_empty(), "{q:?}: {:?}", reply.candidates);
        assert_eq!(reply.confidence, 0.0, "{q:?}");
    }
}
