//! `kill -9` during a burst of visitor messages: after a restart every message the server
//! acknowledged is there, with the same sequence number and text.

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
    let mut conversations: Vec<(String, String)> = Vec::new();
    let questions = ["怎么退货", "退款多久到账", "发票怎么开", "运费怎么算", "忘记密码怎么办", "转人工", "优惠券怎么用"];

    for cycle in 0..3u64 {
        let (child, addr) = start(&config);
        let base = format!("http://{addr}/api/v1");
        // Everything acknowledged before the last kill must be here.
        verify(&http, &base, &conversations, &acked).await;
        for _ in 0..4 {
            let v: Value = http.post(format!("{base}/conversations")).send().await.unwrap().json().await.unwrap();
            conversations.push((v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into()));
        }
        let mut senders = Vec::new();
        for (i, (id, token)) in conversations.iter().cloned().enumerate() {
            let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
            senders.push(tokio::spawn(async move {
                for n in 0.. {
                    let text = format!("{} #{cycle}-{i}-{n}", questions[(i + n) % questions.len()]);
                    let sent = http.post(format!("{base}/conversations/{id}/messages")).bearer_auth(&token).json(&json!({"text": text})).send().await;
                    let Ok(resp) = sent else { return };
                    if resp.status() != 200 {
                        continue;
                    }
                    let Ok(v) = resp.json::<Value>().await else { return };
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
    eprintln!("{checked} acknowledged messages in {} conversations survived 3 kill -9 cycles", conversations.len());
    assert!(checked > 50, "only {checked} messages were acknowledged: the burst was too small to prove anything");
}
