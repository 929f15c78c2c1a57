//! Configuration: defaults that run the demo with nothing set, a TOML file for real
//! deployments, and `KEFU_*` environment variables over both.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dialogue::Rules;
pub use crate::handoff::Assignment;
use crate::handoff::BusinessHours;
use crate::knowledge::Thresholds;

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
    /// A connection must send a complete request (HTTP/1 headers, or any HTTP/2 request)
    /// within this, and an idle HTTP/1 keep-alive connection is closed after it; an HTTP/2
    /// peer that does not answer a ping within it is closed too.
    pub header_timeout_ms: u64,
    /// Connections one client address may hold open (a trusted proxy's are not counted).
    pub connections_per_address: usize,
    /// Connections open at once; 0: the file-descriptor limit less a reserve of 64. At the
    /// cap the oldest connection that has not sent a request yet is closed for a new one.
    pub max_connections: usize,
    /// Failed logins from one address within `login_lockout_secs` before it gets 429.
    pub login_failures_per_address: u32,
    /// Failed logins to one account in a row before it is locked for `login_lockout_secs`
    /// (an admin can unlock it sooner).
    pub login_failures_per_account: u32,
    pub login_lockout_secs: u64,
    /// A visitor's `name` and `page`, in characters.
    pub max_name_chars: usize,
    pub max_page_chars: usize,
    /// A rating's comment, in characters.
    pub max_comment_chars: usize,
    /// WebSockets open at once on one conversation.
    pub sockets_per_conversation: usize,
    /// A photo sent in the chat, in bytes (its upload's body limit too).
    pub max_image_bytes: usize,
    /// A photo's longer side, in pixels.
    pub max_image_side: u32,
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
            header_timeout_ms: 10_000,
            connections_per_address: 64,
            max_connections: 0,
            login_failures_per_address: 20,
            login_failures_per_account: 5,
            login_lockout_secs: 900,
            max_name_chars: 64,
            max_page_chars: 2048,
            max_comment_chars: 500,
            sockets_per_conversation: 8,
            max_image_bytes: 5 * 1024 * 1024,
            max_image_side: 8192,
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
    /// Where conversations live: `sled` (in `data`, one node; the default) or a PostgreSQL
    /// URL, `postgres://user@host:5432/db`, which several nodes can share.
    pub store: String,
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
    /// Reverse proxies (addresses or CIDRs, `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client; nobody else's is believed. Rate limits and login throttling key on the client.
    pub trusted_proxies: Vec<String>,
    /// SHA-256 (hex) of a bearer token that `/metrics` then requires.
    pub metrics_token_sha256: Option<String>,
    /// A separate address serving `/metrics` (and `/healthz`) only; the main listener then
    /// answers 404 on `/metrics`.
    pub metrics_listen: Option<String>,
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
    /// When agents go away and queued visitors are offered leave-a-message.
    pub presence: crate::service::PresenceConfig,
    /// Ticket SLA policies, each a `[[sla]]` table (`priority`, `category`,
    /// `first_response_minutes`, `resolution_minutes`, in business minutes); the first that
    /// covers a ticket applies. None: the built-in defaults (see `handoff::SlaPolicies`).
    pub sla: Vec<crate::handoff::SlaPolicy>,
    /// How many seconds of SLA time pass per real second: the SLA budgets are divided by it.
    /// 1 in production; a test sets e.g. 3600 so that an hour's budget runs out in a second
    /// (the clock of record, the times stored and shown, stays the real one).
    pub sla_clock_speed: f64,
    /// The quality-review rubric (质检): `[[quality.criteria]]` tables of `name` and
    /// `weight`; default 礼貌用语 25, 解决问题 40, 响应速度 20, 规范用语 15.
    pub quality: crate::service::QualityConfig,
    /// How webhook deliveries are sent (the endpoints are set on the admin page).
    pub webhooks: crate::webhook::WebhookConfig,
    /// WeChat apps (公众号, 小程序), each a `[[wechat]]` table served at `/wechat/{name}`.
    pub wechat: Vec<crate::channels::wechat::WeChatApp>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data: "data".into(),
            store: "sled".into(),
            knowledge: "knowledge".into(),
            intents: "intents".into(),
            admin_token_sha256: None,
            identity_secret: None,
            allowed_origins: vec![],
            trusted_proxies: vec![],
            metrics_token_sha256: None,
            metrics_listen: None,
            assignment: Assignment::Claim,
            password_rounds: crate::auth::PASSWORD_ROUNDS,
            watch_interval_ms: 2_000,
            answer_threshold: None,
            clarify_threshold: None,
            model: crate::semantic::DEFAULT_PATH.into(),
            limits: Limits::default(),
            dialogue: Rules::default(),
            hours: BusinessHours::default(),
            presence: Default::default(),
            sla: vec![],
            sla_clock_speed: 1.0,
            quality: Default::default(),
            webhooks: Default::default(),
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
    /// The PostgreSQL URL when the store is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        let s = self.store.as_str();
        (s.starts_with("postgres://") || s.starts_with("postgresql://")).then_some(s)
    }

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

    /// Whether a config file (which may hold secrets: WeChat app secrets and AES keys, the
    /// identity secret) can be read by users other than its owner.
    pub fn readable_by_others(path: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            false
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            line: e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            reason: e.message().to_string(),
        })
    }

    /// Applies the environment over the file: every key as `KEFU_` and its path in upper
    /// case, `_` between table and key (`KEFU_LISTEN`, `KEFU_LIMITS_MAX_BODY_BYTES`,
    /// `KEFU_DIALOGUE_HANDOFF_TEXT`, `KEFU_HOURS_DAYS`). Lists are comma separated; an
    /// empty value clears an optional key. `[[wechat]]` apps come from the file only.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut env = Env { var: &var };
        env.set("KEFU_LISTEN", &mut self.listen)?;
        env.set("KEFU_DATA", &mut self.data)?;
        env.set("KEFU_STORE", &mut self.store)?;
        env.set("KEFU_KNOWLEDGE", &mut self.knowledge)?;
        env.set("KEFU_INTENTS", &mut self.intents)?;
        env.set("KEFU_MODEL", &mut self.model)?;
        env.set("KEFU_ADMIN_TOKEN_SHA256", &mut self.admin_token_sha256)?;
        env.set("KEFU_IDENTITY_SECRET", &mut self.identity_secret)?;
        env.set("KEFU_ALLOWED_ORIGINS", &mut self.allowed_origins)?;
        env.set("KEFU_TRUSTED_PROXIES", &mut self.trusted_proxies)?;
        env.set("KEFU_METRICS_TOKEN_SHA256", &mut self.metrics_token_sha256)?;
        env.set("KEFU_METRICS_LISTEN", &mut self.metrics_listen)?;
        env.set("KEFU_ASSIGNMENT", &mut self.assignment)?;
        env.set("KEFU_PASSWORD_ROUNDS", &mut self.password_rounds)?;
        env.set("KEFU_WATCH_INTERVAL_MS", &mut self.watch_interval_ms)?;
        env.set("KEFU_ANSWER_THRESHOLD", &mut self.answer_threshold)?;
        env.set("KEFU_CLARIFY_THRESHOLD", &mut self.clarify_threshold)?;
        let l = &mut self.limits;
        env.set("KEFU_LIMITS_MAX_BODY_BYTES", &mut l.max_body_bytes)?;
        env.set("KEFU_LIMITS_MAX_MESSAGE_CHARS", &mut l.max_message_chars)?;
        env.set("KEFU_LIMITS_IP_PER_SECOND", &mut l.ip_per_second)?;
        env.set("KEFU_LIMITS_IP_BURST", &mut l.ip_burst)?;
        env.set("KEFU_LIMITS_CONVERSATION_PER_SECOND", &mut l.conversation_per_second)?;
        env.set("KEFU_LIMITS_CONVERSATION_BURST", &mut l.conversation_burst)?;
        env.set("KEFU_LIMITS_REQUEST_TIMEOUT_MS", &mut l.request_timeout_ms)?;
        env.set("KEFU_LIMITS_CONVERSATION_WAIT_MS", &mut l.conversation_wait_ms)?;
        env.set("KEFU_LIMITS_SESSION_HOURS", &mut l.session_hours)?;
        env.set("KEFU_LIMITS_MAX_IN_FLIGHT", &mut l.max_in_flight)?;
        env.set("KEFU_LIMITS_HEADER_TIMEOUT_MS", &mut l.header_timeout_ms)?;
        env.set("KEFU_LIMITS_CONNECTIONS_PER_ADDRESS", &mut l.connections_per_address)?;
        env.set("KEFU_LIMITS_MAX_CONNECTIONS", &mut l.max_connections)?;
        env.set("KEFU_LIMITS_LOGIN_FAILURES_PER_ADDRESS", &mut l.login_failures_per_address)?;
        env.set("KEFU_LIMITS_LOGIN_FAILURES_PER_ACCOUNT", &mut l.login_failures_per_account)?;
        env.set("KEFU_LIMITS_LOGIN_LOCKOUT_SECS", &mut l.login_lockout_secs)?;
        env.set("KEFU_LIMITS_MAX_NAME_CHARS", &mut l.max_name_chars)?;
        env.set("KEFU_LIMITS_MAX_PAGE_CHARS", &mut l.max_page_chars)?;
        env.set("KEFU_LIMITS_MAX_COMMENT_CHARS", &mut l.max_comment_chars)?;
        env.set("KEFU_LIMITS_SOCKETS_PER_CONVERSATION", &mut l.sockets_per_conversation)?;
        env.set("KEFU_LIMITS_MAX_IMAGE_BYTES", &mut l.max_image_bytes)?;
        env.set("KEFU_LIMITS_MAX_IMAGE_SIDE", &mut l.max_image_side)?;
        let d = &mut self.dialogue;
        env.set("KEFU_DIALOGUE_MISS_LIMIT", &mut d.miss_limit)?;
        env.set("KEFU_DIALOGUE_CONFIDENCE_FLOOR", &mut d.confidence_floor)?;
        env.set("KEFU_DIALOGUE_CLARIFY_OPTIONS", &mut d.clarify_options)?;
        env.set("KEFU_DIALOGUE_CLARIFY_MIN_CONFIDENCE", &mut d.clarify_min_confidence)?;
        for (name, text) in d.sentences_mut() {
            env.set(&format!("KEFU_DIALOGUE_{}", name.to_uppercase()), text)?;
        }
        let h = &mut self.hours;
        env.set("KEFU_HOURS_UTC_OFFSET_MINUTES", &mut h.utc_offset_minutes)?;
        env.set("KEFU_HOURS_DAYS", &mut h.days)?;
        env.set("KEFU_HOURS_OPEN", &mut h.open)?;
        env.set("KEFU_HOURS_CLOSE", &mut h.close)?;
        env.set("KEFU_SLA_CLOCK_SPEED", &mut self.sla_clock_speed)?;
        let p = &mut self.presence;
        env.set("KEFU_PRESENCE_AWAY_GRACE_SECS", &mut p.away_grace_secs)?;
        env.set("KEFU_PRESENCE_IDLE_SECS", &mut p.idle_secs)?;
        env.set("KEFU_PRESENCE_QUEUE_TIMEOUT_SECS", &mut p.queue_timeout_secs)?;
        env.set("KEFU_PRESENCE_WAIT_PER_VISITOR_SECS", &mut p.wait_per_visitor_secs)?;
        let w = &mut self.webhooks;
        env.set("KEFU_WEBHOOKS_TIMEOUT_MS", &mut w.timeout_ms)?;
        env.set("KEFU_WEBHOOKS_MAX_BACKOFF_MS", &mut w.max_backoff_ms)?;
        env.set("KEFU_WEBHOOKS_GIVE_UP_SECS", &mut w.give_up_secs)?;
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Invalid(s));
        if self.postgres_url().is_none() && self.store != "sled" {
            return bad(format!("store must be `sled` or a postgres://… URL, not {:?}", crate::store::redact_url(&self.store)));
        }
        self.hours.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.presence.validate().map_err(ConfigError::Invalid)?;
        self.sla_policies().validate().map_err(ConfigError::Invalid)?;
        self.quality.validate().map_err(ConfigError::Invalid)?;
        self.webhooks.validate().map_err(ConfigError::Invalid)?;
        if let Some(t) = self.thresholds() {
            t.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(h) = &self.admin_token_sha256 {
            if h.len() != 64 || hex::decode(h).is_err() {
                return bad("admin_token_sha256 must be 64 hex digits (the SHA-256 of the token)".into());
            }
        }
        if let Some(h) = &self.metrics_token_sha256 {
            if h.len() != 64 || hex::decode(h).is_err() {
                return bad("metrics_token_sha256 must be 64 hex digits (the SHA-256 of the token)".into());
            }
        }
        if let Some(a) = &self.metrics_listen {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return bad(format!("metrics_listen {a:?} is not an address and port such as 127.0.0.1:9090"));
            }
        }
        for p in &self.trusted_proxies {
            crate::http::parse_proxy(p).map_err(ConfigError::Invalid)?;
        }
        if self.password_rounds < 1_000 {
            return bad(format!("password_rounds {} is too few (at least 1000)", self.password_rounds));
        }
        let l = &self.limits;
        if l.max_message_chars == 0 || l.max_body_bytes == 0 {
            return bad("limits: max_message_chars and max_body_bytes must be above 0".into());
        }
        if l.header_timeout_ms == 0 || l.connections_per_address == 0 {
            return bad("limits: header_timeout_ms and connections_per_address must be above 0".into());
        }
        if l.login_failures_per_address == 0 || l.login_failures_per_account == 0 || l.login_lockout_secs == 0 {
            return bad("limits: login_failures_per_address, login_failures_per_account and login_lockout_secs must be above 0".into());
        }
        if l.max_name_chars == 0 || l.max_page_chars == 0 || l.max_comment_chars == 0 || l.sockets_per_conversation == 0 {
            return bad("limits: max_name_chars, max_page_chars, max_comment_chars and sockets_per_conversation must be above 0".into());
        }
        if l.max_image_bytes == 0 || l.max_image_side == 0 {
            return bad("limits: max_image_bytes and max_image_side must be above 0".into());
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

    /// The service's part of the configuration.
    pub fn service(&self) -> crate::service::ServiceConfig {
        crate::service::ServiceConfig {
            identity_secret: self.identity_secret.clone(),
            assignment: self.assignment,
            password_rounds: self.password_rounds,
            max_message_chars: self.limits.max_message_chars,
            conversation_wait_ms: self.limits.conversation_wait_ms,
            session_hours: self.limits.session_hours,
            max_name_chars: self.limits.max_name_chars,
            max_page_chars: self.limits.max_page_chars,
            max_comment_chars: self.limits.max_comment_chars,
            images: crate::images::ImageLimits { max_bytes: self.limits.max_image_bytes, max_side: self.limits.max_image_side },
            dialogue: self.dialogue.clone(),
            hours: self.hours.clone(),
            presence: self.presence.clone(),
            sla: self.sla_policies(),
            quality: self.quality.clone(),
            webhooks: self.webhooks.clone(),
        }
    }

    /// The configured SLA policies, or the defaults when there are none.
    pub fn sla_policies(&self) -> crate::handoff::SlaPolicies {
        let policies = if self.sla.is_empty() { crate::handoff::SlaPolicies::defaults() } else { self.sla.clone() };
        crate::handoff::SlaPolicies { policies, speed: self.sla_clock_speed }
    }

    /// The configured thresholds, when either is set (the other keeps the model's default).
    pub fn thresholds(&self) -> Option<Thresholds> {
        if self.answer_threshold.is_none() && self.clarify_threshold.is_none() {
            return None;
        }
        // The built-in model is parsed once per process, not per call.
        static MODEL: std::sync::OnceLock<Thresholds> = std::sync::OnceLock::new();
        let model = *MODEL.get_or_init(|| crate::knowledge::Ranker::builtin().thresholds);
        Some(Thresholds {
            answer: self.answer_threshold.unwrap_or(model.answer),
            clarify: self.clarify_threshold.unwrap_or(model.clarify),
        })
    }
}

