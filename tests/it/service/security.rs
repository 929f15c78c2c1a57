//! Tokens, other visitors' conversations, signed identities, limits and the error shape.

use serde_json::{json, Value};

use crate::fixture::{config, Server, ADMIN_TOKEN};

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn tokens_are_required_and_one_visitor_cannot_touch_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let alice = server.visitor().await;
    let bob = server.visitor().await;
    server.say(&alice, "怎么退货").await;
    for (method, path, body) in [
        ("GET", format!("/conversations/{}/messages", alice.0), None),
        ("POST", format!("/conversations/{}/messages", alice.0), Some(json!({"text": "偷看"}))),
        ("GET", format!("/conversations/{}", alice.0), None),
    ] {
        let (status, v) = server.call(method, &path, Some(&bob.1), body.clone()).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_error(&v, "unauthorized");
        let (status, _) = server.call(method, &path, None, body).await;
        assert_eq!(status, 401);
    }
    let ws = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/conversations/{}/ws?token={}", server.addr, alice.0, bob.1)).await;
    assert!(ws.is_err(), "a WebSocket with another visitor's token is refused");

    for path in ["/agent/queue", "/agent/me", "/admin/stats", "/admin/tickets", "/admin/unanswered", "/admin/agents"] {
        let (status, v) = server.call("GET", path, None, None).await;
        assert_eq!(status, 401, "{path}");
        assert_error(&v, "unauthorized");
        let (status, _) = server.call("GET", path, Some(&alice.1), None).await;
        assert_eq!(status, 401, "{path} with a visitor token");
    }
    let (status, _) = server.call("POST", "/admin/reload", Some("wrong"), None).await;
    assert_eq!(status, 401);
    let (status, _) = server.call("POST", "/agent/login", None, Some(json!({"id": "agent", "password": "guess-guess"}))).await;
    assert_eq!(status, 401);
    let (status, _) = server.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_signed_identity_is_verified_and_follows_the_customer() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.identity_secret = Some("site-secret".into());
    let server = Server::start(c).await;
    let signature = kefu::auth::sign_identity("site-secret", "user-42");
    let body = json!({"user_id": "user-42", "signature": signature});
    let (status, first) = server.call("POST", "/conversations", None, Some(body.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(first["verified"], true);
    let conv = (first["id"].as_str().unwrap().to_string(), first["token"].as_str().unwrap().to_string());
    server.say(&conv, "怎么开发票").await;
    // Another device: the same conversation and its history, with a token of its own.
    let (_, second) = server.call("POST", "/conversations", None, Some(body)).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["resumed"], true);
    assert_ne!(second["token"], first["token"]);
    assert_eq!(second["messages"].as_array().unwrap().len(), 2);
    let (status, v) = server.call("POST", "/conversations", None, Some(json!({"user_id": "user-43", "signature": signature}))).await;
    assert_eq!(status, 403);
    assert_error(&v, "forbidden");
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_one_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.max_body_bytes = 16 * 1024;
    let server = Server::start(c).await;
    let conv = server.visitor().await;
    let url = server.url(&format!("/conversations/{}/messages", conv.0));
    let send = |body: String| server.http.post(&url).bearer_auth(&conv.1).header("content-type", "application/json").body(body).send();

    let r = send("{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), "invalid_json");
    let r = send(json!({"txt": "typo"}).to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = send(json!({"text": "   "}).to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), "bad_request");
    let r = send(json!({"text": "长".repeat(2001)}).to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("2001"), "{v}");
    let r = send(json!({"text": "x".repeat(20_000)}).to_string()).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_error(&r.json().await.unwrap(), "too_large");
    let (status, v) = server.call("GET", "/no/such/endpoint", None, None).await;
    assert_eq!(status, 404);
    assert_error(&v, "not_found");
    let (status, v) = server.call("POST", "/conversations/nope/messages", Some(&conv.1), Some(json!({"text": "hi"}))).await;
    assert_eq!(status, 401, "an unknown conversation looks like a bad token: {v}");
    let (status, v) = server.call("DELETE", "/conversations", None, None).await;
    assert_eq!(status, 405);
    assert_error(&v, "method_not_allowed");
    server.stop().await;
}

#[tokio::test]
async fn a_flood_is_refused_with_429_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.conversation_per_second = 1;
    c.limits.conversation_burst = 3;
    let server = Server::start(c).await;
    let conv = server.visitor().await;
    let url = server.url(&format!("/conversations/{}/messages", conv.0));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..10 {
        let r = server.http.post(&url).bearer_auth(&conv.1).json(&json!({"text": format!("在吗 {i}")})).send().await.unwrap();
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            assert_error(&r.json().await.unwrap(), "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.ip_per_second = 1;
    c.limits.ip_burst = 5;
    let server2 = Server::start(c).await;
    let mut limited = 0;
    for _ in 0..20 {
        if server2.http.post(server2.url("/conversations")).send().await.unwrap().status() == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 14, "per-IP limit: {limited} of 20 refused");
    // Probes are never limited.
    assert_eq!(server2.http.get(format!("http://{}/healthz", server2.addr)).send().await.unwrap().status(), 200);
    server.stop().await;
    server2.stop().await;
}
