//! The HTTP edge: the `/api/v1` JSON API for visitors, agents and admins, their WebSockets,
//! the pages (widget, demo, agent console, admin), WeChat's `/wechat/{app}`, `/healthz`,
//! `/readyz` and `/metrics`, with limits (body size, rate, time) applied before anything
//! reaches the service. [`app`] is the router; `crate::app::run` serves it.

mod admin;
mod reports;
mod agent;
mod client;
pub(crate) mod connections;
mod error;
mod history;
mod images;
mod limits;
mod pages;
mod people;
#[cfg(test)]
mod tests;
mod tickets;
mod visitor;
mod webhooks;
mod wechat;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::channels::wechat::WeChat;
use crate::codes::Code;
use crate::config::Config;
use crate::service::Service;
pub use error::{ApiError, ApiResult, ErrorDetail};
pub use client::{parse_proxy, ClientAddr};
pub use limits::Limiters;

/// JSON object bodies whose rejections use the API's error shape. Only an object is
/// accepted: serde would otherwise read `["x"]` as a struct's fields in order.
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !json {
            return Err(ApiError::new(Code::UnsupportedMediaType, "the body must be JSON with Content-Type: application/json"));
        }
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::TooLarge, "the request body is too large")
            } else {
                ApiError::new(Code::InvalidJson, r.body_text())
            }
        })?;
        json_object(&bytes).map(Json)
    }
}

/// Parses a body that must be one JSON object.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(Code::InvalidJson, "the body must be a JSON object ({…})"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}")))
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query strings whose rejections use the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters whose rejections use the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The bearer token of a request (Authorization header), if any.
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer::of(&parts.headers))
    }
}

impl Bearer {
    fn of(headers: &axum::http::HeaderMap) -> Bearer {
        // Two Authorization headers are ambiguous credentials: neither is trusted.
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (first, second) = (values.next(), values.next());
        let token = first
            .filter(|_| second.is_none())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Bearer(token)
    }

    pub fn token(&self) -> ApiResult<&str> {
        self.0.as_deref().ok_or_else(|| ApiError::from(crate::service::ServiceError::Unauthorized))
    }
}

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub rate_limited: AtomicU64,
    pub visitor_messages: AtomicU64,
    pub bot_replies: AtomicU64,
    pub websockets: AtomicU64,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The whole configuration, as validated at start-up.
    pub config: Arc<Config>,
    pub service: Arc<Service>,
    pub limits: Arc<limits::Limiters>,
    pub metrics: Arc<Metrics>,
    pub wechat: Arc<WeChat>,
    /// Flips to true at shutdown so WebSockets close and graceful shutdown can finish.
    pub closing: watch::Receiver<bool>,
}

/// The whole HTTP API and the pages over one state, without a server: tests send it
/// requests with `oneshot`.
pub fn app(state: AppState) -> Router {
    let config = state.config.clone();
    let api = Router::new()
        .merge(visitor::routes())
        .merge(agent::routes())
        .merge(history::routes())
        .merge(tickets::routes())
        .merge(admin::routes())
        .merge(reports::routes())
        .merge(people::routes())
        .merge(webhooks::routes())
        .merge(images::routes(config.limits.max_image_bytes))
        .fallback(|| async { ApiError::not_found_route() })
        .layer(middleware::from_fn_with_state(state.clone(), admin_gate));
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(pages::routes())
        .merge(wechat::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // With a listener of its own, /metrics is not on the public one.
    if config.metrics_listen.is_none() {
        app = app.route("/metrics", get(metrics));
    }
    let mut app = app
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "this endpoint does not take that method")
        })
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    if !config.allowed_origins.is_empty() {
        let origins: Vec<HeaderValue> = config.allowed_origins.iter().filter_map(|o| o.parse().ok()).collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(Duration::from_secs(3600)),
        );
    }
    app.with_state(state)
}

