//! Tickets (工单) over HTTP: a left message announced to agents, worked through its
//! lifecycle with each change in its history, replies reaching the visitor's widget socket,
//! refused moves with their codes, the complaint flow, and an SLA breach on a fast clock.

use serde_json::{json, Value};

use crate::fixture::{config, Server};

fn kinds(t: &Value) -> Vec<String> {
    t["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_left_message_is_announced_worked_and_answered_in_the_widget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let mut agent_ws = server.ws(&format!("/agent/ws?token={agent}")).await;
    let conv = server.visitor().await;
    let mut visitor_ws = server.ws(&format!("/conversations/{}/ws?token={}", conv.0, conv.1)).await;
    let (status, left) = server.call("POST", &format!("/conversations/{}/ticket", conv.0), Some(&conv.1), Some(json!({"contact": "13800138000", "message": "热水器不出热水"}))).await;
    assert_eq!(status, 201, "{left}");
    let event = agent_ws.until("new ticket", |e| e["type"] == "ticket" && e["created"] == true).await;
    let id = event["ticket"]["id"].as_u64().unwrap();
    assert_eq!(event["ticket"]["message"], "热水器不出热水");
    assert_eq!(event["ticket"]["status"], "new");

    let path = format!("/agent/tickets/{id}");
    let (status, _) = server.call("GET", &path, None, None).await;
    assert_eq!(status, 401);
    let (status, e) = server.call("PATCH", &path, Some(&agent), Some(json!({"status": "closed"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invalid_transition")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("from new it can become open, pending_customer, resolved"), "{e}");
    let (status, e) = server.call("PATCH", &path, Some(&agent), Some(json!({"priority": "asap"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_ticket")), "{e}");
    let (status, e) = server.call("PATCH", &path, Some(&agent), Some(json!({"colour": "red"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_json")), "{e}");
    let (status, e) = server.call("GET", "/agent/tickets/999999", Some(&agent), None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("ticket_not_found")), "{e}");

    let (status, t) = server.call("PATCH", &path, Some(&agent), Some(json!({"assignee": "wang", "priority": "high", "tags": ["热水器", "上门"]}))).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["sla"]["first_response_due_ms"].as_u64().unwrap() - t["created_ms"].as_u64().unwrap(), 3_600_000, "high: one business hour, open around the clock");
    let (status, t) = server.call("POST", &format!("{path}/replies"), Some(&agent), Some(json!({"text": "您好，师傅今天下午到"}))).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "open");
    let m = visitor_ws.until("the reply", |e| e["type"] == "message" && e["message"]["from"]["kind"] == "agent").await;
    assert_eq!(m["message"]["text"], "您好，师傅今天下午到");
    let reply = t["history"].as_array().unwrap().iter().find(|e| e["kind"] == "reply").unwrap().clone();
    assert_eq!((reply["via"].as_str(), reply["seq"].as_u64(), reply["by"].as_str()), (Some("channel"), m["message"]["seq"].as_u64(), Some("wang")));
    let (status, _) = server.call("POST", &format!("{path}/notes"), Some(&agent), Some(json!({"text": "客户下午在家"}))).await;
    assert_eq!(status, 200);
    for s in ["pending_customer", "open", "resolved", "closed"] {
        let (status, t) = server.call("PATCH", &path, Some(&agent), Some(json!({"status": s}))).await;
        assert_eq!(status, 200, "{s}: {t}");
    }
    let (_, t) = server.call("GET", &path, Some(&agent), None).await;
    assert_eq!(kinds(&t), ["created", "priority", "tags", "assignee", "reply", "status", "note", "status", "status", "status", "status"]);
    let (status, e) = server.call("POST", &format!("{path}/notes"), Some(&agent), Some(json!({"text": "再补充"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invalid_transition")), "{e}");
    let (_, found) = server.call("GET", &format!("/agent/tickets?q={}&status=closed", "%E4%B8%8B%E5%8D%88"), Some(&agent), None).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "found by the note's words: {found}");
    assert!(found[0].get("history").is_none(), "lists carry summaries");
    let (_, none) = server.call("GET", "/agent/tickets?assignee=none", Some(&agent), None).await;
    assert_eq!(none.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_complaint_made_from_a_conversation_is_resolved_only_after_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let conv = server.visitor().await;
    server.say(&conv, "你们的快递员把包裹扔在门口").await;
    let body = json!({"conversation": conv.0, "message": "快递员服务态度差", "category": "投诉", "priority": "urgent"});
    let (status, t) = server.call("POST", "/agent/tickets", Some(&agent), Some(body)).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["complaint"].as_bool(), t["assignee"].as_str(), t["source"].as_str()), (Some(true), Some("wang"), Some("agent")));
    assert_eq!(t["transcript"][0]["text"], "你们的快递员把包裹扔在门口");
    let path = format!("/agent/tickets/{}", t["id"]);
    let (status, e) = server.call("PATCH", &path, Some(&agent), Some(json!({"status": "resolved"}))).await;
    assert_eq!(status, 409);
    assert!(e["error"]["message"].as_str().unwrap().contains("反馈"), "{e}");
    let (status, e) = server.call("PATCH", &path, Some(&agent), Some(json!({"complaint_step": "调查"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invalid_transition")), "受理 first: {e}");
    for step in ["受理", "调查", "协商", "反馈"] {
        let (status, t) = server.call("PATCH", &path, Some(&agent), Some(json!({"complaint_step": step}))).await;
        assert_eq!(status, 200, "{step}: {t}");
    }
    let (status, t) = server.call("PATCH", &path, Some(&agent), Some(json!({"status": "resolved"}))).await;
    assert_eq!(status, 200, "{t}");
    let steps: Vec<(&str, &str)> = t["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "complaint").map(|e| (e["step"].as_str().unwrap(), e["by"].as_str().unwrap())).collect();
    assert_eq!(steps, [("accept", "wang"), ("investigate", "wang"), ("negotiate", "wang"), ("feedback", "wang")]);
    let (status, e) = server.call("POST", "/agent/tickets", Some(&agent), Some(json!({"conversation": "nope", "message": "x"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("conversation_not_found")), "{e}");
}

#[tokio::test]
async fn on_a_fast_clock_the_server_records_the_breach_and_reports_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // 3600×: the urgent first response (30 business minutes) is due half a second after the ticket.
    c.sla_clock_speed = 3600.0;
    let server = Server::start(c).await;
    let agent = server.agent("wang", "小王").await;
    let mut agent_ws = server.ws(&format!("/agent/ws?token={agent}")).await;
    let conv = server.visitor().await;
    let body = json!({"conversation": conv.0, "message": "订单一直没发货", "priority": "urgent"});
    let (status, t) = server.call("POST", "/agent/tickets", Some(&agent), Some(body)).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["sla"]["first_response_due_ms"].as_u64().unwrap() - t["created_ms"].as_u64().unwrap(), 500);
    // The SLA watch wakes at the due time and announces the breach.
    let e = agent_ws.until("the breach", |e| e["type"] == "ticket" && e["ticket"]["sla"]["first_response_breached"] == true).await;
    assert_eq!(e["ticket"]["breached"], true);
    let (_, t) = server.call("GET", &format!("/agent/tickets/{}", t["id"]), Some(&agent), None).await;
    let breach = t["history"].as_array().unwrap().iter().find(|e| e["kind"] == "breach").unwrap().clone();
    assert_eq!((breach["by"].as_str(), breach["clock"].as_str()), (Some("system"), Some("first_response")));
    let (_, breached) = server.call("GET", "/agent/tickets?breached=true", Some(&agent), None).await;
    assert_eq!(breached.as_array().unwrap().len(), 1);
    let today = kefu::service::reports::date_of((kefu::service::now_ms() / 86_400_000) as i64);
    let (status, r) = server.call("GET", &format!("/admin/reports?from={today}&to={today}&utc_offset_minutes=0"), Some(crate::fixture::ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["team"]["sla_breaches"], 1, "{}", r["team"]);
    let wang = r["agents"].as_array().unwrap().iter().find(|a| a["agent"] == "wang").unwrap();
    assert_eq!(wang["sla_breaches"], 1);
}
