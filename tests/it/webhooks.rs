//! Signed webhooks against a real receiver: an axum server on a port of its own that checks
//! every request's signature and keeps what it got. Every event type of a conversation's
//! life arrives, signed, in order; a receiver that is down gets everything, in order per
//! conversation, once it is back; the delivery log shows the failed tries, and "send again"
//! sends a delivery once more under the same id.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::fixture::{config, Server, ADMIN_TOKEN};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub delivery: String,
    pub event: String,
    pub body: Value,
}

/// A webhook receiver that verifies each request with the endpoint's secret (set once the
/// endpoint exists) and refuses, with 401, one whose signature does not match.
#[derive(Clone, Default)]
pub struct Receiver {
    secret: Arc<Mutex<String>>,
    got: Arc<Mutex<Vec<Got>>>,
    bad: Arc<Mutex<Vec<String>>>,
    count: Arc<Mutex<Option<watch::Sender<usize>>>>,
}

impl Receiver {
    pub fn new() -> (Receiver, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        let r = Receiver::default();
        *r.count.lock().unwrap() = Some(tx);
        (r, rx)
    }

    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = secret.to_string();
    }

    fn take(&self, headers: &HeaderMap, body: &Bytes) -> StatusCode {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (timestamp, signature) = (h("x-kefu-timestamp"), h("x-kefu-signature"));
        let secret = self.secret.lock().unwrap().clone();
        let fresh = timestamp.parse::<u64>().is_ok_and(|t| t.abs_diff(kefu::webhook::now_ms() / 1000) < 300);
        if !fresh || !kefu::webhook::sign::verify(&secret, &timestamp, body, &signature) || h("content-type") != "application/json" {
            self.bad.lock().unwrap().push(format!("{timestamp} {signature} {}", String::from_utf8_lossy(body)));
            return StatusCode::UNAUTHORIZED;
        }
        let body: Value = serde_json::from_slice(body).expect("a webhook body is JSON");
        let mut got = self.got.lock().unwrap();
        got.push(Got { delivery: h("x-kefu-delivery"), event: h("x-kefu-event"), body });
        if let Some(tx) = &*self.count.lock().unwrap() {
            tx.send_replace(got.len());
        }
        StatusCode::OK
    }

    /// Serves on `listener` until the task is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move { me.take(&headers, &body) }
            }),
        );
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        })
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn bad(&self) -> Vec<String> {
        self.bad.lock().unwrap().clone()
    }
}

/// Waits until the receiver has `n` requests (signed right), within `limit`.
pub async fn until_count(count: &mut watch::Receiver<usize>, n: usize, limit: Duration) {
    let reached = tokio::time::timeout(limit, count.wait_for(|c| *c >= n)).await.is_ok();
    assert!(reached, "the receiver got {} of {n} requests within {limit:?}", *count.borrow());
}

