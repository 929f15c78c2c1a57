//! Webhook delivery under load, side by side with webhooks off (scripts/webhook-load.sh runs
//! it against a release kefu). Usage: webhook_load HOST:PORT ADMIN_TOKEN SECONDS ROUNDS
//!
//! Each phase runs SECONDS: 1,000 conversation starts a second (each one a
//! `conversation.started` event) and, beside them, 200 visitor messages a second (questions
//! the bot answers), both open-loop (sent on a clock, not when the last one came back).
//! "off": no endpoint is configured; "on": a local receiver (an axum server in this process,
//! checking each signature) is subscribed to the starts. A phase's figures: the messages'
//! p50 and p99, the events the receiver got during the phase and by the time the outbox was
//! empty, and the delivery lag (receipt minus the event's `created_ms`). Phases alternate
//! off/on for ROUNDS rounds; the medians follow.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

const STARTS_PER_SEC: u64 = 1_000;
const MESSAGES_PER_SEC: u64 = 200;
const QUESTIONS: [&str; 5] = ["退货运费谁出", "怎么开发票", "退款多久到账", "忘记密码怎么办", "优惠券怎么用"];

#[derive(Default)]
struct Received {
    secret: String,
    lags_ms: Vec<u64>,
    bad: usize,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Phase {
    on: bool,
    starts: usize,
    messages: usize,
    failed: usize,
    p50_us: u64,
    p99_us: u64,
    events_in_phase: usize,
    events_total: usize,
    drain_ms: u64,
    lag_p50_ms: u64,
    lag_p99_ms: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, admin, secs, rounds] = args.as_slice() else {
        eprintln!("usage: webhook_load HOST:PORT ADMIN_TOKEN SECONDS ROUNDS");
        std::process::exit(2);
    };
    let (secs, rounds): (u64, usize) = (secs.parse().expect("SECONDS"), rounds.parse().expect("ROUNDS"));
    let base = format!("http://{addr}/api/v1");
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();

