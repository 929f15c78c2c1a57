//! The pages in a real browser: starts kefu on a free port (a copy of the knowledge, a temp
//! data directory), creates an agent, and runs `web/e2e/e2e.mjs`, which drives Debian's
//! chromium through playwright-core: widget, agent console, admin page (a broken article's
//! reload error shown there too). Screenshots go to
//! `target/e2e-artifacts/`. `scripts/test` installs chromium, node and the npm package.

#[allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crate::fixture::{config, copy_dir, repo, Server, ADMIN_TOKEN};
use serde_json::json;

/// A third-party shop embedding the widget: another origin (faked by the test) on loopback,
/// as chromium keeps public pages from loading scripts from a private address.
const SHOP_ORIGIN: &str = "http://localhost:9";

/// Why the browser test cannot run here, if it cannot: it must fail, never pass silently.
fn missing_tools(e2e: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = vec![];
    if !Path::new(&chromium).exists() {
        missing.push(format!("chromium ({chromium})"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        missing.push("web/e2e/node_modules (npm ci)".into());
    }
    (!missing.is_empty()).then(|| format!("missing {}: run scripts/test, which installs them", missing.join(", ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_console_and_admin_in_chromium() {
    let e2e = repo().join("web/e2e");
    if let Some(why) = missing_tools(&e2e) {
        panic!("the browser test cannot run: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    // A copy: the admin page adds a similar question to an article file, and the script
    // breaks one to see the reload error on the admin page.
    let kb = dir.path().join("knowledge");
    copy_dir(&repo().join("knowledge"), &kb);
    let mut c = config(&dir.path().join("data"));
    c.knowledge = kb.clone();
    c.allowed_origins = vec![SHOP_ORIGIN.into()];
    // A fast SLA clock: a ticket's 4 business hours to a first response pass in 4 seconds,
    // so the ticket step sees a breach without waiting hours.
    c.sla_clock_speed = 3600.0;
    let server = Server::start(c).await;
    // 小王 works in the browser; 小李 (over the API, from the script) takes a transfer.
    for (id, name) in [("wang", "小王"), ("li", "小李")] {
        let body = json!({"id": id, "name": name, "password": "correct horse battery", "skills": ["*"]});
        let (status, v) = server.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
        assert_eq!(status, 200, "{v}");
    }

    // A second server with a one-second away grace, for presence: its agent closes the
    // console and goes away while a visitor waits.
    let mut quick = config(&dir.path().join("presence-data"));
    quick.presence.away_grace_secs = 1;
    let presence = Server::start(quick).await;
    let body = json!({"id": "zhao", "name": "小赵", "password": "correct horse battery", "skills": ["*"]});
    let (status, v) = presence.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(status, 200, "{v}");

    let artifacts = repo().join("target/e2e-artifacts");
    let base = format!("http://{}", server.addr);
    let presence_base = format!("http://{}", presence.addr);
    let script = e2e.join("e2e.mjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("KEFU_URL", base)
            .env("KEFU_AGENT_ID", "wang")
            .env("KEFU_AGENT_PASSWORD", "correct horse battery")
            .env("KEFU_AGENT_NAME", "小王")
            .env("KEFU_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KEFU_SHOP_ORIGIN", SHOP_ORIGIN)
            // Agent 小赵 (zhao, same password) on the server with the short away grace.
            .env("KEFU_PRESENCE_URL", presence_base)
            // The admin page's reload error: the script breaks an article of this copy.
            .env("KEFU_KNOWLEDGE", kb)
            .env("KEFU_ARTIFACTS", artifacts)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    server.stop().await;
    presence.stop().await;
    assert!(output.status.success(), "the browser test failed ({}):\n{stdout}\n{stderr}", output.status);
    println!("{stdout}");
}
