//! The WeChat server API kefu calls: the access token (cached until shortly before it
//! expires, refreshed once when WeChat says it is invalid), `message/custom/send` (text and
//! image messages), and the temporary media API (`media/get` for users' photos,
//! `media/upload` for agents').

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
    #[error("the media from WeChat is larger than {0} bytes")]
    MediaTooLarge(usize),
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
    #[serde(default)]
    media_id: Option<String>,
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
        self.send(&json!({"touser": openid, "msgtype": "text", "text": {"content": content}})).await
    }

    /// Sends an image (uploaded as temporary media first) through the message API.
    pub async fn send_image(&self, openid: &str, bytes: &[u8], mime: &str) -> Result<(), ApiError> {
        let media_id = self.upload_image(bytes, mime).await?;
        self.send(&json!({"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})).await
    }

    /// A user's photo by its `MediaId`, at most `max` bytes (read as it arrives: a declared
    /// length is not trusted).
    pub async fn media(&self, media_id: &str, max: usize) -> Result<Vec<u8>, ApiError> {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let url = format!("{}/cgi-bin/media/get", self.base);
            let mut response = self.http.get(url).query(&[("access_token", token.as_str()), ("media_id", media_id)]).send().await.map_err(transport)?;
            let kind = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
            // Errors come as JSON (`errcode`), media as the file itself.
            if kind.contains("json") || kind.starts_with("text/") {
                let reply: Reply = response.json().await.map_err(transport)?;
                match reply.errcode {
                    c if token_expired(c) && !refreshed => {
                        self.forget(&token).await;
                        refreshed = true;
                        continue;
                    }
                    code => return Err(ApiError::Refused { code, message: format!("no media: {}", reply.errmsg) }),
                }
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if bytes.len() + chunk.len() > max {
                    return Err(ApiError::MediaTooLarge(max));
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(bytes);
        }
    }

    /// Uploads an image as temporary media (kept by WeChat for three days): its `media_id`.
    async fn upload_image(&self, bytes: &[u8], mime: &str) -> Result<String, ApiError> {
        let ext = mime.rsplit('/').next().unwrap_or("jpg");
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(format!("kefu.{ext}")).mime_str(mime).map_err(transport)?;
            let form = reqwest::multipart::Form::new().part("media", part);
            let url = format!("{}/cgi-bin/media/upload", self.base);
            let reply = read_reply(self.http.post(url).query(&[("access_token", token.as_str()), ("type", "image")]).multipart(form)).await?;
            match (reply.errcode, reply.media_id) {
                (0, Some(id)) if !id.is_empty() => return Ok(id),
                (c, _) if token_expired(c) && !refreshed => {
                    self.forget(&token).await;
                    refreshed = true;
                }
                (code, _) => return Err(ApiError::Refused { code, message: format!("the upload gave no media_id: {}", reply.errmsg) }),
            }
        }
    }

    async fn send(&self, body: &serde_json::Value) -> Result<(), ApiError> {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let url = format!("{}/cgi-bin/message/custom/send", self.base);
            let reply = read_reply(self.http.post(url).query(&[("access_token", &token)]).json(body)).await?;
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
