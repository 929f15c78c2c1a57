//! Several kefu nodes on one PostgreSQL database: one conversation served through both,
//! events crossing from one node's sockets to the other's, a handoff queued on one and
//! claimed on the other, `kill -9` of one node under load, and a database restart.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fixture::{config, path_str, spawn_server, Postgres, Server, ADMIN_TOKEN};

fn node_config(data: &Path, url: &str) -> kefu::config::Config {
    let mut c = config(data);
    c.store = url.to_string();
    c
}

async fn login(server: &Server, id: &str) -> String {
    let (status, v) = server.call("POST", "/agent/login", None, Some(json!({"id": id, "password": "correct horse battery"}))).await;
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_conversations_events_and_handoffs() {
    let url = crate::fixture::pg_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(node_config(da.path(), &url)).await;
    let b = Server::start(node_config(db.path(), &url)).await;
    let ready: Value = b.http.get(format!("http://{}/readyz", b.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["store"], "postgres", "{ready}");

    // An agent created through A logs in on B: sessions live in the database.
    let on_a = a.agent("li", "小李").await;
    let on_b = login(&b, "li").await;
    let mut agent_a = a.ws(&format!("/agent/ws?token={on_a}")).await;
    let mut agent_b = b.ws(&format!("/agent/ws?token={on_b}")).await;

    // A conversation started on A, its visitor's socket on A.
    let conv = a.visitor().await;
    let mut visitor_a = a.ws(&format!("/conversations/{}/ws?token={}", conv.0, conv.1)).await;

    // Messages of that conversation posted through both nodes at once: each stored once,
    // numbered without gaps, whichever node took it.
    let (id, token) = (&conv.0, &conv.1);
    let posts = (0..12).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let path = format!("/conversations/{id}/messages");
        let body = json!({"text": format!("第{i}个问题：运费怎么算"), "client_id": format!("c{i}")});
        async move { node.call("POST", &path, Some(token), Some(body)).await }
    });
    for (status, v) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200, "{v}");
    }
    let (_, history) = b.call("GET", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), None).await;
    let messages = history["messages"].as_array().unwrap();
    let seqs: Vec<u64> = messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (seqs[0]..seqs[0] + seqs.len() as u64).collect::<Vec<_>>(), "gaps in {seqs:?}");
    let asked = messages.iter().filter(|m| m["from"]["kind"] == "visitor").count();
    assert_eq!(asked, 12, "every question stored once: {history}");

    // Handed off through B: agents on both nodes hear of it.
    let v = b.say(&conv, "转人工").await;
    assert_eq!(v["state"], "queued", "{v}");
    for ws in [&mut agent_a, &mut agent_b] {
        let e = ws.until("the handoff on both nodes", |e| e["type"] == "handoff").await;
        assert_eq!(e["handoff"]["conversation"], conv.0.as_str());
    }
    // Claimed on B: the visitor's socket on A sees the agent arrive and the agent's words.
    let (status, claimed) = b.call("POST", &format!("/agent/conversations/{}/claim", conv.0), Some(&on_b), None).await;
    assert_eq!(status, 200, "{claimed}");
    let joined = visitor_a.until("the agent joined, heard on A", |e| e["type"] == "state" && e["state"] == "with_agent").await;
    assert_eq!(joined["agent"], "小李");
    let (status, _) = b.call("POST", &format!("/agent/conversations/{}/messages", conv.0), Some(&on_b), Some(json!({"text": "您好，我是小李"}))).await;
    assert_eq!(status, 200);
    let m = visitor_a.until("the agent's reply, sent through B, on A", |e| e["type"] == "message" && e["message"]["from"]["kind"] == "agent").await;
    assert_eq!(m["message"]["text"], "您好，我是小李");
    // The visitor answers through A; the agent's console on B shows it.
    a.say(&conv, "订单号是 20261203001").await;
    agent_b.until("the visitor's reply, sent through A, on B", |e| e["type"] == "message" && e["message"]["text"] == "订单号是 20261203001").await;
    // Either node counts the agent's load from the database.
    let (_, me) = a.call("GET", "/agent/me", Some(&on_a), None).await;
    assert_eq!(me["active"], 1, "{me}");
    let (_, queue) = a.call("GET", "/agent/queue", Some(&on_a), None).await;
    assert_eq!(queue.as_array().unwrap().len(), 0, "claimed on B, gone from the queue on A: {queue}");
    let (_, stats) = b.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!(stats["handoffs_by_reason"]["requested"], 1, "{stats}");
    a.stop().await;
    b.stop().await;
}

