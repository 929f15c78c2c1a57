//! The one fixture of the integration tests: the shipped demo knowledge base built into an
//! in-memory engine once per process, helpers for temp files and the `kefu` binary, and a
//! real kefu server on a port-0 listener (temporary data directory) with a small client for
//! its HTTP API and WebSockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu::config::Config;
use kefu::knowledge::{self, Engine, Loaded, Ranker};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

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

/// Starts `cmd` (a `kefu serve`, perhaps wrapped in `sh -c`) with its stdout piped and
/// returns it with the address it prints once listening; panics, stopping it, if none comes.
pub fn spawn_server(mut cmd: Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().expect("the kefu binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line).expect("kefu's stdout is readable");
    match line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()) {
        Some(addr) => (child, addr.to_string()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kefu printed no address: {line:?}");
        }
    }
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

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a folder (a knowledge base that a test may edit).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A config for tests: shipped knowledge and intents, no file watching, generous limits.
pub fn config(data: &Path) -> Config {
    let mut c = Config::default();
    c.data = data.to_path_buf();
    c.knowledge = repo().join("knowledge");
    c.intents = repo().join("intents");
    c.watch_interval_ms = 0;
    c.admin_token_sha256 = Some(kefu::auth::token_hash(ADMIN_TOKEN));
    // Cheap password hashing: many tests create agents at once on two cores.
    c.password_rounds = 1_000;
    c.limits.ip_per_second = 10_000;
    c.limits.ip_burst = 10_000;
    c.limits.conversation_per_second = 1_000;
    c.limits.conversation_burst = 1_000;
    // Every test client is 127.0.0.1: the per-address share is for the tests of it to set.
    c.limits.connections_per_address = 10_000;
    // Most tests drive agents through the API with no console open: presence is for the
    // tests of it to tighten.
    c.presence.away_grace_secs = 3_600;
    c
}

pub struct Server {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), kefu::app::StartError>>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kefu::run(config, listener, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        // Ready once /readyz answers (the knowledge is imported before the listener serves).
        // A server that stopped, or never became ready, fails the test here and says why.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last;
        loop {
            if task.is_finished() {
                let end = task.await;
                panic!("the server on {addr} stopped before it was ready: {end:?}");
            }
            match http.get(format!("http://{addr}/readyz")).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            assert!(tokio::time::Instant::now() < deadline, "the server on {addr} was not ready within 30 s: {last}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { addr, http, stop: Some(stop), task: Some(task) }
    }

    /// Shuts down gracefully and waits until the store is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.addr)
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Starts a conversation: (id, token).
    pub async fn visitor(&self) -> (String, String) {
        let (status, v) = self.call("POST", "/conversations", None, Some(json!({"page": "https://shop.example/cart"}))).await;
        assert_eq!(status, 201, "{v}");
        (v["id"].as_str().unwrap().into(), v["token"].as_str().unwrap().into())
    }

    pub async fn say(&self, conv: &(String, String), text: &str) -> Value {
        let (status, v) = self.call("POST", &format!("/conversations/{}/messages", conv.0), Some(&conv.1), Some(json!({"text": text}))).await;
        assert_eq!(status, 200, "{text}: {v}");
        v
    }

    /// Creates an agent through the admin API, logs in and goes online: the bearer token.
    pub async fn agent(&self, id: &str, name: &str) -> String {
        let body = json!({"id": id, "name": name, "password": "correct horse battery", "skills": ["*"]});
        let (status, v) = self.call("POST", "/admin/agents", Some(ADMIN_TOKEN), Some(body)).await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = self.call("POST", "/agent/login", None, Some(json!({"id": id, "password": "correct horse battery"}))).await;
        assert_eq!(status, 200, "{v}");
        let token = v["token"].as_str().unwrap().to_string();
        let (status, v) = self.call("POST", "/agent/status", Some(&token), Some(json!({"status": "online"}))).await;
        assert_eq!(status, 200, "{v}");
        token
    }

    pub async fn ws(&self, path: &str) -> Ws {
        let url = format!("ws://{}/api/v1{path}", self.addr);
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { stream }
    }
}

pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Ws {
    /// The next JSON event, or None after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next()).await.ok()??.ok()?;
            if let WsMessage::Text(t) = msg {
                return serde_json::from_str(&t).ok();
            }
        }
    }

    /// Waits for the first event satisfying `pred` (others are skipped).
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(v) if pred(&v) => return v,
                Some(_) => {}
                None => panic!("no event: {what}"),
            }
        }
    }

    /// Whether the server closes the socket within `limit` (events before the close are
    /// skipped; a close frame, the end of the stream or an error all count as closed).
    pub async fn closes_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream.send(WsMessage::Text(v.to_string().into())).await.unwrap();
    }
}

