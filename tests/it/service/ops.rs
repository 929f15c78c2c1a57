//! The service team's side over a real server: presence (a closed console, the grace, the
//! queue offered leave-a-message, the wait estimate) and history (search, errors, CSV).

use std::time::Instant;

use serde_json::json;

use crate::fixture::{config, Server};

#[tokio::test]
async fn a_closed_console_sends_the_agent_away_and_the_queue_is_offered_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.presence.away_grace_secs = 1;
    let server = Server::start(c).await;
    let agent = server.agent("wang", "小王").await;
    let console = server.ws(&format!("/agent/ws?token={agent}")).await;
    let conv = server.visitor().await;
    let mut visitor_ws = server.ws(&format!("/conversations/{}/ws?token={}", conv.0, conv.1)).await;
    let v = server.say(&conv, "转人工").await;
    assert_eq!((v["state"].as_str(), v["queue_position"].as_u64()), (Some("queued"), Some(1)), "{v}");
    // Nobody has been taken from the queue yet: the configured pace, 120 s a visitor.
    assert_eq!(v["estimated_wait_ms"], 120_000, "{v}");

    let closed = Instant::now();
    drop(console);
    let offered = visitor_ws.until("leave-a-message offered", |e| e["type"] == "state" && e["state"] == "leaving_message").await;
    assert!(closed.elapsed().as_millis() >= 1000, "not before the grace: {:?}", closed.elapsed());
    assert!(offered.get("queue_position").is_none(), "{offered}");
    let (_, me) = server.call("GET", "/agent/me", Some(&agent), None).await;
    assert_eq!(me["status"], "away", "{me}");
    let (_, queue) = server.call("GET", "/agent/queue", Some(&agent), None).await;
    assert_eq!(queue, json!([]));
    // The widget's form then leaves the message as a ticket.
    let (status, t) = server
        .call("POST", &format!("/conversations/{}/ticket", conv.0), Some(&conv.1), Some(json!({"contact": "13800138000", "message": "请回电"})))
        .await;
    assert_eq!(status, 201, "{t}");
    server.stop().await;
}

#[tokio::test]
async fn history_is_searched_exported_and_bad_queries_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let one = server.visitor().await;
    server.say(&one, "退货运费谁出？").await;
    let two = server.visitor().await;
    server.say(&two, "我的洗衣機漏水了").await;

    let (status, page) = server.call("GET", "/agent/history?q=洗衣机", Some(&agent), None).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [two.0.as_str()]);
    assert_eq!(page["conversations"][0]["first_question"], "我的洗衣機漏水了");
    let (_, all) = server.call("GET", "/agent/history?limit=1", Some(&agent), None).await;
    let next = all["next"].as_str().expect("a next page").to_string();
    let (_, rest) = server.call("GET", &format!("/agent/history?limit=1&before={next}"), Some(&agent), None).await;
    assert_eq!(rest["conversations"][0]["id"], one.0.as_str(), "{rest}");

    // Without a token the answer is 401, whatever the query says.
    let (status, _) = server.call("GET", "/agent/history?nonsense=1", None, None).await;
    assert_eq!(status, 401);
    let (status, e) = server.call("GET", "/agent/history?nonsense=1", Some(&agent), None).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("nonsense"), "{e}");
    let (status, e) = server.call("GET", "/agent/history?from=2026-13-01", Some(&agent), None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_history_query")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("2026-13-01"), "{e}");
    let (status, e) = server.call("GET", &format!("/agent/history/{}", "nope"), Some(&agent), None).await;
    assert_eq!(status, 404, "{e}");
    let (status, view) = server.call("GET", &format!("/agent/history/{}", one.0), Some(&agent), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["summary"]["bot_answered"], true, "{view}");

    let resp = server.http.get(server.url("/agent/history.csv?q=退货")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("kefu-history.csv"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with(&one.0) && lines[1].contains("退货运费谁出？"), "{}", lines[1]);
    server.stop().await;
}
