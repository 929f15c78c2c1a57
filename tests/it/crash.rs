//! `kill -9` during a burst of visitor messages (and photos): after a restart every message
//! the server acknowledged is there, with the same sequence number and text, every
//! acknowledged photo is served whole, and the report counters (written in the same
//! transactions) agree exactly with a recount of what is stored. An agent works a ticket
//! meanwhile: every acknowledged ticket change survives too; and every webhook event of an
//! acknowledged step is delivered after the restart.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fixture::spawn_server;

/// The server process, killed (SIGKILL) when dropped, so a failing assertion leaves nothing
/// running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> (Server, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.args(["serve", "--config", config.to_str().unwrap()]).env("KEFU_LOG", "warn").stderr(Stdio::inherit());
    let (child, addr) = spawn_server(cmd);
    (Server(child), addr)
}

/// What the server acknowledged: (conversation, seq) → text.
type Acked = Arc<Mutex<HashMap<(String, u64), String>>>;
/// Photos the server acknowledged: (conversation, token, hash).
type Photos = Arc<Mutex<Vec<(String, String, String)>>>;

/// Asserts every acknowledged photo is served, its bytes hashing to its name.
async fn verify_photos(http: &reqwest::Client, base: &str, photos: &Photos) -> usize {
    let photos = photos.lock().unwrap().clone();
    for (id, token, hash) in &photos {
        let r = http.get(format!("{base}/conversations/{id}/images/{hash}")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged photo {id}/{hash} lost");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)), hash, "photo {id}/{hash} corrupt");
    }
    photos.len()
}

/// Asserts every acknowledged message is stored with its sequence number; returns how many.
async fn verify(http: &reqwest::Client, base: &str, conversations: &[(String, String)], acked: &Acked) -> usize {
    let mut checked = 0;
    for (id, token) in conversations {
        let h: Value = http.get(format!("{base}/conversations/{id}/messages")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let stored: HashMap<u64, String> =
            h["messages"].as_array().unwrap().iter().map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_string())).collect();
        for ((_, seq), text) in acked.lock().unwrap().iter().filter(|((c, _), _)| c == id) {
            assert_eq!(stored.get(seq), Some(text), "acknowledged message {id}#{seq} lost");
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = {:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n\
             [limits]\nip_per_second = 100000\nip_burst = 100000\nconversation_per_second = 100000\nconversation_burst = 100000\n",
            dir.path().join("data"),
            repo.join("knowledge"),
            repo.join("intents"),
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let acked: Acked = Default::default();
    let photos: Photos = Default::default();
    let mut conversations: Vec<(String, String)> = Vec::new();
    // Acknowledged ticket notes: (ticket id, the version that stored it, its text).
    let notes: Arc<Mutex<Vec<(u64, u64, String)>>> = Default::default();
    let mut ticket: Option<u64> = None;
    let questions = ["怎么退货", "退款多久到账", "发票怎么开", "运费怎么算", "忘记密码怎么办", "转人工", "优惠券怎么用"];

    for cycle in 0..3u64 {
        let (child, addr) = start(&config);
        let base = format!("http://{addr}/api/v1");
        // Everything acknowledged before the last kill must be here.
        verify(&http, &base, &conversations, &acked).await;
        let agent_token = agent_login(&http, &base, &config).await;
        verify_tickets(&http, &base, &agent_token, &notes).await;
        verify_photos(&http, &base, &photos).await;
        for _ in 0..4 {
            let v: Value = http.post(format!("{base}/conversations")).send().await.unwrap().json().await.unwrap();
            conversations.push((v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into()));
        }
        let mut senders = Vec::new();
        for (i, (id, token)) in conversations.iter().cloned().enumerate() {
            let (http, base, acked, photos) = (http.clone(), base.clone(), acked.clone(), photos.clone());
            senders.push(tokio::spawn(async move {
                for n in 0.. {
                    // Every fourth message of every fourth conversation is a photo (each its own).
                    let photo = i % 4 == 0 && n % 4 == 3;
                    let text = if photo { kefu::dialogue::IMAGE_TEXT.to_string() } else { format!("{} #{cycle}-{i}-{n}", questions[(i + n) % questions.len()]) };
                    let sent = if photo {
                        let png = crate::service::photos::encoded(8 + (n % 200) as u32, 8 + cycle as u32, image::ImageFormat::Png);
                        http.post(format!("{base}/conversations/{id}/images")).bearer_auth(&token).body(png).send().await
                    } else {
                        http.post(format!("{base}/conversations/{id}/messages")).bearer_auth(&token).json(&json!({"text": text})).send().await
                    };
                    let Ok(resp) = sent else { return };
                    if resp.status() != 200 {
                        continue;
                    }
                    let Ok(v) = resp.json::<Value>().await else { return };
                    if let Some(hash) = v["message"]["image"]["hash"].as_str() {
                        photos.lock().unwrap().push((id.clone(), token.clone(), hash.to_string()));
                    }
                    let mut a = acked.lock().unwrap();
                    a.insert((id.clone(), v["message"]["seq"].as_u64().unwrap()), text);
                    for r in v["replies"].as_array().unwrap() {
                        a.insert((id.clone(), r["seq"].as_u64().unwrap()), r["text"].as_str().unwrap().to_string());
                    }
                }
            }));
        }
        let ticket_id = match ticket {
            Some(t) => t,
            None => {
                let body = json!({"conversation": conversations[0].0, "message": "客户要求重开发票", "category": "发票"});
                let t: Value = http.post(format!("{base}/agent/tickets")).bearer_auth(&agent_token).json(&body).send().await.unwrap().json().await.unwrap();
                *ticket.insert(t["id"].as_u64().unwrap_or_else(|| panic!("no ticket: {t}")))
            }
        };
        {
            let (http, base, notes, token) = (http.clone(), base.clone(), notes.clone(), agent_token.clone());
            senders.push(tokio::spawn(async move {
                for n in 0.. {
                    let text = format!("备注 #{cycle}-{n}");
                    let sent = http.post(format!("{base}/agent/tickets/{ticket_id}/notes")).bearer_auth(&token).json(&json!({"text": text})).send().await;
                    let Ok(resp) = sent else { return };
                    if resp.status() != 200 {
                        continue;
                    }
                    let Ok(v) = resp.json::<Value>().await else { return };
                    notes.lock().unwrap().push((ticket_id, v["version"].as_u64().unwrap(), text));
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * cycle)).await;
        drop(child); // SIGKILL
        for s in senders {
            let _ = s.await;
        }
    }
    let (_server, addr) = start(&config);
    let base = format!("http://{addr}/api/v1");
    let checked = verify(&http, &base, &conversations, &acked).await;
    let photos_checked = verify_photos(&http, &base, &photos).await;
    eprintln!("{checked} acknowledged messages ({photos_checked} photos) in {} conversations survived 3 kill -9 cycles", conversations.len());
    assert!(photos_checked > 0, "no photo was acknowledged: the burst proves nothing for them");
    let agent_token = agent_login(&http, &base, &config).await;
    let checked_notes = verify_tickets(&http, &base, &agent_token, &notes).await;
    eprintln!("{checked_notes} acknowledged ticket notes survived");
    let searched = verify_history(&http, &base, &agent_token, &acked).await;
    eprintln!("{searched} conversations found in history by their first acknowledged message");
    assert!(searched >= 8, "only {searched} conversations had an acknowledged message to search for");
    assert!(checked_notes > 10, "only {checked_notes} ticket notes were acknowledged");
    assert!(checked > 50, "only {checked} messages were acknowledged: the burst was too small to prove anything");
    counters_match_the_stored_messages(&http, &base, &dir.path().join("data"), &conversations).await;
}

/// Asserts each conversation is found by a history search for its first acknowledged
/// message (the history summary and its text index are written in the message's own
/// commit); returns how many were searched.
async fn verify_history(http: &reqwest::Client, base: &str, token: &str, acked: &Acked) -> usize {
    let mut first: HashMap<String, (u64, String)> = HashMap::new();
    for ((id, seq), text) in acked.lock().unwrap().iter().filter(|(_, text)| text.contains('#')) {
        let e = first.entry(id.clone()).or_insert((*seq, text.clone()));
        if *seq < e.0 {
            *e = (*seq, text.clone());
        }
    }
    for (id, (_, text)) in &first {
        let r: Value = http.get(format!("{base}/agent/history")).bearer_auth(token).query(&[("q", text.as_str()), ("limit", "200")]).send().await.unwrap().json().await.unwrap();
        let found = r["conversations"].as_array().unwrap_or_else(|| panic!("no history page: {r}")).iter().any(|c| c["id"] == id.as_str());
        assert!(found, "conversation {id} not found in history by its acknowledged message {text:?}: {r}");
    }
    first.len()
}

/// Logs the agent in (creating the account on the first start).
async fn agent_login(http: &reqwest::Client, base: &str, config: &Path) -> String {
    // The first answer comes once the server has built its service, which writes the token.
    http.get(base.replace("/api/v1", "/healthz")).send().await.unwrap();
    let data = config.parent().unwrap().join("data");
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_string();
    let account = json!({"id": "crash-agent", "name": "小崔", "password": "kill-nine-survivor"});
    let r = http.post(format!("{base}/admin/agents")).bearer_auth(&admin).json(&account).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let login = json!({"id": "crash-agent", "password": "kill-nine-survivor"});
    let v: Value = http.post(format!("{base}/agent/login")).json(&login).send().await.unwrap().json().await.unwrap();
    v["token"].as_str().unwrap_or_else(|| panic!("no login: {v}")).to_string()
}

/// Asserts every acknowledged ticket note is in its ticket's history, once, and the ticket's
/// version is at least the one each note was stored with; returns how many were checked.
async fn verify_tickets(http: &reqwest::Client, base: &str, token: &str, notes: &Mutex<Vec<(u64, u64, String)>>) -> usize {
    let notes = notes.lock().unwrap().clone();
    for (id, version, text) in &notes {
        let t: Value = http.get(format!("{base}/agent/tickets/{id}")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        assert!(t["version"].as_u64().unwrap() >= *version, "ticket {id} went back from version {version}: {}", t["version"]);
        let found = t["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "note" && e["text"] == *text).count();
        assert_eq!(found, 1, "acknowledged note {text:?} of ticket {id} lost or doubled");
    }
    notes.len()
}

/// `kill -9` right after people's writes are acknowledged: a role given, a password changed
/// (the other sessions ended) and a quality review are all there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_roles_passwords_and_reviews_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("kefu.toml");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata = {:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n",
        dir.path().join("data"),
        repo.join("knowledge"),
        repo.join("intents"),
    );
    std::fs::write(&config, toml).unwrap();
    let http = reqwest::Client::new();
    let call = |base: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let login = |base: String, id: &'static str, password: &'static str| {
        let call = &call;
        async move { call(&base, "POST", "/agent/login", None, Some(json!({"id": id, "password": password}))).await }
    };
    let (child, addr) = start(&config);
    let base = format!("http://{addr}/api/v1");
    // The address is printed at bind; the first answer comes once the start-up (which writes
    // the admin token) is done.
    assert_eq!(http.get(format!("http://{addr}/healthz")).send().await.unwrap().status(), 200);
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap().trim().to_string();
    for (id, role) in [("wang", "agent"), ("zhou", "agent")] {
        let body = json!({"id": id, "name": id, "password": "correct horse battery", "skills": ["*"], "role": role});
        assert_eq!(call(&base, "POST", "/admin/agents", Some(&admin), Some(body)).await.0, 200);
    }
    let (s, v) = call(&base, "POST", "/admin/agents/zhou", Some(&admin), Some(json!({"role": "supervisor"}))).await;
    assert_eq!(s, 200, "{v}");
    let wang = login(base.clone(), "wang", "correct horse battery").await.1["token"].as_str().unwrap().to_string();
    let other = login(base.clone(), "wang", "correct horse battery").await.1["token"].as_str().unwrap().to_string();
    let zhou = login(base.clone(), "zhou", "correct horse battery").await.1["token"].as_str().unwrap().to_string();
    assert_eq!(call(&base, "POST", "/agent/status", Some(&wang), Some(json!({"status": "online"}))).await.0, 200);
    let c = call(&base, "POST", "/conversations", None, None).await.1;
    let (id, token) = (c["id"].as_str().unwrap().to_string(), c["token"].as_str().unwrap().to_string());
    assert_eq!(call(&base, "POST", &format!("/conversations/{id}/messages"), Some(&token), Some(json!({"text": "转人工"}))).await.0, 200);
    assert_eq!(call(&base, "POST", &format!("/agent/conversations/{id}/claim"), Some(&wang), None).await.0, 200);
    assert_eq!(call(&base, "POST", &format!("/agent/conversations/{id}/resolve"), Some(&wang), None).await.0, 204);
    let scores: Vec<Value> = ["礼貌用语", "解决问题", "响应速度", "规范用语"].iter().map(|c| json!({"criterion": c, "score": 4})).collect();
    let (s, v) = call(&base, "POST", "/agent/reviews", Some(&zhou), Some(json!({"conversation": id, "scores": scores}))).await;
    assert_eq!(s, 200, "{v}");
    let change = json!({"current": "correct horse battery", "new": "a brand new passphrase"});
    assert_eq!(call(&base, "POST", "/agent/password", Some(&wang), Some(change)).await.0, 200);
    drop(child); // SIGKILL, straight after the acknowledgements

    let (_server, addr) = start(&config);
    let base = format!("http://{addr}/api/v1");
    let (s, reviews) = call(&base, "GET", "/agent/reviews", Some(&wang), None).await;
    assert_eq!(s, 200, "the session the password was changed from goes on: {reviews}");
    assert_eq!((reviews[0]["total"].as_f64(), reviews[0]["reviewer"].as_str()), (Some(80.0), Some("zhou")), "{reviews}");
    assert_eq!(call(&base, "GET", "/agent/me", Some(&other), None).await.0, 401, "the other session stays ended");
    assert_eq!(login(base.clone(), "wang", "correct horse battery").await.0, 401);
    assert_eq!(login(base.clone(), "wang", "a brand new passphrase").await.0, 200);
    assert_eq!(call(&base, "GET", "/agent/supervision", Some(&zhou), None).await.0, 200, "the supervisor role survived");
}

/// Recounts, from every stored message (acknowledged or not), what the report counters
/// should say, and compares: a counter written apart from its messages would be off after a
/// kill in between.
async fn counters_match_the_stored_messages(http: &reqwest::Client, base: &str, data: &Path, conversations: &[(String, String)]) {
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_string();
    let tickets: Value = http.get(format!("{base}/admin/tickets")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let ticketed: std::collections::HashSet<String> =
        tickets.as_array().unwrap().iter().map(|t| t["conversation"].as_str().unwrap().to_string()).collect();
    let mut want: HashMap<&str, i64> = HashMap::new();
    for (id, token) in conversations {
        let mut kinds = Vec::new();
        let mut visitor = false;
        let mut photos = 0;
        let mut after = 0;
        loop {
            let h: Value =
                http.get(format!("{base}/conversations/{id}/messages?after={after}")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            let page = h["messages"].as_array().unwrap().clone();
            let Some(last) = page.last() else { break };
            after = last["seq"].as_u64().unwrap();
            for m in &page {
                visitor |= m["from"]["kind"] == "visitor";
                photos += (m["from"]["kind"] == "visitor" && m["image"].is_object()) as i64;
                if let Some(k) = m["bot"]["kind"].as_str() {
                    kinds.push(k.to_string());
                }
            }
        }
        *want.entry("conversations").or_default() += 1;
        *want.entry("images.received").or_default() += photos;
        *want.entry("bot.answers").or_default() += kinds.iter().filter(|k| *k == "answer").count() as i64;
        *want.entry("bot.declines").or_default() += kinds.iter().filter(|k| *k == "none" || *k == "clarify").count() as i64;
        let handoffs = kinds.iter().filter(|k| *k == "handoff").count() as i64;
        *want.entry("handoffs").or_default() += handoffs;
        if !visitor {
            continue;
        }
        let last = kinds.iter().rev().find(|k| ["answer", "none", "clarify"].contains(&k.as_str()));
        let outcome = if handoffs > 0 || ticketed.contains(id) {
            "escalated"
        } else if last.is_some_and(|k| k != "answer") {
            "abandoned_after_decline"
        } else if last.is_some() {
            "auto_resolved"
        } else {
            "unresolved"
        };
        *want.entry(outcome).or_default() += 1;
        *want.entry("engaged").or_default() += 1;
    }
    // Every conversation of the test started within these three UTC days.
    let day = |d: i64| kefu::service::reports::date_of(d);
    let today = (kefu::service::now_ms() / 86_400_000) as i64;
    let url = format!("{base}/admin/reports?from={}&to={}&utc_offset_minutes=0", day(today - 1), day(today + 1));
    let r: Value = http.get(url).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let b = &r["bot"];
    let got = |k: &str| b[k].as_i64().unwrap_or_else(|| panic!("no {k} in {b}"));
    for (k, field) in [
        ("conversations", "conversations"),
        ("engaged", "engaged"),
        ("auto_resolved", "auto_resolved"),
        ("escalated", "escalated"),
        ("abandoned_after_decline", "abandoned_after_decline"),
        ("unresolved", "unresolved"),
        ("bot.answers", "answers"),
        ("bot.declines", "declines"),
        ("handoffs", "handoffs"),
    ] {
        assert_eq!(got(field), want.get(k).copied().unwrap_or(0), "report {field} against a recount of the stored messages: {b}");
    }
    // The statistics read the all-time counters: the same figures.
    let s: Value = http.get(format!("{base}/admin/stats")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["conversations"].as_i64(), Some(want["conversations"]));
    assert_eq!(s["auto_resolved"].as_i64(), want.get("auto_resolved").copied().or(Some(0)));
    assert_eq!(s["images_received"].as_i64(), want.get("images.received").copied().or(Some(0)), "photos counted with their messages");
    eprintln!("report counters match a recount of {} conversations: {want:?}", conversations.len());
}

/// `kill -9` while events are being caused and while the receiver is down (none can have
/// gone out): after a restart, with the receiver back, every event of every acknowledged
/// step arrives, signed, each conversation's in order — the outbox entry was in the step's
/// own commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_of_acknowledged_steps_survive_kill_9() {
    const ADMIN: &str = "crash-test-admin-token";
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "admin_token_sha256 = {:?}\nlisten = \"127.0.0.1:0\"\ndata = {:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n\
             [limits]\nip_per_second = 100000\nip_burst = 100000\nconversation_per_second = 100000\nconversation_burst = 100000\n\
             [webhooks]\nmax_backoff_ms = 1000\n",
            kefu::auth::token_hash(ADMIN),
            dir.path().join("data"),
            repo.join("knowledge"),
            repo.join("intents"),
        ),
    )
    .unwrap();
    // The receiver's address, nobody listening yet.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let http = reqwest::Client::new();
    let (child, addr) = start(&config);
    let base = format!("http://{addr}/api/v1");
    let admin = ADMIN;
    let events = ["conversation.started", "ticket.created", "message.left"];
    let endpoint: Value = http
        .post(format!("{base}/admin/webhooks"))
        .bearer_auth(admin)
        .json(&json!({"url": format!("http://{hook}/hook"), "events": events}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Visitors start, ask for a human (nobody is on duty) and leave a message, until killed:
    // what each had acknowledged.
    let acked: Arc<Mutex<HashMap<String, Vec<&'static str>>>> = Default::default();
    let mut visitors = Vec::new();
    for i in 0..8 {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        visitors.push(tokio::spawn(async move {
            for n in 0.. {
                let Ok(r) = http.post(format!("{base}/conversations")).send().await else { return };
                let Ok(v) = r.json::<Value>().await else { return };
                let (id, token) = (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
                acked.lock().unwrap().insert(id.clone(), vec!["conversation.started"]);
                for text in ["人工客服".to_string(), format!("洗衣机漏水 {i}-{n}，电话 13812345678")] {
                    let sent = http.post(format!("{base}/conversations/{id}/messages")).bearer_auth(&token).json(&json!({"text": text})).send().await;
                    match sent {
                        Ok(r) if r.status() == 200 => {}
                        _ => return,
                    }
                }
                acked.lock().unwrap().get_mut(&id).unwrap().extend(["ticket.created", "message.left"]);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(child); // SIGKILL
    for v in visitors {
        let _ = v.await;
    }
    let acked = acked.lock().unwrap().clone();
    let want: usize = acked.values().map(Vec::len).sum();
    assert!(acked.len() >= 5, "only {} conversations started before the kill: too few to prove anything", acked.len());

    let (receiver, mut count) = crate::webhooks::Receiver::new();
    receiver.set_secret(endpoint["secret"].as_str().unwrap());
    let _serving = receiver.serve(tokio::net::TcpListener::bind(hook).await.unwrap());
    let (_server, _) = start(&config);
    let by_conversation = |got: Vec<crate::webhooks::Got>| {
        let mut by: HashMap<String, Vec<String>> = HashMap::new();
        for g in got {
            by.entry(g.body["conversation"].as_str().unwrap().to_string()).or_default().push(g.event);
        }
        by
    };
    // Every acknowledged event, in order; a step in flight at the kill may have committed
    // without its answer reaching the visitor, so its events may come too (after them).
    let all_arrived = |by: &HashMap<String, Vec<String>>| {
        acked.iter().all(|(id, events)| by.get(id).is_some_and(|a| a.len() >= events.len() && a[..events.len()] == events[..]))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !all_arrived(&by_conversation(receiver.got())) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if tokio::time::timeout(left, count.changed()).await.is_err() {
            let by = by_conversation(receiver.got());
            let missing: Vec<_> = acked.iter().filter(|(id, e)| by.get(*id).is_none_or(|a| !a.starts_with(&e.iter().map(|x| x.to_string()).collect::<Vec<_>>()))).collect();
            panic!("after 60 s, {} of {} conversations lack acknowledged events: {missing:?}", missing.len(), acked.len());
        }
    }
    assert!(receiver.bad().is_empty(), "{:?}", receiver.bad());
    eprintln!("{want} webhook events of {} acknowledged conversations arrived after kill -9", acked.len());
}
