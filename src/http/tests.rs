//! Handler behaviour through the router alone (`app(state).oneshot(request)`): statuses,
//! the error shape and its codes, authentication. No server, no port; WebSockets, crashes and
//! load are the port-0 tests' (`tests/it`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{app, AppState, Limiters};
use crate::channels::wechat::WeChat;
use crate::config::Config;
use crate::service::testing::{self, Fixture};

struct Api {
    state: AppState,
    fixture: Fixture,
    _closing: watch::Sender<bool>,
}

async fn api() -> Api {
    let fixture = testing::service(|c| c.limits.max_message_chars = 20).await;
    let config = Arc::new(Config { limits: crate::config::Limits { max_message_chars: 20, ..Default::default() }, ..Config::default() });
    let (close, closing) = watch::channel(false);
    let state = AppState {
        limits: Arc::new(Limiters::new(&config.limits)),
        config,
        service: fixture.service.clone(),
        metrics: Default::default(),
        wechat: Arc::new(WeChat::open(fixture.service.clone(), &[]).unwrap()),
        closing,
    };
    Api { state, fixture, _closing: close }
}

impl Api {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
        let response = app(self.state.clone()).oneshot(req).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers)
    }

    async fn visitor(&self) -> (String, String) {
        let (status, v, _) = self.call("POST", "/api/v1/conversations", None, Some("{}")).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into())
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {v}"))
}

#[tokio::test]
async fn a_visitor_is_answered_and_bad_input_gets_its_code() {
    let api = api().await;
    let (id, token) = api.visitor().await;
    let path = format!("/api/v1/conversations/{id}/messages");
    let (status, v, _) = api.call("POST", &path, Some(&token), Some(r#"{"text": "退货运费谁出"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["replies"][0]["bot"]["article"], "return-shipping-fee");

    let (status, v, _) = api.call("POST", &path, Some(&token), Some(r#"["退货运费谁出"]"#)).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "invalid_json"), "arrays are refused");
    let (status, v, _) = api.call("POST", &path, Some(&token), Some(&json!({"text": "长".repeat(21)}).to_string())).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "message_too_long"));
    assert_eq!(v["error"]["message"], "the message has 21 characters; at most 20 are allowed");
    let (status, v, _) = api.call("POST", &path, Some(&token), Some(r#"{"text": "hi", "client_id": ""}"#)).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "invalid_client_id"));
    let (status, v, _) = api.call("POST", &format!("/api/v1/conversations/{id}/rating"), Some(&token), Some(r#"{"score": 9}"#)).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "invalid_rating"));
    let (status, v, _) = api.call("POST", &format!("/api/v1/conversations/{id}/rating"), Some(&token), Some(r#"{"score": 5}"#)).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "not_handed_off"));
}

#[tokio::test]
async fn credentials_are_checked_and_refusals_say_bearer() {
    let api = api().await;
    let (id, token) = api.visitor().await;
    let (status, v, headers) = api.call("GET", &format!("/api/v1/conversations/{id}"), None, None).await;
    assert_eq!((status, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let (status, _, _) = api.call("GET", &format!("/api/v1/conversations/{id}"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    // A visitor token is not an agent's or the admin's.
    for path in ["/api/v1/agent/queue", "/api/v1/admin/stats"] {
        let (status, v, _) = api.call("GET", path, Some(&token), None).await;
        assert_eq!((status, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{path}");
    }
    let (status, v, _) = api.call("GET", "/api/v1/admin/stats", Some("admin"), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn agents_get_the_specific_codes() {
    let api = api().await;
    api.fixture.agent("a1", true).await;
    let (_, v, _) = api.call("POST", "/api/v1/agent/login", None, Some(r#"{"id": "a1", "password": "password-123"}"#)).await;
    let agent = v["token"].as_str().unwrap().to_string();
    let (status, v, _) = api.call("POST", "/api/v1/agent/conversations/nope/claim", Some(&agent), None).await;
    assert_eq!((status, code(&v)), (StatusCode::NOT_FOUND, "conversation_not_found"));
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"), "{v}");
    let (id, _) = api.visitor().await;
    let (status, v, _) = api.call("POST", &format!("/api/v1/agent/conversations/{id}/claim"), Some(&agent), None).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "not_handed_off"));
    let (status, v, _) = api.call("POST", &format!("/api/v1/agent/conversations/{id}/messages"), Some(&agent), Some(r#"{"text": "您好"}"#)).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "not_your_conversation"));
}

#[tokio::test]
async fn the_router_answers_unknown_routes_and_methods_in_the_same_shape() {
    let api = api().await;
    let (status, v, _) = api.call("GET", "/api/v1/no/such/endpoint", None, None).await;
    assert_eq!((status, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, v, _) = api.call("DELETE", "/api/v1/conversations", None, None).await;
    assert_eq!((status, code(&v)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (id, token) = api.visitor().await;
    let req = Request::post(format!("/api/v1/conversations/{id}/messages"))
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(r#"{"text": "hi"}"#))
        .unwrap();
    let response = app(api.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn an_agent_socket_ends_with_its_session_expiry_or_logout() {
    use std::time::Duration;
    let api = api().await;
    api.fixture.agent("a1", true).await;
    let service = &api.fixture.service;
    let (token, _) = service.login("a1", "password-123").await.unwrap();
    let now = crate::service::now_ms();
    // A session that expires in 200 ms: its socket's watch ends then, by itself.
    let expiring = super::ws::session_over(api.state.clone(), token.clone(), "a1".into(), now + 200, service.sessions_ended());
    tokio::time::timeout(Duration::from_secs(5), expiring).await.expect("the watch ends at the expiry");
    // One that lasts: the watch waits, until the logout.
    let lasting = super::ws::session_over(api.state.clone(), token.clone(), "a1".into(), now + 3_600_000, service.sessions_ended());
    tokio::pin!(lasting);
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut lasting).await.is_err(), "ended before its time");
    let (other, _) = service.login("a1", "password-123").await.unwrap();
    service.logout(&other).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut lasting).await.is_err(), "another session's logout ended it");
    service.logout(&token).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut lasting).await.expect("the watch ends at the logout");
}
