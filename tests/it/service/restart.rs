//! A restart keeps history, the queue and who owns what; reloads keep conversations.

use serde_json::json;

use crate::fixture::{config, copy_dir, Server, ADMIN_TOKEN};

#[tokio::test]
async fn a_restart_keeps_history_queue_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let waiting = server.visitor().await;
    server.say(&waiting, "怎么开发票").await;
    server.say(&waiting, "转人工").await;
    let served = server.visitor().await;
    server.say(&served, "我要投诉").await;
    server.call("POST", &format!("/agent/conversations/{}/claim", served.0), Some(&agent), None).await;
    server.stop().await;

    let server = Server::start(config(dir.path())).await;
    let (status, h) = server.call("GET", &format!("/conversations/{}/messages", waiting.0), Some(&waiting.1), None).await;
    assert_eq!(status, 200, "the visitor's token still works");
    assert_eq!(h["messages"].as_array().unwrap().len(), 4);
    assert_eq!(h["state"], "queued");
    assert_eq!(h["queue_position"], 1);
    // The agent's session survives too, and the queue and ownership are as they were.
    let (status, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    assert_eq!(status, 200);
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert_eq!(queue[0]["conversation"], waiting.0.as_str());
    let (_, mine) = server.call("GET", "/agent/conversations", Some(&agent), None).await;
    assert_eq!(mine[0]["conversation"], served.0.as_str());
    let (status, _) = server.call("POST", &format!("/agent/conversations/{}/messages", served.0), Some(&agent), Some(json!({"text": "我还在"}))).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn reloading_knowledge_keeps_conversations_and_learns_a_new_question() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the knowledge, so adding a question does not touch the shipped files.
    let kb = dir.path().join("kb");
    copy_dir(&crate::fixture::repo().join("knowledge"), &kb);
    let mut c = config(&dir.path().join("data"));
    c.knowledge = kb.clone();
    let server = Server::start(c).await;
    let conv = server.visitor().await;
    let q = "我买的锅盖子裂了能寄回去吗";
    let v = server.say(&conv, q).await;
    let before = v["replies"][0]["bot"].clone();
    let (status, unanswered) = server.call("GET", "/admin/unanswered", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    let (status, v) = server.call("POST", "/admin/similar", Some(ADMIN_TOKEN), Some(json!({"article": "quality-issue", "question": q}))).await;
    assert_eq!(status, 200, "{v}");
    let v = server.say(&conv, q).await;
    assert_eq!(v["replies"][0]["bot"]["article"], "quality-issue", "before: {before}, unanswered: {unanswered}, after: {v}");
    assert_eq!(v["message"]["seq"].as_u64().unwrap(), 3, "the conversation carried on");
    assert!(std::fs::read_to_string(kb.join("售后保修/quality-issue.md")).unwrap().contains(q));

    // A broken edit is refused and the old knowledge keeps serving.
    std::fs::write(kb.join("订单/broken.md"), "+++\nid = \"broken\"\n").unwrap();
    let (status, v) = server.call("POST", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("broken.md"), "{v}");
    let v = server.say(&conv, "退货运费谁出").await;
    assert_eq!(v["replies"][0]["bot"]["kind"], "answer");
    server.stop().await;
}

#[tokio::test]
async fn edited_intents_are_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let intents = dir.path().join("intents");
    copy_dir(&crate::fixture::repo().join("intents"), &intents);
    let mut c = config(&dir.path().join("data"));
    c.intents = intents.clone();
    c.watch_interval_ms = 200;
    let server = Server::start(c).await;
    let conv = server.visitor().await;
    let v = server.say(&conv, "营业时间是几点").await;
    assert_ne!(v["replies"][0]["bot"]["intent"], "hours", "{v}");
    std::fs::write(
        intents.join("hours.toml"),
        "name = \"hours\"\npatterns = ['营业时间']\n[action]\nkind = \"reply\"\ntext = \"客服时间：每天 9:00–21:00。\"\n",
    )
    .unwrap();
    let mut picked_up = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let v = server.say(&conv, "营业时间是几点").await;
        if v["replies"][0]["bot"]["intent"] == "hours" {
            picked_up = true;
            break;
        }
    }
    assert!(picked_up, "the new intent was not loaded within 10 s");
    let (_, h) = server.call("GET", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), None).await;
    assert!(h["messages"].as_array().unwrap().len() >= 4, "the conversation went on across the reload");
    server.stop().await;
}

#[tokio::test]
async fn probes_metrics_and_cors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.allowed_origins = vec!["https://shop.example".into()];
    let server = Server::start(c).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(server.http.get(format!("{base}/healthz")).send().await.unwrap().text().await.unwrap(), "ok");
    let ready: serde_json::Value = server.http.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["knowledge"]["articles"].as_u64().unwrap() >= 60);
    let conv = server.visitor().await;
    server.say(&conv, "怎么退货").await;
    let metrics = server.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kefu_visitor_messages_total 1"), "{metrics}");
    assert!(metrics.contains("# TYPE kefu_websockets gauge"));

    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/conversations"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert_eq!(allowed.headers().get("access-control-allow-origin").unwrap(), "https://shop.example");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}
