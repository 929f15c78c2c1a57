//! WeChat channels against a real kefu server on port 0 and a simulated WeChat API (axum on
//! another port, recording every token and `custom/send` call).

mod images;
mod mock;
mod nodes;
mod pushes;
mod render;
mod tickets;
