//! `kill -9` during a burst of visitor messages (and photos): after a restart every message
//! the server acknowledged is there, with the same sequence number and text, every
//! acknowledged photo is served whole, and the report counters (written in the same
//! transactions) agree exactly with a recount of what is stored.

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
    let questions = ["怎么退货", "退款多久到账", "发票怎么开", "运费怎么算", "忘记密码怎么办", "转人工", "优惠券怎么用"];

    for cycle in 0..3u64 {
        let (child, addr) = start(&config);
        let base = format!("http://{addr}/api/v1");
        // Everything acknowledged before the last kill must be here.
        verify(&http, &base, &conversations, &acked).await;
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
    assert!(checked > 50, "only {checked} messages were acknowledged: the burst was too small to prove anything");
    counters_match_the_stored_messages(&http, &base, &dir.path().join("data"), &conversations).await;
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
