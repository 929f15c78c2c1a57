//! The HTTP edge: the `/api/v1` JSON API for visitors, agents and admins, their WebSockets,
//! WeChat's `/wechat/{app}`, `/healthz`, `/readyz` and `/metrics`, with limits (body size, rate, time) applied before
//! anything reaches the service. [`run`] is the whole server, testable on any listener.

mod admin;
mod agent;
mod error;
mod limits;
mod startup;
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
use crate::config::Config;
use crate::service::Service;
pub use error::{ApiError, ApiResult};
pub use startup::open_service;

/// JSON bodies whose rejections use the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

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
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
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
    pub service: Arc<Service>,
    pub limits: Arc<limits::Limiters>,
    pub metrics: Arc<Metrics>,
    pub wechat: Arc<WeChat>,
    /// Flips to true at shutdown so WebSockets close and graceful shutdown can finish.
    pub closing: watch::Receiver<bool>,
}

/// Builds the router over a service.
pub fn router(state: AppState) -> Router {
    let config = state.service.config().clone();
    let api = Router::new()
        .merge(visitor::routes())
        .merge(agent::routes())
        .merge(admin::routes())
        .fallback(|| async { ApiError::not_found_route() });
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(wechat::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
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
    let path = request.uri().path();
    // Probes and metrics are exempt: a flood must not make the server look dead. So is
    // WeChat: its servers push every user's messages from a few shared addresses.
    let exempt = matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/wechat/");
    if !exempt {
        if let Err(wait) = state.limits.check_ip(ip) {
            m.rate_limited.fetch_add(1, Ordering::Relaxed);
            m.responses_4xx.fetch_add(1, Ordering::Relaxed);
            return ApiError::too_many(wait, "from this address").into_response();
        }
    }
    let timeout = Duration::from_millis(state.service.config().limits.request_timeout_ms);
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long").into_response(),
    };
    if response.status().is_client_error() {
        m.responses_4xx.fetch_add(1, Ordering::Relaxed);
    } else if response.status().is_server_error() {
        m.responses_5xx.fetch_add(1, Ordering::Relaxed);
    }
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let status = state.service.reload_status();
    let store_ok = state.service.store().conversation_count().is_ok();
    let body = serde_json::json!({"ready": store_ok, "knowledge": status});
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
# HELP kefu_knowledge_articles Articles in the serving knowledge base.\n# TYPE kefu_knowledge_articles gauge\nkefu_knowledge_articles {}\n",
        load(&m.requests),
        load(&m.responses_4xx),
        load(&m.responses_5xx),
        load(&m.rate_limited),
        load(&m.visitor_messages),
        load(&m.bot_replies),
        load(&m.websockets),
        queue,
        brain.engine.articles().len(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Runs the server on `listener` until `shutdown` resolves: opens the store and knowledge,
/// watches the sources for changes, serves, then closes WebSockets and the store cleanly.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let service = Arc::new(open_service(config).await?);
    let (close_tx, closing) = watch::channel(false);
    let limits = Arc::new(limits::Limiters::new(&service.config().limits));
    let wechat = Arc::new(WeChat::open(service.clone())?);
    let state = AppState { service: service.clone(), limits: limits.clone(), metrics: Default::default(), wechat: wechat.clone(), closing };
    let background = tokio::spawn(startup::background(service.clone(), limits));
    let wechat_tasks = (!wechat.is_empty()).then(|| {
        let relay = tokio::spawn(wechat.clone().relay(service.hub().tap()));
        let sender = tokio::spawn(wechat.clone().send_loop());
        (relay, sender)
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(address = %listener.local_addr()?, "kefu is serving");
    let signal = async move {
        shutdown.await;
        let _ = close_tx.send(true);
    };
    axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    background.abort();
    let _ = background.await;
    if let Some((relay, sender)) = wechat_tasks {
        relay.abort();
        sender.abort();
        let _ = (relay.await, sender.await);
    }
    wechat.finish().await;
    // Everything acknowledged is already flushed; this makes the last writes durable too.
    service.store().durable().await?;
    tracing::info!("kefu stopped");
    Ok(())
}
