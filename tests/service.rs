//! The conversation service over a real server on port 0: HTTP and WebSocket.

#[path = "service/harness.rs"]
mod harness;
#[path = "service/conversation.rs"]
mod conversation;
#[path = "service/handoff.rs"]
mod handoff;
#[path = "service/security.rs"]
mod security;
#[path = "service/pages.rs"]
mod pages;
#[path = "service/restart.rs"]
mod restart;
