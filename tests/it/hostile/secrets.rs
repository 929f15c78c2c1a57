//! Secrets never reach the logs: a real `kefu serve` at debug level (every crate), driven
//! through logins, admin calls, signed identities and WebSockets with tokens in the URL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::fixture::spawn_server;

const ADMIN: &str = "secret-admin-token-5f2b9c7e1d";
const IDENTITY_SECRET: &str = "secret-identity-key-8a1c3e5f7b";
const PASSWORD: &str = "secret-agent-password-3d6f9a";
const WECHAT_TOKEN: &str = "secretwechattoken7c4e";
const WECHAT_SECRET: &str = "secret-wechat-app-secret-2b8d";
const WECHAT_AES_KEY: &str = "secretAESkey0123456789abcdefghijklmnopqrstu";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::fixture::repo();
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = {:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n\
             admin_token_sha256 = {:?}\nidentity_secret = {IDENTITY_SECRET:?}\n\n\
             [[wechat]]\nname = \"mp\"\ntoken = {WECHAT_TOKEN:?}\nappid = \"wxsecrets\"\nsecret = {WECHAT_SECRET:?}\n\
             mode = \"safe\"\nencoding_aes_key = {WECHAT_AES_KEY:?}\nreply_budget_ms = 0\napi_base = \"http://127.0.0.1:9\"\n",
            dir.path().join("data"),
            repo.join("knowledge"),
            repo.join("intents"),
            kefu::auth::token_hash(ADMIN),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.args(["serve", "--config", config.to_str().unwrap()]).env("KEFU_LOG", "trace").env("RUST_LOG", "trace").stderr(Stdio::piped());
    let (mut child, addr) = spawn_server(cmd);
    // The log, whole at the end, and line by line meanwhile so the test can wait for a line.
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let wait_log = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return,
                Ok(_) => {}
                Err(_) => panic!("the log never said {what:?}"),
            }
        }
    };
    let base = format!("http://{addr}/api/v1");
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    // The admin creates an agent with a password; the agent logs in (and fails once).
    let r = post("/admin/agents", Some(ADMIN), json!({"id": "a1", "name": "小王", "password": PASSWORD, "skills": ["*"]})).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/agent/login", None, json!({"id": "a1", "password": format!("{PASSWORD}-wrong")})).await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = post("/agent/login", None, json!({"id": "a1", "password": PASSWORD})).await.unwrap().json().await.unwrap();
    let agent_token = v["token"].as_str().unwrap().to_string();
    post("/agent/status", Some(&agent_token), json!({"status": "online"})).await.unwrap();

    // A signed customer starts a conversation, chats and asks for a human over a WebSocket.
    let mut mac = Hmac::<Sha256>::new_from_slice(IDENTITY_SECRET.as_bytes()).unwrap();
    mac.update(b"customer-42");
    let signature = hex::encode(mac.finalize().into_bytes());
    let v: Value = post("/conversations", None, json!({"user_id": "customer-42", "signature": signature})).await.unwrap().json().await.unwrap();
    let (id, visitor_token) = (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string());
    let bad = post("/conversations", None, json!({"user_id": "customer-42", "signature": "00".repeat(32)})).await.unwrap();
    assert_eq!(bad.status(), 403);
    post(&format!("/conversations/{id}/messages"), Some(&visitor_token), json!({"text": "怎么退货"})).await.unwrap();
    let ws = format!("ws://{addr}/api/v1/conversations/{id}/ws?token={visitor_token}");
    let (mut visitor_ws, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let (mut agent_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/agent/ws?token={agent_token}")).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    visitor_ws.send(tokio_tungstenite::tungstenite::Message::Text(json!({"type": "message", "text": "转人工"}).to_string().into())).await.unwrap();
    // The handoff is stored once the socket acknowledges the message.
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), visitor_ws.next()).await.expect("an ack").unwrap().unwrap();
        if msg.to_text().is_ok_and(|t| t.contains(r#""type":"ack""#)) {
            break;
        }
    }
    post(&format!("/agent/conversations/{id}/claim"), Some(&agent_token), json!({})).await.unwrap();
    // Wrong tokens of every kind are logged as refusals, never echoed.
    http.get(format!("{base}/admin/stats")).bearer_auth(format!("{ADMIN}-tampered")).send().await.unwrap();
    http.get(format!("{base}/agent/me")).bearer_auth(format!("{agent_token}x")).send().await.unwrap();
    let _ = visitor_ws.close(None).await;
    let _ = agent_ws.close(None).await;
    post("/admin/reload", Some(ADMIN), json!({})).await.unwrap();

    // A WeChat user writes (sealed, signed); with no reply budget the answer goes through the
    // message API, so kefu asks for an access token with the app secret in the URL, and that
    // call fails (a closed port): the failure is logged, the secret must not be. A forged
    // push is refused and logged too.
    {
        use kefu::channels::wechat::{crypto::Cipher, signature::sign};
        let cipher = Cipher::new(WECHAT_AES_KEY, "wxsecrets").unwrap();
        let (ts, nonce) = (kefu::service::now_ms() / 1000, "4242");
        let ts = ts.to_string();
        let xml = format!("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oSecrets]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[怎么退货]]></Content><MsgId>77</MsgId></xml>");
        let sealed = cipher.encrypt(xml.as_bytes());
        let body = format!("<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>");
        let signed = format!(
            "http://{addr}/wechat/mp?signature={}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
            sign(&[WECHAT_TOKEN, &ts, nonce]),
            sign(&[WECHAT_TOKEN, &ts, nonce, &sealed])
        );
        let r = http.post(signed).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let forged = format!("http://{addr}/wechat/mp?signature={}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={}", "0".repeat(40), "0".repeat(40));
        assert_eq!(http.post(forged).body(body).send().await.unwrap().status(), 401);
    }
    // The answer's send failed (the API's port is closed) and that was logged.
    wait_log("a WeChat message failed");

    // SIGTERM: a graceful stop, so everything logged is flushed.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    let log = log.join().unwrap();
    assert!(log.lines().count() > 20, "the debug log is nearly empty; the check would prove nothing:\n{log}");
    for (name, secret) in [
        ("admin token", ADMIN),
        ("identity secret", IDENTITY_SECRET),
        ("agent password", PASSWORD),
        ("agent token", agent_token.as_str()),
        ("visitor token", visitor_token.as_str()),
        ("identity signature", signature.as_str()),
        ("WeChat token", WECHAT_TOKEN),
        ("WeChat app secret", WECHAT_SECRET),
        ("WeChat EncodingAESKey", WECHAT_AES_KEY),
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("the {name} appears in the log: {line}");
        }
    }
}
