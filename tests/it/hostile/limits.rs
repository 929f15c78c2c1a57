//! The limits a probe asked for: a declared oversize body is refused at once, visitor names
//! and pages and rating comments have a length, a conversation has a number of sockets,
//! logins are throttled per account and per address (with an admin unlock), common
//! passwords are refused, `X-Forwarded-For` is believed from trusted proxies only,
//! `/metrics` can be put behind a token or on a listener of its own, and the agent's view
//! of a conversation carries no token hashes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{config, Server, ADMIN_TOKEN};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (id, token) = server.visitor().await;
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/conversations/{id}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{{\"text\":\"x\"}}"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await.expect("an answer within 5 s").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    let took = t.elapsed();
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"), "{answer}");
    assert!(answer.contains("1000000000000"), "the message names the declared size: {answer}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_names_pages_and_comments_have_a_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (s, v) = server.call("POST", "/conversations", None, Some(json!({"name": "名".repeat(65)}))).await;
    assert_eq!((s, code(&v)), (400, "invalid_visitor"), "{v}");
    assert!(message(&v).contains("name has 65 characters"), "{v}");
    let (s, v) = server.call("POST", "/conversations", None, Some(json!({"page": format!("https://x.example/{}", "a".repeat(60_000))}))).await;
    assert_eq!((s, code(&v)), (400, "invalid_visitor"), "{v}");
    assert!(message(&v).contains("page has"), "{v}");
    let (s, _) = server.call("POST", "/conversations", None, Some(json!({"name": "小王", "page": "https://shop.example/cart"}))).await;
    assert_eq!(s, 201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_has_a_bounded_number_of_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.sockets_per_conversation = 2;
    let server = Server::start(c).await;
    let (id, token) = server.visitor().await;
    let path = format!("/conversations/{id}/ws?token={token}");
    let first = server.ws(&path).await;
    let _second = server.ws(&path).await;
    let url = format!("ws://{}/api/v1{path}", server.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(code(&body), "too_many_sockets", "{body}");
        }
        other => panic!("a third socket: {:?}", other.map(|_| "connected")),
    }
    // Closing one frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio_tungstenite::connect_async(&url).await.is_err() {
        assert!(Instant::now() < deadline, "the closed socket's place was not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_account_and_per_address_and_an_admin_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.login_failures_per_account = 3;
    c.limits.login_failures_per_address = 8;
    c.trusted_proxies = vec!["127.0.0.1".into()];
    let server = Server::start(c).await;
    server.agent("wang", "小王").await;
    let login = |password: &str, from: &str| {
        let body = json!({"id": "wang", "password": password});
        server.http.post(server.url("/agent/login")).header("x-forwarded-for", from).json(&body).send()
    };
    for i in 0..3 {
        let r = login(&format!("wrong-guess-{i}"), "203.0.113.1").await.unwrap();
        assert_eq!(r.status(), 401);
    }
    // Locked now, even with the right password, and from anywhere.
    let r = login("correct horse battery", "203.0.113.2").await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=901).contains(&retry), "Retry-After {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(code(&v), "login_locked", "{v}");
    assert!(message(&v).contains("wang"), "{v}");
    // The admin lifts it.
    let (s, v) = server.call("POST", "/admin/agents/wang/unlock", Some(ADMIN_TOKEN), None).await;
    assert_eq!((s, &v["was_locked"]), (200, &json!(true)), "{v}");
    assert_eq!(login("correct horse battery", "203.0.113.2").await.unwrap().status(), 200);
    let (s, v) = server.call("POST", "/admin/agents/nobody/unlock", Some(ADMIN_TOKEN), None).await;
    assert_eq!((s, code(&v)), (404, "agent_not_found"));

    // One address guessing at many accounts: locked after 8 failures, whatever the account;
    // another address (named by the trusted proxy) is not.
    for i in 0..8 {
        let body = json!({"id": format!("guess{i}"), "password": "whatever-123"});
        let r = server.http.post(server.url("/agent/login")).header("x-forwarded-for", "198.51.100.9").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401, "guess {i}");
    }
    let r = login("correct horse battery", "198.51.100.9").await.unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(message(&v).contains("198.51.100.9"), "the address is named: {v}");
    assert_eq!(login("correct horse battery", "198.51.100.10").await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let limited = |trusted: Vec<String>| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.limits.ip_per_second = 1;
        c.limits.ip_burst = 3;
        c.trusted_proxies = trusted;
        let server = Server::start(c).await;
        // Three clients behind the "proxy" (us), three requests each: within each one's burst.
        let mut statuses = Vec::new();
        for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
            for _ in 0..3 {
                let r = server.http.post(server.url("/conversations")).header("x-forwarded-for", client).send().await.unwrap();
                statuses.push(r.status().as_u16());
            }
        }
        server.stop().await;
        drop(dir);
        statuses
    };
    let behind_proxy = limited(vec!["127.0.0.0/8".into()]).await;
    assert!(behind_proxy.iter().all(|s| *s == 201), "each client has its own bucket: {behind_proxy:?}");
    let untrusted = limited(vec!["10.0.0.0/8".into()]).await;
    assert!(untrusted.iter().filter(|s| **s == 429).count() >= 5, "a stranger's header is ignored: {untrusted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_passwords_are_refused_and_the_agent_view_has_no_token_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    for weak in ["12345678", "woaini1314", "Password123", "wang-wang"] {
        let body = json!({"id": "wang-wang", "name": "小王", "password": weak});
        let (s, v) = server.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
        assert_eq!((s, code(&v)), (400, "weak_password"), "{weak}: {v}");
    }
    let agent = server.agent("wang", "小王").await;
    let conv = server.visitor().await;
    server.say(&conv, "转人工").await;
    let (s, v) = server.call("GET", &format!("/agent/conversations/{}", conv.0), Some(&agent), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["conversation"]["id"].is_string(), "{v}");
    assert!(v["conversation"].get("token_hashes").is_none(), "the agent view carries token hashes: {v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token_or_move_to_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.metrics_token_sha256 = Some(kefu::auth::token_hash("metrics-secret"));
    let server = Server::start(c).await;
    let metrics = format!("http://{}/metrics", server.addr);
    assert_eq!(server.http.get(&metrics).send().await.unwrap().status(), 401);
    assert_eq!(server.http.get(&metrics).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let r = server.http.get(&metrics).bearer_auth("metrics-secret").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("kefu_http_requests_total"));
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    c.metrics_listen = Some(metrics_addr.to_string());
    let server = Server::start(c).await;
    let r = server.http.get(format!("http://{}/metrics", server.addr)).send().await.unwrap();
    assert_eq!(r.status(), 404, "not on the public listener");
    let r = server.http.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("kefu_http_requests_total"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_do_not_show_where_the_files_are() {
    let dir = tempfile::tempdir().unwrap();
    let knowledge = dir.path().join("kb");
    crate::fixture::copy_dir(&crate::fixture::repo().join("knowledge"), &knowledge);
    let mut c = config(&dir.path().join("data"));
    c.knowledge = knowledge.clone();
    let server = Server::start(c).await;
    std::fs::write(knowledge.join("broken.md"), "no front matter").unwrap();
    let (s, v) = server.call("POST", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!((s, code(&v)), (422, "invalid_knowledge"), "{v}");
    let secret_place = dir.path().display().to_string();
    assert!(message(&v).contains("broken.md"), "the file is still named: {v}");
    assert!(!message(&v).contains(&secret_place), "the body shows the folder: {v}");
    let ready: Value = server.http.get(format!("http://{}/readyz", server.addr)).send().await.unwrap().json().await.unwrap();
    let text = ready.to_string();
    assert!(text.contains("broken.md") && !text.contains(&secret_place), "/readyz shows the folder: {text}");
    server.stop().await;
}
