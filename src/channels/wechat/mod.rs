//! WeChat customer-service messages for 公众号 and 小程序: verifies and reads WeChat's pushes,
//! answers each passively when the answer is ready within the app's budget and otherwise
//! later through the message API, de-duplicates WeChat's retries, relays kefu's agents'
//! replies, and keeps each user's message quota, holding (never dropping) what exceeds it.
//! Users' photos (image messages) are fetched through the media API and stored as the
//! widget's are; agents' photos go out as image messages.
//! What is said goes out as WeChat text (`outgoing.rs`), not Markdown.
//! The HTTP routes are in `http/wechat.rs`; this module knows nothing of axum.

pub mod api;
pub mod config;
pub mod crypto;
pub mod message;
pub mod outgoing;
mod replay;
pub mod signature;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

pub use config::{HandoffTo, Kind, Mode, WeChatApp};
use crypto::{Cipher, CryptoError};
use message::{Format, Incoming, MessageError};
use store::{Answer, Outgoing, Reply, WxStore};

use crate::dialogue::{Message, Millis, Sender};
use crate::service::{now_ms, Service, ServiceError};

/// Why a request from (supposedly) WeChat is refused; the HTTP edge maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    #[error("no WeChat app is configured under the name {0:?}")]
    UnknownApp(String),
    #[error("the request lacks the query parameter {0}")]
    MissingParameter(&'static str),
    #[error("the signature does not match")]
    Signature,
    #[error("the timestamp is outside the accepted window (a replay or a wrong clock)")]
    Stale,
    #[error("this timestamp and nonce were already used with another body (a replayed URL); WeChat never does that")]
    Replayed,
    #[error("this app is in safe mode: pushes must be encrypted")]
    PlaintextRefused,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The query parameters WeChat sends.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Params {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

impl Params {
    fn get<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, WeChatError> {
        value.as_deref().ok_or(WeChatError::MissingParameter(name))
    }
}

/// A response body for WeChat.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// "Received; nothing to say now" (WeChat shows nothing and does not retry).
    pub fn success() -> Response {
        Response { content_type: "text/plain; charset=utf-8", body: "success".into() }
    }
}

struct App {
    config: WeChatApp,
    cipher: Option<Cipher>,
    api: api::Client,
}

/// One delivery being answered: WeChat's retries wait on the same answer.
#[derive(Default)]
struct Flight {
    state: Mutex<FlightState>,
    done: watch::Sender<bool>,
}

#[derive(Default)]
struct FlightState {
    reply: Option<Reply>,
    /// Requests (the first delivery and retries) waiting for the answer now.
    waiters: usize,
    /// Nobody was waiting when the answer was ready: it goes out through the API.
    later: bool,
}

pub struct WeChat {
    service: Arc<Service>,
    apps: HashMap<String, App>,
    store: WxStore,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    wake: Notify,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// Passes of the send loop so far, and the messages left in the outbox after the last
    /// (held by a quota or a backoff): for `/metrics`, and for tests to wait on a pass
    /// instead of sleeping.
    pub passes: AtomicU64,
    pub waiting: AtomicU64,
    /// Recent (timestamp, nonce) pairs of each app with their bodies.
    replays: replay::Replays,
    /// This process among the nodes sharing the store: who claimed a delivery, who sends.
    node: String,
    /// Whether other nodes share the store (claims and the sender's lease are needed).
    shared: bool,
}

/// How long a failed API send waits before the next attempt, at most.
const MAX_BACKOFF_MS: Millis = 300_000;
/// A message WeChat keeps refusing (not for the window) is given up after this many tries.
const MAX_ATTEMPTS: u32 = 20;
/// The rest of a long passive answer waits this long before going through the API: WeChat
/// shows the first part when it gets our HTTP response, which nothing acknowledges, and a
/// part that overtook it would appear above it.
const AFTER_PASSIVE_MS: Millis = 1_500;

const SORRY_BUSY: &str = "抱歉，系统繁忙，请稍后再试。";
const ONLY_TEXT: &str = "抱歉，我目前只能看懂文字和图片消息，请用文字描述您的问题。";

impl WeChat {
    /// The channel for the configured apps, with its store in `DATA/wechat`.
    pub fn open(service: Arc<Service>, apps_config: &[WeChatApp]) -> Result<WeChat, WeChatError> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("the HTTP client builds");
        let mut apps = HashMap::new();
        for a in apps_config {
            let cipher = a.encoding_aes_key.as_deref().map(|k| Cipher::new(k, &a.appid)).transpose()?;
            let api = api::Client::new(http.clone(), &a.api_base, &a.appid, &a.secret);
            apps.insert(a.name.clone(), App { config: a.clone(), cipher, api });
        }
        let store = WxStore::open(service.store().clone());
        let shared = service.store().notes().is_some();
        Ok(WeChat {
            service,
            apps,
            store,
            flights: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            tasks: Default::default(),
            passes: AtomicU64::new(0),
            node: crate::auth::new_id(),
            shared,
            waiting: AtomicU64::new(0),
            replays: Default::default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The body limit of an app's pushes.
    pub fn max_body(&self, app: &str) -> Result<usize, WeChatError> {
        Ok(self.app(app)?.config.max_body_bytes)
    }

    fn app(&self, name: &str) -> Result<&App, WeChatError> {
        self.apps.get(name).ok_or_else(|| WeChatError::UnknownApp(name.chars().take(64).collect()))
    }

    /// The signature and the timestamp window, on every request.
    fn check(&self, app: &App, p: &Params) -> Result<(), WeChatError> {
        let timestamp = Params::get(&p.timestamp, "timestamp")?;
        let nonce = Params::get(&p.nonce, "nonce")?;
        let signature = Params::get(&p.signature, "signature")?;
        if !signature::verify(signature, &[&app.config.token, timestamp, nonce]) {
            return Err(WeChatError::Signature);
        }
        self.check_time(app, timestamp)
    }

    fn check_time(&self, app: &App, timestamp: &str) -> Result<(), WeChatError> {
        let ts: i64 = timestamp.parse().map_err(|_| WeChatError::Stale)?;
        let now = (now_ms() / 1000) as i64;
        if now.abs_diff(ts) > app.config.timestamp_window_secs {
            return Err(WeChatError::Stale);
        }
        Ok(())
    }

    /// The server check WeChat makes when the URL is set: `echostr` back, decrypted when it
    /// comes encrypted (signed by `msg_signature`).
    pub fn verify_url(&self, app: &str, p: &Params) -> Result<String, WeChatError> {
        let app = self.app(app)?;
        let echostr = Params::get(&p.echostr, "echostr")?;
        match (&p.msg_signature, &app.cipher) {
            (Some(msg_signature), Some(cipher)) => {
                let timestamp = Params::get(&p.timestamp, "timestamp")?;
                let nonce = Params::get(&p.nonce, "nonce")?;
                if !signature::verify(msg_signature, &[&app.config.token, timestamp, nonce, echostr]) {
                    return Err(WeChatError::Signature);
                }
                if p.signature.is_some() {
                    self.check(app, p)?;
                }
                self.check_time(app, timestamp)?;
                let plain = cipher.decrypt(echostr)?;
                String::from_utf8(plain).map_err(|_| WeChatError::Crypto(CryptoError::Layout))
            }
            _ => {
                self.check(app, p)?;
                Ok(echostr.to_string())
            }
        }
    }

    /// A push: checked, decrypted, answered (or acknowledged with `success`).
    pub async fn deliver(self: &Arc<Self>, app_name: &str, p: &Params, content_type: Option<&str>, body: &[u8]) -> Result<Response, WeChatError> {
        let app = self.app(app_name)?;
        if body.len() > app.config.max_body_bytes {
            return Err(WeChatError::TooLarge(app.config.max_body_bytes));
        }
        self.check(app, p)?;
        let json = app.config.kind == Kind::MiniProgram && content_type.is_some_and(|c| c.to_ascii_lowercase().contains("json"));
        let format = if json { Format::Json } else { Format::Xml };
        let outer = message::parse(body, format)?;
        let encrypted = p.encrypt_type.as_deref() == Some("aes");
        let fields = if encrypted {
            let cipher = app.cipher.as_ref().ok_or(WeChatError::Crypto(CryptoError::Key))?;
            let sealed = outer.require("Encrypt")?;
            let msg_signature = Params::get(&p.msg_signature, "msg_signature")?;
            let timestamp = Params::get(&p.timestamp, "timestamp")?;
            let nonce = Params::get(&p.nonce, "nonce")?;
            if !signature::verify(msg_signature, &[&app.config.token, timestamp, nonce, sealed]) {
                return Err(WeChatError::Signature);
            }
            message::parse(&cipher.decrypt(sealed)?, format)?
        } else {
            if app.config.mode == Mode::Safe {
                return Err(WeChatError::PlaintextRefused);
            }
            // The signature covers the timestamp and nonce (check() parsed both) but not this
            // body: one body per signed URL.
            let timestamp: i64 = Params::get(&p.timestamp, "timestamp")?.parse().map_err(|_| WeChatError::Stale)?;
            let nonce = Params::get(&p.nonce, "nonce")?;
            if !self.replays.admit(app_name, timestamp, nonce, body, (now_ms() / 1000) as i64, app.config.timestamp_window_secs) {
                return Err(WeChatError::Replayed);
            }
            outer
        };
        let incoming = Incoming::from_fields(&fields)?;
        let reply = self.answer(app, &incoming).await?;
        let body = match reply {
            Reply::Nothing => return Ok(Response::success()),
            Reply::Text(text) => message::text_reply(format, &incoming.from, &incoming.to, now_secs(), &text),
            Reply::Transfer(account) => message::transfer_reply(format, &incoming.from, &incoming.to, now_secs(), account.as_deref()),
        };
        let body = match (&app.cipher, encrypted) {
            (Some(cipher), true) => {
                let sealed = cipher.encrypt(body.as_bytes());
                let timestamp = now_secs().to_string();
                let nonce = p.nonce.clone().unwrap_or_default();
                let signature = signature::sign(&[&app.config.token, &timestamp, &nonce, &sealed]);
                message::encrypted_reply(format, &sealed, &signature, &timestamp, &nonce)
            }
            _ => body,
        };
        let content_type = if format == Format::Json { "application/json" } else { "application/xml; charset=utf-8" };
        Ok(Response { content_type, body })
    }

    /// The reply to one push: from the record of an earlier delivery of it, by waiting for the
    /// answer within the budget, or `success` (the answer then goes through the API).
    async fn answer(self: &Arc<Self>, app: &App, m: &Incoming) -> Result<Reply, WeChatError> {
        let name = &app.config.name;
        match (m.msg_type.as_str(), m.event.as_deref()) {
            ("text", _) => {}
            // Photos take the same path (answered once, within the budget or later): fetching
            // the media is a round trip to WeChat.
            ("image", _) if m.media_id.is_some() => {}
            ("event", Some("subscribe")) => {
                let key = m.dedupe_key();
                if let Some(Answer::Passive(r)) = self.store.answer(name, &key).await? {
                    return Ok(r);
                }
                match self.conversation(app, m).await {
                    Ok(_) => {}
                    Err(e) => tracing::error!(app = %name, error = %e, "a subscriber's conversation could not be started"),
                }
                let reply = Reply::Text(app.config.greeting.clone());
                self.store.set_answer(name, &key, Answer::Passive(reply.clone()), now_ms()).await?;
                return Ok(reply);
            }
            ("event", Some("unsubscribe")) => {
                if let Some(user) = self.store.user(name, &m.from).await? {
                    if let Err(e) = self.service.close(&user.conversation).await {
                        tracing::error!(app = %name, error = %e, "an unsubscribed user's conversation could not be closed");
                    }
                }
                return Ok(Reply::Nothing);
            }
            ("event", event) => {
                tracing::info!(app = %name, event = ?event, "ignored a WeChat event kefu does not handle");
                return Ok(Reply::Nothing);
            }
            (other, _) => {
                tracing::info!(app = %name, msg_type = %other, "a non-text WeChat message; asked for text");
                return Ok(Reply::Text(ONLY_TEXT.into()));
            }
        }
        let key = m.dedupe_key();
        match self.store.answer(name, &key).await? {
            Some(Answer::Passive(r)) => return Ok(r),
            Some(Answer::Later) => return Ok(Reply::Nothing),
            None => {}
        }
        let flight_key = format!("{name}\u{0}{key}");
        // Another node may have this delivery (WeChat's retry reached a different node):
        // the first to claim it answers; the other gives that node's answer if it comes
        // within the budget.
        let here = self.flights.lock().expect("flights lock poisoned").contains_key(&flight_key);
        if self.shared && !here && !self.store.claim(name, &key, &self.node, now_ms()).await? {
            return Ok(self.answer_of_another_node(name, &key, app.config.reply_budget_ms).await);
        }
        let (flight, fresh) = {
            let mut flights = self.flights.lock().expect("flights lock poisoned");
            match flights.get(&flight_key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    flights.insert(flight_key.clone(), f.clone());
                    (f, true)
                }
            }
        };
        let mut done = {
            let mut st = flight.state.lock().expect("flight lock poisoned");
            if st.later {
                return Ok(Reply::Nothing);
            }
            if let Some(r) = &st.reply {
                return Ok(r.clone());
            }
            // A budget of 0: nobody waits, every answer goes through the API.
            if app.config.reply_budget_ms > 0 {
                st.waiters += 1;
            }
            flight.done.subscribe()
        };
        if fresh {
            let (this, m, flight) = (self.clone(), m.clone(), flight.clone());
            let app_name = name.clone();
            self.spawn(async move { this.process(&app_name, &m, &flight, flight_key).await });
        }
        if app.config.reply_budget_ms == 0 {
            return Ok(Reply::Nothing);
        }
        let budget = Duration::from_millis(app.config.reply_budget_ms);
        let _ = tokio::time::timeout(budget, done.wait_for(|d| *d)).await;
        let mut st = flight.state.lock().expect("flight lock poisoned");
        st.waiters -= 1;
        Ok(match (&st.reply, st.later) {
            (Some(r), false) => r.clone(),
            _ => Reply::Nothing,
        })
    }

    /// The answer another node gives a delivery it claimed, if it has one within the budget.
    async fn answer_of_another_node(&self, app: &str, delivery: &str, budget_ms: u64) -> Reply {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(budget_ms);
        loop {
            match self.store.answer(app, delivery).await {
                Ok(Some(Answer::Passive(r))) => return r,
                // It goes through the API from there.
                Ok(Some(Answer::Later)) => return Reply::Nothing,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read another node's answer to a WeChat delivery");
                    return Reply::Nothing;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(app, "another node is still answering a retried delivery; answered success here");
                return Reply::Nothing;
            }
            // Polled, not notified: this happens only when a retry lands on another node.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until everything written is on disk, through the service store's one writer:
    /// sled's flushes hold its process-wide concurrency lock, and flushes of our own beside
    /// the service's transactions deadlocked the server under load.
    async fn durable(&self) -> Result<(), store::StoreError> {
        Ok(self.service.store().durable().await?)
    }

    /// Runs a task that must finish before the server stops (it holds the stores).
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().expect("tasks lock poisoned");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Waits for the answers still being worked out (at shutdown).
    pub async fn finish(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock poisoned"));
        while tasks.join_next().await.is_some() {}
    }

    /// Answers one text message (once, whatever the retries) and settles how the answer goes
    /// out: passively to whoever waits for it, else through the API.
    async fn process(self: Arc<Self>, app_name: &str, m: &Incoming, flight: &Flight, flight_key: String) {
        let app = self.app(app_name).expect("the app exists");
        let (reply, texts) = self.run_bot(app, m).await;
        // Rendered and cut for WeChat here, before anyone sees the reply, so that a retry
        // of the delivery gets the same first part.
        let (reply, rest) = outgoing::passive(reply, app.config.kind);
        let texts = outgoing::later(&texts, app.config.kind);
        let later = {
            let mut st = flight.state.lock().expect("flight lock poisoned");
            st.reply = Some(reply.clone());
            st.later = st.waiters == 0;
            st.later
        };
        let _ = flight.done.send(true);
        let key = m.dedupe_key();
        let result = if later {
            tracing::info!(app = %app_name, "the answer missed the reply budget; it goes through the message API");
            match self.store.set_answer(app_name, &key, Answer::Later, now_ms()).await {
                Ok(()) => self.hold_texts(app_name, &m.from, texts, 0).await,
                Err(e) => Err(e),
            }
        } else {
            match self.store.set_answer(app_name, &key, Answer::Passive(reply), now_ms()).await {
                Ok(()) => self.hold_texts(app_name, &m.from, rest, now_ms() + AFTER_PASSIVE_MS).await,
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.durable().await {
                    tracing::error!(error = %e, "the WeChat store could not flush");
                }
            }
            Err(e) => tracing::error!(error = %e, "a WeChat delivery could not be recorded"),
        }
        self.flights.lock().expect("flights lock poisoned").remove(&flight_key);
        if later {
            self.wake.notify_one();
        }
    }

    /// Queues texts for one user through the message API, in order, not before `not_before`.
    async fn hold_texts(&self, app: &str, openid: &str, texts: Vec<String>, not_before: Millis) -> Result<(), store::StoreError> {
        for text in texts {
            let seq = self.service.store().next_id().await?;
            self.store.hold(seq, &Outgoing { app: app.into(), openid: openid.into(), text, image: None, attempts: 0, next_ms: not_before }).await?;
        }
        Ok(())
    }

    /// Queues a photo (by its stored hash) for one user through the message API.
    async fn hold_image(&self, app: &str, openid: &str, hash: &str) -> Result<(), store::StoreError> {
        let seq = self.service.store().next_id().await?;
        let out = Outgoing { app: app.into(), openid: openid.into(), text: crate::dialogue::IMAGE_TEXT.into(), image: Some(hash.into()), attempts: 0, next_ms: 0 };
        self.store.hold(seq, &out).await
    }

    /// Sends one held message: its text, or its photo read from the store.
    async fn send_one(&self, app: &App, out: &Outgoing) -> Result<(), api::ApiError> {
        let Some(hash) = &out.image else { return app.api.send_text(&out.openid, &out.text).await };
        let bytes = match self.service.store().record(crate::service::IMAGES, hash).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(api::ApiError::Refused { code: 0, message: format!("image {hash} is not in the store") }),
            Err(e) => return Err(api::ApiError::Transport(format!("the store could not read image {hash}: {e}"))),
        };
        let mime = crate::images::Format::sniff(&bytes).map_or("image/jpeg", |f| f.mime());
        app.api.send_image(&out.openid, &bytes, mime).await
    }

    /// The user's conversation (linked by UnionID when WeChat gives one); their message
    /// window opens anew.
    async fn conversation(&self, app: &App, m: &Incoming) -> Result<String, ServiceError> {
        let user_key = match &m.union_id {
            Some(union) => format!("wechat-union:{union}"),
            None => format!("wechat:{}:{}", app.config.appid, m.from),
        };
        let channel = match app.config.kind {
            Kind::OfficialAccount => "wechat_mp",
            Kind::MiniProgram => "wechat_mini",
        };
        let conv = self.service.channel_conversation(channel, &user_key).await?;
        self.store.user_wrote(&app.config.name, &m.from, &conv, now_ms()).await.map_err(|e| ServiceError::Internal(e.to_string()))?;
        // Messages held for the quota may go now.
        self.wake.notify_one();
        Ok(conv)
    }

    /// The bot's answer to a text: the passive reply, and the texts to send if it must go
    /// through the API instead.
    async fn run_bot(&self, app: &App, m: &Incoming) -> (Reply, Vec<String>) {
        let text = m.content.as_deref().unwrap_or("");
        if let Some(media) = m.media_id.as_deref().filter(|_| m.msg_type == "image") {
            return self.take_image(app, m, media).await;
        }
        let result = async {
            let conv = self.conversation(app, m).await?;
            let client_id = m.msg_id.as_ref().map(|id| format!("wx:{id}"));
            self.service.channel_message(&conv, text, client_id, app.config.handoff == HandoffTo::WechatKf).await
        }
        .await;
        match result {
            Ok(ex) => {
                let texts: Vec<String> = ex.exchange.replies.iter().filter(|r| !r.internal).map(|r| r.text.clone()).collect();
                let reply = if ex.transferred {
                    Reply::Transfer(app.config.kf_account.clone())
                } else if texts.is_empty() {
                    Reply::Nothing
                } else {
                    Reply::Text(texts.join("\n\n"))
                };
                (reply, texts)
            }
            Err(why) if why.code().status() == 400 => {
                tracing::info!(app = %app.config.name, %why, "a WeChat message was refused");
                let say = format!("抱歉，这条消息无法处理：{}", if text.trim().is_empty() { "消息是空的。" } else { "消息太长了，请分几条发送。" });
                (Reply::Text(say.clone()), vec![say])
            }
            Err(e) => {
                tracing::error!(app = %app.config.name, error = %e, "a WeChat message could not be answered");
                (Reply::Text(SORRY_BUSY.into()), vec![SORRY_BUSY.into()])
            }
        }
    }

    /// A user's photo: fetched through the media API, checked and stored as the widget's are
    /// (the agent sees it), and the bot's word on it (none while a human has the user).
    async fn take_image(&self, app: &App, m: &Incoming, media: &str) -> (Reply, Vec<String>) {
        let max = self.service.config().images.max_bytes;
        let result = async {
            let conv = self.conversation(app, m).await?;
            let bytes = app.api.media(media, max).await.map_err(|e| match e {
                api::ApiError::MediaTooLarge(_) => ServiceError::refused(crate::codes::Code::TooLarge, e.to_string()),
                e => ServiceError::Internal(format!("WeChat's media {media} could not be fetched: {e}")),
            })?;
            let client_id = m.msg_id.as_ref().map(|id| format!("wx:{id}"));
            self.service.visitor_image(&conv, None, bytes, client_id).await
        }
        .await;
        match result {
            Ok(ex) => {
                let texts: Vec<String> = ex.replies.iter().filter(|r| !r.internal).map(|r| r.text.clone()).collect();
                let reply = if texts.is_empty() { Reply::Nothing } else { Reply::Text(texts.join("\n\n")) };
                (reply, texts)
            }
            Err(why) if matches!(why.code().status(), 400 | 413) => {
                tracing::info!(app = %app.config.name, %why, "a WeChat photo was refused");
                let say = "抱歉，这张图片无法接收，请换一张 JPEG、PNG 或 WebP 格式、5 MB 以内的照片。".to_string();
                (Reply::Text(say.clone()), vec![say])
            }
            Err(e) => {
                tracing::error!(app = %app.config.name, error = %e, "a WeChat photo could not be taken");
                (Reply::Text(SORRY_BUSY.into()), vec![SORRY_BUSY.into()])
            }
        }
    }

    /// Relays what kefu's agents (and kefu's notices) say to WeChat users, through the
    /// outbox. Runs until the hub's tap closes.
    pub async fn relay(self: Arc<Self>, mut tap: mpsc::UnboundedReceiver<(String, Message)>) {
        while let Some((conversation, message)) = tap.recv().await {
            if message.internal || !matches!(message.from, Sender::Agent { .. } | Sender::System) {
                continue;
            }
            let target = match self.store.target(&conversation).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot tell whether a conversation is a WeChat user's");
                    continue;
                }
            };
            let (app, openid) = target;
            // An app no longer configured keeps its messages (the send loop says so); they are
            // written as text without tags, which any kind of app shows.
            let kind = self.apps.get(&app).map_or(Kind::MiniProgram, |a| a.config.kind);
            let held = match &message.image {
                Some(image) => self.hold_image(&app, &openid, &image.hash).await,
                None => self.hold_texts(&app, &openid, outgoing::messages(&message.text, kind), 0).await,
            };
            match held {
                Ok(()) => {
                    if let Err(e) = self.durable().await {
                        tracing::error!(error = %e, "the WeChat outbox could not flush");
                    }
                    self.wake.notify_one();
                }
                Err(e) => tracing::error!(error = %e, "an agent's message could not be queued for WeChat"),
            }
        }
    }

    /// Sends the outbox through the message API, in order per user and within each user's
    /// quota; what exceeds it waits for the user's next message. Runs until aborted.
    pub async fn send_loop(self: Arc<Self>) {
        let mut last_prune = 0;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            // One node sends at a time: it alone holds the access token (WeChat voids the old
            // one whenever anyone fetches a new one) and no message goes out twice.
            let sender = if self.shared { self.store.hold_sender(&self.node, now_ms()).await } else { Ok(true) };
            match sender {
                Ok(true) => {
                    if let Err(e) = self.send_outbox().await {
                        tracing::error!(error = %e, "the WeChat outbox could not be read");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot tell which node sends WeChat messages"),
            }
            match self.store.outbox().await {
                Ok(left) => self.waiting.store(left.len() as u64, Ordering::Relaxed),
                Err(e) => tracing::error!(error = %e, "the WeChat outbox could not be read"),
            }
            self.passes.fetch_add(1, Ordering::Release);
            let now = now_ms();
            if now - last_prune > 3_600_000 {
                last_prune = now;
                if let Err(e) = self.store.prune(now).await {
                    tracing::error!(error = %e, "old WeChat deliveries could not be pruned");
                }
            }
        }
    }

    /// One pass over the outbox.
    pub async fn send_outbox(&self) -> Result<(), store::StoreError> {
        let now = now_ms();
        let mut blocked: HashSet<(String, String)> = HashSet::new();
        let outbox = self.store.outbox().await?;
        if outbox.is_empty() {
            return Ok(());
        }
        for (key, mut out) in outbox {
            let who = (out.app.clone(), out.openid.clone());
            if blocked.contains(&who) {
                continue;
            }
            let Some(app) = self.apps.get(&out.app) else {
                tracing::warn!(app = %out.app, "a held WeChat message is for an app no longer configured; kept");
                blocked.insert(who);
                continue;
            };
            let may = self.store.user(&out.app, &out.openid).await?.is_some_and(|u| u.may_send(now));
            if out.next_ms > now || !may {
                blocked.insert(who);
                continue;
            }
            match self.send_one(app, &out).await {
                Ok(()) => {
                    self.store.count_sent(&out.app, &out.openid).await?;
                    self.store.update_outgoing(&key, None).await?;
                }
                Err(api::ApiError::Window(code)) => {
                    tracing::info!(app = %out.app, code, "WeChat says the user's window is closed; holding their messages");
                    self.store.close_window(&out.app, &out.openid).await?;
                    blocked.insert(who);
                }
                Err(e) => {
                    out.attempts += 1;
                    blocked.insert(who);
                    if !e.is_transient() && out.attempts >= MAX_ATTEMPTS {
                        tracing::error!(app = %out.app, error = %e, "WeChat keeps refusing a message; given up");
                        self.store.update_outgoing(&key, None).await?;
                    } else {
                        tracing::warn!(app = %out.app, error = %e, attempts = out.attempts, "a WeChat message failed; will retry");
                        out.next_ms = now + (1_000u64 << out.attempts.min(10)).min(MAX_BACKOFF_MS);
                        self.store.update_outgoing(&key, Some(&out)).await?;
                    }
                }
            }
        }
        self.durable().await
    }
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}
