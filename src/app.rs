//! The composition root: everything `kefu serve` starts. It opens the store and the
//! knowledge, writes the first secrets of a fresh data directory, builds the channels, starts
//! the background chores and serves until shutdown. [`run`] takes a bound listener and any
//! shutdown future, so tests drive the real server on port 0.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth;
use crate::channels::wechat::{WeChat, WeChatError};
use crate::config::Config;
use crate::http::{self, connections, AppState, Limiters};
use crate::service::{fingerprint, Brain, BrainError, Service, ServiceError, Sources};
use crate::store::{redact_url, PgStore, SledStore, Store, StoreError};

const FINGERPRINT_FILE: &str = "knowledge-source.fingerprint";

/// Why the server could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store in {}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error("cannot use the PostgreSQL store at {url}")]
    Database { url: String, source: StoreError },
    #[error("cannot load the knowledge or intents")]
    Knowledge(#[source] BrainError),
    #[error("cannot write the secret file {}", path.display())]
    Secret { path: PathBuf, source: std::io::Error },
    #[error("cannot create the first agent")]
    FirstAgent(#[source] ServiceError),
    #[error("cannot read the webhook endpoints")]
    Webhooks(#[from] crate::webhook::WebhookError),
    #[error("cannot open the WeChat channel")]
    WeChat(#[from] WeChatError),
    #[error(transparent)]
    Semantic(#[from] crate::semantic::SemanticError),
    #[error("cannot listen on {address} for /metrics")]
    MetricsListen { address: String, source: std::io::Error },
    #[error("the listener has no local address")]
    Listener(#[source] std::io::Error),
    #[error("a start-up task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the store did not flush at shutdown")]
    Close(#[source] StoreError),
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> Result<(), StartError> {
    use std::io::Write;
    let secret = |source| StartError::Secret { path: path.into(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(secret)?;
    writeln!(f, "{text}").map_err(secret)?;
    f.sync_all().map_err(secret)
}

/// From here on, what the process creates is its owner's alone (the store's files appear
/// as sled needs them, snapshots included, so a mode set at open would not cover them).
fn owner_only() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Makes the data directory 0700, which alone keeps others out of everything in it, and
/// takes group and other permissions from what kefu keeps there (stores made before kefu did
/// so were created 0644 under umask 022): its files and the `store` and `knowledge` trees.
/// Anything else an operator put in the folder keeps its modes (the folder guards it).
fn restrict_data(data: &Path) -> std::io::Result<()> {
    restrict(data, false)?;
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let ours = entry.file_type()?.is_file() || matches!(entry.file_name().to_str(), Some("store" | "knowledge"));
        if ours {
            restrict(&entry.path(), true)?;
        }
    }
    Ok(())
}

/// Folders 0700, files without group and other bits; `deep` for everything inside too.
/// Links are left alone.
fn restrict(dir: &Path, deep: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { mode & 0o700 };
        if mode != want {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want))?;
        }
        if meta.is_dir() && deep {
            for entry in std::fs::read_dir(dir)? {
                restrict(&entry?.path(), true)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, deep);
    Ok(())
}

fn sources_fingerprint(s: &Sources) -> String {
    format!("{:x}-{:x}", fingerprint(&s.knowledge), fingerprint(&s.intents))
}

/// The configured store: sled in `DATA/store`, or PostgreSQL (migrated to this build's
/// schema first).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match config.postgres_url() {
        None => {
            let path = config.data.join("store");
            let store = SledStore::open(&path).map_err(|source| StartError::Store { path: config.data.clone(), source })?;
            Ok(Arc::new(store))
        }
        Some(url) => {
            let store = PgStore::connect(url).await.map_err(|source| StartError::Database { url: redact_url(url), source })?;
            tracing::info!(database = %redact_url(url), "conversations are kept in PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// Opens everything the service needs in `config.data`.
pub async fn open_service(config: &Config) -> Result<Service, StartError> {
    let data = config.data.clone();
    owner_only();
    std::fs::create_dir_all(&data).map_err(|source| StartError::DataDir { path: data.clone(), source })?;
    restrict_data(&data).map_err(|source| StartError::DataDir { path: data.clone(), source })?;
    let store = open_store(config).await?;
    let sources = Sources {
        knowledge: config.knowledge.clone(),
        intents: config.intents.clone(),
        data: data.join("knowledge"),
        answer_threshold: config.answer_threshold,
        clarify_threshold: config.clarify_threshold,
        semantic: crate::semantic::load_optional(&config.model)?,
    };
    let brain = {
        let sources = sources.clone();
        let fp_path = data.join(FINGERPRINT_FILE);
        tokio::task::spawn_blocking(move || -> Result<Brain, StartError> {
            let now = sources_fingerprint(&sources);
            let unchanged = std::fs::read_to_string(&fp_path).is_ok_and(|s| s.trim() == now);
            if unchanged {
                if let Ok(b) = Brain::open(&sources) {
                    return Ok(b);
                }
            }
            match Brain::load(&sources) {
                Ok(b) => {
                    let _ = std::fs::write(&fp_path, &now);
                    Ok(b)
                }
                Err(e) => {
                    // A broken edit must not keep the bot down: serve the last good import.
                    tracing::error!(error = %e, "the knowledge or intents do not load; trying the previous import");
                    Brain::open(&sources).map_err(|_| StartError::Knowledge(e))
                }
            }
        })
        .await??
    };
    let admin_hash = match &config.admin_token_sha256 {
        Some(h) => h.to_lowercase(),
        None => {
            let path = data.join("admin-token");
            let token = match std::fs::read_to_string(&path) {
                Ok(t) => t.trim().to_string(),
                Err(_) => {
                    let t = auth::new_token();
                    write_secret(&path, &t)?;
                    tracing::info!(file = %path.display(), "generated the admin token (the file is readable by you only)");
                    t
                }
            };
            auth::token_hash(&token)
        }
    };
    let service = Service::new(config.service(), store, brain, sources, admin_hash);
    // Before the first step: its events go to the endpoints already configured.
    service.webhooks().load().await?;
    if service.store().agents().await.map_err(|e| StartError::FirstAgent(e.into()))?.is_empty() {
        // A fresh install gets one agent so the console can be tried at once.
        let path = data.join("agent-password");
        let password = match std::fs::read_to_string(&path) {
            Ok(p) => p.trim().to_string(),
            Err(_) => {
                let p = auth::new_token()[..16].to_string();
                write_secret(&path, &p)?;
                p
            }
        };
        service.put_agent("agent", "客服小助", &password, vec!["*".into()], 5).await.map_err(StartError::FirstAgent)?;
        tracing::info!(login = "agent", file = %path.display(), "created the first agent; its password is in the file");
    }
    Ok(service)
}

fn a_or(l: &TcpListener) -> String {
    l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string())
}

/// Watches the knowledge and intents for edits (reloading within the interval) and trims
/// the rate limiters. Runs until aborted.
async fn background(service: Arc<Service>, limits: Arc<Limiters>, interval: u64, fp_path: PathBuf) {
    let mut last = sources_fingerprint(service.sources());
    let mut tick = tokio::time::interval(Duration::from_millis(if interval == 0 { 60_000 } else { interval }));
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks % 30 == 0 {
            limits.shrink();
        }
        if interval == 0 {
            continue;
        }
        let sources = service.sources().clone();
        let Ok(now) = tokio::task::spawn_blocking(move || sources_fingerprint(&sources)).await else { continue };
        if now != last {
            tracing::info!("knowledge or intents changed; reloading");
            let status = service.reload().await;
            if status.error.is_none() {
                let _ = std::fs::write(&fp_path, &now);
            }
            // A failed reload is not retried until the files change again.
            last = now;
        }
    }
}

/// Runs the server on `listener` until `shutdown` resolves: opens the store and knowledge,
/// watches the sources for changes, serves, then closes WebSockets and the store cleanly.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
    let config = Arc::new(config);
    let service = Arc::new(open_service(&config).await?);
    let (close_tx, closing) = watch::channel(false);
    let limits = Arc::new(Limiters::new(&config.limits).with_proxies(&config.trusted_proxies));
    let wechat = Arc::new(WeChat::open(service.clone(), &config.wechat)?);
    let state = AppState {
        config: config.clone(),
        service: service.clone(),
        limits: limits.clone(),
        metrics: Default::default(),
        wechat: wechat.clone(),
        closing,
    };
    // Other nodes' events, when the store is shared (returns at once otherwise).
    let other_nodes = tokio::spawn(service.clone().follow_other_nodes());
    let background =
        tokio::spawn(background(service.clone(), limits.clone(), config.watch_interval_ms, config.data.join(FINGERPRINT_FILE)));
    let presence = tokio::spawn(service.clone().presence_loop());
    if config.sla_clock_speed != 1.0 {
        // A fast SLA clock is for tests: in production it would breach every ticket early.
        tracing::warn!(speed = config.sla_clock_speed, "sla_clock_speed is not 1: SLA budgets are divided by it");
    }
    let sla = tokio::spawn(service.clone().sla_loop());
    let webhooks = tokio::spawn(service.webhooks().clone().run());
    let header_timeout = Duration::from_millis(config.limits.header_timeout_ms);
    let proxies = limits.proxies.clone();
    let max_connections = match config.limits.max_connections {
        // Room for the store, the index, upgraded WebSockets and outgoing requests.
        0 => connections::descriptor_budget(64).unwrap_or(100_000),
        n => n,
    };
    let connections = connections::Connections::new(config.limits.connections_per_address, max_connections, move |ip| proxies.contains(ip));
    tracing::info!(max_connections, per_address = config.limits.connections_per_address, "connection limits");
    let wechat_tasks = (!wechat.is_empty()).then(|| {
        let relay = tokio::spawn(wechat.clone().relay(service.hub().tap()));
        let sender = tokio::spawn(wechat.clone().send_loop());
        (relay, sender)
    });
    let metrics_app = http::metrics_app(state.clone());
    let app = http::app(state);
    tracing::info!(address = %listener.local_addr().map_err(StartError::Listener)?, "kefu is serving");
    // A listener of its own for /metrics, bound before serving so a bad address stops the start.
    let metrics_listener = match &config.metrics_listen {
        Some(a) => Some(TcpListener::bind(a).await.map_err(|source| StartError::MetricsListen { address: a.clone(), source })?),
        None => None,
    };
    let mut closed = close_tx.subscribe();
    let metrics_task = metrics_listener.map(|l| {
        tracing::info!(address = %a_or(&l), "serving /metrics");
        let limits = http::ServeLimits { header_timeout, connections: connections::Connections::new(64, 1024, |_| false) };
        tokio::spawn(http::serve(l, metrics_app, limits, async move {
            let _ = closed.wait_for(|c| *c).await;
        }))
    });
    let signal = async move {
        shutdown.await;
        let _ = close_tx.send(true);
    };
    http::serve(listener, app, http::ServeLimits { header_timeout, connections }, signal).await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    background.abort();
    other_nodes.abort();
    presence.abort();
    sla.abort();
    webhooks.abort();
    let _ = (background.await, presence.await, sla.await, webhooks.await);
    if let Some((relay, sender)) = wechat_tasks {
        relay.abort();
        sender.abort();
        let _ = (relay.await, sender.await);
    }
    wechat.finish().await;
    // Everything acknowledged is already flushed; this makes the last writes durable too.
    service.store().durable().await.map_err(StartError::Close)?;
    tracing::info!("kefu stopped");
    Ok(())
}
