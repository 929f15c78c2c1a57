//! Conversations and the bot's side of them: the stored records, and the dialogue policy that
//! decides each bot turn as pure code (no I/O), so every rule is unit-tested on its own.

mod model;
pub mod policy;

pub use model::{now_ms, BotMeta, Context, Conversation, ImageInfo, Message, Millis, NewMessage, Offer, Sender, State, StateName, Visitor, IMAGE_TEXT};
pub use policy::{Availability, HandoffRequest, Outcome, Policy, Rules, TicketRequest, Turn};
