//! Photos over HTTP on a real server: JPEG, PNG and WebP accepted and stored clean (EXIF and
//! GPS gone), a text file renamed `.png` refused with a message naming the problem, a photo
//! over the size limit refused (declared or streamed), another visitor's token refused with
//! 401, agents reading and sending photos, and the statistics counting them.

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use serde_json::{json, Value};

use crate::fixture::{self, Server, ADMIN_TOKEN};

fn picture(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 5) as u8, (y * 3) as u8, 90])))
}

pub fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    picture(w, h).write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
    out
}

/// EXIF as a phone writes it (APP1): big-endian TIFF with one IFD entry, Orientation = 6
/// (turn 90° clockwise to view), then the GPS position and the camera's name.
pub const GPS: &[u8] = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0GPSLatitude=31.2304N;GPSLongitude=121.4737E;Model=KefuPhone";

/// A JPEG carrying an EXIF segment (after SOI, where cameras put it).
pub fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
    let plain = encoded(w, h, ImageFormat::Jpeg);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((GPS.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(GPS);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG carrying an `eXIf` chunk and a text chunk with the position, before IDAT.
fn png_with_gps(w: u32, h: u32) -> Vec<u8> {
    let plain = encoded(w, h, ImageFormat::Png);
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let crc = crc32fast::hash(&c[4..]);
        c.extend_from_slice(&crc.to_be_bytes());
        c
    };
    // After the signature (8) and IHDR (25 bytes).
    let mut out = plain[..33].to_vec();
    out.extend(chunk(b"eXIf", &GPS[6..]));
    out.extend(chunk(b"tEXt", b"Comment\0GPSLatitude=31.2304N"));
    out.extend_from_slice(&plain[33..]);
    out
}


fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Posts raw bytes: (status, JSON answer).
pub async fn upload(server: &Server, path: &str, token: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = server.http.post(server.url(path)).bearer_auth(token).header("content-type", content_type).body(bytes).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GETs an image: (status, content type, headers, bytes).
pub async fn fetch(server: &Server, path: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = server.http.get(server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.headers().clone(), r.bytes().await.unwrap().to_vec())
}

/// Posts `body` in chunks without a Content-Length: the status line's code.
async fn chunked(server: &Server, path: &str, token: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST /api/v1{path} HTTP/1.1\r\nHost: kefu\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    for c in body.chunks(50_000) {
        // The server may answer and close before the last chunk: later writes may fail.
        if tcp.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await.is_err() || tcp.write_all(c).await.is_err() || tcp.write_all(b"\r\n").await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 12];
    tcp.read_exact(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[9..12]).parse().unwrap()
}

#[tokio::test]
async fn photos_are_accepted_clean_and_served_to_their_visitor_and_agents_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(fixture::config(dir.path())).await;
    let (id, token) = server.visitor().await;
    let cases = [
        (jpeg_with_gps(120, 80), "image/jpeg", "jpeg"),
        (png_with_gps(64, 64), "image/png", "png"),
        (encoded(50, 40, ImageFormat::WebP), "image/webp", "webp"),
    ];
    let mut hashes = Vec::new();
    for (bytes, mime, format) in cases {
        if format != "webp" {
            assert!(contains(&bytes, b"GPSLatitude"), "the sample carries a position");
        }
        // The declared type is not what decides: the bytes are.
        let (status, v) = upload(&server, &format!("/conversations/{id}/images"), &token, "application/octet-stream", bytes).await;
        assert_eq!(status, 200, "{format}: {v}");
        let image = &v["message"]["image"];
        assert_eq!(image["format"], format, "{v}");
        assert_eq!(v["message"]["text"], "[图片]");
        let hash = image["hash"].as_str().unwrap().to_string();
        let (status, headers, served) = fetch(&server, &format!("/conversations/{id}/images/{hash}"), Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], mime);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "private, no-cache", "revalidated, so the token is checked on every use");
        assert_eq!(headers["etag"].to_str().unwrap(), format!("\"{hash}\""));
        // Revalidation: the token first, then 304 without the bytes.
        let again = |token: String| server.http.get(server.url(&format!("/conversations/{id}/images/{hash}"))).bearer_auth(token).header("if-none-match", format!("\"{hash}\"")).send();
        assert_eq!(again(token.clone()).await.unwrap().status(), 304);
        assert_eq!(again("someone-else".into()).await.unwrap().status(), 401);
        assert_eq!(served.len() as u64, image["bytes"].as_u64().unwrap());
        assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&served)), hash, "named by the SHA-256 of its bytes");
        for gone in [&b"Exif"[..], b"GPS", b"KefuPhone", b"eXIf", b"tEXt"] {
            assert!(!contains(&served, gone), "{format}: {} survived", String::from_utf8_lossy(gone));
        }
        let decoded = image::load_from_memory(&served).unwrap();
        assert_eq!((decoded.width() as u64, decoded.height() as u64), (image["width"].as_u64().unwrap(), image["height"].as_u64().unwrap()));
        if format == "jpeg" {
            assert_eq!((decoded.width(), decoded.height()), (80, 120), "turned upright by its EXIF orientation, which is gone");
        }
        hashes.push(hash);
    }
    // Another visitor's token, or none: 401. Their own conversation does not have it: 404.
    let (other, other_token) = server.visitor().await;
    let path = format!("/conversations/{id}/images/{}", hashes[0]);
    assert_eq!(fetch(&server, &path, Some(&other_token)).await.0, 401);
    assert_eq!(fetch(&server, &path, None).await.0, 401);
    let (status, _, body) = fetch(&server, &format!("/conversations/{other}/images/{}", hashes[0]), Some(&other_token)).await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "image_not_found");
    // Any logged-in agent reads it; a visitor's token is no agent's.
    let agent = server.agent("wang", "小王").await;
    let (status, headers, _) = fetch(&server, &format!("/agent/conversations/{id}/images/{}", hashes[1]), Some(&agent)).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/png"));
    assert_eq!(fetch(&server, &format!("/agent/conversations/{id}/images/{}", hashes[1]), Some(&token)).await.0, 401);
    // The history the visitor reads carries the image fields.
    let (_, view) = server.call("GET", &format!("/conversations/{id}/messages"), Some(&token), None).await;
    let photos: Vec<&Value> = view["messages"].as_array().unwrap().iter().filter(|m| m["image"].is_object()).collect();
    assert_eq!(photos.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_file_that_is_not_an_image_or_too_large_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fixture::config(dir.path());
    config.limits.max_image_bytes = 200_000;
    let server = Server::start(config).await;
    let (id, token) = server.visitor().await;
    let path = format!("/conversations/{id}/images");
    // A text file renamed photo.png, sent as image/png.
    let (status, v) = upload(&server, &path, &token, "image/png", "这不是图片，只是改了扩展名的文字。".as_bytes().to_vec()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "not_an_image");
    assert_eq!(v["error"]["message"], "the file is not a JPEG, PNG or WebP image (its bytes are text); only photos in those formats can be sent");
    // PNG's magic number in front of garbage is no PNG either.
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(&[7u8; 300]);
    let (status, v) = upload(&server, &path, &token, "image/png", fake).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("not_an_image")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("the file starts like a PNG image but cannot be read as one"), "{v}");
    // A GIF is an image, but not one of the three.
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();
    let (status, v) = upload(&server, &path, &token, "image/gif", gif).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("not_an_image")), "{v}");
    // Too large, declared: refused before the body is read.
    let big = vec![0xFFu8; 200_001];
    let (status, v) = upload(&server, &path, &token, "image/jpeg", big.clone()).await;
    assert_eq!((status, v["error"]["code"].as_str()), (413, Some("too_large")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("200001"), "{v}");
    // Too large, sent in chunks without a length: refused by the body limit as it arrives.
    assert_eq!(chunked(&server, &path, &token, &big).await, 413);
    // A photo of 9000×4 pixels (over the 8192 a side) is refused naming its size.
    let wide = encoded(9000, 4, ImageFormat::Png);
    let (status, v) = upload(&server, &path, &token, "image/png", wide).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("image_too_big")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("9000×4"), "{v}");
    // A wrong token stores nothing either.
    let (status, _) = upload(&server, &path, "not-the-token", "image/png", encoded(8, 8, ImageFormat::Png)).await;
    assert_eq!(status, 401);
    let (_, view) = server.call("GET", &format!("/conversations/{id}/messages"), Some(&token), None).await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 0, "{view}");
    server.stop().await;
    let store = kefu::store::SledStore::open(&dir.path().join("store")).unwrap();
    assert!(kefu::store::Store::records(&store, kefu::service::IMAGES, "").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_agent_sees_the_visitors_photo_live_and_sends_one_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(fixture::config(dir.path())).await;
    let agent = server.agent("wang", "小王").await;
    let visitor = server.visitor().await;
    let (id, token) = (&visitor.0, &visitor.1);
    server.say(&visitor, "转人工").await;
    let (status, v) = server.call("POST", &format!("/agent/conversations/{id}/claim"), Some(&agent), None).await;
    assert_eq!(status, 200, "{v}");
    let mut agents = server.ws(&format!("/agent/ws?token={agent}")).await;
    let mut widget = server.ws(&format!("/conversations/{id}/ws?token={token}")).await;
    let (status, v) = upload(&server, &format!("/conversations/{id}/images?client_id=photo-1"), token, "image/jpeg", jpeg_with_gps(30, 20)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["replies"].as_array().unwrap().is_empty(), "with an agent the bot is silent: {v}");
    let hash = v["message"]["image"]["hash"].as_str().unwrap().to_string();
    let seen = agents.until("the visitor's photo", |e| e["type"] == "message" && e["message"]["image"]["hash"] == hash.as_str()).await;
    assert_eq!(seen["conversation"], id.as_str());
    // A resend with the same client_id is stored once.
    let (_, again) = upload(&server, &format!("/conversations/{id}/images?client_id=photo-1"), token, "image/jpeg", jpeg_with_gps(30, 20)).await;
    assert_eq!((again["duplicate"].as_bool(), again["message"]["seq"].clone()), (Some(true), v["message"]["seq"].clone()));
    // The agent's photo: the visitor's widget gets it and can read it.
    let (status, m) = upload(&server, &format!("/agent/conversations/{id}/images"), &agent, "image/webp", encoded(16, 16, ImageFormat::WebP)).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["from"]["kind"], "agent");
    let sent = m["image"]["hash"].as_str().unwrap().to_string();
    widget.until("the agent's photo", |e| e["type"] == "message" && e["message"]["image"]["hash"] == sent.as_str()).await;
    let (status, headers, _) = fetch(&server, &format!("/conversations/{id}/images/{sent}"), Some(token)).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/webp"));
    // Another agent's conversation is not theirs to send into.
    let other = server.agent("li", "小李").await;
    let (status, v) = upload(&server, &format!("/agent/conversations/{id}/images"), &other, "image/png", encoded(8, 8, ImageFormat::Png)).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("not_your_conversation")), "{v}");
    // Counted: one received (the resend is not another), one sent.
    let (_, stats) = server.call("GET", "/admin/stats", Some(ADMIN_TOKEN), None).await;
    assert_eq!((stats["images_received"].clone(), stats["images_sent"].clone()), (json!(1), json!(1)), "{stats}");
    server.stop().await;
}

#[tokio::test]
async fn the_bot_says_it_cannot_read_a_photo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(fixture::config(dir.path())).await;
    let (id, token) = server.visitor().await;
    let (status, v) = upload(&server, &format!("/conversations/{id}/images"), &token, "image/png", encoded(10, 10, ImageFormat::Png)).await;
    assert_eq!(status, 200, "{v}");
    let replies = v["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1, "{v}");
    assert_eq!(replies[0]["bot"]["kind"], "image");
    assert!(replies[0]["text"].as_str().unwrap().contains("转人工"), "{v}");
    server.stop().await;
}
