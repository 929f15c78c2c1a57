//! How long an agent's reply sent through one node takes to reach the visitor's WebSocket on
//! another node sharing the PostgreSQL store (scripts/load-nodes.sh runs it, during the
//! two-node load). Usage: node_latency HOST_A:PORT HOST_B:PORT ADMIN_TOKEN N
//!
//! The visitor's socket is on A; an agent logged in on B claims the conversation and sends N
//! messages through B, one at a time; each message's time is from B's acknowledgement to
//! its arrival on A (the part that crosses nodes: notify, listen, read, send).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: Option<&str>, body: Option<Value>) -> Value {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the node answers");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, a, b, admin, n] = args.as_slice() else {
        eprintln!("usage: node_latency HOST_A:PORT HOST_B:PORT ADMIN_TOKEN N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let http = reqwest::Client::new();
    let post = reqwest::Method::POST;
    let id = format!("lat{}", std::process::id());
    call(&http, post.clone(), format!("http://{b}/api/v1/admin/agents"), Some(admin),
        Some(json!({"id": id, "name": "测延迟", "password": "correct horse battery", "skills": ["*"], "max_concurrent": 100}))).await;
    let login = call(&http, post.clone(), format!("http://{b}/api/v1/agent/login"), None, Some(json!({"id": id, "password": "correct horse battery"}))).await;
    let agent = login["token"].as_str().unwrap().to_string();
    call(&http, post.clone(), format!("http://{b}/api/v1/agent/status"), Some(&agent), Some(json!({"status": "online"}))).await;

    let conv = call(&http, post.clone(), format!("http://{a}/api/v1/conversations"), None, Some(json!({}))).await;
    let (cid, token) = (conv["id"].as_str().unwrap().to_string(), conv["token"].as_str().unwrap().to_string());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/api/v1/conversations/{cid}/ws?token={token}")).await.expect("websocket refused");
    call(&http, post.clone(), format!("http://{a}/api/v1/conversations/{cid}/messages"), Some(&token), Some(json!({"text": "转人工"}))).await;
    call(&http, post.clone(), format!("http://{b}/api/v1/agent/conversations/{cid}/claim"), Some(&agent), None).await;

    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("第{i}条回复");
        call(&http, post.clone(), format!("http://{b}/api/v1/agent/conversations/{cid}/messages"), Some(&agent), Some(json!({"text": text}))).await;
        let sent = Instant::now();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no event within 10 s").expect("socket closed").expect("socket error");
            let Ok(t) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
            if v["type"] == "message" && v["message"]["text"] == text.as_str() {
                times.push(sent.elapsed());
                break;
            }
        }
    }
    times.sort();
    let q = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1000.0;
    println!("cross-node event latency over {n} agent replies (B acknowledged → on A's socket): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", q(0.5), q(0.99), q(1.0));
}
