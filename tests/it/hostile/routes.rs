//! Every route of the router, with who may call it. A route added to the router but not to
//! [`ROUTES`] fails `every_route_is_classified`: new routes (pages, WeChat callbacks) must say
//! who may call them, and the token checks below then cover them.

use std::path::Path;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (probes, starting a conversation, logging in).
    Public,
    /// The conversation's visitor token.
    Visitor,
    /// An agent's session token.
    Agent,
    /// The admin token, or the session of a person with the admin role.
    Admin,
}

/// (method, path as written in the router, access). `{id}` stands for a conversation id.
/// Add new routes here; `GET …/ws` routes are WebSockets (token in the query string).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("POST", "/conversations", Access::Public),
    ("GET", "/conversations/{id}", Access::Visitor),
    ("GET", "/conversations/{id}/messages", Access::Visitor),
    ("POST", "/conversations/{id}/messages", Access::Visitor),
    ("POST", "/conversations/{id}/handoff", Access::Visitor),
    ("POST", "/conversations/{id}/rating", Access::Visitor),
    ("POST", "/conversations/{id}/feedback", Access::Visitor),
    ("POST", "/conversations/{id}/ticket", Access::Visitor),
    ("GET", "/conversations/{id}/ws", Access::Visitor),
    ("POST", "/conversations/{id}/images", Access::Visitor),
    ("GET", "/conversations/{id}/images/{hash}", Access::Visitor),
    ("POST", "/agent/login", Access::Public),
    ("POST", "/agent/logout", Access::Agent),
    ("GET", "/agent/me", Access::Agent),
    ("POST", "/agent/status", Access::Agent),
    ("GET", "/agent/queue", Access::Agent),
    ("GET", "/agent/conversations", Access::Agent),
    ("GET", "/agent/agents", Access::Agent),
    ("GET", "/agent/conversations/{id}", Access::Agent),
    ("POST", "/agent/conversations/{id}/claim", Access::Agent),
    ("POST", "/agent/conversations/{id}/messages", Access::Agent),
    ("POST", "/agent/conversations/{id}/notes", Access::Agent),
    ("POST", "/agent/conversations/{id}/images", Access::Agent),
    ("GET", "/agent/conversations/{id}/images/{hash}", Access::Agent),
    ("POST", "/agent/conversations/{id}/resolve", Access::Agent),
    ("POST", "/agent/conversations/{id}/transfer", Access::Agent),
    ("POST", "/agent/conversations/{id}/return", Access::Agent),
    ("GET", "/agent/canned", Access::Agent),
    ("GET", "/agent/articles", Access::Agent),
    ("GET", "/agent/ws", Access::Agent),
    ("GET", "/agent/history", Access::Agent),
    ("GET", "/agent/history.csv", Access::Agent),
    ("GET", "/agent/history/{id}", Access::Agent),
    // `{id}` in a ticket's path is not a ticket id: the token is refused before the id is read.
    ("GET", "/agent/tickets", Access::Agent),
    ("POST", "/agent/tickets", Access::Agent),
    ("GET", "/agent/tickets/{id}", Access::Agent),
    ("PATCH", "/agent/tickets/{id}", Access::Agent),
    ("POST", "/agent/tickets/{id}/replies", Access::Agent),
    ("POST", "/agent/tickets/{id}/notes", Access::Agent),
    // Any session; the service asks for the supervisor role where it is needed.
    ("POST", "/agent/password", Access::Agent),
    ("GET", "/agent/supervision", Access::Agent),
    ("POST", "/agent/conversations/{id}/takeover", Access::Agent),
    ("GET", "/agent/rubric", Access::Agent),
    ("GET", "/agent/reviews", Access::Agent),
    ("POST", "/agent/reviews", Access::Agent),
    ("GET", "/admin/reload", Access::Admin),
    ("POST", "/admin/reload", Access::Admin),
    ("GET", "/admin/stats", Access::Admin),
    ("GET", "/admin/reports", Access::Admin),
    ("GET", "/admin/reports/csv", Access::Admin),
    ("GET", "/admin/unanswered", Access::Admin),
    ("POST", "/admin/similar", Access::Admin),
    ("GET", "/admin/agents", Access::Admin),
    ("POST", "/admin/agents", Access::Admin),
    ("POST", "/admin/agents/{id}", Access::Admin),
    ("POST", "/admin/agents/{id}/password", Access::Admin),
    ("POST", "/admin/agents/{id}/disable", Access::Admin),
    ("POST", "/admin/agents/{id}/enable", Access::Admin),
    ("POST", "/admin/agents/{id}/unlock", Access::Admin),
    ("GET", "/admin/tickets", Access::Admin),
    ("GET", "/admin/articles", Access::Admin),
    ("GET", "/admin/webhooks", Access::Admin),
    ("POST", "/admin/webhooks", Access::Admin),
    ("PUT", "/admin/webhooks/{id}", Access::Admin),
    ("DELETE", "/admin/webhooks/{id}", Access::Admin),
    ("GET", "/admin/webhooks/deliveries", Access::Admin),
    ("POST", "/admin/webhooks/deliveries/{id}/resend", Access::Admin),
    // The pages: static files, public by design (the console pages log in through the API).
    ("GET", "/", Access::Public),
    ("GET", "/demo", Access::Public),
    ("GET", "/widget.js", Access::Public),
    ("GET", "/agent", Access::Public),
    ("GET", "/admin", Access::Public),
    ("GET", "/favicon.svg", Access::Public),
    ("GET", "/assets/{file}", Access::Public),
    // WeChat's callbacks: no token, but every request must carry WeChat's signature (tests/it/wechat).
    ("GET", "/wechat/{app}", Access::Public),
    ("POST", "/wechat/{app}", Access::Public),
];

