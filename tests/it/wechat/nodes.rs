//! WeChat on two nodes sharing one PostgreSQL database: a delivery that reaches both (WeChat's
//! retry landing on the other node) is processed once and answered alike, and the outbox is
//! sent by one node only, once.

use kefu::dialogue::Sender;
use kefu::store::{PgStore, Store};

use super::mock::*;
use crate::fixture::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_through_two_nodes_is_processed_and_sent_once() {
    let url = fixture::pg_database().await;
    let (base, api) = start_api().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = |dir: &std::path::Path| {
        let mut c = config(dir, &base);
        c.store = url.clone();
        c
    };
    let a = Server::start(node(da.path())).await;
    let b = Server::start(node(db.path())).await;

    // A passive answer: the same delivery on both nodes at once gets one answer, the same.
    let xml = text_xml("oUser-two-nodes", 7001, "退款多久到账");
    let (ra, rb) = tokio::join!(push(&a, "mp", &xml), push(&b, "mp", &xml));
    assert_eq!((ra.status, rb.status), (200, 200));
    let answered: Vec<_> = [&ra, &rb].iter().filter_map(|r| r.field("Content")).collect();
    assert!(!answered.is_empty(), "neither node answered: {} / {}", ra.body, rb.body);
    assert!(answered.windows(2).all(|w| w[0] == w[1]), "two different answers: {answered:?}");
    // A later retry on either node gets the stored answer.
    assert_eq!(push(&b, "mp", &xml).await.field("Content"), Some(answered[0].clone()));

    // Through the API (a budget of 0): retries on both nodes, one send.
    let slow = text_xml("oUser-two-nodes-slow", 7002, "发票怎么开");
    let (sa, sb, sc) = tokio::join!(push(&a, "slow", &slow), push(&b, "slow", &slow), push(&b, "slow", &slow));
    for r in [&sa, &sb, &sc] {
        assert_eq!((r.status, r.body.as_str()), (200, "success"));
    }
    api.wait_texts("oUser-two-nodes-slow", 1).await;
    settle_outbox(&a, 0).await;
    settle_outbox(&b, 0).await;
    assert_eq!(api.texts_to("oUser-two-nodes-slow").len(), 1, "sent twice: {:?}", api.sent());
    a.stop().await;
    b.stop().await;

    // Each user's message is stored once, answered once.
    let store = PgStore::connect(&url).await.unwrap();
    let mut seen = 0;
    for conv in store.conversations().await.unwrap() {
        if !conv.visitor.channel.starts_with("wechat") {
            continue;
        }
        let messages = store.messages(&conv.id, 0, 100).await.unwrap();
        assert_eq!(messages.iter().filter(|m| m.from == Sender::Visitor).count(), 1, "processed more than once: {messages:?}");
        assert_eq!(messages.iter().filter(|m| m.from == Sender::Bot).count(), 1, "{messages:?}");
        seen += 1;
    }
    assert_eq!(seen, 2);
}
