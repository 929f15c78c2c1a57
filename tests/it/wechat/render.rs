//! WeChat users get answers and agents' replies as WeChat text, not Markdown: marks gone,
//! lists as lines, links as WeChat's `<a href>`, a long answer in several messages within
//! WeChat's length limit, the first in the passive reply and the rest through the API.

use kefu::channels::render::{self, WECHAT_MAX_TEXT_BYTES};
use serde_json::json;

use super::mock::*;
use super::pushes::widget_answer;
use crate::fixture::{self, Server};

#[tokio::test]
async fn an_answer_with_markdown_arrives_as_clean_text() {
    let (_dir, server, api) = start().await;
    let question = "账号被盗了怎么办";
    let markdown = widget_answer(&server, question).await;
    assert!(markdown.contains("**") && markdown.contains("\n1. "), "the shipped article has bold and a list: {markdown}");
    let r = push(&server, "mp", &text_xml("oUser-md", 30001, question)).await;
    let content = r.field("Content").unwrap();
    assert!(!content.contains("**"), "{content}");
    assert!(content.contains("\n1. ") && content.contains("\n3. "), "the list is numbered lines: {content}");
    assert!(content.contains("修改登录密码和支付密码"), "{content}");
    assert_eq!(content, on_wechat(&markdown, MP));
    // The same through the message API, when the answer misses the reply budget.
    push(&server, "slow", &text_xml("oUser-md-slow", 30002, question)).await;
    assert_eq!(api.wait_texts("oUser-md-slow", 1).await, vec![content]);
    server.stop().await;
}

#[tokio::test]
async fn an_agents_markdown_reply_arrives_as_text_with_a_wechat_link() {
    let (_dir, server, api) = start().await;
    let agent = server.agent("li", "小李").await;
    push(&server, "mp", &text_xml("oUser-agent-md", 31001, "转人工")).await;
    let (_, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    let conv = queue[0]["conversation"].as_str().unwrap().to_string();
    let (status, _) = server.call("POST", &format!("/agent/conversations/{conv}/claim"), Some(&agent), None).await;
    assert_eq!(status, 200);
    let text = "您好，**退货地址**已更新，详见 [售后说明](https://shop.example.com/after-sale?from=wx)：\n- 保留原包装\n- 附上 `订单号`";
    let (status, v) = server.call("POST", &format!("/agent/conversations/{conv}/messages"), Some(&agent), Some(json!({ "text": text }))).await;
    assert_eq!(status, 200, "{v}");
    let texts = api.wait_texts("oUser-agent-md", 2).await;
    assert_eq!(
        texts[1],
        "您好，退货地址已更新，详见 <a href=\"https://shop.example.com/after-sale?from=wx\">售后说明</a>：\n• 保留原包装\n• 附上 订单号"
    );
    // The agent's console keeps the Markdown as written.
    let (_, view) = server.call("GET", &format!("/agent/conversations/{conv}"), Some(&agent), None).await;
    assert!(view["messages"].as_array().unwrap().iter().any(|m| m["text"] == text), "{view}");
    server.stop().await;
}

const LINK: &str = "<a href=\"https://shop.example.com/trade-in?from=wechat\">以旧换新专区</a>";

/// An article far longer than one WeChat message: headings, bold, a list, a link.
fn long_article() -> String {
    let mut body = String::from(
        "## 以旧换新活动规则\n\n参加 **以旧换新** 前，请先阅读以下规则。活动入口：[以旧换新专区](https://shop.example.com/trade-in?from=wechat)。\n\n### 一、参与条件\n1. 旧机需能正常开机，**无进水、无拆修**；\n2. 每个账号每月最多参加 **2 次**；\n3. 新机需在活动页下单，普通订单不能补参加。\n",
    );
    let sections = ["二、估价", "三、回收方式", "四、补贴发放", "五、常见问题", "六、注意事项", "七、售后说明"];
    for (i, title) in sections.iter().enumerate() {
        body.push_str(&format!("\n### {title}\n\n"));
        for j in 1..=3 {
            body.push_str(&format!(
                "第{}条：旧机估价以质检结果为准，质检时会检查外观、屏幕、电池健康度和功能，{}如对质检结果有异议，可以在收到报告后七天内申请复检，复检结果为最终结果。\n\n",
                i * 3 + j,
                "质检员会拍照留存每一项检查的结果，报告在订单详情里可以查看；".repeat(2)
            ));
        }
    }
    format!(
        "+++\nid = \"trade-in-rules\"\ntitle = \"以旧换新活动的完整规则是什么？\"\nsimilar = [\"以旧换新怎么参加\", \"旧手机可以换新的吗\", \"以旧换新的规则有哪些\", \"旧机回收换新怎么算钱\"]\ntags = [\"以旧换新\"]\nkeywords = [\"以旧换新\"]\n+++\n{body}"
    )
}

#[tokio::test]
async fn a_long_answer_comes_in_several_messages_passive_first_then_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = dir.path().join("knowledge");
    fixture::copy_dir(&fixture::knowledge_dir(), &knowledge);
    fixture::write(&knowledge.join("售后保修"), "trade-in-rules.md", &long_article());
    let (base, api) = start_api().await;
    let mut config = config(&dir.path().join("data"), &base);
    config.knowledge = knowledge;
    let server = Server::start(config).await;

    let question = "以旧换新活动的完整规则是什么？";
    let markdown = widget_answer(&server, question).await;
    assert!(markdown.contains("### 三、回收方式"), "the widget gets the article: {markdown}");
    let expected = render::messages(&markdown, MP);
    assert!((3..=6).contains(&expected.len()), "{} bytes of Markdown in {} messages", markdown.len(), expected.len());

    let xml = text_xml("oUser-long", 32001, question);
    let r = push(&server, "mp", &xml).await;
    let first = r.field("Content").unwrap();
    assert_eq!(first, expected[0]);
    assert!(first.starts_with("以旧换新活动规则\n\n参加 以旧换新 前") && first.contains(LINK), "{first}");
    let rest = api.wait_texts("oUser-long", expected.len() - 1).await;
    assert_eq!(rest, expected[1..], "the rest in order, through the API");
    let all: Vec<&String> = std::iter::once(&first).chain(&rest).collect();
    for part in &all {
        assert!(part.len() <= WECHAT_MAX_TEXT_BYTES, "{} bytes", part.len());
        assert!(!part.contains("**") && !part.contains("##"), "{part}");
        assert!(part.ends_with('。') || part.ends_with('；'), "cut inside a sentence: …{}", part.chars().rev().take(20).collect::<String>());
    }
    // Nothing lost: the messages hold the whole text.
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let whole = render::wechat_text(&markdown, MP).text;
    assert_eq!(squeeze(&all.iter().map(|p| p.as_str()).collect::<String>()), squeeze(&whole));

    // WeChat retries the delivery (our response was lost): the same first part, and the rest
    // is not sent again.
    let again = push(&server, "mp", &xml).await;
    assert_eq!(again.field("Content").as_deref(), Some(first.as_str()));
    settle_outbox(&server, 0).await;
    assert_eq!(api.texts_to("oUser-long").len(), expected.len() - 1, "{:?}", api.texts_to("oUser-long"));
    server.stop().await;
}
