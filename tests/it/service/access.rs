//! Agent access ends when it should, sockets included: logout, a password reset and an admin
//! disabling each close the agent's WebSocket at once (it streams every visitor's messages)
//! and its token stops working. And what kefu keeps on disk is its owner's alone.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::fixture::{config, spawn_server, Server, ADMIN_TOKEN};

const CLOSE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_agents_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let token = server.agent("wang", "小王").await;
    let mut ws = server.ws(&format!("/agent/ws?token={token}")).await;
    let mut other_session = {
        let (s, v) = server.call("POST", "/agent/login", None, Some(json!({"id": "wang", "password": "correct horse battery"}))).await;
        assert_eq!(s, 200);
        let t = v["token"].as_str().unwrap().to_string();
        (server.ws(&format!("/agent/ws?token={t}")).await, t)
    };
    // The socket works: a handoff reaches it.
    let conv = server.visitor().await;
    server.say(&conv, "转人工").await;
    ws.until("the handoff", |e| e["type"] == "handoff").await;
    let (s, _) = server.call("POST", "/agent/logout", Some(&token), None).await;
    assert_eq!(s, 204);
    assert!(ws.closes_within(CLOSE).await, "the socket outlived its logout");
    assert_eq!(server.call("GET", "/agent/me", Some(&token), None).await.0, 401);
    // The agent's other session is not this one: it stays.
    assert!(!other_session.0.closes_within(Duration::from_millis(300)).await, "another session's socket was closed");
    assert_eq!(server.call("GET", "/agent/me", Some(&other_session.1), None).await.0, 200);
    // A closed session cannot open a new socket either.
    let url = format!("ws://{}/api/v1/agent/ws?token={token}", server.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_or_disabling_ends_the_agents_sessions_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let token = server.agent("wang", "小王").await;
    let mut ws = server.ws(&format!("/agent/ws?token={token}")).await;
    let body = json!({"id": "wang", "name": "小王", "password": "a new passphrase 2026", "skills": ["*"]});
    let (s, v) = server.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert!(ws.closes_within(CLOSE).await, "the socket outlived the password reset");
    assert_eq!(server.call("GET", "/agent/me", Some(&token), None).await.0, 401, "the old session ended");
    let login = |password: &'static str| server.call("POST", "/agent/login", None, Some(json!({"id": "wang", "password": password})));
    assert_eq!(login("correct horse battery").await.0, 401);
    let (s, v) = login("a new passphrase 2026").await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();

    let mut ws = server.ws(&format!("/agent/ws?token={token}")).await;
    let (s, v) = server.call("POST", "/admin/agents/wang/disable", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["disabled"].as_bool(), v["status"].as_str()), (Some(true), Some("away")), "{v}");
    assert!(ws.closes_within(CLOSE).await, "the socket outlived the disabling");
    assert_eq!(server.call("GET", "/agent/me", Some(&token), None).await.0, 401);
    let (s, v) = login("a new passphrase 2026").await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("agent_disabled")), "{v}");
    let (_, list) = server.call("GET", "/admin/agents", Some(ADMIN_TOKEN), None).await;
    let wang = list.as_array().unwrap().iter().find(|a| a["id"] == "wang").unwrap();
    assert_eq!(wang["disabled"], true, "{list}");
    let (s, v) = server.call("POST", "/admin/agents/wang/enable", Some(ADMIN_TOKEN), None).await;
    assert_eq!((s, v["disabled"].as_bool()), (200, Some(false)), "{v}");
    assert_eq!(login("a new passphrase 2026").await.0, 200);
    let (s, v) = server.call("POST", "/admin/agents/nobody/disable", Some(ADMIN_TOKEN), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("agent_not_found")));
    server.stop().await;
}

/// Every path under `dir` with group or other permission bits, with its mode.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.permissions().mode() & 0o077 != 0 {
        out.push(format!("{} {:o}", dir.display(), meta.permissions().mode() & 0o7777));
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            out.extend(open_to_others(&e.unwrap().path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_a_readable_config_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A data directory made before kefu restricted it: 0755 folders, world-readable files.
    std::fs::create_dir_all(data.join("store/old")).unwrap();
    std::fs::write(data.join("store/old/notes"), "x").unwrap();
    std::fs::write(data.join("admin-token"), "t").unwrap();
    for (path, mode) in [("", 0o755), ("store", 0o755), ("store/old", 0o755), ("store/old/notes", 0o644), ("admin-token", 0o644)] {
        std::fs::set_permissions(data.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let repo = crate::fixture::repo();
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = {:?}\nknowledge = {:?}\nintents = {:?}\nwatch_interval_ms = 0\npassword_rounds = 1000\n",
            data,
            repo.join("knowledge"),
            repo.join("intents")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    cmd.args(["serve", "--config", config.to_str().unwrap()]).env("KEFU_LOG", "warn").stderr(Stdio::piped());
    let (child, addr) = spawn_server(cmd);
    // Write something through the service (a conversation, an agent), then stop cleanly.
    let http = reqwest::Client::new();
    let r = http.post(format!("http://{addr}/api/v1/conversations")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    // SAFETY: kill sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the config file is readable by other users"), "no warning in: {log}");
    assert!(data.join("store").is_dir() && data.join("agent-password").is_file());
    let open = open_to_others(&data);
    assert!(open.is_empty(), "readable by others: {open:?}");
}