/// Reads `KEFU_*` variables into typed fields, naming the variable in every error.
struct Env<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn set<T: FromEnv>(&mut self, name: &str, field: &mut T) -> Result<(), ConfigError> {
        if let Some(v) = (self.var)(name) {
            *field = T::from_env(&v).map_err(|reason| ConfigError::Env { name: name.into(), reason })?;
        }
        Ok(())
    }
}

/// A value written in an environment variable.
trait FromEnv: Sized {
    fn from_env(v: &str) -> Result<Self, String>;
}

impl FromEnv for String {
    fn from_env(v: &str) -> Result<Self, String> {
        Ok(v.to_string())
    }
}

impl FromEnv for PathBuf {
    fn from_env(v: &str) -> Result<Self, String> {
        Ok(v.into())
    }
}

macro_rules! numbers {
    ($($t:ty => $what:literal),*) => {$(
        impl FromEnv for $t {
            fn from_env(v: &str) -> Result<Self, String> {
                v.trim().parse().map_err(|_| format!("{v:?} is not {}", $what))
            }
        }
    )*};
}

numbers!(u8 => "a number from 0 to 255", u32 => "a whole number", u64 => "a whole number", usize => "a whole number",
         i32 => "a whole number", f32 => "a number", f64 => "a number");

impl<T: FromEnv> FromEnv for Option<T> {
    fn from_env(v: &str) -> Result<Self, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            T::from_env(v).map(Some)
        }
    }
}