/// A ticket left on one node is announced to agents on the other; notes written through
/// both nodes at once are all kept (the ticket's version refuses a write from a stale copy,
/// and the service retries it on the fresh one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_announced_across_nodes_and_concurrent_changes_are_all_kept() {
    let url = crate::fixture::pg_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(node_config(da.path(), &url)).await;
    let b = Server::start(node_config(db.path(), &url)).await;
    let on_a = a.agent("li", "小李").await;
    let on_b = login(&b, "li").await;
    let mut agent_b = b.ws(&format!("/agent/ws?token={on_b}")).await;
    let conv = a.visitor().await;
    let (status, v) = a.call("POST", &format!("/conversations/{}/ticket", conv.0), Some(&conv.1), Some(json!({"contact": "13600136000", "message": "空调漏水"}))).await;
    assert_eq!(status, 201, "{v}");
    let e = agent_b.until("the ticket, left on A, announced on B", |e| e["type"] == "ticket" && e["created"] == true).await;
    assert_eq!(e["ticket"]["message"], "空调漏水");
    let id = e["ticket"]["id"].as_u64().unwrap();
    let notes = (0..8).map(|i| {
        let (node, token) = if i % 2 == 0 { (&a, &on_a) } else { (&b, &on_b) };
        let path = format!("/agent/tickets/{id}/notes");
        async move { node.call("POST", &path, Some(token), Some(json!({"text": format!("备注{i}")}))).await }
    });
    for (status, v) in futures_util::future::join_all(notes).await {
        assert_eq!(status, 200, "{v}");
    }
    let (_, t) = b.call("GET", &format!("/agent/tickets/{id}"), Some(&on_b), None).await;
    let kept: Vec<&str> = t["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "note").map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(kept.len(), 8, "every note kept once: {kept:?}");
    assert_eq!(t["version"], 9, "one version per write");
    a.stop().await;
    b.stop().await;
}

/// A cluster of its own (restarting the shared one would break the other tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_is_survived() {
    let pg = Arc::new(tokio::task::spawn_blocking(Postgres::start).await.unwrap());
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start(node_config(dir.path(), &url)).await;
    let conv = node.visitor().await;
    node.say(&conv, "怎么退货").await;

    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.ctl(&["-m", "fast", "stop"])
    })
    .await
    .unwrap();
    // Down: a clear 503, soon, and nothing claimed to be stored.
    let started = std::time::Instant::now();
    let (status, v) = node.call("POST", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), Some(json!({"text": "还在吗"}))).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert!(started.elapsed() < Duration::from_secs(5), "a 503 took {:?}", started.elapsed());
    let ready = node.http.get(format!("http://{}/readyz", node.addr)).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.ctl(&["start"])
    })
    .await
    .unwrap();
    // Back: the node reconnects by itself; the conversation is all there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = node.call("POST", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), Some(json!({"text": "还在吗", "client_id": "again"}))).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node did not reconnect within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, history) = node.call("GET", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), None).await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().filter(|m| m["from"]["kind"] == "visitor").map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["怎么退货", "还在吗"], "the refused message was not stored, the retried one once");
    node.stop().await;
}

/// A `kefu serve` process, killed (SIGKILL) when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(dir: &Path, url: &str) -> (Node, String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = {:?}\nstore = {url:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n\
             admin_token_sha256 = {:?}\n[limits]\nip_per_second = 100000\nip_burst = 100000\nconversation_per_second = 100000\nconversation_burst = 100000\n",
            dir.join("data"),
            repo.join("knowledge"),
            repo.join("intents"),
            kefu::auth::token_hash(ADMIN_TOKEN),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.args(["serve", "--config", path_str(&config)]).env("KEFU_LOG", "warn").stderr(Stdio::inherit());
    let (child, addr) = spawn_server(cmd);
    (Node(child), addr)
}

