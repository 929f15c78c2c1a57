//! Channels other than the web widget: ways users reach the same bot and agents from
//! elsewhere. Each channel speaks its platform's protocol and calls the service.

pub mod render;
pub mod wechat;
