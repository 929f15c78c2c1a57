//! Configuration: defaults that run the demo with nothing set, a TOML file for real
//! deployments, and `KEFU_*` environment variables over both.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dialogue::Rules;
use crate::handoff::BusinessHours;
use crate::knowledge::Thresholds;

/// How handoffs reach agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Agents claim conversations from the queue.
    #[default]
    Claim,
    /// The least-loaded online agent with the skill gets it at once.
    Auto,
}

/// Protection against floods and oversized input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_message_chars: usize,
    /// Requests per second per client IP, with a burst allowance.
    pub ip_per_second: u32,
    pub ip_burst: u32,
    /// Visitor messages per second per conversation, with a burst allowance.
    pub conversation_per_second: u32,
    pub conversation_burst: u32,
    pub request_timeout_ms: u64,
    /// How long a message waits for its conversation before 503 (a stuck conversation must
    /// not hang its visitor forever).
    pub conversation_wait_ms: u64,
    /// Agent sessions expire after this many hours.
    pub session_hours: u64,
    /// Requests served at once; beyond this the server answers 503 `overloaded` at once
    /// instead of queueing work it cannot finish in time.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_message_chars: 2000,
            ip_per_second: 50,
            ip_burst: 200,
            conversation_per_second: 2,
            conversation_burst: 10,
            request_timeout_ms: 10_000,
            conversation_wait_ms: 5_000,
            session_hours: 12,
            max_in_flight: 256,
        }
    }
}

