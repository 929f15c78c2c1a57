//! The pages the server embeds (types, caching, the consoles' CSP) and the API pieces they
//! need: canned replies (reloaded with the knowledge), article search for agents, the
//! article list for admins, and the state event that shows the leave-a-message form.

use crate::fixture::{config, copy_dir, repo, Server, ADMIN_TOKEN};

#[tokio::test]
async fn pages_are_served_with_their_types_caching_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let get = |path: &str| server.http.get(format!("http://{}{path}", server.addr)).send();

    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = r.get(format!("http://{}/", server.addr)).send().await.unwrap();
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/demo");

    for (path, kind, needle) in [
        ("/demo", "text/html", "/widget.js"),
        ("/widget.js", "text/javascript", "attachShadow"),
        ("/agent", "text/html", "/assets/agent.js"),
        ("/admin", "text/html", "/assets/admin.js"),
        ("/assets/agent.js", "text/javascript", "/agent/canned"),
        ("/assets/console.css", "text/css", ".summary"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{path}: {:?}", h["content-type"]);
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let strict = path == "/agent" || path == "/admin";
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
        if strict {
            let csp = csp.unwrap_or_default();
            assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        }
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path} holds {needle}");
        // Revalidation is cheap: the same ETag gets 304 with no body.
        let again = server.http.get(format!("http://{}{path}", server.addr)).header("if-none-match", h["etag"].clone()).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.text().await.unwrap().is_empty());
    }
    // Browsers that accept gzip get it, and it unpacks to the same file.
    let plain = get("/widget.js").await.unwrap().bytes().await.unwrap();
    let resp = server.http.get(format!("http://{}/widget.js", server.addr)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(resp.headers()["vary"].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
    let packed = resp.bytes().await.unwrap();
    assert!(packed.len() * 2 < plain.len(), "gzipped {} bytes of {}", packed.len(), plain.len());
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).unwrap();
    assert_eq!(unpacked, plain);

    let resp = get("/assets/nope.js").await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope.js"), "{v}");
    server.stop().await;
}

#[tokio::test]
async fn agents_get_canned_replies_and_search_articles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (status, v) = server.call("GET", "/agent/canned", None, None).await;
    assert_eq!(status, 401, "{v}");
    let agent = server.agent("wang", "小王").await;

    let (status, canned) = server.call("GET", "/agent/canned", Some(&agent), None).await;
    assert_eq!(status, 200, "{canned}");
    let hi = canned.as_array().unwrap().iter().find(|c| c["shortcut"] == "hi").expect("the shipped /hi");
    assert!(hi["text"].as_str().unwrap().contains("您好"), "{hi}");
    assert!(hi["title"].is_string());

    let (status, v) = server.call("GET", "/agent/articles?q=%E9%80%80%E8%B4%A7%E8%BF%90%E8%B4%B9%E8%B0%81%E5%87%BA", Some(&agent), None).await;
    assert_eq!(status, 200, "{v}");
    let first = &v["articles"][0];
    assert_eq!(first["id"], "return-shipping-fee", "退货运费谁出 finds its article: {v}");
    assert!(first["answer"].as_str().unwrap().contains("运费"));
    assert!(first["confidence"].as_f64().unwrap() > 0.5, "{first}");
    assert!(v["articles"].as_array().unwrap().len() <= 8);

    let (status, v) = server.call("GET", "/agent/articles", Some(&agent), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(!v["articles"].as_array().unwrap().is_empty(), "without q: the first articles");
    assert!(v["articles"][0]["confidence"].is_null());

    let long = "退".repeat(2001);
    let (status, v) = server.call("GET", &format!("/agent/articles?q={long}"), Some(&agent), None).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("q is longer"), "{v}");

    let (status, v) = server.call("GET", "/admin/articles", Some(&agent), None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("role_required")), "an agent is not an admin: {v}");
    let (status, v) = server.call("GET", "/admin/articles", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    let list = v["articles"].as_array().unwrap();
    let shipped = std::fs::read_dir(repo().join("knowledge"))
        .unwrap()
        .filter_map(|e| e.ok().filter(|e| e.path().is_dir()))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .filter(|f| f.as_ref().unwrap().file_name().to_string_lossy().ends_with(".md"))
        .count();
    assert_eq!(list.len(), shipped, "every shipped article");
    assert!(list.iter().any(|a| a["id"] == "quality-issue" && a["title"].is_string() && a["category"].is_string()));
    server.stop().await;
}

#[tokio::test]
async fn canned_replies_reload_with_the_knowledge_and_a_broken_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("kb");
    copy_dir(&repo().join("knowledge"), &kb);
    let mut c = config(&dir.path().join("data"));
    c.knowledge = kb.clone();
    let server = Server::start(c).await;
    let agent = server.agent("wang", "小王").await;
    let shortcuts = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|c| c["shortcut"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    let file = kb.join("canned.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[[reply]]\nshortcut = \"holiday\"\ntitle = \"节假日\"\ntext = \"节假日期间发货会顺延一到两天。\"\n");
    std::fs::write(&file, &text).unwrap();
    let (status, v) = server.call("POST", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    let (_, canned) = server.call("GET", "/agent/canned", Some(&agent), None).await;
    assert!(shortcuts(&canned).contains(&"holiday".to_string()), "{canned}");

    // A duplicate shortcut is refused with file and line; the replies in use stay.
    std::fs::write(&file, format!("{text}\n[[reply]]\nshortcut = \"hi\"\ntitle = \"重复\"\ntext = \"重复\"\n")).unwrap();
    let (status, v) = server.call("POST", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 422, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("canned.toml:") && message.contains("\"hi\" is defined twice"), "{message}");
    let (_, after) = server.call("GET", "/agent/canned", Some(&agent), None).await;
    assert_eq!(after, canned, "the old replies keep serving");
    // The admin page reads the failure back (a watcher's reload has no caller to tell), with
    // the file named by its place in the knowledge folder, not the disk.
    let (status, v) = server.call("GET", "/admin/reload", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    let error = v["error"].as_str().unwrap_or_else(|| panic!("no error: {v}"));
    assert!(error.contains("knowledge/canned.toml:") && error.contains("\"hi\" is defined twice"), "{error}");
    assert!(!error.contains(&kb.display().to_string()), "{error}");
    assert!(v["articles"].as_u64().unwrap() > 0 && v["at_ms"].as_u64().unwrap() > 0, "{v}");
    server.stop().await;
}

#[tokio::test]
async fn a_turn_that_changes_the_state_tells_the_widget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    // Nobody is online: asking for a human turns into leaving a message.
    let conv = server.visitor().await;
    let mut ws = server.ws(&format!("/conversations/{}/ws?token={}", conv.0, conv.1)).await;
    ws.until("initial state", |e| e["type"] == "state" && e["state"] == "bot").await;
    let (status, v) = server.call("POST", &format!("/conversations/{}/handoff", conv.0), Some(&conv.1), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "leaving_message", "{v}");
    ws.until("leaving_message announced", |e| e["type"] == "state" && e["state"] == "leaving_message").await;
    server.stop().await;
}
