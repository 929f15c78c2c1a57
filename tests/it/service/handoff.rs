//! Handing a conversation to a human: queue, summary, claim, live chat, the silent bot,
//! resolve and rating; leave-a-message when nobody is on duty; automatic assignment.

use kefu::config::Assignment;
use serde_json::json;

use crate::fixture::{config, Server, ADMIN_TOKEN};

#[tokio::test]
async fn asking_for_a_human_queues_with_context_and_an_agent_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let mut agent_ws = server.ws(&format!("/agent/ws?token={agent}")).await;
    let conv = server.visitor().await;
    let mut visitor_ws = server.ws(&format!("/conversations/{}/ws?token={}", conv.0, conv.1)).await;

    server.say(&conv, "发票开错了怎么办").await;
    let v = server.say(&conv, "转人工").await;
    assert_eq!(v["state"], "queued", "{v}");
    assert_eq!(v["queue_position"], 1);

    // Every online agent hears of the handoff at once, with the context to act on it.
    let event = agent_ws.until("handoff alert", |e| e["type"] == "handoff").await;
    let h = &event["handoff"];
    assert_eq!(h["conversation"], conv.0.as_str());
    assert_eq!(h["reason"], "requested");
    assert_eq!(h["intent"], "human");
    assert_eq!(h["visitor"]["page"], "https://shop.example/cart");
    let transcript: Vec<&str> = h["transcript"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(transcript[0], "发票开错了怎么办");
    assert!(transcript.contains(&"转人工"));
    let candidates = h["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty(), "the bot's candidate articles travel with the handoff: {h}");
    assert!(candidates[0]["title"].is_string() && candidates[0]["confidence"].is_number());

    let (status, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    assert_eq!(status, 200);
    assert_eq!(queue[0]["conversation"], conv.0.as_str());
    assert!(queue[0]["waiting_ms"].is_number());

    let (status, claimed) = server.call("POST", &format!("/agent/conversations/{}/claim", conv.0), Some(&agent), None).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["conversation"]["state"]["kind"], "with_agent");
    let joined = visitor_ws.until("agent joined", |e| e["type"] == "state" && e["state"] == "with_agent").await;
    assert_eq!(joined["agent"], "小王");

    let (status, _) = server.call("POST", &format!("/agent/conversations/{}/messages", conv.0), Some(&agent), Some(json!({"text": "您好，我是小王，请提供订单号"}))).await;
    assert_eq!(status, 200);
    let m = visitor_ws.until("agent's message", |e| e["type"] == "message" && e["message"]["from"]["kind"] == "agent").await;
    assert_eq!(m["message"]["text"], "您好，我是小王，请提供订单号");
    assert_eq!(m["message"]["from"]["name"], "小王");

    // The bot stays silent while the agent owns the conversation, even for a question it knows.
    let v = server.say(&conv, "退货运费谁出").await;
    assert_eq!(v["replies"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["state"], "with_agent");
    let relayed = agent_ws.until("visitor message relayed", |e| e["type"] == "message" && e["message"]["text"] == "退货运费谁出").await;
    assert_eq!(relayed["conversation"], conv.0.as_str());

    // Internal notes stay internal.
    let (status, _) = server.call("POST", &format!("/agent/conversations/{}/notes", conv.0), Some(&agent), Some(json!({"text": "老客户，优先处理"}))).await;
    assert_eq!(status, 200);

    let (status, _) = server.call("POST", &format!("/agent/conversations/{}/resolve", conv.0), Some(&agent), None).await;
    assert_eq!(status, 204);
    visitor_ws.until("rating requested", |e| e["type"] == "state" && e["rating_requested"] == true).await;
    let (status, v) = server.call("POST", &format!("/conversations/{}/rating", conv.0), Some(&conv.1), Some(json!({"score": 5}))).await;
    assert_eq!(status, 204, "{v}");

    let (_, history) = server.call("GET", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), None).await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(!texts.contains(&"老客户，优先处理"), "a note leaked to the visitor: {texts:?}");
    let bot_after_claim = history["messages"].as_array().unwrap().iter().skip_while(|m| m["from"]["kind"] != "agent").any(|m| m["from"]["kind"] == "bot");
    assert!(!bot_after_claim, "the bot spoke while the agent owned the conversation");

    let (_, stats) = server.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!(stats["ratings"][4], 1, "{stats}");
    assert_eq!(stats["handoffs_by_reason"]["requested"], 1);
    server.stop().await;
}

#[tokio::test]
async fn nobody_online_means_a_leave_a_message_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    // The first start creates an agent, but it is away.
    let conv = server.visitor().await;
    let v = server.say(&conv, "人工客服").await;
    assert_eq!(v["state"], "leaving_message", "{v}");
    assert!(v["replies"][0]["text"].as_str().unwrap().contains("没有客服在线"));
    let v = server.say(&conv, "快递三天没动了，电话 13812345678").await;
    assert_eq!(v["state"], "bot", "{v}");
    assert!(v["replies"][0]["text"].as_str().unwrap().contains("13812345678"));
    let (status, tickets) = server.call("GET", "/admin/tickets", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    let t = &tickets[0];
    assert_eq!(t["contact"], "13812345678");
    assert_eq!(t["reason"], "requested");
    assert!(t["transcript"].as_array().unwrap().len() >= 3);
    server.stop().await;
}

#[tokio::test]
async fn a_complaint_jumps_the_queue_and_auto_assignment_picks_the_least_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.assignment = Assignment::Claim;
    let server = Server::start(c).await;
    let agent = server.agent("li", "小李").await;
    let calm = server.visitor().await;
    server.say(&calm, "转人工").await;
    let angry = server.visitor().await;
    let v = server.say(&angry, "什么垃圾服务，我要投诉！").await;
    assert_eq!(v["state"], "queued", "{v}");
    let (_, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    assert_eq!(queue[0]["conversation"], angry.0.as_str(), "the complaint goes first: {queue}");
    assert_eq!(queue[0]["priority"], "high");
    assert_eq!(queue[0]["reason"], "complaint");
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.assignment = Assignment::Auto;
    let server = Server::start(c).await;
    let a = server.agent("a", "甲").await;
    let b = server.agent("b", "乙").await;
    for _ in 0..2 {
        let conv = server.visitor().await;
        let v = server.say(&conv, "转人工").await;
        assert_eq!(v["state"], "with_agent", "{v}");
    }
    let (_, mine_a) = server.call("GET", "/agent/conversations", Some(&a), None).await;
    let (_, mine_b) = server.call("GET", "/agent/conversations", Some(&b), None).await;
    assert_eq!((mine_a.as_array().unwrap().len(), mine_b.as_array().unwrap().len()), (1, 1), "spread over both agents");
    server.stop().await;
}

#[tokio::test]
async fn transfer_and_return_to_the_bot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let a = server.agent("a", "甲").await;
    let b = server.agent("b", "乙").await;
    let conv = server.visitor().await;
    server.say(&conv, "转人工").await;
    let path = |what: &str| format!("/agent/conversations/{}/{what}", conv.0);
    assert_eq!(server.call("POST", &path("claim"), Some(&a), None).await.0, 200);
    // Only the owner may speak or transfer.
    assert_eq!(server.call("POST", &path("messages"), Some(&b), Some(json!({"text": "hi"}))).await.0, 403);
    assert_eq!(server.call("POST", &path("transfer"), Some(&a), Some(json!({"to": "b"}))).await.0, 204);
    assert_eq!(server.call("POST", &path("messages"), Some(&a), Some(json!({"text": "hi"}))).await.0, 403);
    assert_eq!(server.call("POST", &path("return"), Some(&b), None).await.0, 204);
    let v = server.say(&conv, "退货运费谁出").await;
    assert_eq!(v["replies"][0]["bot"]["kind"], "answer", "the bot is back: {v}");
    server.stop().await;
}

