//! kefu (客服): a Chinese-first customer-service bot.
//!
//! `text` analyses Chinese text; `knowledge` loads articles, indexes them with tantivy and
//! answers questions with a calibrated confidence.

pub mod knowledge;
pub mod text;
