//! kefu (客服): a Chinese-first customer-service bot.
//!
//! A message travels `channels`/`http` → `nlu` (intents) and `knowledge` (retrieval with a
//! calibrated confidence) → `dialogue` (the pure policy) → `handoff` (queue, agents) → `store`
//! (sled), orchestrated by `service`. `text` is the analyser everything shares. `app` is the
//! composition root: [`run`] opens everything and serves.

pub mod dialogue;
pub mod handoff;
pub mod knowledge;
pub mod nlu;
pub mod semantic;
pub mod store;
pub mod text;
pub mod images;
pub mod auth;
pub mod codes;
pub mod config;
pub mod service;
pub mod http;
pub mod channels;
pub mod webhook;
pub mod app;

pub use app::run;