/// Routes served at the root rather than under `/api/v1`.
const ROOT_ROUTES: &[&str] =
    &["/healthz", "/readyz", "/metrics", "/", "/demo", "/widget.js", "/agent", "/admin", "/favicon.svg", "/assets/{file}", "/wechat/{app}"];

/// A body the route would accept, so that a refusal can only be about the token. Routes not
/// listed take `{}`; a new route with required fields adds its body here.
pub fn valid_body(method: &str, path: &str) -> serde_json::Value {
    use serde_json::json;
    match (method, path) {
        ("POST", "/conversations/{id}/messages" | "/agent/conversations/{id}/messages" | "/agent/conversations/{id}/notes") => json!({"text": "怎么退货"}),
        ("POST", "/conversations/{id}/rating") => json!({"score": 5}),
        ("POST" | "PUT", "/admin/webhooks" | "/admin/webhooks/{id}") => json!({"url": "http://127.0.0.1:9/hook", "events": ["conversation.started"]}),
        ("POST", "/conversations/{id}/feedback") => json!({"seq": 2, "helpful": true}),
        ("POST", "/conversations/{id}/ticket") => json!({"contact": "13800138000", "message": "请回电"}),
        ("POST", "/agent/status") => json!({"status": "online"}),
        ("POST", "/agent/tickets/{id}/replies" | "/agent/tickets/{id}/notes") => json!({"text": "已回电"}),
        ("POST", "/agent/tickets") => json!({"conversation": "c1", "message": "请回电"}),
        ("POST", "/agent/conversations/{id}/transfer") => json!({"to": "a1"}),
        ("POST", "/admin/similar") => json!({"article": "how-to-return", "question": "咋退货"}),
        ("POST", "/admin/agents") => json!({"id": "intruder", "name": "x", "password": "intruder-password"}),
        ("POST", "/admin/agents/{id}/password") => json!({"password": "intruder-password"}),
        ("POST", "/agent/password") => json!({"current": "correct horse battery", "new": "intruder-password"}),
        ("POST", "/agent/reviews") => json!({"conversation": "c1", "scores": []}),
        _ => json!({}),
    }
}

/// The URL path of a route: probes sit at the root, the rest under `/api/v1`.
pub fn url_path(path: &str, id: &str) -> String {
    let p = path.replace("{id}", id);
    if ROOT_ROUTES.contains(&path) {
        p
    } else {
        format!("/api/v1{p}")
    }
}

/// Every `.route("PATH", get(…).post(…))` in the sources, as (method, path).
pub fn routes_in_source(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(routes_in_source(&path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // One route per line, as the router is written: `.route("/x", get(a).post(b))`.
        // `Router::new().route(…)` on one line counts too.
        for line in text.lines().filter_map(|l| l.find(".route(").map(|i| &l[i..])) {
            let rest = line.trim_start_matches(".route(");
            let Some(route) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else { continue };
            let handlers = &rest[route.len() + 2..];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                    let before = handlers[..i].chars().next_back();
                    before.is_none_or(|c| !c.is_alphanumeric() && c != '_')
                });
                if called {
                    out.push((method.to_uppercase(), route.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn every_route_is_classified() {
    let found = routes_in_source(&crate::fixture::repo().join("src"));
    assert!(found.len() >= ROUTES.len() - 2, "the scan found only {found:?}");
    let mut missing = Vec::new();
    for (method, path) in &found {
        if !ROUTES.iter().any(|(m, p, _)| m == method && p == path) {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(missing.is_empty(), "routes in the router but not in tests/it/hostile/routes.rs ROUTES (say who may call them): {missing:?}");
    for (m, p, _) in ROUTES {
        assert!(found.iter().any(|(fm, fp)| fm == m && fp == p), "{m} {p} is in ROUTES but no longer in the router");
    }
}
