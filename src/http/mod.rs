//! The HTTP edge: the `/api/v1` JSON API for visitors, agents and admins, their WebSockets,
//! the pages (widget, demo, agent console, admin), WeChat's `/wechat/{app}`, `/healthz`,
//! `/readyz` and `/metrics`, with limits (body size, rate, time) applied before anything
//! reaches the service. [`app`] is the router; `crate::app::run` serves it.

mod admin;
mod agent;
mod error;
mod limits;
mod pages;
#[cfg(test)]
mod tests;
mod visitor;
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
        // Two Authorization headers are ambiguous credentials: neither is trusted.
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let (first, second) = (values.next(), values.next());
        let token = first
            .filter(|_| second.is_none())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Ok(Bearer(token))
    }
}

impl Bearer {
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
        .merge(admin::routes())
        .fallback(|| async { ApiError::not_found_route() });
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(pages::routes())
        .merge(wechat::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

/// Per-IP rate limit, request timeout and counters, in front of every route.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let m = &state.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    let ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let path = path.as_str();
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

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let status = state.service.reload_status();
    let store = state.service.store();
    // Readable is not enough: a full disk fails the flush that every acknowledgement waits
    // for, so the probe flushes too (cheap when nothing is pending).
    let store_error = match store.conversation_count() {
        Err(e) => Some(e.to_string()),
        Ok(_) => match tokio::time::timeout(Duration::from_secs(2), store.durable()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the store did not flush within 2 s".to_string()),
        },
    };
    let store_ok = store_error.is_none();
    // The probe is public: it says that the store fails, the log says how.
    if let Some(e) = &store_error {
        tracing::warn!(error = %e, "not ready: the store cannot read or flush");
    }
    let store_error = store_error.map(|_| "the store cannot read or flush; the log has the details");
    // Serving without the semantic model is ready, but worse: say so where operators look.
    let semantic = match state.service.brain().engine.semantic_table() {
        Some(t) => serde_json::json!({"loaded": true, "path": t.path().display().to_string(), "words": t.len()}),
        None => serde_json::json!({"loaded": false, "note": "no semantic model: answering by words only (build it with scripts/model)"}),
    };
    let body = serde_json::json!({"ready": store_ok, "store_error": store_error, "knowledge": status, "semantic": semantic});
    let code = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let s = &state.service;
    let queue = s.queue().map(|q| q.len()).unwrap_or(0);
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

/// Accepts connections and serves `app` on each until `shutdown`, then lets open requests
/// finish (for at most 10 s). Not `axum::serve`: it gives HTTP/1 no header-read timer, so a
/// client trickling its headers (slowloris) held a connection forever. Here headers must
/// arrive within `header_timeout`; bodies are bounded by the request timeout in [`guard`].
pub(crate) async fn serve(listener: TcpListener, app: Router, header_timeout: Duration, shutdown: impl Future<Output = ()>) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), stop_tx.closed()).await;
}
