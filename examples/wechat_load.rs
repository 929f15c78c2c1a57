//! Load generator for the WeChat passive reply path (scripts/wechat_load.sh runs it): signed
//! pushes of knowledge questions to a running kefu at a fixed concurrency, each answer
//! checked, beside the widget's HTTP message path at the same concurrency in the same run.
//!
//! Usage: wechat_load HOST:PORT SECONDS CONCURRENCY
//! The server must have the apps `load-plain` (plaintext) and `load-safe` (safe mode, appid
//! `wxloadsafe`) with token `loadtoken` and the EncodingAESKey below.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kefu::channels::wechat::crypto::Cipher;
use kefu::channels::wechat::signature::sign;

const TOKEN: &str = "loadtoken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const SAFE_APPID: &str = "wxloadsafe";
const USERS: usize = 256;

/// The same everyday questions as the widget's load script (scripts/load/message.lua).
const QUESTIONS: [&str; 15] = [
    "怎么申请退货", "退款一般几天到账", "发票在哪里开", "运费怎么算的", "忘记登录密码了",
    "优惠券为什么用不了", "快递好几天没更新了", "可以改收货地址吗", "会员有什么好处", "东西坏了能保修吗",
    "货到付款支持吗", "怎么取消订单", "積分怎麼用", "ＡＰＰ里怎么查物流", "退货地址是哪里",
];

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Widget,
    WeChatPlain,
    WeChatSafe,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Widget => "widget POST /api/v1/conversations/{id}/messages",
            Path::WeChatPlain => "WeChat plaintext push (passive reply)",
            Path::WeChatSafe => "WeChat safe-mode push (decrypt, encrypted reply)",
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

static MSG_ID: AtomicU64 = AtomicU64::new(0);

fn field<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}><![CDATA[");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find("]]>")? + start;
    Some(&xml[start..end])
}

/// One request of `path` for user `user`: whether an answer came back.
async fn one(http: &reqwest::Client, addr: &str, path: Path, user: usize, widget: &[(String, String)], cipher: &Cipher, q: &str) -> Result<(), String> {
    match path {
        Path::Widget => {
            let (id, token) = &widget[user];
            let r = http
                .post(format!("http://{addr}/api/v1/conversations/{id}/messages"))
                .bearer_auth(token)
                .json(&serde_json::json!({"text": q}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("status {}", r.status()));
            }
            let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            if v["replies"].as_array().is_none_or(|r| r.is_empty()) {
                return Err("no reply".into());
            }
            Ok(())
        }
        Path::WeChatPlain | Path::WeChatSafe => {
            let id = MSG_ID.fetch_add(1, Ordering::Relaxed) + 1_000_000;
            let (ts, nonce) = (now().to_string(), format!("{}", id % 1_000_000_007));
            let xml = format!(
                "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><FromUserName><![CDATA[oLoadUser{user}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{q}]]></Content><MsgId>{id}</MsgId></xml>"
            );
            let mut query = format!("signature={}&timestamp={ts}&nonce={nonce}", sign(&[TOKEN, &ts, &nonce]));
            let (app, body) = if path == Path::WeChatSafe {
                let sealed = cipher.encrypt(xml.as_bytes());
                query.push_str(&format!("&encrypt_type=aes&msg_signature={}", sign(&[TOKEN, &ts, &nonce, &sealed])));
                ("load-safe", format!("<xml><ToUserName><![CDATA[gh_load]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"))
            } else {
                ("load-plain", xml)
            };
            let r = http
                .post(format!("http://{addr}/wechat/{app}?{query}"))
                .header("content-type", "text/xml")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("status {}", r.status()));
            }
            let text = r.text().await.map_err(|e| e.to_string())?;
            let reply = if path == Path::WeChatSafe {
                let sealed = field(&text, "Encrypt").ok_or("no Encrypt in the reply")?;
                String::from_utf8(cipher.decrypt(sealed).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?
            } else {
                text
            };
            match field(&reply, "Content") {
                Some(c) if !c.is_empty() => Ok(()),
                _ => Err(format!("no passive answer: {}", reply.chars().take(80).collect::<String>())),
            }
        }
    }
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
}

async fn run(addr: &str, path: Path, seconds: u64, concurrency: usize, widget: Arc<Vec<(String, String)>>) -> Outcome {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let cipher = Arc::new(Cipher::new(KEY, SAFE_APPID).unwrap());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (http, addr, widget, cipher) = (http.clone(), addr.to_string(), widget.clone(), cipher.clone());
        workers.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            let mut n = w;
            while Instant::now() < end {
                // Each worker has its own users: messages of one user are answered in order.
                let user = (n % (USERS / concurrency.max(1)).max(1)) * concurrency + w;
                let q = QUESTIONS[n % QUESTIONS.len()];
                let t = Instant::now();
                match one(&http, &addr, path, user % USERS, &widget, &cipher, q).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                n += 1;
            }
            (lat, errors, first_error)
        }));
    }
    let mut out = Outcome { latencies_us: vec![], errors: 0, first_error: None, seconds: 0.0 };
    for w in workers {
        let (lat, errors, first) = w.await.unwrap();
        out.latencies_us.extend(lat);
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first;
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.latencies_us.sort_unstable();
    out
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, seconds, concurrency] = args.as_slice() else {
        eprintln!("usage: wechat_load HOST:PORT SECONDS CONCURRENCY");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY is a number");
    let http = reqwest::Client::new();
    let mut widget = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        let v: serde_json::Value = http.post(format!("http://{addr}/api/v1/conversations")).send().await.unwrap().json().await.unwrap();
        widget.push((v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string()));
    }
    let widget = Arc::new(widget);
    // Warm-up: every WeChat user's conversation exists before timing starts, as the widget's do.
    for path in [Path::WeChatPlain, Path::WeChatSafe] {
        run(addr, path, 2, concurrency, widget.clone()).await;
    }
    println!("| path ({concurrency} concurrent, {seconds} s each, rounds alternate) | answered | per second | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    // Two rounds, alternating, so drift in the machine's load hits every path alike.
    for _round in 0..2 {
        for path in [Path::Widget, Path::WeChatPlain, Path::WeChatSafe] {
            let o = run(addr, path, seconds, concurrency, widget.clone()).await;
            let l = &o.latencies_us;
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {}{} |",
                path.name(),
                l.len(),
                l.len() as f64 / o.seconds,
                pct(l, 0.50),
                pct(l, 0.99),
                pct(l, 0.999),
                o.errors,
                o.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
            );
        }
    }
}
