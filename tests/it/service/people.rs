//! Roles and people over a real server: every admin route serves an admin's session and
//! refuses a supervisor's and an agent's with 403 naming the role; an admin edits, resets and
//! disables accounts; an agent changes their own password and only their other sessions end;
//! a supervisor watches a conversation another agent holds, takes it over and reviews it, and
//! only the reviewed agent reads the review.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fixture::{config, Server, ADMIN_TOKEN};
use crate::hostile::routes::{valid_body, Access, ROUTES};

const PASSWORD: &str = "correct horse battery";

/// Creates an account with `role` (through the admin token) and logs it in: the session.
async fn person(server: &Server, id: &str, name: &str, role: &str) -> String {
    let body = json!({"id": id, "name": name, "password": PASSWORD, "skills": ["*"], "role": role});
    let (s, v) = server.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], role);
    login(server, id, PASSWORD).await
}

async fn login(server: &Server, id: &str, password: &str) -> String {
    let (s, v) = server.call("POST", "/agent/login", None, Some(json!({"id": id, "password": password}))).await;
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// A body for an admin route that the admin's call should get through with.
fn admin_body(method: &str, path: &str) -> Value {
    match (method, path) {
        // An unknown article: the gate let it through, the handler refused it (no file written).
        ("POST", "/admin/similar") => json!({"article": "no-such-article", "question": "咋退货"}),
        ("POST", "/admin/agents") => json!({"id": "newbie", "name": "新人", "password": "a fresh passphrase 1"}),
        ("POST", "/admin/agents/{id}") => json!({"max_concurrent": 3, "skills": ["售后"]}),
        _ => valid_body(method, path),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_serves_an_admin_and_refuses_other_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let agent = person(&server, "a1", "小王", "agent").await;
    let supervisor = person(&server, "sup", "周主管", "supervisor").await;
    let admin = person(&server, "boss", "陈经理", "admin").await;
    // The admin's calls act on this account (a reset ends its sessions, not a1's).
    person(&server, "target", "小赵", "agent").await;
    let mut checked = 0;
    for (method, path, _) in ROUTES.iter().filter(|(_, _, a)| *a == Access::Admin) {
        let url = path.replace("{id}", "target")
            + if path.starts_with("/admin/reports") { "?from=2026-01-01&to=2026-01-07" } else { "" };
        for (token, role) in [(&agent, "agent"), (&supervisor, "supervisor")] {
            let (s, v) = server.call(method, &url, Some(token), Some(admin_body(method, path))).await;
            assert_eq!((s, v["error"]["code"].as_str()), (403, Some("role_required")), "{method} {path} as {role}: {v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains("needs the admin role") && message.contains(&format!("the {role} role")), "{message}");
        }
        let (s, v) = server.call(method, &url, Some(&admin), Some(admin_body(method, path))).await;
        // No such article, webhook endpoint or delivery as "target": found and refused by name.
        let want = if *path == "/admin/similar" || path.starts_with("/admin/webhooks/") && path.contains("{id}") { 404 } else { 200 };
        assert_eq!(s, want, "{method} {path} as an admin: {v}");
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} admin routes");
    // The admin token keeps working beside the sessions, and the reports' parameters are not
    // even read for someone without the role.
    assert_eq!(server.call("GET", "/admin/agents", Some(ADMIN_TOKEN), None).await.0, 200);
    let (s, v) = server.call("GET", "/admin/reports", Some(&agent), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("role_required")));
    // An admin cannot lock themselves out.
    let (s, v) = server.call("POST", "/admin/agents/boss/disable", Some(&admin), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_agent")), "{v}");
    let (s, v) = server.call("POST", "/admin/agents/boss", Some(&admin), Some(json!({"role": "agent"}))).await;
    assert_eq!(s, 400, "{v}");
    // A role given by an admin takes effect on the next request, without a new login.
    let (_, target) = server.call("GET", "/admin/agents", Some(&admin), None).await;
    let target = target.as_array().unwrap().iter().find(|a| a["id"] == "target").unwrap().clone();
    assert_eq!((target["max_concurrent"].as_u64(), &target["skills"]), (Some(3), &json!(["售后"])), "the edit stuck: {target}");
    let (s, v) = server.call("POST", "/admin/agents/a1", Some(&admin), Some(json!({"role": "admin"}))).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
    assert_eq!(server.call("GET", "/admin/stats", Some(&agent), None).await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_resetting_and_changing_ones_own_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let admin = person(&server, "boss", "陈经理", "admin").await;
    let here = person(&server, "a1", "小王", "agent").await;
    let elsewhere = login(&server, "a1", PASSWORD).await;
    let mut here_ws = server.ws(&format!("/agent/ws?token={here}")).await;
    let mut elsewhere_ws = server.ws(&format!("/agent/ws?token={elsewhere}")).await;
    let change = |current: &str, new: &str| json!({"current": current, "new": new});
    let (s, v) = server.call("POST", "/agent/password", Some(&here), Some(change("not it at all", "a new passphrase 9"))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("wrong_password")), "{v}");
    let (s, v) = server.call("POST", "/agent/password", Some(&here), Some(change(PASSWORD, "short"))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_password")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("at least 8"), "{v}");
    let (s, v) = server.call("POST", "/agent/password", Some(&here), Some(change(PASSWORD, "woaini1314"))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("weak_password")), "{v}");
    let (s, v) = server.call("POST", "/agent/password", Some(&here), Some(change(PASSWORD, "a new passphrase 9"))).await;
    assert_eq!(s, 200, "{v}");
    assert!(elsewhere_ws.closes_within(Duration::from_secs(5)).await, "the other session's socket closes");
    assert_eq!(server.call("GET", "/agent/me", Some(&elsewhere), None).await.0, 401);
    assert!(!here_ws.closes_within(Duration::from_millis(300)).await, "this session's socket stays");
    assert_eq!(server.call("GET", "/agent/me", Some(&here), None).await.0, 200);
    let (s, _) = server.call("POST", "/agent/login", None, Some(json!({"id": "a1", "password": PASSWORD}))).await;
    assert_eq!(s, 401, "the old password is gone");

    // An admin's reset ends every session, the kept one too.
    let (s, v) = server.call("POST", "/admin/agents/a1/password", Some(&admin), Some(json!({"password": "12345678"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("weak_password")), "{v}");
    let (s, v) = server.call("POST", "/admin/agents/a1/password", Some(&admin), Some(json!({"password": "set by the admin 3"}))).await;
    assert_eq!(s, 200, "{v}");
    assert!(here_ws.closes_within(Duration::from_secs(5)).await, "a reset closes the socket");
    assert_eq!(server.call("GET", "/agent/me", Some(&here), None).await.0, 401);
    let again = login(&server, "a1", "set by the admin 3").await;

    // Disabled: the session ends, logins are refused; enabled: logins work again.
    let (s, v) = server.call("POST", "/admin/agents/a1/disable", Some(&admin), None).await;
    assert_eq!((s, v["disabled"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(server.call("GET", "/agent/me", Some(&again), None).await.0, 401);
    let (s, v) = server.call("POST", "/agent/login", None, Some(json!({"id": "a1", "password": "set by the admin 3"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("agent_disabled")), "{v}");
    assert_eq!(server.call("POST", "/admin/agents/a1/enable", Some(&admin), None).await.0, 200);
    login(&server, "a1", "set by the admin 3").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_takes_over_and_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let wang = server.agent("wang", "小王").await;
    let li = server.agent("li", "小李").await;
    let zhou = person(&server, "zhou", "周主管", "supervisor").await;
    let mut zhou_ws = server.ws(&format!("/agent/ws?token={zhou}")).await;
    let mut wang_ws = server.ws(&format!("/agent/ws?token={wang}")).await;
    let conv = server.visitor().await;
    server.say(&conv, "转人工").await;
    let (s, v) = server.call("POST", &format!("/agent/conversations/{}/claim", conv.0), Some(&wang), None).await;
    assert_eq!(s, 200, "{v}");

    // An agent does not supervise; the supervisor sees the conversation and who holds it.
    let (s, v) = server.call("GET", "/agent/supervision", Some(&li), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("role_required")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("supervisor role"), "{v}");
    let (s, v) = server.call("GET", "/agent/supervision", Some(&zhou), None).await;
    assert_eq!(s, 200, "{v}");
    let live = v.as_array().unwrap();
    assert_eq!(live.len(), 1, "{v}");
    assert_eq!((live[0]["conversation"].as_str(), live[0]["agent_name"].as_str(), live[0]["status"].as_str()), (Some(conv.0.as_str()), Some("小王"), Some("assigned")));
    // Live: the visitor's messages reach the supervisor's socket as they are written.
    server.say(&conv, "快递三天没动了").await;
    zhou_ws.until("the visitor's message", |e| e["type"] == "message" && e["message"]["text"] == "快递三天没动了").await;

    let takeover = format!("/agent/conversations/{}/takeover", conv.0);
    let (s, v) = server.call("POST", &takeover, Some(&li), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("role_required")), "{v}");
    let (s, v) = server.call("POST", &takeover, Some(&zhou), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["state"], json!({"kind": "with_agent", "agent": "zhou"}));
    let told = wang_ws.until("the takeover", |e| e["type"] == "taken_over").await;
    assert_eq!((told["from"].as_str(), told["by_name"].as_str()), (Some("wang"), Some("周主管")));
    let (s, seen) = server.call("GET", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), None).await;
    assert_eq!((s, seen["agent"].as_str()), (200, Some("周主管")), "the visitor sees the new agent's name: {seen}");
    assert!(seen["messages"].as_array().unwrap().iter().all(|m| !m["text"].as_str().unwrap().contains("接管了会话")), "the note is internal");
    let (_, view) = server.call("GET", &format!("/agent/conversations/{}", conv.0), Some(&zhou), None).await;
    let note = view["messages"].as_array().unwrap().iter().find(|m| m["internal"] == true && m["from"]["kind"] == "system").expect("a system note");
    assert!(note["text"].as_str().unwrap().contains("小王（wang）"), "{note}");
    let (s, _) = server.call("POST", &format!("/agent/conversations/{}/messages", conv.0), Some(&wang), Some(json!({"text": "我来"}))).await;
    assert_eq!(s, 403, "小王 no longer holds it");

    // Reviewed once resolved, on every criterion of the rubric; 小王 reads it, 小李 does not.
    let (s, rubric) = server.call("GET", "/agent/rubric", Some(&wang), None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = rubric["criteria"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["礼貌用语", "解决问题", "响应速度", "规范用语"]);
    let scores: Vec<Value> = names.iter().map(|n| json!({"criterion": n, "score": if *n == "解决问题" { 4 } else { 5 }, "comment": "好"})).collect();
    let review = json!({"conversation": conv.0, "agent": "wang", "scores": scores, "comment": "礼貌到位"});
    let (s, v) = server.call("POST", "/agent/reviews", Some(&zhou), Some(review.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("not_resolved")), "{v}");
    assert_eq!(server.call("POST", &format!("/agent/conversations/{}/resolve", conv.0), Some(&zhou), None).await.0, 204);
    let (s, v) = server.call("POST", "/agent/reviews", Some(&li), Some(review.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("role_required")), "{v}");
    let (s, v) = server.call("POST", "/agent/reviews", Some(&zhou), Some(json!({"conversation": conv.0, "agent": "li", "scores": []}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_review")), "{v}");
    let (s, v) = server.call("POST", "/agent/reviews", Some(&zhou), Some(review)).await;
    assert_eq!(s, 200, "{v}");
    // (25·5 + 40·4 + 20·5 + 15·5) / 500 × 100
    assert_eq!(v["total"].as_f64(), Some(92.0), "{v}");
    wang_ws.until("the review", |e| e["type"] == "reviewed" && e["agent"] == "wang").await;
    let (s, mine) = server.call("GET", "/agent/reviews", Some(&wang), None).await;
    assert_eq!(s, 200);
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!((mine[0]["total"].as_f64(), mine[0]["reviewer_name"].as_str()), (Some(92.0), Some("周主管")));
    assert_eq!(mine[0]["scores"][1]["criterion"], "解决问题");
    let (_, theirs) = server.call("GET", "/agent/reviews", Some(&li), None).await;
    assert_eq!(theirs, json!([]));
    let (s, _) = server.call("GET", "/agent/reviews?agent=wang", Some(&li), None).await;
    assert_eq!(s, 403, "an agent does not read another's reviews");
    let (s, all) = server.call("GET", "/agent/reviews?agent=wang", Some(&zhou), None).await;
    assert_eq!((s, all.as_array().unwrap().len()), (200, 1));
    server.stop().await;
}
