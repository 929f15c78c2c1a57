//! The configuration of one WeChat app (a 公众号 or a 小程序), as a `[[wechat]]` table.

use serde::Deserialize;

/// How the app's messages are protected (chosen in the WeChat console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// 明文模式: no encryption.
    #[default]
    Plaintext,
    /// 兼容模式: pushes carry both; encrypted ones are answered encrypted.
    Compatible,
    /// 安全模式: every push is encrypted; plaintext ones are refused.
    Safe,
}

/// Which kind of WeChat app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 公众号: XML pushes.
    #[default]
    OfficialAccount,
    /// 小程序: XML or JSON pushes (told apart by Content-Type).
    MiniProgram,
}

/// Who serves a WeChat user the bot hands off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HandoffTo {
    /// kefu's own agents; their replies go out through the customer-service message API.
    #[default]
    Kefu,
    /// WeChat's own 客服, with a `transfer_customer_service` reply.
    WechatKf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeChatApp {
    /// The app's name in the URL: `/wechat/{name}`.
    pub name: String,
    /// The Token set in the WeChat console (signs every request).
    pub token: String,
    pub appid: String,
    /// The AppSecret, for the access token of the message API.
    pub secret: String,
    /// 43 characters; needed unless the mode is plaintext.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub kind: Kind,
    /// Where the message API lives (tests point it at a local mock server).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// How long a push may wait for the answer before `success` is returned and the answer
    /// goes out later through the message API. WeChat gives up after 5 s. 0: every answer
    /// goes through the API.
    #[serde(default = "default_budget")]
    pub reply_budget_ms: u64,
    /// Requests whose timestamp is further than this from now are refused (replays).
    #[serde(default = "default_window")]
    pub timestamp_window_secs: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub handoff: HandoffTo,
    /// With `handoff = "wechat_kf"`: the agent account to transfer to (else any agent).
    #[serde(default)]
    pub kf_account: Option<String>,
    /// Said to a user who subscribes.
    #[serde(default = "default_greeting")]
    pub greeting: String,
}

fn default_api_base() -> String {
    "https://api.weixin.qq.com".into()
}
fn default_budget() -> u64 {
    4_000
}
fn default_window() -> u64 {
    300
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_greeting() -> String {
    "您好，欢迎关注！我是智能客服，有问题直接发消息给我就好。".into()
}

impl WeChatApp {
    /// Checks one app; the message names the app and the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, why: &str| Err(format!("wechat app {:?}: {field} {why}", self.name));
        let url_safe = |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !url_safe(&self.name) {
            return bad("name", "must be 1 to 64 letters, digits, '-' or '_' (it is part of the URL)");
        }
        if self.token.len() < 3 || self.token.len() > 32 || !self.token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return bad("token", "must be 3 to 32 letters or digits (as the WeChat console requires)");
        }
        if self.appid.is_empty() || self.appid.len() > 64 {
            return bad("appid", "must be set");
        }
        if self.secret.is_empty() {
            return bad("secret", "must be set");
        }
        match (&self.encoding_aes_key, self.mode) {
            (None, Mode::Compatible | Mode::Safe) => return bad("encoding_aes_key", "is needed in compatible and safe mode"),
            (Some(k), _) => {
                if let Err(e) = super::crypto::Cipher::new(k, &self.appid) {
                    return bad("encoding_aes_key", &e.to_string());
                }
            }
            _ => {}
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return bad("api_base", "must be an http(s) URL");
        }
        if self.reply_budget_ms > 4_500 {
            return bad("reply_budget_ms", "must be at most 4500 (WeChat gives up after 5 seconds)");
        }
        if self.timestamp_window_secs == 0 {
            return bad("timestamp_window_secs", "must be above 0");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes", "must be at least 1024");
        }
        if self.kf_account.is_some() && self.handoff != HandoffTo::WechatKf {
            return bad("kf_account", "only applies with handoff = \"wechat_kf\"");
        }
        if self.greeting.trim().is_empty() {
            return bad("greeting", "must not be empty");
        }
        Ok(())
    }
}