/// Visitors write through both nodes while one is killed with SIGKILL; every message either
/// node acknowledged is in the database afterwards, read through the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_node_loses_nothing_acknowledged() {
    let url = crate::fixture::pg_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (node_a, addr_a) = start_node(da.path(), &url);
    let (_node_b, addr_b) = start_node(db.path(), &url);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let bases = [format!("http://{addr_a}/api/v1"), format!("http://{addr_b}/api/v1")];
    let mut conversations = Vec::new();
    for i in 0..8 {
        let v: Value = http.post(format!("{}/conversations", bases[i % 2])).json(&json!({})).send().await.unwrap().json().await.unwrap();
        conversations.push((v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string()));
    }
    let acked: Arc<Mutex<HashMap<(String, u64), String>>> = Default::default();
    let mut writers = Vec::new();
    for (w, (id, token)) in conversations.iter().cloned().enumerate() {
        let (http, bases, acked) = (http.clone(), bases.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..30 {
                // Alternate nodes; once A is gone its requests fail and are not acknowledged.
                let base = &bases[(w + n) % 2];
                let text = format!("第{w}位顾客的第{n}条：发票怎么开");
                let sent = http.post(format!("{base}/conversations/{id}/messages")).bearer_auth(&token).json(&json!({"text": text})).send().await;
                if let Ok(r) = sent {
                    if r.status() == 200 {
                        let v: Value = r.json().await.unwrap();
                        acked.lock().unwrap().insert((id.clone(), v["message"]["seq"].as_u64().unwrap()), text);
                    }
                }
            }
        }));
    }
    // Kill A once both nodes have acknowledged some.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 40 {
        assert!(tokio::time::Instant::now() < deadline, "too few messages acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node_a);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let mut checked = 0;
    for (id, token) in &conversations {
        let h: Value = http.get(format!("{}/conversations/{id}/messages", bases[1])).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let stored: HashMap<u64, String> =
            h["messages"].as_array().unwrap().iter().map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string())).collect();
        let seqs: Vec<u64> = { let mut s: Vec<u64> = stored.keys().copied().collect(); s.sort(); s };
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gaps in {id}");
        for ((_, seq), text) in acked.iter().filter(|((c, _), _)| c == id) {
            assert_eq!(stored.get(seq), Some(text), "acknowledged message {id}#{seq} lost");
            checked += 1;
        }
    }
    assert_eq!(checked, acked.len());
    assert!(checked > 100, "only {checked} acknowledged");
}

/// An article added on node A (its folder edited, then a reload) is answered on node B,
/// whose own folder then holds it too; B's bot had never seen it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_reloaded_on_one_node_is_served_by_all() {
    let url = crate::fixture::pg_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut configs = Vec::new();
    for d in [&da, &db] {
        let k = d.path().join("knowledge");
        crate::fixture::copy_dir(&crate::fixture::knowledge_dir(), &k);
        let mut c = node_config(&d.path().join("data"), &url);
        c.knowledge = k;
        configs.push(c);
    }
    let b_knowledge = configs[1].knowledge.clone();
    let a = Server::start(configs.remove(0)).await;
    let b = Server::start(configs.remove(0)).await;
    let question = "你们的门店周日几点关门";
    let before = b.say(&b.visitor().await, question).await;
    let answered = |v: &Value| v["replies"].as_array().unwrap().iter().any(|r| r["text"].as_str().unwrap_or("").contains("晚上九点"));
    assert!(!answered(&before), "B knew the article before it existed: {before}");

    crate::fixture::write(
        &da.path().join("knowledge"),
        "门店/store-hours.md",
        "+++\nid = \"store-hours\"\ntitle = \"门店营业时间是几点到几点？\"\nsimilar = [\"门店周末几点关门\", \"实体店周日营业到几点\", \"线下门店几点开门\"]\n+++\n\n门店每天上午十点开门，晚上九点关门，周末和节假日照常营业。\n",
    );
    let (status, v) = a.call("POST", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    // B rebuilds its own index when it hears of it: wait for its reload, not for a time.
    let articles = v["articles"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, st) = b.call("GET", "/admin/reload", Some(ADMIN_TOKEN), None).await;
        if st["articles"] == articles {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B did not take the new knowledge: {st} (A: {v})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = b.say(&b.visitor().await, question).await;
    assert!(answered(&after), "B does not answer from the new article: {after}");
    assert!(b_knowledge.join("门店/store-hours.md").exists(), "B's folder holds the article too");
    a.stop().await;
    b.stop().await;
}

/// Wrong passwords tried on node A lock the account on node B too (an attacker spreading
/// guesses over the nodes gets one allowance, not one per node); an admin's unlock on B
/// lifts it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_an_account_on_every_node() {
    let url = crate::fixture::pg_database().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ca = node_config(da.path(), &url);
    ca.limits.login_failures_per_account = 3;
    let mut cb = node_config(db.path(), &url);
    cb.limits.login_failures_per_account = 3;
    let a = Server::start(ca).await;
    let b = Server::start(cb).await;
    a.agent("zhou", "小周").await;
    for _ in 0..3 {
        let (status, _) = a.call("POST", "/agent/login", None, Some(json!({"id": "zhou", "password": "wrong guess 12345"}))).await;
        assert_eq!(status, 401);
    }
    let (status, v) = b.call("POST", "/agent/login", None, Some(json!({"id": "zhou", "password": "correct horse battery"}))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("login_locked")), "{v}");
    let (status, v) = b.call("POST", "/admin/agents/zhou/unlock", Some(ADMIN_TOKEN), None).await;
    assert_eq!((status, v["was_locked"].as_bool()), (200, Some(true)), "{v}");
    for node in [&a, &b] {
        login(node, "zhou").await;
    }
    a.stop().await;
    b.stop().await;
}
