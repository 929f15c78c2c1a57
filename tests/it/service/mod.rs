//! The conversation service over a real server on port 0: HTTP and WebSocket.

mod access;
mod conversation;
mod handoff;
mod ops;
mod security;
mod tickets;
mod pages;
mod people;
pub mod photos;
mod restart;
