//! WeChat channels against a real kefu server on port 0 and a simulated WeChat API (axum on
//! another port, recording every token and `custom/send` call).

// The WebSocket half of the shared harness is not used here.
#[allow(dead_code)]
#[path = "service/harness.rs"]
mod harness;
#[path = "wechat/mock.rs"]
mod mock;
#[path = "wechat/pushes.rs"]
mod pushes;
