//! Every bar of the WeChat issue, over HTTP: verification, plaintext and safe-mode pushes,
//! refusals, retries, slow answers, handoff both ways, the quota, hostile bodies, events,
//! mini-program JSON, UnionID linking and token refresh.

use std::path::Path;
use std::sync::atomic::Ordering;

use kefu::dialogue::{Sender, State};
use kefu::store::{SledStore, Store};
use serde_json::{json, Value};

use crate::fixture::{Server, ADMIN_TOKEN};
use super::mock::*;

/// The widget's answer to `question`, for comparison (Markdown: see `on_wechat`).
pub async fn widget_answer(server: &Server, question: &str) -> String {
    let conv = server.visitor().await;
    let v = server.say(&conv, question).await;
    v["replies"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect::<Vec<_>>().join("\n\n")
}

/// The WeChat users' conversations in the stopped server's store, with their messages.
async fn wechat_conversations(data: &Path) -> Vec<(kefu::dialogue::Conversation, Vec<kefu::dialogue::Message>)> {
    let store = SledStore::open(&data.join("store")).unwrap();
    let mut out = Vec::new();
    for c in store.conversations().await.unwrap() {
        if c.visitor.channel.starts_with("wechat") {
            let m = store.messages(&c.id, 0, 1000).await.unwrap();
            out.push((c, m));
        }
    }
    out
}

fn visitor_texts(messages: &[kefu::dialogue::Message]) -> Vec<String> {
    messages.iter().filter(|m| m.from == Sender::Visitor).map(|m| m.text.clone()).collect()
}

#[tokio::test]
async fn url_verification_in_plaintext_and_safe_mode() {
    let (_dir, server, _api) = start().await;
    let get = |app: &str, query: String| {
        let url = format!("http://{}/wechat/{app}?{query}", server.addr);
        let http = server.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let ts = now();
    let (status, body) = get("mp", format!("{}&echostr=5837397749140394", signed_query(ts, "486452656"))).await;
    assert_eq!((status, body.as_str()), (200, "5837397749140394"));
    // Forged signature, stale timestamp, unknown app.
    let forged = format!("signature={}&timestamp={ts}&nonce=486452656&echostr=1", sign(&["BBBBB", &ts.to_string(), "486452656"]));
    assert_eq!(get("mp", forged).await.0, 401);
    assert_eq!(get("mp", format!("{}&echostr=1", signed_query(ts - 3_600, "486452656"))).await.0, 401);
    let (status, body) = get("nope", format!("{}&echostr=1", signed_query(ts, "1"))).await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    // Safe mode: the echostr comes sealed and signed by msg_signature; the plain one goes back.
    let sealed = kefu::channels::wechat::crypto::Cipher::new(KEY, "wxsafe0001").unwrap().encrypt(b"echo-8812");
    let t = ts.to_string();
    let q = format!(
        "msg_signature={}&timestamp={t}&nonce=77&echostr={}",
        sign(&[TOKEN, &t, "77", &sealed]),
        url_encode(&sealed)
    );
    assert_eq!(get("safe", q).await, (200, "echo-8812".to_string()));
    let bad = format!("msg_signature={}&timestamp={t}&nonce=77&echostr={}", sign(&[TOKEN, &t, "78", &sealed]), url_encode(&sealed));
    assert_eq!(get("safe", bad).await.0, 401);
    server.stop().await;
}

/// Posts `kib` KiB in chunks without a Content-Length: the status line's code.
async fn chunked_post(server: &Server, path: &str, kib: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: kefu\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    for _ in 0..kib {
        // The server may answer and close before the body ends.
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut response = vec![0u8; 1024];
    let n = tcp.read(&mut response).await.unwrap();
    let line = String::from_utf8_lossy(&response[..n]).to_string();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn url_encode(s: &str) -> String {
    s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test]
async fn a_plaintext_push_is_answered_passively_like_the_widget() {
    let (dir, server, api) = start().await;
    let question = "退货运费谁出？";
    let expected = widget_answer(&server, question).await;
    let r = push(&server, "mp", &text_xml("oUser-plain", 23637352235060880, question)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.contains("xml"), "{}", r.content_type);
    assert_eq!(r.field("ToUserName").as_deref(), Some("oUser-plain"));
    assert_eq!(r.field("FromUserName").as_deref(), Some("gh_test"));
    assert_eq!(r.field("MsgType").as_deref(), Some("text"));
    let content = r.field("Content").unwrap();
    assert_eq!(content, on_wechat(&expected, MP), "WeChat and the widget get the same answer, as text");
    assert!(content.contains("运费"), "{content}");
    assert!(r.field("CreateTime").unwrap().parse::<i64>().unwrap() >= now() - 5);
    assert!(api.sent().is_empty(), "a passive answer needs no API call");
    server.stop().await;
    let convs = wechat_conversations(dir.path()).await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].0.visitor.channel, "wechat_mp");
    assert_eq!(convs[0].0.visitor.user_id.as_deref(), Some("wechat:wxmp0001:oUser-plain"));
    assert_eq!(visitor_texts(&convs[0].1), vec![question]);
}

#[tokio::test]
async fn a_safe_mode_push_is_decrypted_checked_and_answered_encrypted() {
    let (_dir, server, _api) = start().await;
    let question = "怎么开发票";
    let expected = widget_answer(&server, question).await;
    let r = push_sealed(&server, "safe", "wxsafe0001", &text_xml("oUser-safe", 1001, question), false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.field("Content").is_none(), "the reply must not be in the clear: {}", r.body);
    let (encrypt, signature, timestamp, nonce) =
        (r.field("Encrypt").unwrap(), r.field("MsgSignature").unwrap(), r.field("TimeStamp").unwrap(), r.field("Nonce").unwrap());
    assert_eq!(nonce, "1320562132", "the reply's nonce is the request's");
    let inner = open_sealed("wxsafe0001", &encrypt, &signature, &timestamp, &nonce);
    assert_eq!(field(&inner, "ToUserName").as_deref(), Some("oUser-safe"));
    assert_eq!(field(&inner, "Content").unwrap(), on_wechat(&expected, MP));

    // Sealed for another app: refused. Plaintext to a safe-mode app: refused. A wrong
    // msg_signature: refused.
    let r = push_sealed(&server, "safe", "wxsomeoneelse", &text_xml("oUser-safe", 1002, "你好"), false).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("another appid"), "{}", r.body);
    let r = push(&server, "safe", &text_xml("oUser-safe", 1003, "你好")).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("safe mode"), "{}", r.body);
    let sealed = kefu::channels::wechat::crypto::Cipher::new(KEY, "wxsafe0001").unwrap().encrypt(text_xml("o", 1004, "你好").as_bytes());
    let query = format!("{}&encrypt_type=aes&msg_signature={}", signed_query(now(), "1"), sign(&[TOKEN, "0", "1", &sealed]));
    let body = format!("<xml><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>");
    assert_eq!(post_raw(&server, "safe", &query, "text/xml", body).await.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn forged_stale_and_unsigned_pushes_are_refused_and_change_nothing() {
    let (dir, server, api) = start().await;
    let xml = text_xml("oUser-forged", 2001, "退货运费谁出？");
    let ts = now().to_string();
    let forged = format!("signature={}&timestamp={ts}&nonce=9", sign(&["wrong-token", &ts, "9"]));
    let r = post_raw(&server, "mp", &forged, "text/xml", xml.clone()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = post_raw(&server, "mp", &signed_query(now() - 301, "9"), "text/xml", xml.clone()).await;
    assert_eq!(r.status, 401, "a timestamp 301 s old is outside the 300 s window");
    assert!(r.body.contains("timestamp"), "{}", r.body);
    let r = post_raw(&server, "mp", &signed_query(now() + 400, "9"), "text/xml", xml.clone()).await;
    assert_eq!(r.status, 401, "nor one from the future");
    let r = post_raw(&server, "mp", "timestamp=1&nonce=2", "text/xml", xml.clone()).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("signature"), "{}", r.body);
    server.stop().await;
    assert!(wechat_conversations(dir.path()).await.is_empty(), "a refused push must not reach the service");
    assert!(api.sent().is_empty());
}

#[tokio::test]
async fn a_plaintext_signed_url_is_not_replayed_with_another_body() {
    let (dir, server, _api) = start().await;
    let query = signed_query(now(), "733001");
    let first = text_xml("oUser-replay", 3101, "退款多久到账");
    let r = post_raw(&server, "mp", &query, "text/xml", first.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // WeChat's own retry sends the same URL with the same body: answered as before.
    let retry = post_raw(&server, "mp", &query, "text/xml", first.clone()).await;
    assert_eq!((retry.status, retry.field("Content")), (200, r.field("Content")));
    // Someone who saw the URL posts another message under it, inside the timestamp window.
    let forged = text_xml("oUser-victim", 3102, "我要退款到这个账户");
    let r = post_raw(&server, "mp", &query, "text/xml", forged).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("already used with another body"), "{}", r.body);
    server.stop().await;
    let users: Vec<String> = wechat_conversations(dir.path()).await.into_iter().map(|(c, _)| c.visitor.user_id.unwrap_or_default()).collect();
    assert!(users.iter().any(|u| u.contains("oUser-replay")), "the first push was served: {users:?}");
    assert!(users.iter().all(|u| !u.contains("oUser-victim")), "the replayed body reached the service: {users:?}");
}

#[tokio::test]
async fn three_deliveries_of_one_msgid_are_processed_once_and_answered_alike() {
    let (dir, server, api) = start().await;
    let xml = text_xml("oUser-retry", 3001, "退款多久到账");
    // WeChat's retries can overlap the first delivery: all three at once.
    let (a, b, c) = tokio::join!(push(&server, "mp", &xml), push(&server, "mp", &xml), push(&server, "mp", &xml));
    for r in [&a, &b, &c] {
        assert_eq!(r.status, 200);
        assert_eq!(r.field("Content"), a.field("Content"), "a retry gets the stored answer");
    }
    assert!(a.field("Content").is_some());
    // And a retry later (the passive reply was lost in transit) gets it again.
    let again = push(&server, "mp", &xml).await;
    assert_eq!(again.field("Content"), a.field("Content"));

    // The same with an answer that goes through the API: one send, whatever the retries.
    let slow = text_xml("oUser-retry-slow", 3002, "退款多久到账");
    let (a, b, c) = tokio::join!(push(&server, "slow", &slow), push(&server, "slow", &slow), push(&server, "slow", &slow));
    for r in [&a, &b, &c] {
        assert_eq!((r.status, r.body.as_str()), (200, "success"));
    }
    api.wait_texts("oUser-retry-slow", 1).await;
    assert_eq!(push(&server, "slow", &slow).await.body, "success");
    settle_outbox(&server, 0).await;
    assert_eq!(api.texts_to("oUser-retry-slow").len(), 1, "answered twice: {:?}", api.sent());
    server.stop().await;
    // Stopped, every delivery's processing has finished: a second answer would be here.
    assert_eq!(outbox_of(dir.path(), "oUser-retry-slow").await, Vec::<String>::new());
    for (conv, messages) in wechat_conversations(dir.path()).await {
        assert_eq!(visitor_texts(&messages), vec!["退款多久到账"], "processed more than once: {}", conv.id);
        assert_eq!(messages.iter().filter(|m| m.from == Sender::Bot).count(), 1, "{messages:?}");
    }
}

#[tokio::test]
async fn a_slow_answer_is_acknowledged_then_sent_through_the_api() {
    let (_dir, server, api) = start().await;
    let question = "优惠券怎么用";
    let expected = widget_answer(&server, question).await;
    let r = push(&server, "slow", &text_xml("oUser-slow", 4001, question)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "success"), "past the budget WeChat gets `success` at once");
    let texts = api.wait_texts("oUser-slow", 1).await;
    assert_eq!(texts, vec![on_wechat(&expected, MP)]);
    let sent = api.sent();
    assert_eq!(sent[0].1["msgtype"], "text");
    assert_eq!(sent[0].0, "tok-1");
    assert_eq!(api.token_calls.load(Ordering::SeqCst), 1);
    // The token is cached: a second answer does not fetch another.
    push(&server, "slow", &text_xml("oUser-slow", 4002, "怎么开发票")).await;
    api.wait_texts("oUser-slow", 2).await;
    assert_eq!(api.token_calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_invalidated_token_is_refreshed_once_and_the_send_retried() {
    let (_dir, server, api) = start().await;
    push(&server, "slow", &text_xml("oUser-token", 5001, "退货运费谁出？")).await;
    api.wait_texts("oUser-token", 1).await;
    api.invalidate_next.store(true, Ordering::SeqCst);
    push(&server, "slow", &text_xml("oUser-token", 5002, "怎么开发票")).await;
    api.wait_texts("oUser-token", 2).await;
    assert_eq!(api.token_calls.load(Ordering::SeqCst), 2, "40001 → one new token");
    assert_eq!(api.sent()[1].0, "tok-2");
    server.stop().await;
}

/// Creates an agent who is online: their bearer token.
async fn online_agent(server: &Server) -> String {
    server.agent("wang", "小王").await
}

#[tokio::test]
async fn a_kefu_agent_serves_a_wechat_user_through_the_api() {
    let (dir, server, api) = start().await;
    let agent = online_agent(&server).await;
    let r = push(&server, "mp", &text_xml("oUser-human", 6001, "转人工")).await;
    assert_eq!(r.status, 200);
    assert!(r.field("Content").is_some(), "the bot says it is handing over: {}", r.body);
    let conv = claim_waiting(&server, &agent).await;
    let (status, v) = server.call("POST", &format!("/agent/conversations/{conv}/messages"), Some(&agent), Some(json!({"text": "您好，我是小王，请提供订单号"}))).await;
    assert_eq!(status, 200, "{v}");
    let texts = api.wait_texts("oUser-human", 2).await;
    assert!(texts[0].contains("小王"), "the joining notice first: {texts:?}");
    assert_eq!(texts[1], "您好，我是小王，请提供订单号");
    // Internal notes never go out.
    server.call("POST", &format!("/agent/conversations/{conv}/notes"), Some(&agent), Some(json!({"text": "老客户"}))).await;
    // The user's answer reaches the agent; the bot stays silent (WeChat gets `success`).
    let r = push(&server, "mp", &text_xml("oUser-human", 6002, "订单号 202611300001")).await;
    assert_eq!(r.body, "success");
    let (_, view) = server.call("GET", &format!("/agent/conversations/{conv}"), Some(&agent), None).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["text"], "订单号 202611300001");
    // A message after the note: WeChat gets a user's messages in order, so once it arrives a
    // leaked note would have arrived before it.
    server.call("POST", &format!("/agent/conversations/{conv}/messages"), Some(&agent), Some(json!({"text": "已为您查到"}))).await;
    let texts = api.wait_texts("oUser-human", 3).await;
    assert_eq!(texts.last().unwrap(), "已为您查到");
    assert!(!api.texts_to("oUser-human").iter().any(|t| t == "老客户"), "a note leaked: {:?}", api.sent());
    server.stop().await;
    let convs = wechat_conversations(dir.path()).await;
    assert!(matches!(convs[0].0.state, State::WithAgent { .. }));
}

#[tokio::test]
async fn handing_off_to_wechat_kf_replies_transfer_customer_service() {
    let (_dir, server, api) = start().await;
    let t0 = now();
    let r = push(&server, "kf", &text_xml("oUser-kf", 7001, "转人工")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let time = r.field("CreateTime").unwrap();
    assert!(time.parse::<i64>().unwrap() >= t0);
    assert_eq!(
        r.body,
        format!(
            "<xml><ToUserName><![CDATA[oUser-kf]]></ToUserName><FromUserName><![CDATA[gh_test]]></FromUserName><CreateTime>{time}</CreateTime><MsgType><![CDATA[transfer_customer_service]]></MsgType><TransInfo><KfAccount><![CDATA[kf2001@gh_test]]></KfAccount></TransInfo></xml>"
        )
    );
    // Nothing waits in kefu's queue; the bot answers again when the user comes back.
    let (_, queue) = server.call("GET", "/agent/queue", Some(&online_agent(&server).await), None).await;
    assert_eq!(queue.as_array().unwrap().len(), 0, "{queue}");
    let r = push(&server, "kf", &text_xml("oUser-kf", 7002, "退货运费谁出？")).await;
    assert!(r.field("Content").unwrap().contains("运费"), "{}", r.body);
    assert!(api.sent().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn messages_beyond_the_quota_are_held_until_the_user_writes() {
    let (_dir, server, api) = start().await;
    let agent = online_agent(&server).await;
    push(&server, "mp", &text_xml("oUser-quota", 8001, "转人工")).await;
    let conv = claim_waiting(&server, &agent).await;
    // The joining notice and six messages: seven, of which five fit the window.
    for i in 1..=6 {
        let (status, _) = server.call("POST", &format!("/agent/conversations/{conv}/messages"), Some(&agent), Some(json!({"text": format!("第{i}条")}))).await;
        assert_eq!(status, 200);
    }
    let texts = api.wait_texts("oUser-quota", 5).await;
    // The send loop settles with two held back, and does not send them.
    settle_outbox(&server, 2).await;
    assert_eq!(api.texts_to("oUser-quota").len(), 5, "the quota is 5 per user message: {:?}", api.texts_to("oUser-quota"));
    assert_eq!(&texts[1..5], ["第1条", "第2条", "第3条", "第4条"]);
    // The user writes: the window opens again and the held messages go, in order.
    let r = push(&server, "mp", &text_xml("oUser-quota", 8002, "好的")).await;
    assert_eq!(r.body, "success");
    let texts = api.wait_texts("oUser-quota", 7).await;
    assert_eq!(&texts[5..], ["第5条", "第6条"]);
    server.stop().await;
}

#[tokio::test]
async fn malformed_huge_and_entity_expansion_bodies_are_refused_without_harm() {
    let (dir, server, _api) = start().await;
    let q = || signed_query(now(), "5");
    let bodies = [
        ("<xml><ToUserName>gh</ToUserName><FromUserName>o</Content></xml>", "well-formed"),
        ("just text", "<xml>"),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]><xml><ToUserName>gh</ToUserName><FromUserName>oUser-bomb</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content><MsgId>9001</MsgId></xml>",
            "DTD",
        ),
        (
            "<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><xml><ToUserName>gh</ToUserName><FromUserName>oUser-xxe</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>9002</MsgId></xml>",
            "DTD",
        ),
        ("<xml><ToUserName>gh</ToUserName><FromUserName>oUser-ent</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>9003</MsgId></xml>", "entity"),
    ];
    for (body, says) in bodies {
        let r = post_raw(&server, "mp", &q(), "text/xml", body.to_string()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "bad_request");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(says), "{says}: {}", r.body);
    }
    // Over the 64 KiB limit: with a length, and streamed without one.
    let huge = format!("<xml><Content>{}</Content></xml>", "大".repeat(30_000));
    let r = post_raw(&server, "mp", &q(), "text/xml", huge.clone()).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "too_large");
    assert_eq!(chunked_post(&server, &format!("/wechat/mp?{}", q()), 100).await, 413);
    // The server is unharmed and still answers.
    let r = push(&server, "mp", &text_xml("oUser-after", 9004, "退货运费谁出？")).await;
    assert!(r.field("Content").unwrap().contains("运费"));
    server.stop().await;
    let convs = wechat_conversations(dir.path()).await;
    assert_eq!(convs.len(), 1, "only the good push made a conversation");
}

#[tokio::test]
async fn subscribe_greets_unsubscribe_closes_and_other_events_are_ignored() {
    let (dir, server, _api) = start().await;
    let r = push(&server, "mp", &event_xml("oUser-events", "subscribe")).await;
    assert_eq!(r.field("Content").as_deref(), Some("您好，欢迎关注！有问题直接发消息给我。"));
    let r = push(&server, "mp", &event_xml("oUser-events", "VIEW")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    let image = format!(
        "<xml><ToUserName>gh_test</ToUserName><FromUserName>oUser-events</FromUserName><CreateTime>{}</CreateTime><MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MsgId>10001</MsgId></xml>",
        now()
    );
    let r = push(&server, "mp", &image).await;
    assert!(r.field("Content").unwrap().contains("文字"), "{}", r.body);
    push(&server, "mp", &text_xml("oUser-events", 10002, "你好")).await;
    let r = push(&server, "mp", &event_xml("oUser-events", "unsubscribe")).await;
    assert_eq!(r.body, "success");
    server.stop().await;
    let convs = wechat_conversations(dir.path()).await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].0.state, State::Closed, "unsubscribing closes the conversation");
}

