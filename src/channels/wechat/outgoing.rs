//! What kefu's texts become on WeChat: rendered from Markdown for the app's kind, cut into
//! messages within WeChat's length limit, and a bot answer fitted into the user's message
//! quota. Pure: the channel (`mod.rs`) stores and sends what this decides.

use super::config::Kind;
use super::store::{Reply, QUOTA};
use crate::channels::render::{self, Channel, WECHAT_MAX_TEXT_BYTES};

/// Ends an answer that needs more messages than the quota lets kefu send. The rest is left
/// out rather than held: held messages wait for the user's next message, and would then
/// arrive, out of context, before the answer to it.
pub const CUT_NOTICE: &str = "（内容较长，未能全部发送。如需完整说明，请回复「转人工」。）";

/// The rendering for an app's kind.
pub fn channel(kind: Kind) -> Channel {
    match kind {
        Kind::OfficialAccount => Channel::WeChatOfficialAccount,
        Kind::MiniProgram => Channel::WeChatMiniProgram,
    }
}

/// A text (an agent's reply, a notice) as the messages to send, all of them: what exceeds the
/// quota is held until the user writes again, as before.
pub fn messages(text: &str, kind: Kind) -> Vec<String> {
    render::messages(text, channel(kind))
}

/// A bot answer given passively: the first message in the reply, and the rest to send through
/// the message API after it. The rest may use the whole quota (the user has just written, so
/// their window is new); beyond it the answer is cut with `CUT_NOTICE`.
pub fn passive(reply: Reply, kind: Kind) -> (Reply, Vec<String>) {
    let Reply::Text(text) = reply else { return (reply, Vec::new()) };
    let mut parts = fit(messages(&text, kind), 1 + QUOTA as usize).into_iter();
    match parts.next() {
        Some(first) => (Reply::Text(first), parts.collect()),
        // Markdown that renders to nothing (only a comment): nothing to say.
        None => (Reply::Nothing, Vec::new()),
    }
}

/// A bot answer sent through the message API (it missed the reply budget): each reply's
/// messages in order, within the quota.
pub fn later(texts: &[String], kind: Kind) -> Vec<String> {
    fit(texts.iter().flat_map(|t| messages(t, kind)).collect(), QUOTA as usize)
}

/// At most `max` messages; a longer answer's last message ends with `CUT_NOTICE` (or is it,
/// when the two would not fit in one message).
fn fit(mut parts: Vec<String>, max: usize) -> Vec<String> {
    if parts.len() <= max {
        return parts;
    }
    tracing::warn!(messages = parts.len(), max, "an answer needs more WeChat messages than the quota allows; it is cut");
    parts.truncate(max);
    if let Some(last) = parts.last_mut() {
        let with = format!("{last}\n\n{CUT_NOTICE}");
        *last = if with.len() <= WECHAT_MAX_TEXT_BYTES { with } else { CUT_NOTICE.to_string() };
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of `n` paragraphs that each fill most of a message.
    fn long_answer(n: usize) -> String {
        (1..=n).map(|i| format!("**第{i}步**：{}", "请在订单详情页点击申请售后，填写原因并上传照片。".repeat(25))).collect::<Vec<_>>().join("\n\n")
    }

    #[test]
    fn a_passive_answer_is_its_first_message_and_the_rest_follow() {
        let (reply, rest) = passive(Reply::Text(long_answer(3)), Kind::OfficialAccount);
        let Reply::Text(first) = reply else { panic!("{reply:?}") };
        assert!(first.starts_with("第1步：") && !first.contains("**"), "{first}");
        assert_eq!(rest.len(), 2);
        assert!(rest[0].starts_with("第2步") && rest[1].starts_with("第3步"));
        // Short answers, transfers and silence are as they were.
        assert_eq!(passive(Reply::Text("**好的**".into()), Kind::MiniProgram), (Reply::Text("好的".into()), vec![]));
        assert_eq!(passive(Reply::Transfer(None), Kind::OfficialAccount), (Reply::Transfer(None), vec![]));
        assert_eq!(passive(Reply::Text("<!-- 空 -->".into()), Kind::OfficialAccount), (Reply::Nothing, vec![]));
    }

    #[test]
    fn an_answer_beyond_the_quota_is_cut_with_a_notice() {
        let (reply, rest) = passive(Reply::Text(long_answer(9)), Kind::OfficialAccount);
        assert!(matches!(reply, Reply::Text(_)));
        assert_eq!(rest.len(), QUOTA as usize, "one passive reply and the whole quota");
        let last = rest.last().unwrap();
        assert!(last.ends_with(CUT_NOTICE), "{last}");
        assert!(last.len() <= WECHAT_MAX_TEXT_BYTES);
        // Through the API the quota is all there is; each reply's messages in order.
        let texts = vec!["**稍等**".to_string(), long_answer(9)];
        let sent = later(&texts, Kind::MiniProgram);
        assert_eq!(sent.len(), QUOTA as usize);
        assert_eq!(sent[0], "稍等");
        assert!(sent[4].ends_with(CUT_NOTICE));
        assert_eq!(later(&["一".into(), "二".into()], Kind::OfficialAccount), ["一", "二"]);
    }

    #[test]
    fn the_notice_replaces_a_full_last_message() {
        let full = "退".repeat(WECHAT_MAX_TEXT_BYTES / 3);
        let parts = fit(vec![full.clone(), full.clone(), full], 2);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], CUT_NOTICE);
    }
}