    let received: Arc<Mutex<Received>> = Default::default();
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let r = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let mut r = r.lock().unwrap();
                if !kefu::webhook::sign::verify(&r.secret, &h("x-kefu-timestamp"), &body, &h("x-kefu-signature")) {
                    r.bad += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                let v: Value = serde_json::from_slice(&body).unwrap();
                let lag = now_ms().saturating_sub(v["created_ms"].as_u64().unwrap());
                r.lags_ms.push(lag);
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(hook, app).await.unwrap() });

    // Conversations for the messages.
    let mut convs = Vec::new();
    for _ in 0..64 {
        let v: Value = http.post(format!("{base}/conversations")).send().await.unwrap().json().await.unwrap();
        convs.push((v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string()));
    }
    let convs = Arc::new(convs);

    let mut phases = Vec::new();
    for round in 0..rounds {
        for on in [false, true] {
            let endpoint = if on {
                let e: Value = http
                    .post(format!("{base}/admin/webhooks"))
                    .bearer_auth(admin)
                    .json(&json!({"url": format!("http://{hook_addr}/hook"), "events": ["conversation.started"]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let mut r = received.lock().unwrap();
                r.secret = e["secret"].as_str().unwrap().to_string();
                r.lags_ms.clear();
                Some(e["id"].as_str().unwrap().to_string())
            } else {
                None
            };
            let p = phase(&http, &base, &convs, secs, on, &received).await;
            if let Some(id) = endpoint {
                http.delete(format!("{base}/admin/webhooks/{id}")).bearer_auth(admin).send().await.unwrap();
            }
            println!(
                "round {round} webhooks {:3}: {} starts, {} messages ({} failed), message p50 {:.1} ms p99 {:.1} ms; events {} in the phase, {} in all (outbox empty {} ms after), lag p50 {} ms p99 {} ms",
                if p.on { "on" } else { "off" },
                p.starts,
                p.messages,
                p.failed,
                p.p50_us as f64 / 1000.0,
                p.p99_us as f64 / 1000.0,
                p.events_in_phase,
                p.events_total,
                p.drain_ms,
                p.lag_p50_ms,
                p.lag_p99_ms
            );
            phases.push(p);
        }
    }
    let bad = received.lock().unwrap().bad;
    let of = |on: bool, f: &dyn Fn(&Phase) -> f64| median(phases.iter().filter(|p| p.on == on).map(f).collect());
    let (off99, on99) = (of(false, &|p| p.p99_us as f64 / 1000.0), of(true, &|p| p.p99_us as f64 / 1000.0));
    let on_rate = of(true, &|p| p.events_in_phase as f64 / secs as f64);
    let start_rate = of(true, &|p| p.starts as f64 / secs as f64);
    println!();
    println!("median of {rounds} rounds, {secs} s phases:");
    println!(
        "  message p50: off {:.1} ms, on {:.1} ms",
        of(false, &|p| p.p50_us as f64 / 1000.0),
        of(true, &|p| p.p50_us as f64 / 1000.0)
    );
    println!("  message p99: off {off99:.1} ms, on {on99:.1} ms ({:+.1} %)", (on99 / off99 - 1.0) * 100.0);
    println!("  events caused {start_rate:.0}/s, delivered during the phase {on_rate:.0}/s; lag p99 {:.0} ms", of(true, &|p| p.lag_p99_ms as f64));
    println!("  every event delivered: {}; bad signatures: {bad}", phases.iter().filter(|p| p.on).all(|p| p.events_total >= p.starts));
}

async fn phase(http: &reqwest::Client, base: &str, convs: &Arc<Vec<(String, String)>>, secs: u64, on: bool, received: &Arc<Mutex<Received>>) -> Phase {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> = Default::default();
    let mut tasks = Vec::new();
    // Starts: 10 every 10 ms.
    {
        let (http, base, starts, failed) = (http.clone(), base.to_string(), starts.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut inflight = tokio::task::JoinSet::new();
            while Instant::now() < until {
                tick.tick().await;
                for _ in 0..STARTS_PER_SEC / 100 {
                    let (http, base, starts, failed) = (http.clone(), base.clone(), starts.clone(), failed.clone());
                    inflight.spawn(async move {
                        match http.post(format!("{base}/conversations")).send().await {
                            Ok(r) if r.status().is_success() => starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                            _ => failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        };
                    });
                }
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        }));
    }
    // Messages: 2 every 10 ms, round the conversations, timed from send to answer.
    {
        let (http, base, convs, latencies, failed) = (http.clone(), base.to_string(), convs.clone(), latencies.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut inflight = tokio::task::JoinSet::new();
            let mut n = 0usize;
            while Instant::now() < until {
                tick.tick().await;
                for _ in 0..MESSAGES_PER_SEC / 100 {
                    n += 1;
                    let (id, token) = convs[n % convs.len()].clone();
                    let (http, base, latencies, failed) = (http.clone(), base.clone(), latencies.clone(), failed.clone());
                    let text = QUESTIONS[n % QUESTIONS.len()];
                    inflight.spawn(async move {
                        let t0 = Instant::now();
                        let r = http.post(format!("{base}/conversations/{id}/messages")).bearer_auth(&token).json(&json!({"text": text})).send().await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                                latencies.lock().unwrap().push(t0.elapsed().as_micros() as u64);
                            }
                            _ => {
                                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    });
                }
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events_in_phase = received.lock().unwrap().lags_ms.len();
    let starts = starts.load(std::sync::atomic::Ordering::Relaxed);
    // The rest of the outbox (on), then what the receiver got in all.
    let drained = Instant::now();
    if on {
        loop {
            let got = received.lock().unwrap().lags_ms.len();
            if got >= starts || drained.elapsed() > Duration::from_secs(120) {
                break;
            }
            // Polled: the outbox lives in the server, which has no event to wait on.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let drain_ms = drained.elapsed().as_millis() as u64;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let mut lags = if on { received.lock().unwrap().lags_ms.clone() } else { Vec::new() };
    lags.sort_unstable();
    Phase {
        on,
        starts,
        messages: lat.len(),
        failed: failed.load(std::sync::atomic::Ordering::Relaxed),
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        events_in_phase: if on { events_in_phase } else { 0 },
        events_total: lags.len(),
        drain_ms: if on { drain_ms } else { 0 },
        lag_p50_ms: percentile(&lags, 0.5),
        lag_p99_ms: percentile(&lags, 0.99),
    }
}