#[tokio::test]
async fn queued_visitors_hear_their_position_move_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let mut queued = Vec::new();
    for expected in 1..=3 {
        let conv = server.visitor().await;
        let v = server.say(&conv, "转人工").await;
        assert_eq!(v["queue_position"], expected, "{v}");
        queued.push(conv);
    }
    let mut third_ws = server.ws(&format!("/conversations/{}/ws?token={}", queued[2].0, queued[2].1)).await;
    third_ws.until("its place on connecting", |e| e["type"] == "state" && e["queue_position"] == 3).await;

    // The first is taken: the two behind move up, and say so without asking.
    let (status, _) = server.call("POST", &format!("/agent/conversations/{}/claim", queued[0].0), Some(&agent), None).await;
    assert_eq!(status, 200);
    third_ws.until("moved up to 2", |e| e["type"] == "state" && e["queue_position"] == 2).await;
    let (_, view) = server.call("GET", &format!("/conversations/{}", queued[1].0), Some(&queued[1].1), None).await;
    assert_eq!(view["queue_position"], 1, "{view}");

    // A fourth joins behind them: nobody ahead of it moves.
    let fourth = server.visitor().await;
    assert_eq!(server.say(&fourth, "转人工").await["queue_position"], 3);
    let (_, view) = server.call("GET", &format!("/conversations/{}", queued[2].0), Some(&queued[2].1), None).await;
    assert_eq!(view["queue_position"], 2, "{view}");
}