#[tokio::test]
async fn mini_program_json_pushes_plain_and_sealed() {
    let (_dir, server, _api) = start().await;
    let question = "怎么开发票";
    let expected = widget_answer(&server, question).await;
    let push_json = json!({"ToUserName": "gh_mini", "FromUserName": "oMini-1", "CreateTime": now(), "MsgType": "text", "Content": question, "MsgId": 11001u64});
    let r = post_raw(&server, "mini", &signed_query(now(), "3"), "application/json", push_json.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.contains("json"));
    let v = r.json();
    assert_eq!((v["ToUserName"].as_str(), v["MsgType"].as_str()), (Some("oMini-1"), Some("text")));
    let expected = on_wechat(&expected, MINI);
    assert_eq!(v["Content"], expected.as_str());
    // Compatible mode: a sealed push is answered sealed.
    let inner = json!({"ToUserName": "gh_mini", "FromUserName": "oMini-1", "CreateTime": now(), "MsgType": "text", "Content": "退货运费谁出？", "MsgId": 11002u64});
    let r = push_sealed(&server, "mini", "wxmini0001", &inner.to_string(), true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let opened = open_sealed("wxmini0001", v["Encrypt"].as_str().unwrap(), v["MsgSignature"].as_str().unwrap(), v["TimeStamp"].as_str().unwrap(), v["Nonce"].as_str().unwrap());
    let inner: Value = serde_json::from_str(&opened).unwrap();
    assert!(inner["Content"].as_str().unwrap().contains("运费"), "{inner}");
    // XML works for mini programs too.
    let r = push(&server, "mini", &text_xml("oMini-1", 11003, "怎么开发票")).await;
    assert_eq!(r.field("Content").unwrap(), expected);
    server.stop().await;
}

#[tokio::test]
async fn one_unionid_is_one_conversation_across_apps() {
    let (dir, server, _api) = start().await;
    let with_union = |openid: &str, id: u64, text: &str| text_xml(openid, id, text).replace("</xml>", "<UnionId>union-42</UnionId></xml>");
    push(&server, "mp", &with_union("oMp-42", 12001, "怎么开发票")).await;
    push(&server, "mini", &with_union("oMini-42", 12002, "退货运费谁出？")).await;
    push(&server, "mp", &text_xml("oMp-other", 12003, "你好")).await;
    let (_, stats) = server.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert!(stats.is_object());
    server.stop().await;
    let convs = wechat_conversations(dir.path()).await;
    assert_eq!(convs.len(), 2, "{:?}", convs.iter().map(|c| &c.0.visitor).collect::<Vec<_>>());
    let linked = convs.iter().find(|c| c.0.visitor.user_id.as_deref() == Some("wechat-union:union-42")).unwrap();
    assert_eq!(visitor_texts(&linked.1), vec!["怎么开发票", "退货运费谁出？"]);
}

#[tokio::test]
async fn many_users_at_once_are_all_answered() {
    let (_dir, server, api) = start().await;
    let questions = ["怎么申请退货", "退款一般几天到账", "发票在哪里开", "运费怎么算的", "忘记登录密码了"];
    let pushes = (0..40).map(|i| {
        let (server, q) = (&server, questions[i % questions.len()]);
        async move {
            let app = if i % 4 == 0 { "slow" } else { "mp" };
            (app, push(server, app, &text_xml(&format!("oCrowd{i}"), 20_000 + i as u64, q)).await)
        }
    });
    let replies = futures_util::future::join_all(pushes).await;
    for (app, r) in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        if *app == "mp" {
            assert!(r.field("Content").is_some_and(|c| !c.is_empty()), "{}", r.body);
        }
    }
    for i in (0..40).step_by(4) {
        api.wait_texts(&format!("oCrowd{i}"), 1).await;
    }
    server.stop().await;
}
