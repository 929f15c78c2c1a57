//! WeChat photos against the simulated WeChat API: a user's image push is fetched through
//! `media/get`, stored clean and shown to the agent (live and in the view); a retried push is
//! stored once; media that is not an image is refused with a message to the user; an agent's
//! photo goes out through `media/upload` and an image message.

use super::mock::*;
use crate::fixture::ADMIN_TOKEN;
use crate::service::photos::{encoded, fetch, jpeg_with_gps, upload};

#[tokio::test]
async fn an_image_push_is_fetched_through_the_media_api_and_shown_to_the_agent() {
    let (_dir, server, api) = start().await;
    let agent = server.agent("wang", "小王").await;
    let user = "oUser-photo";
    let r = push(&server, "mp", &text_xml(user, 9001, "转人工")).await;
    assert_eq!(r.status, 200);
    let conv = claim_waiting(&server, &agent).await;
    let mut console = server.ws(&format!("/agent/ws?token={agent}")).await;
    let photo = jpeg_with_gps(96, 64);
    api.media.lock().unwrap().insert("MEDIA-broken-kettle".into(), ("image/jpeg".into(), photo.clone()));
    let r = push(&server, "mp", &image_xml(user, 9002, "MEDIA-broken-kettle")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "success"), "with an agent the bot says nothing");
    let gets = api.media_gets.lock().unwrap().clone();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].1, "MEDIA-broken-kettle");
    assert!(gets[0].0.starts_with("tok-"), "with the access token: {gets:?}");
    // The agent's console gets it live; the view has it; the bytes are the clean copy.
    let event = console.until("the WeChat user's photo", |e| e["type"] == "message" && e["message"]["image"].is_object()).await;
    assert_eq!(event["conversation"], conv.as_str());
    let image = event["message"]["image"].clone();
    assert_eq!((image["format"].as_str(), image["width"].as_u64(), image["height"].as_u64()), (Some("jpeg"), Some(64), Some(96)));
    let (_, view) = server.call("GET", &format!("/agent/conversations/{conv}"), Some(&agent), None).await;
    let last = view["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["from"]["kind"].as_str(), last["image"]["hash"].clone()), (Some("visitor"), image["hash"].clone()));
    let hash = image["hash"].as_str().unwrap();
    let (status, headers, served) = fetch(&server, &format!("/agent/conversations/{conv}/images/{hash}"), Some(&agent)).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    assert!(!served.windows(11).any(|w| w == b"GPSLatitude"), "the position is gone");
    // WeChat's retry of the same push is stored once and fetches nothing more.
    let again = push(&server, "mp", &image_xml(user, 9002, "MEDIA-broken-kettle")).await;
    assert_eq!(again.status, 200);
    let (_, view) = server.call("GET", &format!("/agent/conversations/{conv}"), Some(&agent), None).await;
    let photos = view["messages"].as_array().unwrap().iter().filter(|m| m["image"].is_object()).count();
    assert_eq!(photos, 1, "{view}");
    assert_eq!(api.media_gets.lock().unwrap().len(), 1);
    // Media that is not an image: the user is told, nothing is stored.
    api.media.lock().unwrap().insert("MEDIA-text".into(), ("image/png".into(), "这不是图片".as_bytes().to_vec()));
    let r = push(&server, "mp", &image_xml(user, 9003, "MEDIA-text")).await;
    assert!(r.field("Content").is_some_and(|c| c.contains("图片无法接收")), "{}", r.body);
    // The agent's photo goes out as WeChat image media.
    let png = encoded(40, 30, image::ImageFormat::Png);
    let (status, m) = upload(&server, &format!("/agent/conversations/{conv}/images"), &agent, "image/png", png).await;
    assert_eq!(status, 200, "{m}");
    let ids = api.wait_images(user, 1).await;
    let uploads = api.uploads.lock().unwrap().clone();
    let (id, kind, name, mime, bytes) = uploads.iter().find(|u| u.0 == ids[0]).expect("the sent media was uploaded").clone();
    assert_eq!((id.as_str(), kind.as_str(), mime.as_str()), (ids[0].as_str(), "image", "image/png"));
    assert!(name.ends_with(".png"), "{name}");
    let (_, _, stored) = fetch(&server, &format!("/agent/conversations/{conv}/images/{}", m["image"]["hash"].as_str().unwrap()), Some(&agent)).await;
    assert_eq!(bytes, stored, "the clean copy went to WeChat");
    let (_, stats) = server.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!((stats["images_received"].as_u64(), stats["images_sent"].as_u64()), (Some(1), Some(1)), "{stats}");
    server.stop().await;
}

#[tokio::test]
async fn the_bot_answers_a_photo_within_the_reply() {
    let (_dir, server, api) = start().await;
    api.media.lock().unwrap().insert("MEDIA-1".into(), ("image/png".into(), encoded(12, 12, image::ImageFormat::Png)));
    let r = push(&server, "mp", &image_xml("oUser-photo-bot", 9101, "MEDIA-1")).await;
    assert_eq!(r.status, 200);
    let said: Option<String> = r.field("Content");
    assert!(said.as_deref().is_some_and(|c| c.contains("转人工")), "the bot says it cannot read photos: {}", r.body);
    // An unknown media id: WeChat answers 40007; the user hears that something failed.
    let r = push(&server, "mp", &image_xml("oUser-photo-bot", 9102, "MEDIA-unknown")).await;
    assert!(r.field("Content").is_some_and(|c| c.contains("繁忙")), "{}", r.body);
    server.stop().await;
}
