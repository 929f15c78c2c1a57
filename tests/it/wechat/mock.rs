//! A simulated WeChat: the message API kefu calls (with the temporary media API: users'
//! photos to fetch, agents' photos uploaded), and a client that signs (and seals) pushes the
//! way WeChat's servers do.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kefu::channels::wechat::crypto::Cipher;
use kefu::channels::wechat::{HandoffTo, Kind, Mode, WeChatApp};
use kefu::config::Config;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::fixture::{self, Server};

pub const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const TOKEN: &str = "AAAAA";

#[derive(Default)]
pub struct Api {
    /// Every `custom/send` call: (access token, body).
    pub sends: Mutex<Vec<(String, Value)>>,
    pub token_calls: AtomicUsize,
    /// The next send answers 40001 (the token was invalidated, e.g. fetched elsewhere).
    pub invalidate_next: AtomicBool,
    /// Media users sent, by MediaId: (content type, bytes), served by `media/get`.
    pub media: Mutex<std::collections::HashMap<String, (String, Vec<u8>)>>,
    /// `media/get` calls: (access token, media id).
    pub media_gets: Mutex<Vec<(String, String)>>,
    /// Files uploaded through `media/upload`, by the media id given back: (type, file name, content type, bytes).
    pub uploads: Mutex<Vec<(String, String, String, String, Vec<u8>)>>,
}

impl Api {
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.sends.lock().unwrap().clone()
    }

    /// Texts sent to one user, in order.
    pub fn texts_to(&self, openid: &str) -> Vec<String> {
        self.sent().iter().filter(|(_, b)| b["touser"] == openid && b["msgtype"] == "text").map(|(_, b)| b["text"]["content"].as_str().unwrap().to_string()).collect()
    }

    /// Media ids of the image messages sent to one user, in order.
    pub fn images_to(&self, openid: &str) -> Vec<String> {
        self.sent().iter().filter(|(_, b)| b["touser"] == openid && b["msgtype"] == "image").map(|(_, b)| b["image"]["media_id"].as_str().unwrap().to_string()).collect()
    }

    /// Waits until `n` image messages went to `openid` (20 s at most): their media ids.
    pub async fn wait_images(&self, openid: &str, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let t = self.images_to(openid);
            if t.len() >= n {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} images to {openid}, got {:?}", self.sent());
    }

    /// Waits until `n` texts went to `openid` (20 s at most): them.
    pub async fn wait_texts(&self, openid: &str, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let t = self.texts_to(openid);
            if t.len() >= n {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages to {openid}, got {:?}", self.texts_to(openid));
    }
}

/// A gauge or counter of the server's `/metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = server.http.get(format!("http://{}/metrics", server.addr)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[name.len() + 1..].parse().unwrap()
}

/// Waits until the WeChat send loop has finished whole passes over the outbox (begun after
/// this call) and `waiting` messages are left in it: then whatever could go out has gone.
/// Fails if the outbox does not settle there within 20 s.
pub async fn settle_outbox(server: &Server, waiting: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The pass running now may have read the outbox before the last change: two passes on.
    let mut after = metric(server, "kefu_wechat_outbox_passes_total").await + 2;
    loop {
        let passes = metric(server, "kefu_wechat_outbox_passes_total").await;
        if passes >= after {
            let left = metric(server, "kefu_wechat_outbox").await;
            if left == waiting && metric(server, "kefu_wechat_outbox_passes_total").await == passes {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the WeChat outbox holds {left}, not {waiting}");
            after = passes + 1;
        }
        // Polling a counter of the loop, not sleeping in the hope that it ran.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The messages left in the outbox of a stopped server's data directory, for one user.
pub async fn outbox_of(data: &Path, openid: &str) -> Vec<String> {
    let store = kefu::store::SledStore::open(&data.join("store")).unwrap();
    let wx = kefu::channels::wechat::store::WxStore::open(Arc::new(store));
    wx.outbox().await.unwrap().into_iter().filter(|(_, m)| m.openid == openid).map(|(_, m)| m.text).collect()
}

/// Starts the simulated message API: its base URL.
pub async fn start_api() -> (String, Arc<Api>) {
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/message/custom/send", post(send))
        .route("/cgi-bin/media/get", get(media_get))
        .route("/cgi-bin/media/upload", post(media_upload))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), api)
}

async fn token(State(api): State<Arc<Api>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Json<Value> {
    if q.get("grant_type").map(String::as_str) != Some("client_credential") || q.get("secret").map(String::as_str) != Some("app-secret") {
        return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let n = api.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"access_token": format!("tok-{n}"), "expires_in": 7200}))
}

