//! The conversation service over a real server on port 0: HTTP and WebSocket.

mod access;
mod conversation;
mod handoff;
mod ops;
mod security;
mod pages;
pub mod photos;
mod restart;
