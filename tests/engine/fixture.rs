//! Shared set-up: the shipped demo knowledge base, loaded and built into an in-memory engine
//! once per test process (building costs about a second), plus helpers for temp files and
//! for running the `kefu` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;

use kefu::knowledge::{self, Engine, Loaded, Ranker};

/// The shipped demo knowledge folder.
pub fn knowledge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge")
}

/// The demo knowledge base, loaded once.
pub fn loaded() -> &'static Loaded {
    static LOADED: LazyLock<Loaded> =
        LazyLock::new(|| knowledge::load(&knowledge_dir()).expect("the shipped knowledge folder loads"));
    &LOADED
}

/// An in-memory engine over the demo knowledge base with the built-in ranker, built once.
pub fn engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> =
        LazyLock::new(|| Engine::in_memory(loaded(), Ranker::builtin()).expect("the demo engine builds"));
    &ENGINE
}

/// Writes `text` to `dir/name`, creating parent folders.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create parent folders");
    std::fs::write(&path, text).expect("write a fixture file");
    path
}

/// A `kefu` command with no `KEFU_*` variables inherited from the caller's environment.
pub fn kefu() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KEFU_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `kefu` with `args`.
pub fn run(args: &[&str]) -> Output {
    kefu().args(args).output().expect("the kefu binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Imports the demo knowledge base into a fresh temp data directory with the CLI.
pub fn imported() -> tempfile::TempDir {
    let data = tempfile::tempdir().expect("a temp dir");
    let out = run(&["import", "--from", path_str(&knowledge_dir()), "--data", path_str(data.path())]);
    assert!(out.status.success(), "import failed: {}", stderr(&out));
    data
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