/// Every `/admin/…` path of the API, whichever file routes it, needs the admin token or the
/// session of a person with the admin role (another person's gets 403 `role_required`):
/// checked here, before a handler reads anything of the request, and handed on as an
/// [`crate::service::Admin`] extension.
async fn admin_gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Nested under /api/v1, the path arrives without it.
    if !request.uri().path().starts_with("/admin/") {
        return next.run(request).await;
    }
    let bearer = Bearer::of(request.headers());
    let checked = match bearer.token() {
        Ok(token) => state.service.authorize_admin(token).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match checked {
        Ok(admin) => {
            request.extensions_mut().insert(admin);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Per-IP rate limit, request timeout and counters, in front of every route.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let m = &state.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    let mut request = request;
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let ip = state.limits.proxies.client(peer, request.headers());
    request.extensions_mut().insert(ClientAddr(ip));
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let path = path.as_str();
    // A declared body over the limit is refused before anyone waits for it (WeChat apps
    // have limits of their own, checked by their route).
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let max = if images::is_upload(path) { state.config.limits.max_image_bytes } else { state.config.limits.max_body_bytes };
    if declared.is_some_and(|n| n > max as u64) && !path.starts_with("/wechat/") {
        m.responses_4xx.fetch_add(1, Ordering::Relaxed);
        let message = format!("the body declares {} bytes; at most {max} are accepted", declared.unwrap_or_default());
        let mut response = ApiError::new(Code::TooLarge, message).into_response();
        // The body is not read: the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    // Probes and metrics are exempt: a flood must not make the server look dead.
    let exempt = matches!(path, "/healthz" | "/readyz" | "/metrics");
    // WeChat pushes every user's messages from a few shared addresses: no per-IP limit, but
    // they do count against the in-flight cap below.
    let wechat = path.starts_with("/wechat/");
    if !exempt && !wechat {
        if let Err(wait) = state.limits.check_ip(ip) {
            m.rate_limited.fetch_add(1, Ordering::Relaxed);
            m.responses_4xx.fetch_add(1, Ordering::Relaxed);
            return ApiError::too_many(wait, "from this address").into_response();
        }
    }
    // Probes stay outside the cap too: an overloaded server is alive, and says so.
    let _slot = match exempt {
        true => None,
        false => match state.limits.enter() {
            Some(slot) => Some(slot),
            None => {
                m.responses_5xx.fetch_add(1, Ordering::Relaxed);
                return ApiError::new(Code::Overloaded, "the server is at capacity; retry shortly").into_response();
            }
        },
    };
    let timeout = Duration::from_millis(state.config.limits.request_timeout_ms);
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(Code::Timeout, "the request took too long").into_response(),
    };
    if response.status().is_client_error() {
        m.responses_4xx.fetch_add(1, Ordering::Relaxed);
    } else if response.status().is_server_error() {
        m.responses_5xx.fetch_add(1, Ordering::Relaxed);
    }
    // The one place a failed request's internals are logged (its body does not carry them).
    if let Some(ErrorDetail(detail)) = response.extensions().get::<ErrorDetail>() {
        tracing::error!(%method, %path, status = response.status().as_u16(), error = %detail, "request failed");
    }
    response
}

/// The server's own folders out of a message: the knowledge, intents and data folders are
/// named by their role (`knowledge/faq/x.md`), not by where they sit on the disk.
pub(crate) fn redact(c: &Config, message: &str) -> String {
    let mut out = message.to_string();
    for (dir, name) in [(&c.knowledge, "knowledge"), (&c.intents, "intents"), (&c.data, "data")] {
        let mut forms = vec![dir.display().to_string()];
        if let Ok(full) = std::fs::canonicalize(dir) {
            forms.push(full.display().to_string());
        }
        // Longest first, so a path is replaced whole and not through a shorter form.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for f in forms.iter().filter(|f| !f.is_empty() && f.as_str() != ".") {
            out = out.replace(f.as_str(), name);
        }
    }
    out
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut status = state.service.reload_status();
    // A failed reload's error names files: by their place in the knowledge folder only.
    status.error = status.error.map(|e| redact(&state.config, &e));
    let store = state.service.store();
    // Readable is not enough: a full disk fails the flush that every acknowledgement waits
    // for, so sled's check flushes too (cheap when nothing is pending); PostgreSQL's is a
    // round trip.
    let store_error = store.check().await.err().map(|e| e.to_string());
    let store_ok = store_error.is_none();
    // The probe is public: it says that the store fails, the log says how.
    if let Some(e) = &store_error {
        tracing::warn!(error = %e, "not ready: the store cannot read or flush");
    }
    let store_error = store_error.map(|_| "the store cannot read or flush; the log has the details");
    // Serving without the semantic model is ready, but worse: say so where operators look.
    let semantic = match state.service.brain().engine.semantic_table() {
        // The file's name, not where it sits: the probe is public.
        Some(t) => serde_json::json!({"loaded": true, "file": t.path().file_name().map(|n| n.to_string_lossy().into_owned()), "words": t.len()}),
        None => serde_json::json!({"loaded": false, "note": "no semantic model: answering by words only (build it with scripts/model)"}),
    };
    let body = serde_json::json!({"ready": store_ok, "store": store.backend(), "store_error": store_error, "knowledge": status, "semantic": semantic});
    let code = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body)).into_response()
}

/// `/metrics` and `/healthz` alone, for `metrics_listen`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::not_found_route() })
        .with_state(state)
}

