//! The WeChat server API kefu calls: the access token (cached until shortly before it
//! expires, refreshed once when WeChat says it is invalid) and `message/custom/send`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

/// A token is renewed this long before WeChat says it expires (requests in flight must not
/// carry a token that dies on the way).
const MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the WeChat API could not be reached: {0}")]
    Transport(String),
    /// The user's message window is used up or closed (45015, 45047): hold and wait for them.
    #[error("WeChat refused: the user's customer-service message window is closed or used up ({0})")]
    Window(i64),
    #[error("WeChat refused ({code}): {message}")]
    Refused { code: i64, message: String },
}

impl ApiError {
    /// Whether trying again later may succeed (network trouble, WeChat busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Transport(_) | ApiError::Refused { code: -1, .. })
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Tokens WeChat reports as invalid or expired: fetch a new one and try once more.
fn token_expired(code: i64) -> bool {
    matches!(code, 40001 | 40014 | 42001)
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    appid: String,
    secret: String,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Client {
    pub fn new(http: reqwest::Client, base: &str, appid: &str, secret: &str) -> Client {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            appid: appid.into(),
            secret: secret.into(),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached token, fetched when missing or about to expire. One fetch at a time: the
    /// lock is held across it, so concurrent senders share it.
    async fn token(&self) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = &*cached {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let url = format!("{}/cgi-bin/token", self.base);
        let reply = read_reply(self.http.get(url).query(&[("grant_type", "client_credential"), ("appid", &self.appid), ("secret", &self.secret)])).await?;
        match reply.access_token {
            Some(t) if reply.errcode == 0 && !t.is_empty() => {
                let life = Duration::from_secs(reply.expires_in.unwrap_or(7200));
                *cached = Some((t.clone(), Instant::now() + life.saturating_sub(MARGIN)));
                Ok(t)
            }
            _ => Err(ApiError::Refused { code: reply.errcode, message: format!("no access token: {}", reply.errmsg) }),
        }
    }

    async fn forget(&self, token: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|(t, _)| t == token) {
            *cached = None;
        }
    }

    /// Sends a text through the customer-service message API.
    pub async fn send_text(&self, openid: &str, content: &str) -> Result<(), ApiError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": content}});
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let url = format!("{}/cgi-bin/message/custom/send", self.base);
            let reply = read_reply(self.http.post(url).query(&[("access_token", &token)]).json(&body)).await?;
            match reply.errcode {
                0 => return Ok(()),
                c if token_expired(c) && !refreshed => {
                    self.forget(&token).await;
                    refreshed = true;
                }
                c @ (45015 | 45047) => return Err(ApiError::Window(c)),
                code => return Err(ApiError::Refused { code, message: reply.errmsg }),
            }
        }
    }
}

/// Sends `request` and reads WeChat's JSON answer.
async fn read_reply(request: reqwest::RequestBuilder) -> Result<Reply, ApiError> {
    request.send().await.map_err(transport)?.json().await.map_err(transport)
}

/// A transport error without its URL: the token request carries the app secret in its query
/// string and the message API the access token, and these errors end up in the logs.
fn transport(e: reqwest::Error) -> ApiError {
    ApiError::Transport(e.without_url().to_string())
}