/// A throwaway PostgreSQL server for this test process: `initdb` into a temp directory and
/// `pg_ctl start` on a free port (as the `postgres` user when the tests run as root, since
/// PostgreSQL refuses to run as root), stopped when the process exits. Each test takes a
/// fresh database of its own with [`pg_database`].
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The server's options, given again on a restart.
    opts: String,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: Debian's (highest version
/// first), or the PATH's.
fn pg_bin() -> PathBuf {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    if let Some(bin) = debian.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|p| p.join("initdb").exists()).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH): scripts/test installs Debian's `postgresql`")
    })
}

fn as_postgres_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres_user(&self.bin.join("pg_ctl")).args(["-D", path_str(&self.dir), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(self.dir.parent().unwrap());
    }
}

impl Postgres {
    /// A cluster of its own (most tests share [`postgres`]'s and take a database of it).
    pub fn start() -> Postgres {
        let bin = pg_bin();
        static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("kefu-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&root).status().unwrap().success();
            assert!(ok, "chown of the PostgreSQL test directory to postgres failed");
        }
        let dir = root.join("data");
        let out = as_postgres_user(&bin.join("initdb"))
            .args(["-D", path_str(&dir), "-U", "kefu", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", stderr(&out));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Durability of PostgreSQL itself is not under test (kill -9 hits kefu's nodes, and
        // restarts are clean), so the throwaway cluster skips fsync to keep the suite quick.
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            path_str(&root)
        );
        let out = as_postgres_user(&bin.join("pg_ctl"))
            .args(["-D", path_str(&dir), "-o", &opts, "-l", path_str(&root.join("log")), "-w", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start failed: {}{}", stdout(&out), std::fs::read_to_string(root.join("log")).unwrap_or_default());
        Postgres { port, dir, bin, opts }
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://kefu@127.0.0.1:{}/{db}", self.port)
    }

    /// `pg_ctl` with `args` on this cluster (stop, start, restart), waiting for it. The
    /// server logs to the cluster's file: a server started with the pipe as its output
    /// would hold it open, and `output()` would wait for it forever.
    pub fn ctl(&self, args: &[&str]) {
        let log = self.dir.parent().unwrap().join("log");
        let out = as_postgres_user(&self.bin.join("pg_ctl"))
            .args(["-D", path_str(&self.dir), "-w", "-o", &self.opts, "-l", path_str(&log)])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl {args:?} failed: {}", stderr(&out));
    }
}

static POSTGRES: LazyLock<Postgres> = LazyLock::new(|| {
    let pg = Postgres::start();
    extern "C" fn stop() {
        if let Some(pg) = LazyLock::get(&POSTGRES) {
            let _ = as_postgres_user(&pg.bin.join("pg_ctl")).args(["-D", path_str(&pg.dir), "-m", "immediate", "stop"]).output();
            let _ = std::fs::remove_dir_all(pg.dir.parent().unwrap());
        }
    }
    // SAFETY: `stop` is a plain extern "C" function that does not unwind.
    unsafe { libc::atexit(stop) };
    pg
});

pub fn postgres() -> &'static Postgres {
    &POSTGRES
}

/// A fresh, empty database on the test server: its URL.
pub async fn pg_database() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pg = tokio::task::spawn_blocking(postgres).await.unwrap();
    let name = format!("t{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let (client, conn) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls).await.expect("the test PostgreSQL answers");
    let conn = tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    drop(client);
    let _ = conn.await;
    pg.url(&name)
}
