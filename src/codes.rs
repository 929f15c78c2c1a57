//! The API's error codes: one table, each code with its HTTP status and when it is used.
//! Clients branch on the code; the message, written where the error arises, names the bad
//! value and says what to do instead. The service names codes; only `http` turns them into
//! responses, and `docs/api.md` lists them all (a test keeps the two in step).

macro_rules! codes {
    ($($code:ident = $status:literal $name:literal $when:literal,)*) => {
        /// An error code of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $when] $code,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$code),*];

            /// The code as clients see it (`conversation_not_found`).
            pub fn name(self) -> &'static str {
                match self { $(Code::$code => $name,)* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> u16 {
                match self { $(Code::$code => $status,)* }
            }

            /// When it is used, for the documentation.
            pub fn when(self) -> &'static str {
                match self { $(Code::$code => $when,)* }
            }
        }
    };
}

codes! {
    BadRequest = 400 "bad_request" "a malformed path or query parameter, an empty message, or another invalid field (the message names it)",
    InvalidJson = 400 "invalid_json" "the body is not one JSON object with the expected fields",
    MessageTooLong = 400 "message_too_long" "a message or search over `limits.max_message_chars`",
    InvalidClientId = 400 "invalid_client_id" "a `client_id` that is not 1 to 64 characters",
    InvalidRating = 400 "invalid_rating" "a rating score outside 1 to 5",
    InvalidContact = 400 "invalid_contact" "a leave-a-message contact that is not 1 to 100 characters",
    InvalidAgent = 400 "invalid_agent" "an agent account with a bad id, name, skills, role or `max_concurrent`",
    InvalidPassword = 400 "invalid_password" "a new password under 8 or over 128 characters, or one that is the same as the current password",
    WeakPassword = 400 "weak_password" "a new agent password that is one of the most common passwords, the account's id or name, or a run like `abcdefgh`",
    InvalidReview = 400 "invalid_review" "a quality review that does not score every rubric criterion once with a whole number from 1 to 5, names an unknown criterion, or has a comment over 500 characters",
    CommentTooLong = 400 "comment_too_long" "a rating comment over `limits.max_comment_chars`",
    InvalidVisitor = 400 "invalid_visitor" "a visitor `name` over `limits.max_name_chars` or a `page` over `limits.max_page_chars`",
    InvalidHistoryQuery = 400 "invalid_history_query" "a history search with a bad date (`YYYY-MM-DD`), outcome, cursor or limit, or a range that ends before it starts",
    InvalidRange = 400 "invalid_range" "a report's `from` or `to` that is not a `YYYY-MM-DD` calendar date, `from` after `to`, a range over 366 days, or a `utc_offset_minutes` that is not whole hours within ±14 h",
    InvalidTicket = 400 "invalid_ticket" "a ticket field that is not valid: an unknown status, priority, complaint step or `via`, an empty or over-long category, tag or text, or an unknown assignee (the message names it)",
    InvalidQuestion = 400 "invalid_question" "a question to add that is not one line of 1 to 200 characters without quotes",
    InvalidWebhook = 400 "invalid_webhook" "a webhook endpoint whose `url` is not an http(s) URL or whose `events` are empty or name an unknown event type",
    NotAnImage = 400 "not_an_image" "an uploaded photo whose bytes are not a JPEG, PNG or WebP image that decodes (e.g. text renamed `.png`), or an empty one",
    ImageTooBig = 400 "image_too_big" "a photo with a side over `limits.max_image_side` pixels, or over 50 million pixels in all",
    IdentityNotAccepted = 400 "identity_not_accepted" "a signed identity sent to a server without `identity_secret`",
    Unauthorized = 401 "unauthorized" "no token, a wrong or expired token, or a conversation id that the token does not open",
    Forbidden = 403 "forbidden" "an identity signature that does not match its user id",
    AgentDisabled = 403 "agent_disabled" "logging in to an agent account that an admin disabled",
    RoleRequired = 403 "role_required" "a person whose role is not enough: the admin pages and API need the admin role, watching, taking over and reviewing need the supervisor role (the message names the role needed and the one held)",
    WrongPassword = 403 "wrong_password" "changing one's own password with a current password that is not right",
    NotYourConversation = 403 "not_your_conversation" "an agent acting on a conversation someone else holds (claim it first)",
    NotFound = 404 "not_found" "no such endpoint, page asset or WeChat app",
    ConversationNotFound = 404 "conversation_not_found" "an agent or channel naming a conversation that does not exist",
    AgentNotFound = 404 "agent_not_found" "no agent with that id",
    ArticleNotFound = 404 "article_not_found" "no knowledge article with that id",
    WebhookNotFound = 404 "webhook_not_found" "no webhook endpoint with that id",
    DeliveryNotFound = 404 "delivery_not_found" "no webhook delivery with that id (the log keeps the newest few thousand)",
    ImageNotFound = 404 "image_not_found" "no image with that hash in the conversation",
    MessageNotFound = 404 "message_not_found" "feedback on a sequence number that is not a bot message",
    TicketNotFound = 404 "ticket_not_found" "no ticket with that id",
    MethodNotAllowed = 405 "method_not_allowed" "the endpoint exists but not with this method",
    ConversationClosed = 409 "conversation_closed" "a message to a closed conversation (start a new one)",
    NotHandedOff = 409 "not_handed_off" "claiming, noting or rating a conversation that no agent was asked for",
    NotWaiting = 409 "not_waiting" "claiming a conversation that is no longer queued, or transferring one that is not assigned",
    AgentFull = 409 "agent_full" "an agent already holding `max_concurrent` conversations",
    AgentOffline = 409 "agent_offline" "transferring to an agent who is not online",
    NotResolved = 409 "not_resolved" "rating before an agent has resolved the conversation",
    InvalidTransition = 409 "invalid_transition" "a ticket status change the lifecycle does not allow (the message lists the allowed ones), resolving a complaint before its 反馈 step, a complaint step out of order, or changing a closed ticket",
    TicketChanged = 409 "ticket_changed" "a ticket changed by someone else between reading and writing it; reload and try again",
    Unreachable = 409 "unreachable" "a ticket reply `via: channel` when the conversation is closed (reply by phone or mail instead)",
    TooLarge = 413 "too_large" "a body over `limits.max_body_bytes` (or the WeChat app's), or a photo over `limits.max_image_bytes`",
    UnsupportedMediaType = 415 "unsupported_media_type" "a body without `Content-Type: application/json`",
    InvalidKnowledge = 422 "invalid_knowledge" "a reload found broken knowledge or intents (the old ones keep serving)",
    RateLimited = 429 "rate_limited" "the per-IP or per-conversation rate limit; `Retry-After` says when to retry",
    LoginLocked = 429 "login_locked" "too many failed logins for the account (`limits.login_failures_per_account`) or from the address (`limits.login_failures_per_address`); `Retry-After` says when to retry, an admin can unlock the account",
    TooManySockets = 429 "too_many_sockets" "a conversation already has `limits.sockets_per_conversation` WebSockets open",
    Internal = 500 "internal" "a fault of the server; the body says nothing more, the log has the details",
    Busy = 503 "busy" "the conversation stayed busy for `limits.conversation_wait_ms`",
    Unavailable = 503 "unavailable" "the store is unavailable for now (disk full or read-only, or the database unreachable)",
    Timeout = 503 "timeout" "the request took longer than `limits.request_timeout_ms`",
    Overloaded = 503 "overloaded" "more than `limits.max_in_flight` requests at once",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let docs = include_str!("../docs/api.md");
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.name()), "{} twice", code.name());
            assert!((400..600).contains(&code.status()));
            assert!(docs.contains(&format!("`{}`", code.name())), "docs/api.md does not list {}", code.name());
        }
    }
}
