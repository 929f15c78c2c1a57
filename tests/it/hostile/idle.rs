//! Idle and half-sent connections: sockets that send nothing, an h2c preface alone, HTTP/2
//! HEADERS never finished, are closed within the header timeout; one address cannot hold more
//! than its share; and with a lowered descriptor limit (`ulimit -n 256`, the binary in a
//! shell) hundreds of idle sockets do not stop `/healthz` from answering. WebSockets keep
//! counting against their address after the upgrade.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::fixture::{config, spawn_server, Server};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// HEADERS on stream 1 (`:method GET`, HPACK index 2) with END_STREAM but not END_HEADERS:
/// the server must wait for a CONTINUATION that never comes.
const HEADERS_UNFINISHED: &[u8] = &[0, 0, 1, 1, 0x1, 0, 0, 0, 1, 0x82];

/// A connection from `from` (any 127.x address reaches a loopback listener).
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// How long until the server closes the connection (reads 0 bytes or fails), reading and
/// discarding whatever it sends; None if still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(t.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn healthz(addr: SocketAddr) -> Result<Duration, String> {
    let t = Instant::now();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    match client.get(format!("http://{addr}/healthz")).send().await {
        Ok(r) if r.status() == 200 => Ok(t.elapsed()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(format!("{e} after {:?}", t.elapsed())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.header_timeout_ms = 800;
    let server = Server::start(c).await;
    let addr = server.addr;

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut preface = TcpStream::connect(addr).await.unwrap();
    preface.write_all(PREFACE).await.unwrap();
    preface.write_all(SETTINGS).await.unwrap();
    let mut headers = TcpStream::connect(addr).await.unwrap();
    headers.write_all(PREFACE).await.unwrap();
    headers.write_all(SETTINGS).await.unwrap();
    headers.write_all(HEADERS_UNFINISHED).await.unwrap();
    // A keep-alive connection that asked once and then went quiet.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 256];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));

    let limit = Duration::from_secs(5);
    for (what, stream) in [
        ("sends nothing", &mut silent),
        ("stops inside its headers", &mut partial),
        ("sends the h2c preface only", &mut preface),
        ("sends HEADERS without END_HEADERS", &mut headers),
        ("idles after a request", &mut kept),
    ] {
        let took = closed_within(stream, limit).await.unwrap_or_else(|| panic!("a connection that {what} was still open after {limit:?}"));
        assert!(took < Duration::from_secs(3), "a connection that {what} was closed after {took:?}");
    }
    healthz(addr).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.connections_per_address = 5;
    c.limits.header_timeout_ms = 30_000;
    let server = Server::start(c).await;
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(attacker, server.addr).await.unwrap());
    }
    // The sixth is accepted by the kernel and closed at once by the server.
    let mut sixth = connect_from(attacker, server.addr).await.unwrap();
    let took = closed_within(&mut sixth, Duration::from_secs(5)).await.expect("the sixth connection is closed");
    assert!(took < Duration::from_secs(2), "{took:?}");
    for s in held.iter_mut() {
        assert_eq!(closed_within(s, Duration::from_millis(100)).await, None, "the first five stay open");
    }
    // Others are served as usual.
    healthz(server.addr).await.unwrap();
    // A connection given back frees a place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from(attacker, server.addr).await.unwrap();
        if closed_within(&mut again, Duration::from_millis(200)).await.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was not given back");
    }
    server.stop().await;
}

/// The binary, under `ulimit -n`, killed when dropped.
struct Limited(Child);

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raises this process's own descriptor limit (the test holds hundreds of sockets).
fn raise_own_limit() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_idle_sockets_outnumber_the_descriptors() {
    raise_own_limit();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::fixture::repo();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata = \"{}\"\nknowledge = \"{}\"\nintents = \"{}\"\nwatch_interval_ms = 0\npassword_rounds = 1000\n[limits]\nheader_timeout_ms = 60000\n",
        dir.path().join("data").display(),
        repo.join("knowledge").display(),
        repo.join("intents").display(),
    );
    let config = dir.path().join("kefu.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" serve --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_kefu"))
        .arg(&config)
        .env("KEFU_LOG", "warn")
        .stderr(Stdio::null());
    let (child, addr) = spawn_server(cmd);
    let server = Limited(child);
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The probe's case: 300 idle sockets from one address.
    let one: IpAddr = "127.0.0.2".parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect_from(one, addr).await.unwrap());
    }
    let took = healthz(addr).await.expect("/healthz answers beside 300 idle sockets from one address");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // 400 more from 10 addresses, 40 each (under the per-address limit of 64): more than the
    // 256 descriptors. The oldest idle ones make room for newcomers.
    for i in 0..400u32 {
        let from: IpAddr = format!("127.0.1.{}", 1 + i % 10).parse().unwrap();
        idle.push(connect_from(from, addr).await.unwrap());
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let took = healthz(addr).await.expect("/healthz answers beside 700 idle sockets");
        slowest = slowest.max(took);
    }
    assert!(slowest < Duration::from_secs(2), "the slowest /healthz took {slowest:?}");
    eprintln!("700 idle sockets against ulimit -n 256: slowest of 10 /healthz {slowest:?}");
    drop(idle);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_count_against_their_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.connections_per_address = 3;
    let server = Server::start(c).await;
    let (id, token) = server.visitor().await;
    let url = format!("ws://{}/api/v1/conversations/{id}/ws?token={token}", server.addr);
    let from: IpAddr = "127.0.0.3".parse().unwrap();
    let open = || async {
        let stream = connect_from(from, server.addr).await?;
        tokio_tungstenite::client_async(url.as_str(), stream).await.map(|(ws, _)| ws).map_err(std::io::Error::other)
    };
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(open().await.expect("within the address's share"));
    }
    assert!(open().await.is_err(), "a fourth connection from the address, its WebSockets counted");
    drop(sockets.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while open().await.is_err() {
        assert!(Instant::now() < deadline, "a closed WebSocket did not give its place back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