impl<T: FromEnv> FromEnv for Vec<T> {
    fn from_env(v: &str) -> Result<Self, String> {
        v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(T::from_env).collect()
    }
}

impl FromEnv for Assignment {
    fn from_env(v: &str) -> Result<Self, String> {
        match v {
            "claim" => Ok(Assignment::Claim),
            "auto" => Ok(Assignment::Auto),
            _ => Err(format!("{v:?} is not claim or auto")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_policies_come_from_sla_tables_and_the_clock_speed_is_checked() {
        let text = "sla_clock_speed = 60\n[[sla]]\ncategory = \"投诉\"\nfirst_response_minutes = 15\nresolution_minutes = 480\n[[sla]]\nfirst_response_minutes = 120\nresolution_minutes = 0\n";
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        let p = c.sla_policies();
        assert_eq!((p.speed, p.policies.len(), p.policies[0].category.as_deref()), (60.0, 2, Some("投诉")));
        assert_eq!(Config::default().sla_policies().policies, crate::handoff::SlaPolicies::defaults(), "none configured: the defaults");
        let slow = Config { sla_clock_speed: 0.0, ..Config::default() };
        assert!(slow.validate().unwrap_err().to_string().contains("sla_clock_speed"));
        let bad: Result<Config, _> = toml::from_str("[[sla]]\npriority = \"asap\"\nfirst_response_minutes = 1\nresolution_minutes = 1\n");
        assert!(bad.is_err(), "an unknown priority is refused");
    }

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
    fn every_table_key_has_a_variable() {
        let vars = [
            ("KEFU_LIMITS_MAX_BODY_BYTES", "1024"),
            ("KEFU_LIMITS_SESSION_HOURS", "2"),
            ("KEFU_DIALOGUE_MISS_LIMIT", "0"),
            ("KEFU_DIALOGUE_HANDOFF_TEXT", "马上为您转人工"),
            ("KEFU_DIALOGUE_AGENT_JOINED_TEXT", "{agent} 来了"),
            ("KEFU_HOURS_DAYS", "1, 2,3"),
            ("KEFU_HOURS_OPEN", "09:00"),
            ("KEFU_ANSWER_THRESHOLD", "0.7"),
            ("KEFU_IDENTITY_SECRET", "123"),
            ("KEFU_PASSWORD_ROUNDS", "5000"),
            ("KEFU_LIMITS_HEADER_TIMEOUT_MS", "3000"),
            ("KEFU_LIMITS_LOGIN_FAILURES_PER_ACCOUNT", "3"),
            ("KEFU_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.5"),
            ("KEFU_METRICS_LISTEN", "127.0.0.1:9090"),
        ];
        let mut c = Config::default();
        c.apply_env(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())).unwrap();
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(c.limits.session_hours, 2);
        assert_eq!(c.dialogue.miss_limit, 0);
        assert_eq!(c.dialogue.handoff_text, "马上为您转人工");
        assert_eq!(c.dialogue.agent_joined_text, "{agent} 来了");
        assert_eq!(c.hours.days, [1, 2, 3]);
        assert_eq!(c.hours.open, "09:00");
        assert_eq!(c.answer_threshold, Some(0.7));
        assert_eq!(c.identity_secret.as_deref(), Some("123"), "a secret of digits stays a string");
        assert_eq!(c.password_rounds, 5000);
        assert_eq!((c.limits.header_timeout_ms, c.limits.login_failures_per_account), (3000, 3));
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "192.168.1.5"]);
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9090"));
        c.validate().unwrap();
        let bad = Config { trusted_proxies: vec!["10.0.0.0/33".into()], ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("\"10.0.0.0/33\""), "the bad proxy is named");
        let e = Config::default().apply_env(|n| (n == "KEFU_LIMITS_MAX_BODY_BYTES").then(|| "64k".into())).unwrap_err();
        assert_eq!(e.to_string(), "environment variable KEFU_LIMITS_MAX_BODY_BYTES: \"64k\" is not a whole number");
        let e = Config::default().apply_env(|n| (n == "KEFU_HOURS_DAYS").then(|| "1,x".into())).unwrap_err();
        assert!(e.to_string().contains("KEFU_HOURS_DAYS"), "{e}");
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
