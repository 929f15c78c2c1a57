//! Knowledge on every node: with a store that several nodes share, a node that reloads
//! its knowledge and intents (an admin edit, a reload, its folder changed) publishes their
//! files to the database with a new generation and tells the others, and each other node
//! writes them into its own folders and rebuilds its own index from them.
//!
//! Each node remembers (in `DATA/knowledge-shared.json`) the generation and fingerprint it
//! last published or adopted. At start a node whose folders still match that fingerprint
//! was only away, and adopts what the database has now; one whose folders changed while it
//! was down (a deploy) publishes them; a new node adopts the database's.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::events::Note;
use super::*;

const SPACE: &str = "knowledge";
const KEY: &str = "source";
const MARKER: &str = "knowledge-shared.json";
/// Shared knowledge larger than this is refused (one record; a shop's FAQ is far smaller).
const MAX_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Snapshot {
    generation: u64,
    fingerprint: String,
    files: Vec<SharedFile>,
}

/// One file of the knowledge (`root` 0) or intents (`root` 1) source, by its path under it
/// (empty when the source is a single file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct SharedFile {
    root: u8,
    path: String,
    data: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Marker {
    generation: u64,
    fingerprint: String,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        if e.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("walked under the root").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// The files of both sources, in a stable order, with their fingerprint.
fn read_sources(sources: &Sources) -> std::io::Result<(Vec<SharedFile>, String)> {
    let mut files = Vec::new();
    let mut hash = Sha256::new();
    for (root, path) in [(0u8, &sources.knowledge), (1, &sources.intents)] {
        let mut found = Vec::new();
        if path.is_dir() {
            walk(path, path, &mut found)?;
        } else if path.exists() {
            found.push((String::new(), std::fs::read(path)?));
        }
        for (rel, bytes) in found {
            hash.update([root]);
            hash.update((rel.len() as u64).to_be_bytes());
            hash.update(rel.as_bytes());
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(&bytes);
            files.push(SharedFile { root, path: rel, data: base64::engine::general_purpose::STANDARD.encode(bytes) });
        }
    }
    Ok((files, hex::encode(hash.finalize())))
}

/// Makes the source folders hold exactly the snapshot's files (knowledge files the snapshot
/// does not have are removed; hidden files are left alone).
fn write_sources(sources: &Sources, snapshot: &Snapshot) -> std::io::Result<()> {
    for (root, base) in [(0u8, &sources.knowledge), (1, &sources.intents)] {
        let files: Vec<&SharedFile> = snapshot.files.iter().filter(|f| f.root == root).collect();
        let single = files.len() == 1 && files[0].path.is_empty();
        let target = |f: &SharedFile| -> std::io::Result<PathBuf> {
            if f.path.is_empty() {
                return Ok(base.clone());
            }
            // Paths come from another node of ours, but never leave the folder.
            if f.path.split('/').any(|p| p == ".." || p.is_empty()) || f.path.starts_with('/') {
                return Err(std::io::Error::other(format!("a shared knowledge file has an unsafe path: {}", f.path)));
            }
            Ok(base.join(&f.path))
        };
        if !single {
            let mut existing = Vec::new();
            if base.is_dir() {
                walk(base, base, &mut existing)?;
            }
            for (rel, _) in existing {
                if !files.iter().any(|f| f.path == rel) {
                    std::fs::remove_file(base.join(&rel))?;
                }
            }
        }
        for f in files {
            let path = target(f)?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(&f.data).map_err(std::io::Error::other)?;
            if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
                continue;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Whole files only: the watcher must never read half of one.
            let tmp = path.with_extension("kefu-tmp");
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    Ok(())
}

impl Service {
    fn marker_path(&self) -> PathBuf {
        self.sources.data.parent().unwrap_or(Path::new(".")).join(MARKER)
    }

    fn read_marker(&self) -> Option<Marker> {
        std::fs::read(self.marker_path()).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn write_marker(&self, generation: u64, fingerprint: &str) {
        let m = Marker { generation, fingerprint: fingerprint.to_string() };
        if let Err(e) = std::fs::write(self.marker_path(), serde_json::to_vec(&m).expect("markers serialise")) {
            tracing::warn!(error = %e, "cannot remember the shared knowledge generation");
        }
    }

    fn shared(&self) -> bool {
        self.store.notes().is_some()
    }

    async fn snapshot(&self) -> Result<Option<Snapshot>> {
        match self.store.record(SPACE, KEY).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ServiceError::Internal(format!("the shared knowledge record is unreadable: {e}"))),
        }
    }

    async fn local_sources(&self) -> Result<(Vec<SharedFile>, String)> {
        let sources = self.sources.clone();
        tokio::task::spawn_blocking(move || read_sources(&sources))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(format!("cannot read the knowledge folders: {e}")))
    }

    /// Publishes this node's sources (after a successful reload) unless the database holds
    /// the same already.
    pub(super) async fn share_knowledge(&self) -> Result<()> {
        if !self.shared() {
            return Ok(());
        }
        let (files, fingerprint) = self.local_sources().await?;
        if let Some(current) = self.snapshot().await? {
            if current.fingerprint == fingerprint {
                self.write_marker(current.generation, &fingerprint);
                return Ok(());
            }
        }
        let size: usize = files.iter().map(|f| f.data.len()).sum();
        if size > MAX_BYTES {
            return Err(ServiceError::Internal(format!("the knowledge is {size} bytes, over the {MAX_BYTES} that can be shared between nodes")));
        }
        let generation = self.store.next_id().await?;
        let snapshot = Snapshot { generation, fingerprint: fingerprint.clone(), files };
        self.store.set_record(SPACE, KEY, Some(serde_json::to_vec(&snapshot).expect("snapshots serialise"))).await?;
        self.store.durable().await?;
        self.store.announce(serde_json::to_string(&Note::Knowledge { generation }).expect("notes serialise"));
        self.write_marker(generation, &fingerprint);
        tracing::info!(generation, "published the knowledge to the other nodes");
        Ok(())
    }

    /// Takes the database's knowledge when it differs from this node's: written into the
    /// source folders, then reloaded here (without publishing it back).
    pub(super) async fn adopt_knowledge(&self) -> Result<()> {
        let Some(snapshot) = self.snapshot().await? else { return Ok(()) };
        let (_, local) = self.local_sources().await?;
        if local != snapshot.fingerprint {
            let (sources, snap) = (self.sources.clone(), snapshot.clone());
            tokio::task::spawn_blocking(move || write_sources(&sources, &snap))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(|e| ServiceError::Internal(format!("cannot write the shared knowledge: {e}")))?;
            let status = self.reload_from_sources().await;
            if let Some(e) = status.error {
                return Err(ServiceError::Internal(format!("the shared knowledge generation {} does not load here: {e}", snapshot.generation)));
            }
            tracing::info!(generation = snapshot.generation, "adopted the knowledge another node published");
        }
        self.write_marker(snapshot.generation, &snapshot.fingerprint);
        Ok(())
    }

    /// At start, with a shared store: adopt or publish (see the module's comment).
    pub(super) async fn join_shared_knowledge(&self) -> Result<()> {
        let (_, local) = self.local_sources().await?;
        let marker = self.read_marker();
        match (self.snapshot().await?, marker) {
            (None, _) => self.share_knowledge().await,
            (Some(_), Some(m)) if m.fingerprint != local => self.share_knowledge().await,
            (Some(_), _) => self.adopt_knowledge().await,
        }
    }
}
