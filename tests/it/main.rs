//! kefu's integration tests, in one binary (one link instead of eight): the engine and the
//! command line, the service over a real port-0 server (HTTP and WebSocket), hostile input,
//! WeChat against a simulated API, property tests, crash safety and the browser test. They
//! share one fixture module, `fixture.rs`.

mod fixture;

mod browser;
mod crash;
mod engine;
mod hostile;
mod props;
mod semantic;
mod service;
mod nodes;
mod store;
mod webhooks;
mod wechat;
mod wechat_props;