/// Everything `kefu serve` is configured by.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// The data directory: sled store and imported knowledge.
    pub data: PathBuf,
    /// The knowledge source (folder, .jsonl or .csv), watched for changes.
    pub knowledge: PathBuf,
    /// The intents folder, watched for changes.
    pub intents: PathBuf,
    /// SHA-256 (hex) of the admin bearer token. Unset: one is generated into
    /// `DATA/admin-token` at first start.
    pub admin_token_sha256: Option<String>,
    /// The per-site secret that signs a logged-in customer's id (HMAC-SHA256).
    pub identity_secret: Option<String>,
    /// Web origins allowed to call the visitor API from a browser (the widget's sites).
    /// Empty: same origin only.
    pub allowed_origins: Vec<String>,
    pub assignment: Assignment,
    /// PBKDF2 rounds for new agent passwords.
    pub password_rounds: u32,
    /// How often the knowledge and intents are checked for changes (0: never).
    pub watch_interval_ms: u64,
    /// Knowledge answer/clarify thresholds (default: the shipped model's).
    pub answer_threshold: Option<f32>,
    pub clarify_threshold: Option<f32>,
    /// The semantic word table built by `scripts/model`; missing: answers by words only.
    pub model: PathBuf,
    pub limits: Limits,
    pub dialogue: Rules,
    pub hours: BusinessHours,
    /// WeChat apps (公众号, 小程序), each a `[[wechat]]` table served at `/wechat/{name}`.
    pub wechat: Vec<crate::channels::wechat::WeChatApp>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data: "data".into(),
            knowledge: "knowledge".into(),
            intents: "intents".into(),
            admin_token_sha256: None,
            identity_secret: None,
            allowed_origins: vec![],
            assignment: Assignment::Claim,
            password_rounds: crate::auth::PASSWORD_ROUNDS,
            watch_interval_ms: 2_000,
            answer_threshold: None,
            clarify_threshold: None,
            model: crate::semantic::DEFAULT_PATH.into(),
            limits: Limits::default(),
            dialogue: Rules::default(),
            hours: BusinessHours::default(),
            wechat: vec![],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {reason}", path.display())]
    Parse { path: PathBuf, line: usize, reason: String },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` when given (else the defaults), then applies `KEFU_*` variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                Config::parse(&text, p)?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            line: e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            reason: e.message().to_string(),
        })
    }

    /// Applies `KEFU_LISTEN`, `KEFU_DATA`, `KEFU_KNOWLEDGE`, `KEFU_INTENTS`,
    /// `KEFU_MODEL`, `KEFU_ADMIN_TOKEN_SHA256`, `KEFU_IDENTITY_SECRET`, `KEFU_ALLOWED_ORIGINS` (comma
    /// separated), `KEFU_ASSIGNMENT` (claim|auto) and `KEFU_WATCH_INTERVAL_MS`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("KEFU_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = var("KEFU_DATA") {
            self.data = v.into();
        }
        if let Some(v) = var("KEFU_KNOWLEDGE") {
            self.knowledge = v.into();
        }
        if let Some(v) = var("KEFU_INTENTS") {
            self.intents = v.into();
        }
        if let Some(v) = var("KEFU_MODEL") {
            self.model = v.into();
        }
        if let Some(v) = var("KEFU_ADMIN_TOKEN_SHA256") {
            self.admin_token_sha256 = Some(v);
        }
        if let Some(v) = var("KEFU_IDENTITY_SECRET") {
            self.identity_secret = Some(v);
        }
        if let Some(v) = var("KEFU_ALLOWED_ORIGINS") {
            self.allowed_origins = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = var("KEFU_ASSIGNMENT") {
            self.assignment = match v.as_str() {
                "claim" => Assignment::Claim,
                "auto" => Assignment::Auto,
                _ => return Err(ConfigError::Env { name: "KEFU_ASSIGNMENT".into(), reason: format!("{v:?} is not claim or auto") }),
            };
        }
        if let Some(v) = var("KEFU_WATCH_INTERVAL_MS") {
            self.watch_interval_ms = v.parse().map_err(|_| ConfigError::Env {
                name: "KEFU_WATCH_INTERVAL_MS".into(),
                reason: format!("{v:?} is not a number of milliseconds"),
            })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Invalid(s));
        self.hours.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(t) = self.thresholds() {
            t.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(h) = &self.admin_token_sha256 {
            if h.len() != 64 || hex::decode(h).is_err() {
                return bad("admin_token_sha256 must be 64 hex digits (the SHA-256 of the token)".into());
            }
        }
        if self.password_rounds < 1_000 {
            return bad(format!("password_rounds {} is too few (at least 1000)", self.password_rounds));
        }
        let l = &self.limits;
        if l.max_message_chars == 0 || l.max_body_bytes == 0 {
            return bad("limits: max_message_chars and max_body_bytes must be above 0".into());
        }
        if l.max_in_flight == 0 {
            return bad("limits: max_in_flight must be above 0".into());
        }
        if l.ip_per_second == 0 || l.conversation_per_second == 0 {
            return bad("limits: rates must be above 0 per second".into());
        }
        let mut names = std::collections::HashSet::new();
        for app in &self.wechat {
            app.validate().map_err(ConfigError::Invalid)?;
            if !names.insert(&app.name) {
                return bad(format!("wechat app {:?}: name is used twice", app.name));
            }
        }
        if !(0.0..=1.0).contains(&self.dialogue.confidence_floor) {
            return bad(format!("dialogue.confidence_floor {} is not between 0 and 1", self.dialogue.confidence_floor));
        }
        Ok(())
    }

    /// The configured thresholds, when either is set (the other keeps the model's default).
    pub fn thresholds(&self) -> Option<Thresholds> {
        if self.answer_threshold.is_none() && self.clarify_threshold.is_none() {
            return None;
        }
        let model = crate::knowledge::Ranker::builtin().thresholds;
        Some(Thresholds {
            answer: self.answer_threshold.unwrap_or(model.answer),
            clarify: self.clarify_threshold.unwrap_or(model.clarify),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let text = "listen = \"0.0.0.0:9000\"\nassignment = \"auto\"\n[limits]\nmax_message_chars = 500\n[hours]\nopen = \"09:00\"\nclose = \"18:00\"\n";
        let mut c = Config::parse(text, Path::new("kefu.toml")).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.assignment, Assignment::Auto);
        assert_eq!(c.limits.max_message_chars, 500);
        assert_eq!(c.limits.ip_burst, Limits::default().ip_burst);
        c.apply_env(|n| (n == "KEFU_LISTEN").then(|| "127.0.0.1:1".to_string())).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        c.validate().unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::parse("listen = \"x\"\nlisen = 1\n", Path::new("kefu.toml")).unwrap_err();
        assert!(e.to_string().starts_with("kefu.toml:2: unknown field `lisen`"), "{e}");
        let mut c = Config::default();
        let e = c.apply_env(|n| (n == "KEFU_ASSIGNMENT").then(|| "random".to_string())).unwrap_err();
        assert_eq!(e.to_string(), "environment variable KEFU_ASSIGNMENT: \"random\" is not claim or auto");
        let c = Config { admin_token_sha256: Some("abc".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("64 hex digits"));
    }

    #[test]
    fn wechat_apps_are_read_and_checked() {
        let text = "[[wechat]]\nname = \"mp\"\ntoken = \"AAAAA\"\nappid = \"wx1\"\nsecret = \"s\"\nmode = \"safe\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\nhandoff = \"wechat_kf\"\nkf_account = \"kf1@gh\"\n";
        let c = Config::parse(text, Path::new("kefu.toml")).unwrap();
        c.validate().unwrap();
        let app = &c.wechat[0];
        assert_eq!((app.reply_budget_ms, app.api_base.as_str()), (4_000, "https://api.weixin.qq.com"));
        let broken = text.replace("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "short");
        let e = Config::parse(&broken, Path::new("kefu.toml")).unwrap().validate().unwrap_err();
        assert_eq!(e.to_string(), "config: wechat app \"mp\": encoding_aes_key the EncodingAESKey must be 43 base64 characters");
        let e = Config::parse(&text.replace("mode = \"safe\"", "mode = \"secret\""), Path::new("kefu.toml")).unwrap_err();
        assert!(e.to_string().contains("unknown variant `secret`"), "{e}");
        let twice = format!("{text}{text}");
        let e = Config::parse(&twice, Path::new("kefu.toml")).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("name is used twice"), "{e}");
    }
}
