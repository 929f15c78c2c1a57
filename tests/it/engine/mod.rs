//! Integration tests of the answering engine, in one test binary: the analyser, retrieval of
//! the shipped demo knowledge base, declining off-topic questions, import errors, and the
//! `kefu` command line. Shared set-up lives in `fixture.rs`.

mod analyzer;
mod cli;
mod import_errors;
mod off_topic;
mod paraphrases;
