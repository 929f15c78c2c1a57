//! Integration tests of the answering engine, in one test binary: the analyser, retrieval of
//! the shipped demo knowledge base, declining off-topic questions, import errors, and the
//! `kefu` command line. Shared set-up lives in `engine/fixture.rs`.

#[path = "engine/fixture.rs"]
mod fixture;

#[path = "engine/analyzer.rs"]
mod analyzer;
#[path = "engine/cli.rs"]
mod cli;
#[path = "engine/import_errors.rs"]
mod import_errors;
#[path = "engine/off_topic.rs"]
mod off_topic;
#[path = "engine/paraphrases.rs"]
mod paraphrases;