/// Adds an endpoint for `events` (all when empty) at `addr`; returns it.
pub async fn add_endpoint(server: &Server, addr: SocketAddr, events: &[&str]) -> Value {
    let events: Vec<String> = if events.is_empty() {
        let (_, list) = server.call("GET", "/admin/webhooks", Some(ADMIN_TOKEN), None).await;
        list["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    } else {
        events.iter().map(|e| e.to_string()).collect()
    };
    let (status, e) = server.call("POST", "/admin/webhooks", Some(ADMIN_TOKEN), Some(json!({"url": format!("http://{addr}/hook"), "events": events}))).await;
    assert_eq!(status, 200, "{e}");
    e
}

/// The delivery log (of one endpoint or all) once every delivery in it is delivered: the
/// worker records a pass's outcomes when the pass ends, a moment after the receiver has them.
async fn all_delivered(server: &Server, endpoint: Option<&str>) -> Vec<Value> {
    let path = match endpoint {
        Some(e) => format!("/admin/webhooks/deliveries?endpoint={e}"),
        None => "/admin/webhooks/deliveries".to_string(),
    };
    let delivered = async {
        loop {
            let (status, log) = server.call("GET", &path, Some(ADMIN_TOKEN), None).await;
            assert_eq!(status, 200, "{log}");
            let log = log.as_array().unwrap().clone();
            if log.iter().all(|d| d["status"] == "delivered") {
                return log;
            }
            // Polled: the log is the server's, with nothing to wait on from here.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), delivered).await.expect("the log says delivered once the receiver has everything")
}

/// One conversation through every step with an event: started, handed off, assigned,
/// resolved, rated.
async fn served_and_rated(server: &Server, agent: &str) -> String {
    let conv = server.visitor().await;
    server.say(&conv, "转人工").await;
    let (status, v) = server.call("POST", &format!("/agent/conversations/{}/claim", conv.0), Some(agent), None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = server.call("POST", &format!("/agent/conversations/{}/resolve", conv.0), Some(agent), None).await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = server.call("POST", &format!("/conversations/{}/rating", conv.0), Some(&conv.1), Some(json!({"score": 4, "comment": "很快"}))).await;
    assert_eq!(status, 204, "{v}");
    conv.0
}

/// The events each conversation got, in the order they arrived.
fn per_conversation(got: &[Got]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in got {
        out.entry(g.body["conversation"].as_str().unwrap_or("").to_string()).or_default().push(g.event.clone());
    }
    out
}

const LIFE: [&str; 5] = ["conversation.started", "conversation.handed_off", "conversation.assigned", "conversation.resolved", "conversation.rated"];

#[tokio::test]
async fn every_event_arrives_signed_with_what_it_says() {
    let (receiver, mut count) = Receiver::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _serving = receiver.serve(listener);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;

    // Bad endpoints are refused, naming what is wrong.
    let (status, v) = server.call("POST", "/admin/webhooks", Some(ADMIN_TOKEN), Some(json!({"url": "ftp://x/y", "events": ["conversation.started"]}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_webhook")), "{v}");
    let (status, v) = server.call("POST", "/admin/webhooks", Some(ADMIN_TOKEN), Some(json!({"url": "http://x/y", "events": ["conversation.exploded"]}))).await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("conversation.exploded"), "{v}");
    let (status, _) = server.call("POST", "/admin/webhooks", None, Some(json!({"url": "http://x/y", "events": ["conversation.started"]}))).await;
    assert_eq!(status, 401);

    let endpoint = add_endpoint(&server, addr, &[]).await;
    receiver.set_secret(endpoint["secret"].as_str().unwrap());
    // Only the events it asked for reach a second endpoint.
    let (other, mut other_count) = Receiver::new();
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other_listener.local_addr().unwrap();
    let _other_serving = other.serve(other_listener);
    let second = add_endpoint(&server, other_addr, &["message.left"]).await;
    other.set_secret(second["secret"].as_str().unwrap());

    let agent = server.agent("wang", "小王").await;
    let served = served_and_rated(&server, &agent).await;
    // Nobody on duty: the visitor leaves a message.
    let (status, _) = server.call("POST", "/agent/status", Some(&agent), Some(json!({"status": "away"}))).await;
    assert_eq!(status, 200);
    let left = server.visitor().await;
    let v = server.say(&left, "人工客服").await;
    assert_eq!(v["state"], "leaving_message", "{v}");
    server.say(&left, "洗衣机漏水了，电话 13812345678").await;
    // An agent works the ticket: each change is a ticket.updated with what it changed.
    let (status, list) = server.call("GET", "/agent/tickets", Some(&agent), None).await;
    assert_eq!(status, 200, "{list}");
    let ticket = list.as_array().unwrap().iter().find(|t| t["conversation"] == left.0.as_str()).expect("the left message's ticket")["id"].as_u64().unwrap();
    let (status, v) = server.call("PATCH", &format!("/agent/tickets/{ticket}"), Some(&agent), Some(json!({"status": "open", "priority": "high"}))).await;
    assert_eq!(status, 200, "{v}");

    until_count(&mut count, 9, Duration::from_secs(30)).await;
    until_count(&mut other_count, 1, Duration::from_secs(30)).await;
    assert!(receiver.bad().is_empty(), "every request is signed right: {:?}", receiver.bad());
    let got = receiver.got();
    let by = per_conversation(&got);
    assert_eq!(by[&served], LIFE);
    assert_eq!(by[&left.0], ["conversation.started", "ticket.created", "message.left", "ticket.updated"]);
    for g in &got {
        assert_eq!(g.body["event"], g.event.as_str(), "the header names the body's event");
        assert!(g.delivery.ends_with(endpoint["id"].as_str().unwrap()), "{}", g.delivery);
    }
    let find = |event: &str| got.iter().find(|g| g.event == event).unwrap().body.clone();
    assert_eq!(find("conversation.started")["data"]["page"], "https://shop.example/cart");
    assert_eq!(find("conversation.handed_off")["data"]["reason"], "requested");
    assert_eq!(find("conversation.assigned")["data"]["agent"], "wang");
    assert_eq!(find("conversation.assigned")["data"]["agent_name"], "小王");
    assert_eq!(find("conversation.resolved")["data"]["agent"], "wang");
    assert_eq!((find("conversation.rated")["data"]["score"].as_u64(), find("conversation.rated")["data"]["comment"].as_str()), (Some(4), Some("很快")));
    assert_eq!(find("message.left")["data"]["contact"], "13812345678");
    let updated = find("ticket.updated")["data"].clone();
    assert_eq!((updated["ticket"].as_u64(), updated["status"].as_str(), updated["priority"].as_str()), (Some(ticket), Some("open"), Some("high")), "{updated}");
    assert!(!updated["changes"].as_array().unwrap().is_empty(), "the history entries of the change: {updated}");
    let only = other.got();
    assert_eq!(only.iter().map(|g| g.event.as_str()).collect::<Vec<_>>(), ["message.left"]);
    assert!(other.bad().is_empty(), "{:?}", other.bad());

    // The log has each delivery with its try (written once the worker's pass ends).
    let log = all_delivered(&server, Some(endpoint["id"].as_str().unwrap())).await;
    assert_eq!(log.len(), 9);
    for d in log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"][0]["status"], 200);
        assert!(d["attempts"][0]["duration_ms"].is_u64());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_everything_in_order_and_send_again_repeats_one() {
    // The receiver's address, with nobody listening on it yet: connections are refused.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // Short waits between tries, so the test sees a few of them and the comeback soon.
    c.webhooks.max_backoff_ms = 1_000;
    let server = Server::start(c).await;
    let endpoint = add_endpoint(&server, addr, &[]).await;
    let agent = server.agent("wang", "小王").await;
    let mut convs = Vec::new();
    for _ in 0..4 {
        convs.push(served_and_rated(&server, &agent).await);
    }
    // The steps answered although the receiver is down; the log shows the refused tries.
    let tried = async {
        loop {
            let (_, log) = server.call("GET", "/admin/webhooks/deliveries", Some(ADMIN_TOKEN), None).await;
            let log = log.as_array().unwrap().clone();
            if log.len() == 20 && log.iter().any(|d| d["tries"].as_u64().unwrap_or(0) >= 2) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let log = tokio::time::timeout(Duration::from_secs(30), tried).await.expect("tries are logged while the receiver is down");
    assert!(log.iter().all(|d| d["status"] == "pending"), "nothing is delivered or given up yet");
    let failed = log.iter().find(|d| d["tries"].as_u64().unwrap() >= 2).unwrap();
    assert_eq!(failed["attempts"][0]["error"], "cannot connect to the receiver", "{failed}");
    assert!(failed["attempts"][0]["status"].is_null());

    // Back up on the same address: everything arrives, each conversation's events in order.
    let (receiver, mut count) = Receiver::new();
    receiver.set_secret(endpoint["secret"].as_str().unwrap());
    let _serving = receiver.serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    until_count(&mut count, 20, Duration::from_secs(60)).await;
    assert!(receiver.bad().is_empty(), "{:?}", receiver.bad());
    let by = per_conversation(&receiver.got());
    for c in &convs {
        assert_eq!(by[c], LIFE, "conversation {c}");
    }

    // "Send again": the same delivery once more, under the same id.
    let log = all_delivered(&server, None).await;
    let first = receiver.got()[0].clone();
    let (status, v) = server.call("POST", &format!("/admin/webhooks/deliveries/{}/resend", first.delivery), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    until_count(&mut count, 21, Duration::from_secs(10)).await;
    let again = receiver.got()[20].clone();
    assert_eq!((again.delivery.as_str(), again.body.clone()), (first.delivery.as_str(), first.body.clone()));
    assert!(log.iter().any(|d| d["id"] == first.delivery.as_str()));
    let (status, v) = server.call("POST", "/admin/webhooks/deliveries/nope/resend", Some(ADMIN_TOKEN), None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("delivery_not_found")), "{v}");
    server.stop().await;
}