async fn metrics(State(state): State<AppState>, bearer: Bearer) -> Response {
    if let Some(want) = &state.config.metrics_token_sha256 {
        let given = bearer.0.as_deref().map(crate::auth::token_hash).unwrap_or_default();
        if !crate::auth::same(&given, &want.to_lowercase()) {
            return ApiError::from(crate::service::ServiceError::Unauthorized).into_response();
        }
    }
    let m = &state.metrics;
    let s = &state.service;
    let queue = s.queue().await.map(|q| q.len()).unwrap_or(0);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let brain = s.brain();
    let text = format!(
        "# HELP kefu_http_requests_total HTTP requests received.\n# TYPE kefu_http_requests_total counter\nkefu_http_requests_total {}\n\
# HELP kefu_http_responses_total HTTP error responses by class.\n# TYPE kefu_http_responses_total counter\nkefu_http_responses_total{{class=\"4xx\"}} {}\nkefu_http_responses_total{{class=\"5xx\"}} {}\n\
# HELP kefu_rate_limited_total Requests refused by a rate limit.\n# TYPE kefu_rate_limited_total counter\nkefu_rate_limited_total {}\n\
# HELP kefu_visitor_messages_total Visitor messages stored.\n# TYPE kefu_visitor_messages_total counter\nkefu_visitor_messages_total {}\n\
# HELP kefu_bot_replies_total Bot messages stored.\n# TYPE kefu_bot_replies_total counter\nkefu_bot_replies_total {}\n\
# HELP kefu_websockets Open WebSocket connections.\n# TYPE kefu_websockets gauge\nkefu_websockets {}\n\
# HELP kefu_queue_length Handoffs waiting for an agent.\n# TYPE kefu_queue_length gauge\nkefu_queue_length {}\n\
# HELP kefu_knowledge_articles Articles in the serving knowledge base.\n# TYPE kefu_knowledge_articles gauge\nkefu_knowledge_articles {}\n\
# HELP kefu_wechat_outbox_passes_total Passes of the WeChat send loop.\n# TYPE kefu_wechat_outbox_passes_total counter\nkefu_wechat_outbox_passes_total {}\n\
# HELP kefu_wechat_outbox Messages for WeChat users still waiting after the last pass (quota, backoff).\n# TYPE kefu_wechat_outbox gauge\nkefu_wechat_outbox {}\n",
        load(&m.requests),
        load(&m.responses_4xx),
        load(&m.responses_5xx),
        load(&m.rate_limited),
        load(&m.visitor_messages),
        load(&m.bot_replies),
        load(&m.websockets),
        queue,
        brain.engine.articles().len(),
        state.wechat.passes.load(Ordering::Acquire),
        state.wechat.waiting.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// How connections are held to account while they are served.
pub(crate) struct ServeLimits {
    /// A connection must complete its first request within this, and an HTTP/1 request's
    /// headers must arrive within it (keep-alive waits included).
    pub header_timeout: Duration,
    pub connections: Arc<connections::Connections>,
}

/// Accepts connections and serves `app` on each until `shutdown`, then lets open requests
/// finish (for at most 10 s). Not `axum::serve`: it gives HTTP/1 no header-read timer, so a
/// client trickling its headers (slowloris) held a connection forever. Here headers must
/// arrive within the header timeout; bodies are bounded by the request timeout in [`guard`].
/// A connection that has sent no complete request within the header timeout is closed
/// whatever its protocol (hyper's own timer only starts once it knows the connection is
/// HTTP/1, and HTTP/2 has none: an h2c preface alone held a socket forever), an HTTP/2 peer
/// that stops answering pings is closed, and [`connections::Connections`] bounds the sockets
/// per address and in all.
pub(crate) async fn serve(listener: TcpListener, app: Router, limits: ServeLimits, shutdown: impl Future<Output = ()>) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let header_timeout = limits.header_timeout;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(header_timeout).keep_alive_timeout(header_timeout);
    // Every connection holds a receiver: shutdown tells them to finish, then waits for all.
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let ticket = match limits.connections.accept(peer.ip()) {
            Ok(t) => Arc::new(t),
            Err(why) => {
                // Dropping the stream closes it at once: nothing is read or written.
                tracing::debug!(peer = %peer, ?why, "connection refused");
                continue;
            }
        };
        let app = app.clone();
        let served = ticket.clone();
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            served.served();
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            // A WebSocket keeps this, so its connection still counts once hyper hands it over.
            request.extensions_mut().insert(connections::Held::new(served.clone()));
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let first_request = tokio::time::sleep(header_timeout);
            tokio::pin!(first_request);
            let evicted = ticket.evicted.clone();
            let mut deadline_passed = false;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => return,
                    // Checked when it fires: a request may have arrived since the select began.
                    _ = &mut first_request, if !deadline_passed => {
                        if !ticket.is_served() {
                            return;
                        }
                        deadline_passed = true;
                    }
                    _ = evicted.notified() => {
                        if !ticket.is_served() {
                            return;
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), stop_tx.closed()).await;
}