async fn send(State(api): State<Arc<Api>>, Query(q): Query<std::collections::HashMap<String, String>>, Json(body): Json<Value>) -> Json<Value> {
    let token = q.get("access_token").cloned().unwrap_or_default();
    let current = format!("tok-{}", api.token_calls.load(Ordering::SeqCst));
    if api.invalidate_next.swap(false, Ordering::SeqCst) || token != current {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}));
    }
    api.sends.lock().unwrap().push((token, body));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

fn current_token(api: &Api, q: &std::collections::HashMap<String, String>) -> Option<String> {
    let token = q.get("access_token").cloned().unwrap_or_default();
    (token == format!("tok-{}", api.token_calls.load(Ordering::SeqCst))).then_some(token)
}

/// WeChat's `media/get`: the file itself, or a JSON error.
async fn media_get(State(api): State<Arc<Api>>, Query(q): Query<std::collections::HashMap<String, String>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(token) = current_token(&api, &q) else {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})).into_response();
    };
    let id = q.get("media_id").cloned().unwrap_or_default();
    api.media_gets.lock().unwrap().push((token, id.clone()));
    match api.media.lock().unwrap().get(&id).cloned() {
        Some((kind, bytes)) => ([(axum::http::header::CONTENT_TYPE, kind)], bytes).into_response(),
        None => ([(axum::http::header::CONTENT_TYPE, "text/plain")], json!({"errcode": 40007, "errmsg": "invalid media_id"}).to_string()).into_response(),
    }
}

/// WeChat's `media/upload`: a multipart form with the file in `media`.
async fn media_upload(State(api): State<Arc<Api>>, Query(q): Query<std::collections::HashMap<String, String>>, mut form: axum::extract::Multipart) -> Json<Value> {
    if current_token(&api, &q).is_none() {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}));
    }
    let kind = q.get("type").cloned().unwrap_or_default();
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("media") {
            continue;
        }
        let name = field.file_name().unwrap_or("").to_string();
        let mime = field.content_type().unwrap_or("").to_string();
        let bytes = field.bytes().await.unwrap().to_vec();
        let mut uploads = api.uploads.lock().unwrap();
        let id = format!("up-{}", uploads.len() + 1);
        uploads.push((id.clone(), kind.clone(), name, mime, bytes));
        return Json(json!({"type": kind, "media_id": id, "created_at": now()}));
    }
    Json(json!({"errcode": 41005, "errmsg": "media data missing"}))
}

/// An image push (`MsgType` image with `PicUrl` and `MediaId`).
pub fn image_xml(openid: &str, msg_id: u64, media_id: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/not-fetched]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId><MsgId>{msg_id}</MsgId></xml>",
        now()
    )
}

pub fn app(name: &str, appid: &str, api_base: &str) -> WeChatApp {
    WeChatApp {
        name: name.into(),
        token: TOKEN.into(),
        appid: appid.into(),
        secret: "app-secret".into(),
        encoding_aes_key: None,
        mode: Mode::Plaintext,
        kind: Kind::OfficialAccount,
        api_base: api_base.into(),
        reply_budget_ms: 4_000,
        timestamp_window_secs: 300,
        max_body_bytes: 64 * 1024,
        handoff: HandoffTo::Kefu,
        kf_account: None,
        greeting: "您好，欢迎关注！有问题直接发消息给我。".into(),
    }
}

/// The apps every test server has: a plaintext 公众号, one in safe mode, a 小程序 in
/// compatible mode, one with a budget of 0 (every answer goes through the API, as a slow
/// answer does), one handing off to WeChat's 客服.
pub fn config(data: &Path, api_base: &str) -> Config {
    let mut c = fixture::config(data);
    let safe = WeChatApp { mode: Mode::Safe, encoding_aes_key: Some(KEY.into()), ..app("safe", "wxsafe0001", api_base) };
    let mini = WeChatApp {
        mode: Mode::Compatible,
        kind: Kind::MiniProgram,
        encoding_aes_key: Some(KEY.into()),
        ..app("mini", "wxmini0001", api_base)
    };
    let slow = WeChatApp { reply_budget_ms: 0, ..app("slow", "wxslow0001", api_base) };
    let kf = WeChatApp { handoff: HandoffTo::WechatKf, kf_account: Some("kf2001@gh_test".into()), ..app("kf", "wxkf0001", api_base) };
    c.wechat = vec![app("mp", "wxmp0001", api_base), safe, mini, slow, kf];
    c.validate().unwrap();
    c
}

