//! A ticket about a WeChat user's conversation: its reply goes out through the WeChat
//! outbox (the message API), and once the user has unsubscribed it can only be recorded as
//! a call or an e-mail.

use serde_json::json;

use super::mock::*;

#[tokio::test]
async fn a_ticket_reply_reaches_wechat_until_the_user_unsubscribes() {
    let (_dir, server, api) = start().await;
    let agent = server.agent("wang", "小王").await;
    push(&server, "mp", &text_xml("oUser-ticket", 7001, "转人工")).await;
    let (_, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    let conv = queue[0]["conversation"].as_str().unwrap().to_string();
    // The agent takes the matter offline as a ticket and gives the conversation back.
    server.call("POST", &format!("/agent/conversations/{conv}/claim"), Some(&agent), None).await;
    let (status, t) = server.call("POST", "/agent/tickets", Some(&agent), Some(json!({"conversation": conv, "message": "退款未到账，需要财务核实"}))).await;
    assert_eq!(status, 200, "{t}");
    let path = format!("/agent/tickets/{}", t["id"]);
    let (status, _) = server.call("POST", &format!("/agent/conversations/{conv}/return"), Some(&agent), None).await;
    assert_eq!(status, 204);
    // The joining and the leaving notices go out first.
    let notices = api.wait_texts("oUser-ticket", 2).await;
    assert!(notices[1].contains("离开"), "{notices:?}");
    let (status, t) = server.call("POST", &format!("{path}/replies"), Some(&agent), Some(json!({"text": "财务已核实，退款今天到账"}))).await;
    assert_eq!(status, 200, "{t}");
    let texts = api.wait_texts("oUser-ticket", 3).await;
    assert_eq!(texts.last().unwrap(), "财务已核实，退款今天到账");

    push(&server, "mp", &event_xml("oUser-ticket", "unsubscribe")).await;
    let (_, view) = server.call("GET", &path, Some(&agent), None).await;
    assert_eq!(view["reachable"], false);
    let (status, e) = server.call("POST", &format!("{path}/replies"), Some(&agent), Some(json!({"text": "还在吗"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("unreachable")), "{e}");
    let (status, t) = server.call("POST", &format!("{path}/replies"), Some(&agent), Some(json!({"text": "已致电告知退款到账", "via": "phone"}))).await;
    assert_eq!(status, 200, "{t}");
    let vias: Vec<&str> = t["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "reply").map(|e| e["via"].as_str().unwrap()).collect();
    assert_eq!(vias, ["channel", "phone"]);
    server.stop().await;
}
