//! Opens N visitor WebSockets to a running kefu and reports the server's memory before and
//! after (scripts/load.sh runs it). Usage: ws_hold HOST:PORT N SERVER_PID

use std::time::Duration;

use futures_util::StreamExt;

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, n, pid] = args.as_slice() else {
        eprintln!("usage: ws_hold HOST:PORT N SERVER_PID");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let http = reqwest::Client::new();
    let before = rss_kib(pid);
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let v: serde_json::Value =
            http.post(format!("http://{addr}/api/v1/conversations")).send().await.unwrap().json().await.unwrap();
        let url = format!("ws://{addr}/api/v1/conversations/{}/ws?token={}", v["id"].as_str().unwrap(), v["token"].as_str().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket refused");
        // The first event (the conversation's state) proves the socket is live.
        ws.next().await.expect("no first event").expect("websocket error");
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    println!(
        "{n} visitor WebSockets open: server RSS {before} KiB → {after} KiB, {:.1} KiB per connection (conversation and socket)",
        (after as f64 - before as f64) / n as f64
    );
    drop(sockets);
}