pub async fn start() -> (tempfile::TempDir, Server, Arc<Api>) {
    let dir = tempfile::tempdir().unwrap();
    let (base, api) = start_api().await;
    let server = Server::start(config(dir.path(), &base)).await;
    (dir, server, api)
}

pub const MP: kefu::channels::render::Channel = kefu::channels::render::Channel::WeChatOfficialAccount;
pub const MINI: kefu::channels::render::Channel = kefu::channels::render::Channel::WeChatMiniProgram;

/// A short Markdown answer as WeChat shows it: one message of text.
pub fn on_wechat(markdown: &str, channel: kefu::channels::render::Channel) -> String {
    let parts = kefu::channels::render::messages(markdown, channel);
    assert_eq!(parts.len(), 1, "a short answer is one message: {parts:?}");
    parts.into_iter().next().unwrap()
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// SHA-1 of the sorted parts, written here independently of kefu's code.
pub fn sign(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

pub fn text_xml(openid: &str, msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        now()
    )
}

pub fn event_xml(openid: &str, event: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event></xml>",
        now()
    )
}

/// What WeChat sends: (status, content type, body).
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// A field of an XML reply (CDATA or plain).
    pub fn field(&self, name: &str) -> Option<String> {
        field(&self.body, name)
    }
}

pub fn field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    let v = &xml[start..end];
    Some(v.strip_prefix("<![CDATA[").and_then(|v| v.strip_suffix("]]>")).unwrap_or(v).to_string())
}

/// Posts a push to `/wechat/{app}` signed with `timestamp` and `nonce` (plaintext mode).
pub async fn post_raw(server: &Server, app: &str, query: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
    let url = format!("http://{}/wechat/{app}?{query}", server.addr);
    let r = server.http.post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    Reply { status, content_type, body: r.text().await.unwrap() }
}

pub fn signed_query(timestamp: i64, nonce: &str) -> String {
    let ts = timestamp.to_string();
    format!("signature={}&timestamp={ts}&nonce={nonce}", sign(&[TOKEN, &ts, nonce]))
}

/// A plaintext push, under a nonce of its own as WeChat sends (a signed URL takes one body).
pub async fn push(server: &Server, app: &str, xml: &str) -> Reply {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(486452656);
    let nonce = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
    post_raw(server, app, &signed_query(now(), &nonce), "text/xml", xml.to_string()).await
}

/// A push in safe mode: the message sealed for `appid`, the envelope signed.
pub async fn push_sealed(server: &Server, app: &str, appid: &str, inner: &str, json: bool) -> Reply {
    let cipher = Cipher::new(KEY, appid).unwrap();
    let sealed = cipher.encrypt(inner.as_bytes());
    let (ts, nonce) = (now().to_string(), "1320562132");
    let msg_signature = sign(&[TOKEN, &ts, nonce, &sealed]);
    let query = format!("{}&encrypt_type=aes&msg_signature={msg_signature}", signed_query(now(), nonce));
    let (ct, body) = if json {
        ("application/json", json!({"ToUserName": "gh_mini", "Encrypt": sealed}).to_string())
    } else {
        ("text/xml", format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"))
    };
    post_raw(server, app, &query, ct, body).await
}

/// Opens an encrypted reply: checks its signature and returns the inner message.
pub fn open_sealed(appid: &str, encrypt: &str, signature: &str, timestamp: &str, nonce: &str) -> String {
    assert_eq!(sign(&[TOKEN, timestamp, nonce, encrypt]), signature, "the reply's MsgSignature");
    String::from_utf8(Cipher::new(KEY, appid).unwrap().decrypt(encrypt).unwrap()).unwrap()
}

/// Claims the first queued conversation for `agent` (a bearer token): its id.
pub async fn claim_waiting(server: &Server, agent: &str) -> String {
    let (status, queue) = server.call("GET", "/agent/queue", Some(agent), None).await;
    assert_eq!(status, 200);
    let conv = queue[0]["conversation"].as_str().unwrap().to_string();
    let (status, v) = server.call("POST", &format!("/agent/conversations/{conv}/claim"), Some(agent), None).await;
    assert_eq!(status, 200, "{v}");
    conv
}
