//! Start-up and background chores: opening the store and the knowledge, the admin token and
//! first agent for a fresh data directory, and watching the sources for edits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::limits::Limiters;
use crate::auth;
use crate::config::Config;
use crate::service::{fingerprint, Brain, Service, Sources};
use crate::store::SledStore;

const FINGERPRINT_FILE: &str = "knowledge-source.fingerprint";

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    Ok(())
}

fn sources_fingerprint(s: &Sources) -> String {
    format!("{:x}-{:x}", fingerprint(&s.knowledge), fingerprint(&s.intents))
}

/// Opens everything `kefu serve` needs in `config.data`.
pub async fn open_service(config: Config) -> anyhow::Result<Service> {
    let data = config.data.clone();
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let store = SledStore::open(&data.join("store")).with_context(|| format!("cannot open the store in {}", data.display()))?;
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
        tokio::task::spawn_blocking(move || -> anyhow::Result<Brain> {
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
                    Brain::open(&sources).map_err(|_| anyhow::Error::new(e).context("cannot load the knowledge or intents"))
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
    let service = Service::new(config, Arc::new(store), brain, sources, admin_hash);
    if service.store().agents()?.is_empty() {
        // A fresh install gets one agent so the console can be tried at once.
        let path = service.config().data.join("agent-password");
        let password = match std::fs::read_to_string(&path) {
            Ok(p) => p.trim().to_string(),
            Err(_) => {
                let p = auth::new_token()[..16].to_string();
                write_secret(&path, &p)?;
                p
            }
        };
        service.put_agent("agent", "客服小助", &password, vec!["*".into()], 5).await?;
        tracing::info!(login = "agent", file = %path.display(), "created the first agent; its password is in the file");
    }
    Ok(service)
}

/// Watches the knowledge and intents for edits (reloading within the interval) and trims
/// the rate limiters. Runs until aborted.
pub async fn background(service: Arc<Service>, limits: Arc<Limiters>) {
    let interval = service.config().watch_interval_ms;
    let fp_path = service.config().data.join(FINGERPRINT_FILE);
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
