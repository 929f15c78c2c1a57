//! The pages people use, embedded in the binary (no CDN, nothing fetched at run time): the
//! chat widget script and its demo store page, the agent console and the admin page.
//!
//! Files are served with an ETag and `no-cache`, so a browser revalidates cheaply and never
//! runs a widget older than the server it talks to, and gzipped when the browser accepts it
//! (the widget goes onto other sites' pages: 25 KB becomes about 9 KB on the wire). The console pages carry a strict
//! Content-Security-Policy: only their own scripts run, whatever text a message holds.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use super::{ApiError, AppState, Path};
use crate::codes::Code;

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// A strict policy for pages that handle messages (the console pages).
    strict: bool,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str, strict: bool) -> Asset {
        Asset { body, content_type, strict, etag: OnceLock::new() }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.body);
            // Weak: the gzipped and the plain bytes are the same file under one tag.
            HeaderValue::from_str(&format!("W/\"{}\"", hex::encode(&digest[..12]))).expect("hex is a valid header")
        })
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii() == etag.as_bytes()));
        let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { self.body.into_response() };
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(header::ETAG, etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if self.strict {
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_POLICY));
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        response
    }
}

/// Scripts, styles and connections from this server only; no inline script, no plugins, not
/// framed. `'self'` covers the console's WebSocket to the same host; `blob:` images are the
/// photos the console fetched itself with the agent's token.
const CONSOLE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; media-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The widget is one script: the shared helpers (`md.js`) and the widget in one closure, so the
/// host page gets no global from the helpers.
static WIDGET: Asset = Asset::new(
    concat!("(function () {\n", include_str!("../../web/md.js"), "\n", include_str!("../../web/widget.js"), "\n})();\n").as_bytes(),
    "text/javascript; charset=utf-8",
    false,
);
static DEMO: Asset = Asset::new(include_bytes!("../../web/demo.html"), "text/html; charset=utf-8", false);
static AGENT: Asset = Asset::new(include_bytes!("../../web/agent.html"), "text/html; charset=utf-8", true);
static ADMIN: Asset = Asset::new(include_bytes!("../../web/admin.html"), "text/html; charset=utf-8", true);
static FAVICON: Asset = Asset::new(include_bytes!("../../web/favicon.svg"), "image/svg+xml", false);
static AGENT_JS: Asset = Asset::new(include_bytes!("../../web/agent.js"), "text/javascript; charset=utf-8", false);
static TICKETS_JS: Asset = Asset::new(include_bytes!("../../web/tickets.js"), "text/javascript; charset=utf-8", false);
static HISTORY_JS: Asset = Asset::new(include_bytes!("../../web/history.js"), "text/javascript; charset=utf-8", false);
static ADMIN_JS: Asset = Asset::new(include_bytes!("../../web/admin.js"), "text/javascript; charset=utf-8", false);
static PEOPLE_JS: Asset = Asset::new(include_bytes!("../../web/people.js"), "text/javascript; charset=utf-8", false);
static SUPERVISION_JS: Asset = Asset::new(include_bytes!("../../web/supervision.js"), "text/javascript; charset=utf-8", false);
static WEBHOOKS_JS: Asset = Asset::new(include_bytes!("../../web/webhooks.js"), "text/javascript; charset=utf-8", false);
static MD_JS: Asset = Asset::new(include_bytes!("../../web/md.js"), "text/javascript; charset=utf-8", false);
static CONSOLE_JS: Asset = Asset::new(include_bytes!("../../web/console.js"), "text/javascript; charset=utf-8", false);
static CONSOLE_CSS: Asset = Asset::new(include_bytes!("../../web/console.css"), "text/css; charset=utf-8", false);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/demo") }))
        .route("/demo", get(|h: HeaderMap| async move { DEMO.respond(&h) }))
        .route("/widget.js", get(|h: HeaderMap| async move { WIDGET.respond(&h) }))
        .route("/agent", get(|h: HeaderMap| async move { AGENT.respond(&h) }))
        .route("/admin", get(|h: HeaderMap| async move { ADMIN.respond(&h) }))
        .route("/favicon.svg", get(|h: HeaderMap| async move { FAVICON.respond(&h) }))
        .route("/assets/{file}", get(asset))
        .layer(CompressionLayer::new())
}

async fn asset(Path(file): Path<String>, h: HeaderMap) -> Response {
    let asset = match file.as_str() {
        "agent.js" => &AGENT_JS,
        "history.js" => &HISTORY_JS,
        "tickets.js" => &TICKETS_JS,
        "admin.js" => &ADMIN_JS,
        "people.js" => &PEOPLE_JS,
        "supervision.js" => &SUPERVISION_JS,
        "webhooks.js" => &WEBHOOKS_JS,
        "md.js" => &MD_JS,
        "console.js" => &CONSOLE_JS,
        "console.css" => &CONSOLE_CSS,
        _ => return ApiError::new(Code::NotFound, format!("no asset {file:?}")).into_response(),
    };
    asset.respond(&h)
}
