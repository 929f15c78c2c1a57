//! Hostile requests against a real server: broken bodies, oversized and nested input, header
//! and token tampering, other visitors' ids, every protected route without a token, and
//! slow clients. Every refusal uses the one error shape and the server keeps serving.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{config, Server, ADMIN_TOKEN};
use super::routes::{url_path, valid_body, Access, ROUTES};

async fn raw(server: &Server, method: &str, path: &str, headers: HeaderMap, body: Vec<u8>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = server.http.request(method, format!("http://{}{path}", server.addr)).headers(headers).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn json_headers(token: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(t) = token {
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    h
}

/// The one error shape, with a message that says something.
fn assert_error(status: u16, v: &Value, want_status: u16, what: &str) {
    assert_eq!(status, want_status, "{what}: {v}");
    let code = v["error"]["code"].as_str().unwrap_or_else(|| panic!("{what}: no error code in {v}"));
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(!code.is_empty() && message.len() > 5, "{what}: {v}");
}

async fn alive(server: &Server) {
    let t = Instant::now();
    let r = server.http.get(format!("http://{}/healthz", server.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(2), "the server is slow to answer: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_refuses_missing_wrong_and_foreign_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (id, visitor) = server.visitor().await;
    let other = server.visitor().await;
    let agent = server.agent("a1", "小王").await;
    let mut checked = 0;
    for (method, path, access) in ROUTES {
        if *access == Access::Public {
            continue;
        }
        let url = url_path(path, &id);
        // (token, whose) pairs that must all be refused on this route.
        let mut wrong: Vec<(Option<String>, &str)> = vec![
            (None, "no token"),
            (Some("garbage".into()), "a made-up token"),
            (Some(format!("{}x", &visitor[..visitor.len() - 1])), "a tampered visitor token"),
            (Some("a".repeat(8000)), "a huge token"),
        ];
        match access {
            Access::Visitor => wrong.push((Some(other.1.clone()), "another visitor's token")),
            Access::Agent => {
                wrong.push((Some(visitor.clone()), "a visitor token"));
                wrong.push((Some(ADMIN_TOKEN.into()), "the admin token"));
            }
            Access::Admin => wrong.push((Some(visitor.clone()), "a visitor token")),
            Access::Public => unreachable!(),
        }
        for (token, whose) in wrong {
            if path.ends_with("/ws") {
                let mut ws_url = format!("ws://{}{url}", server.addr);
                if let Some(t) = &token {
                    ws_url.push_str(&format!("?token={t}"));
                }
                match tokio_tungstenite::connect_async(ws_url).await {
                    Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401, "{method} {path} with {whose}"),
                    other => panic!("{method} {path} with {whose}: {:?}", other.map(|_| "connected")),
                }
            } else {
                let body = valid_body(method, path).to_string().into_bytes();
                let (s, v) = raw(&server, method, &url, json_headers(token.as_deref()), body).await;
                assert_error(s, &v, 401, &format!("{method} {path} with {whose}"));
            }
            checked += 1;
        }
        // An agent's session is a real one, but not an admin's: 403 naming the role.
        if *access == Access::Admin {
            let body = valid_body(method, path).to_string().into_bytes();
            let (s, v) = raw(&server, method, &url, json_headers(Some(&agent)), body).await;
            assert_error(s, &v, 403, &format!("{method} {path} with an agent's session"));
            assert_eq!(v["error"]["code"], "role_required", "{method} {path}: {v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("needs the admin role"), "{method} {path}: {v}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    // The agent's own token still works after all that.
    let (s, _) = server.call("GET", "/agent/me", Some(&agent), None).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_or_garbled_authorization_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (id, token) = server.visitor().await;
    let path = format!("/api/v1/conversations/{id}");
    let b = |s: String| s.into_bytes();
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![b(format!("Bearer {token}")), b"Bearer garbage".to_vec()], "two Authorization headers"),
        (vec![b"Bearer garbage".to_vec(), b(format!("Bearer {token}"))], "two Authorization headers, valid last"),
        (vec![b(format!("Basic {token}"))], "another scheme"),
        (vec![b(format!("Bearer{token}"))], "no space after Bearer"),
        (vec![b(format!("Bearer {} {}", &token[..10], &token[10..]))], "a space inside the token"),
        (vec![b"Bearer \xff\xfe\x01".to_vec()], "bytes that are not text"),
    ];
    for (values, what) in cases {
        let mut h = HeaderMap::new();
        for v in values {
            match HeaderValue::from_bytes(&v) {
                Ok(v) => {
                    h.append(AUTHORIZATION, v);
                }
                Err(_) => continue, // the client cannot even send it
            }
        }
        let (s, v) = raw(&server, "GET", &path, h, vec![]).await;
        assert_error(s, &v, 401, what);
    }
    let (s, _) = raw(&server, "GET", &path, json_headers(Some(&token)), vec![]).await;
    assert_eq!(s, 200, "the real token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_oversized_and_nested_bodies_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await;
    let (id, token) = server.visitor().await;
    let send = format!("/api/v1/conversations/{id}/messages");
    let h = || json_headers(Some(&token));

    // Invalid UTF-8 inside a JSON string, and as the whole body.
    let (s, v) = raw(&server, "POST", &send, h(), b"{\"text\": \"\xff\xfe\xc0\xaf\"}".to_vec()).await;
    assert_error(s, &v, 400, "invalid UTF-8 in a string");
    let (s, v) = raw(&server, "POST", &send, h(), vec![0xff; 1000]).await;
    assert_error(s, &v, 400, "a body of 0xff bytes");

    // JSON that is not an object.
    for body in ["[]", "\"怎么退货\"", "1", "null", "true", "[{\"text\": \"x\"}]"] {
        let (s, v) = raw(&server, "POST", &send, h(), body.as_bytes().to_vec()).await;
        assert_error(s, &v, 400, body);
    }
    // The same for the endpoints whose body is optional.
    let (s, v) = raw(&server, "POST", "/api/v1/conversations", json_headers(None), b"[]".to_vec()).await;
    assert_error(s, &v, 400, "start with an array");

    // Deep nesting: refused without overflowing the stack.
    let deep = format!("{{\"text\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, v) = raw(&server, "POST", &send, h(), deep.into_bytes()).await;
    assert!(s == 400 || s == 413, "nested: {s} {v}");
    assert!(v["error"]["code"].is_string(), "{v}");
    let deep_small = format!("{{\"text\": \"x\", \"client_id\": {}1{}}}", "[".repeat(5_000), "]".repeat(5_000));
    let (s, v) = raw(&server, "POST", &send, h(), deep_small.into_bytes()).await;
    assert_error(s, &v, 400, "nested under the limit");

    // 10 MB: refused quickly, with and without a Content-Length.
    // (Raw sockets: the server answers 413 and closes before the upload ends, which an
    // HTTP client reports as a broken pipe rather than the answer.)
    let big = vec![b'a'; 10 * 1024 * 1024];
    let t = Instant::now();
    let mut sized = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST {send} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", big.len());
    sized.write_all(head.as_bytes()).await.unwrap();
    let _ = sized.write_all(&big).await;
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), sized.read(&mut answer)).await.ok().and_then(Result::ok).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"), "10 MB body: {answer}");
    assert!(t.elapsed() < Duration::from_secs(3), "10 MB took {:?}", t.elapsed());
    let mut chunked = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST {send} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    chunked.write_all(head.as_bytes()).await.unwrap();
    for c in big.chunks(64 * 1024) {
        let mut piece = format!("{:x}\r\n", c.len()).into_bytes();
        piece.extend_from_slice(c);
        piece.extend_from_slice(b"\r\n");
        if chunked.write_all(&piece).await.is_err() {
            break; // the server stopped reading: refused mid-upload
        }
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), chunked.read(&mut answer)).await.ok().and_then(Result::ok).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 413"), "10 MB chunked: {answer}");

    // Wrong or missing content type.
    let mut plain = HeaderMap::new();
    plain.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let (s, v) = raw(&server, "POST", &send, plain.clone(), b"{\"text\": \"x\"}".to_vec()).await;
    assert_error(s, &v, 415, "no content type");
    plain.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    let (s, v) = raw(&server, "POST", &send, plain, b"<text>x</text>".to_vec()).await;
    assert_error(s, &v, 415, "xml");

    // Control characters, lone combining marks, bidi overrides, a 2001-char message.
    for text in ["\u{0}\u{1}\u{7f}怎么退货\u{1b}[31m", "\u{301}\u{301}\u{301}", "\u{202e}货退么怎", "\u{feff}\u{200b}"] {
        let (s, v) = raw(&server, "POST", &send, h(), json!({"text": text}).to_string().into_bytes()).await;
        assert!(s == 200 || (s == 400 && v["error"]["code"] == "bad_request"), "{text:?}: {s} {v}");
    }
    let (s, v) = raw(&server, "POST", &send, h(), json!({"text": "退".repeat(2001)}).to_string().into_bytes()).await;
    assert_error(s, &v, 400, "2001 characters");
    assert!(v["error"]["message"].as_str().unwrap().contains("2000"), "{v}");

    // Unknown and wrongly typed fields.
    for body in [json!({"text": "x", "admin": true}), json!({"text": 5}), json!({"text": "x", "client_id": {"a": 1}})] {
        let (s, v) = raw(&server, "POST", &send, h(), body.to_string().into_bytes()).await;
        assert_error(s, &v, 400, &body.to_string());
    }

    // Path tampering: traversal, absurd ids, encoded junk.
    for path in ["/api/v1/conversations/..%2F..%2Fadmin/messages", "/api/v1/conversations/%00/messages", &format!("/api/v1/conversations/{}/messages", "9".repeat(5000))] {
        let (s, v) = raw(&server, "GET", path, h(), vec![]).await;
        assert!(matches!(s, 400 | 401 | 404 | 414 | 431), "{path}: {s} {v}");
    }

    // After all that, the conversation is intact and answers.
    let history = server.call("GET", &format!("/conversations/{id}/messages"), Some(&token), None).await;
    assert_eq!(history.0, 200);
    server.say(&(id.clone(), token.clone()), "怎么退货").await;
    alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_without_blocking_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.request_timeout_ms = 1_000;
    c.limits.header_timeout_ms = 1_000;
    let server = Server::start(c).await;
    let (id, token) = server.visitor().await;

    // A body trickled one byte every 200 ms: the request timeout answers 503.
    let mut slow_body = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let body = json!({"text": "怎么退货"}).to_string();
    let head = format!(
        "POST /api/v1/conversations/{id}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    // The answer is read while the body trickles: once the server has answered and closed,
    // a late write can reset the connection and drop an answer read only afterwards.
    let (mut slow_read, mut slow_write) = slow_body.into_split();
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(8), slow_read.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).to_string()
    });
    let body_task = tokio::spawn(async move {
        let t = Instant::now();
        for b in body.as_bytes() {
            if slow_write.write_all(&[*b]).await.is_err() || reader.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if t.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let took = t.elapsed();
        (took, reader.await.unwrap())
    });

    // Headers trickled one byte every 200 ms (slowloris): the connection is closed.
    let mut slow_head = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head_task = tokio::spawn(async move {
        let t = Instant::now();
        let head = b"GET /api/v1/agent/me HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if slow_head.write_all(&[*b]).await.is_err() {
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // A closed connection shows as a read of 0 bytes.
            let mut buf = [0u8; 1024];
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), slow_head.read(&mut buf)).await {
                return t.elapsed();
            }
        }
        Duration::MAX
    });

    // Meanwhile other visitors are served at once.
    let other = server.visitor().await;
    for i in 0..5 {
        let t = Instant::now();
        server.say(&other, &format!("运费怎么算 {i}")).await;
        assert!(t.elapsed() < Duration::from_secs(1), "a normal request waited {:?}", t.elapsed());
    }

    let (took, answer) = body_task.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("\"timeout\""), "slow body got: {answer:?}");
    assert!(took < Duration::from_secs(4), "the slow body held its connection for {took:?}");
    let head_took = head_task.await.unwrap();
    assert!(head_took < Duration::from_secs(5), "the slow headers held their connection for {head_took:?}");
    alive(&server).await;
}
