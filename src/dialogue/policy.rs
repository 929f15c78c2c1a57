//! The dialogue policy: from where a conversation stands and what the visitor just said (with
//! what the intent matcher and the knowledge engine made of it) to the bot's replies, the next
//! state, and whether to hand off, take a message or record a rating.
//!
//! Pure: the caller runs the matchers and the engine first and applies the [`Outcome`].

use serde::Deserialize;

use super::{BotMeta, Context, Offer, State};
use crate::handoff::{Priority, Reason};
use crate::knowledge::{Action, Article, Reply};
use crate::nlu::{self, IntentAction, IntentMatch, Intents, MatchedBy};

/// Escalation rules and the bot's fixed sentences; all configurable (`[dialogue]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Consecutive unanswered questions before handing off (0: never).
    pub miss_limit: u32,
    /// Hand off at once when the best knowledge confidence is below this (0: off).
    pub confidence_floor: f32,
    /// How many questions a clarification offers.
    pub clarify_options: usize,
    /// Offer choices only when the best is at least this likely; below, it is a miss. The
    /// engine's own clarify threshold is tuned for "the answer is among the top 3"; in a
    /// chat, a list of unrelated questions for an off-topic message does more harm.
    pub clarify_min_confidence: f32,
    pub fallback: String,
    pub clarify_intro: String,
    pub clarify_outro: String,
    pub handoff_text: String,
    /// Said when the bot hands off because it could not answer (not because it was asked):
    /// 「好的，正在为您转接」 would sound as if the visitor had asked.
    pub miss_handoff_text: String,
    pub no_agents_text: String,
    /// Said to a visitor queued longer than `presence.queue_timeout_secs`.
    pub queue_timeout_text: String,
    pub out_of_hours_text: String,
    pub ask_contact_text: String,
    pub ticket_text: String,
    pub ticket_without_contact_text: String,
    pub rating_thanks_text: String,
    /// The notice when an agent takes the conversation; `{agent}` is their name.
    pub agent_joined_text: String,
    /// The notice when the conversation moves to another agent; `{agent}` is their name.
    pub transferred_text: String,
    /// The notice when an agent resolves: it asks for the 1–5 rating the bot then reads.
    pub resolved_text: String,
    /// The notice when an agent gives the conversation back to the bot.
    pub returned_text: String,
    /// How a leave-a-message form appears in the transcript (`{message}`, `{contact}`).
    pub left_message_text: String,
}

impl Rules {
    /// Every sentence, by its key in `[dialogue]` (for `KEFU_DIALOGUE_*`).
    pub fn sentences_mut(&mut self) -> [(&'static str, &mut String); 17] {
        [
            ("fallback", &mut self.fallback),
            ("clarify_intro", &mut self.clarify_intro),
            ("clarify_outro", &mut self.clarify_outro),
            ("handoff_text", &mut self.handoff_text),
            ("miss_handoff_text", &mut self.miss_handoff_text),
            ("no_agents_text", &mut self.no_agents_text),
            ("queue_timeout_text", &mut self.queue_timeout_text),
            ("out_of_hours_text", &mut self.out_of_hours_text),
            ("ask_contact_text", &mut self.ask_contact_text),
            ("ticket_text", &mut self.ticket_text),
            ("ticket_without_contact_text", &mut self.ticket_without_contact_text),
            ("rating_thanks_text", &mut self.rating_thanks_text),
            ("agent_joined_text", &mut self.agent_joined_text),
            ("transferred_text", &mut self.transferred_text),
            ("resolved_text", &mut self.resolved_text),
            ("returned_text", &mut self.returned_text),
            ("left_message_text", &mut self.left_message_text),
        ]
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            miss_limit: 2,
            confidence_floor: 0.0,
            clarify_options: 3,
            clarify_min_confidence: 0.15,
            fallback: "抱歉，这个问题我暂时还不会回答。您可以换个说法再问一次，或者输入“转人工”联系人工客服。".into(),
            clarify_intro: "您是不是想问：".into(),
            clarify_outro: "请回复序号，或者换个说法告诉我。".into(),
            handoff_text: "好的，正在为您转接人工客服，请稍候。".into(),
            miss_handoff_text: "抱歉，这几个问题我没能答上。我请人工客服来帮您，请稍候。".into(),
            no_agents_text: "抱歉，现在暂时没有客服在线。请留下您的手机号或邮箱和问题，我们会尽快联系您。".into(),
            queue_timeout_text: "抱歉让您久等了，客服都还在忙。您可以留下手机号或邮箱和问题，我们会尽快联系您；也可以稍后再点「转人工」。".into(),
            out_of_hours_text: "抱歉，现在不在人工客服的服务时间。请留下您的手机号或邮箱和问题，我们上班后会第一时间联系您。".into(),
            ask_contact_text: "好的，请再留下您的手机号或邮箱，方便我们联系您。".into(),
            ticket_text: "已记下您的留言：「{message}」。我们会尽快通过 {contact} 联系您。".into(),
            ticket_without_contact_text: "已记下您的留言：「{message}」。您没有留下联系方式，客服会在这个对话里回复您，请留意。".into(),
            rating_thanks_text: "感谢您的评价！还有其他问题可以随时问我。".into(),
            agent_joined_text: "客服「{agent}」已接入，为您服务。".into(),
            transferred_text: "已为您转接给客服「{agent}」。".into(),
            resolved_text: "本次人工服务已结束。请为客服的服务打分：回复 1–5（5 分最满意）。".into(),
            returned_text: "人工客服已离开，智能助手继续为您服务。".into(),
            left_message_text: "【留言】{message}（联系方式：{contact}）".into(),
        }
    }
}

/// Whether a human could take the conversation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    NoAgents,
    OutOfHours,
    /// The channel has its own agents (WeChat's 客服): the visitor is told so and the bot
    /// stays in charge here; nothing is queued.
    Elsewhere,
}

/// What the visitor said, with everything the matchers found and who could take over.
#[derive(Clone, Copy)]
pub struct Turn<'a> {
    pub text: &'a str,
    pub intent: Option<&'a IntentMatch>,
    /// The knowledge engine's reply to `text`.
    pub knowledge: Option<&'a Reply>,
    /// Its reply to `text` read in the context of the last article (a follow-up).
    pub followup: Option<&'a Reply>,
    /// Who could take a handoff needing a skill, asked only when the policy wants a human
    /// (for the skill it wants), so its outcome is final.
    pub availability: &'a dyn Fn(&str) -> Availability,
}

/// A hand-off the caller must create (and queue).
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffRequest {
    pub reason: Reason,
    pub detail: String,
    pub priority: Priority,
    pub skill: String,
    pub intent: Option<String>,
}

/// A leave-a-message ticket the caller must store.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRequest {
    pub contact: Option<String>,
    pub message: String,
    pub reason: Reason,
}

/// The result of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: State,
    pub context: Context,
    /// The bot's messages, in order.
    pub replies: Vec<(String, BotMeta)>,
    pub handoff: Option<HandoffRequest>,
    pub ticket: Option<TicketRequest>,
    pub rating: Option<u8>,
    /// The question went unanswered (for the "could not answer" list).
    pub unanswered: bool,
    /// The channel's own agents take over (`Availability::Elsewhere`).
    pub transferred: bool,
}

/// The policy with what it needs to look things up.
pub struct Policy<'a> {
    pub rules: &'a Rules,
    pub intents: &'a Intents,
    /// Finds a knowledge article by id.
    pub article: &'a dyn Fn(&str) -> Option<&'a Article>,
}

/// An offered choice must be at least this share of the best choice's confidence. 0.15, not
/// 0.2: with the per-kind calibration a lone topic word (发票) puts 0.68 on its likeliest
/// article and 0.11 on the next, which is a real alternative, not a few-percent filler.
const CLARIFY_RELATIVE_FLOOR: f32 = 0.15;

/// A message shortened for quoting back: its first 60 characters, on one line.
pub fn quote(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        short.push('…');
    }
    short
}

fn meta(kind: &str) -> BotMeta {
    BotMeta { kind: kind.into(), ..Default::default() }
}

/// A choice typed as a number: "2", "２", "第2个", "二".
fn choice(text: &str, options: usize) -> Option<usize> {
    let t: String = text
        .trim()
        .trim_start_matches('第')
        .trim_end_matches(['个', '条', '项', '号', '。', '.', '!', '！'])
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            _ => c,
        })
        .collect();
    let n = match t.as_str() {
        "一" => 1,
        "二" | "两" => 2,
        "三" => 3,
        "四" => 4,
        "五" => 5,
        _ => t.parse::<usize>().ok()?,
    };
    (1..=options).contains(&n).then_some(n - 1)
}

impl Policy<'_> {
    /// Decides the bot's turn.
    pub fn step(&self, state: &State, context: &Context, turn: &Turn<'_>) -> Outcome {
        let mut out = Outcome {
            state: state.clone(),
            context: context.clone(),
            replies: Vec::new(),
            handoff: None,
            ticket: None,
            rating: None,
            unanswered: false,
            transferred: false,
        };
        match state {
            // The server never lets the bot speak here; the policy agrees.
            State::Queued | State::WithAgent { .. } | State::Closed => return out,
            State::LeavingMessage { asked_contact } => {
                let reachable = self.explicit_handoff(turn).is_some_and(|skill| {
                    matches!((turn.availability)(skill), Availability::Available | Availability::Elsewhere)
                });
                if reachable {
                    self.bot_turn(turn, &mut out);
                } else if nlu::slots::contact(turn.text).is_none() && turn.knowledge.and_then(|r| r.answer()).is_some() {
                    // A question the knowledge base answers outright is a question, not the
                    // message to leave: answer it, and keep the offer to leave a message open.
                    self.bot_turn(turn, &mut out);
                } else {
                    self.leave_message(*asked_contact, turn, &mut out);
                }
                return out;
            }
            State::Clarifying { options } => {
                let picked = choice(turn.text, options.len())
                    .or_else(|| options.iter().position(|o| o.question == turn.text.trim()));
                if let Some(i) = picked {
                    out.state = State::Bot;
                    self.answer_article(&options[i].article, Some(options[i].confidence), &mut out);
                    return out;
                }
                out.state = State::Bot;
            }
            State::Collecting { intent, slot, retries } => {
                if self.collect(intent, slot, *retries, turn, &mut out) {
                    return out;
                }
                out.state = State::Bot;
            }
            State::Bot => {}
        }
        if out.context.rating_requested {
            if let Some(score) = choice(turn.text, 5) {
                out.context.rating_requested = false;
                out.rating = Some(score as u8 + 1);
                out.replies.push((self.rules.rating_thanks_text.clone(), meta("rating")));
                return out;
            }
        }
        self.bot_turn(turn, &mut out);
        out
    }

    /// The skill of the handoff the visitor asks for explicitly (an intent that hands off).
    fn explicit_handoff<'t>(&'t self, turn: &Turn<'_>) -> Option<&'t str> {
        match &self.intents.get(&turn.intent?.intent)?.action {
            IntentAction::Handoff { skill, .. } => Some(skill.as_str()),
            _ => None,
        }
    }

    /// An ordinary turn: an intent, a knowledge answer, a clarification or a miss.
    fn bot_turn(&self, turn: &Turn<'_>, out: &mut Outcome) {
        let knowledge_answer = turn.knowledge.and_then(|r| r.answer()).map(|c| c.confidence);
        if let Some(m) = turn.intent {
            // Rules always win; an example match only beats a confident knowledge answer
            // when it is at least as sure, and one that leaves words of the message unmatched
            // yields to any knowledge reply worth offering.
            let knowledge_offers = turn.knowledge.is_some_and(|r| r.action != Action::None);
            let wins = m.by == MatchedBy::Rule
                || (knowledge_answer.is_none_or(|k| m.confidence >= k) && !(m.partial && knowledge_offers));
            if wins {
                if let Some(intent) = self.intents.get(&m.intent) {
                    self.run_intent(intent, turn, out);
                    return;
                }
            }
        }
        // A follow-up reading (only made for a message that reads like one) replaces the
        // plain one when the plain one does not answer and the follow-up is either more
        // confident or answers, or is at least worth offering: a short "那运费呢？" means the
        // topic just discussed more often than the general one.
        let mut reply = turn.knowledge;
        if reply.and_then(|r| r.answer()).is_none() {
            let plain = reply.map_or(0.0, |r| r.confidence);
            let better = |f: &&Reply| f.confidence > plain || f.answer().is_some() || f.confidence >= self.rules.clarify_min_confidence;
            if let Some(f) = turn.followup.filter(better) {
                reply = Some(f);
            }
        }
        let Some(reply) = reply else {
            self.miss(turn, out);
            return;
        };
        let floor = self.rules.confidence_floor;
        if floor > 0.0 && reply.confidence < floor {
            out.unanswered = true;
            let detail = format!("知识库最高置信度 {:.2} 低于下限 {floor:.2}", reply.confidence);
            self.hand_off(turn, request(Reason::LowConfidence, detail, None), out);
            return;
        }
        match reply.action {
            Action::Answer => {
                let best = &reply.candidates[0];
                self.answer_article(&best.id, Some(best.confidence), out);
            }
            Action::Clarify if reply.confidence >= self.rules.clarify_min_confidence => self.clarify(reply, out),
            Action::Clarify => self.miss(turn, out),
            Action::None => self.miss(turn, out),
        }
    }

    fn answer_article(&self, id: &str, confidence: Option<f32>, out: &mut Outcome) {
        let Some(article) = (self.article)(id) else {
            // An intent naming a removed article, or a reload between offer and pick.
            out.replies.push((self.rules.fallback.clone(), meta("none")));
            return;
        };
        out.context.misses = 0;
        out.context.last_article = Some(article.id.clone());
        let m = BotMeta { kind: "answer".into(), article: Some(article.id.clone()), confidence, ..Default::default() };
        out.replies.push((article.answer.clone(), m));
    }

    fn clarify(&self, reply: &Reply, out: &mut Outcome) {
        let options: Vec<Offer> = reply
            .candidates
            .iter()
            .take(self.rules.clarify_options.max(1))
            // No filler: an option far less likely than the best (a few percent beside 40 %)
            // only lengthens the list.
            .filter(|c| c.confidence >= reply.confidence * CLARIFY_RELATIVE_FLOOR)
            .filter_map(|c| {
                (self.article)(&c.id).map(|a| Offer { article: a.id.clone(), question: a.title.clone(), confidence: c.confidence })
            })
            .collect();
        let mut text = self.rules.clarify_intro.clone();
        for (i, o) in options.iter().enumerate() {
            text.push_str(&format!("\n{}. {}", i + 1, o.question));
        }
        text.push('\n');
        text.push_str(&self.rules.clarify_outro);
        let m = BotMeta { kind: "clarify".into(), confidence: Some(reply.confidence), options: options.clone(), ..Default::default() };
        out.replies.push((text, m));
        out.state = State::Clarifying { options };
    }

    fn miss(&self, turn: &Turn<'_>, out: &mut Outcome) {
        out.unanswered = true;
        out.context.misses += 1;
        let limit = self.rules.miss_limit;
        if limit > 0 && out.context.misses >= limit {
            let detail = format!("连续 {} 个问题机器人没有答上", out.context.misses);
            self.hand_off(turn, request(Reason::RepeatedMisses, detail, None), out);
        } else {
            out.replies.push((self.rules.fallback.clone(), meta("none")));
        }
    }

    fn run_intent(&self, intent: &nlu::Intent, turn: &Turn<'_>, out: &mut Outcome) {
        out.context.last_intent = Some(intent.name.clone());
        let with_intent = |kind: &str| BotMeta { kind: kind.into(), intent: Some(intent.name.clone()), ..Default::default() };
        match &intent.action {
            IntentAction::Reply { text } => {
                out.context.misses = 0;
                out.replies.push((text.clone(), with_intent("intent")));
            }
            IntentAction::Article { article } => self.answer_article(article, None, out),
            IntentAction::Handoff { reason, priority, skill, text } => {
                let detail = match turn.intent.map(|m| m.by) {
                    Some(MatchedBy::Rule) => format!("访客消息触发意图「{}」：{}", intent.name, turn.text),
                    _ => format!("识别为意图「{}」：{}", intent.name, turn.text),
                };
                let req = HandoffRequest {
                    reason: reason.clone(),
                    detail,
                    priority: *priority,
                    skill: skill.clone(),
                    intent: Some(intent.name.clone()),
                };
                let said = text.clone();
                self.hand_off(turn, req, out);
                if let (Some(said), Some(first)) = (said, out.replies.first_mut()) {
                    if out.state == State::Queued || out.transferred {
                        first.0 = said;
                    }
                }
            }
            IntentAction::Collect { template } => {
                out.context.slots.clear();
                for slot in &intent.slots {
                    if let Some(v) = slot.extract(turn.text) {
                        out.context.slots.insert(slot.name.clone(), v);
                    }
                }
                self.next_slot_or_done(intent, template, out);
            }
        }
    }

    /// Asks for the first missing slot, or replies from the template when all are filled.
    fn next_slot_or_done(&self, intent: &nlu::Intent, template: &str, out: &mut Outcome) {
        let meta = |kind: &str| BotMeta { kind: kind.into(), intent: Some(intent.name.clone()), ..Default::default() };
        match intent.slots.iter().find(|s| !out.context.slots.contains_key(&s.name)) {
            Some(slot) => {
                out.state = State::Collecting { intent: intent.name.clone(), slot: slot.name.clone(), retries: slot.retries };
                out.replies.push((slot.prompt.clone(), meta("prompt")));
            }
            None => {
                out.state = State::Bot;
                out.context.misses = 0;
                out.replies.push((nlu::fill(template, &out.context.slots), meta("intent")));
            }
        }
    }

    /// One answer while collecting a slot. Returns false when the visitor moved on to
    /// something else (the caller then takes it as an ordinary turn).
    fn collect(&self, intent_name: &str, slot_name: &str, retries: u32, turn: &Turn<'_>, out: &mut Outcome) -> bool {
        let Some(intent) = self.intents.get(intent_name) else { return false };
        let (Some(slot), IntentAction::Collect { template }) = (intent.slot(slot_name), &intent.action) else { return false };
        if let Some(value) = slot.extract(turn.text) {
            out.context.slots.insert(slot.name.clone(), value);
            self.next_slot_or_done(intent, template, out);
            return true;
        }
        // A rule (转人工, a complaint) or a confident answer elsewhere ends the collection.
        let rule = turn.intent.is_some_and(|m| m.by == MatchedBy::Rule && m.intent != intent_name);
        if rule || turn.knowledge.and_then(|r| r.answer()).is_some() {
            return false;
        }
        if retries > 0 {
            out.state = State::Collecting { intent: intent_name.into(), slot: slot_name.into(), retries: retries - 1 };
            let text = slot.retry_prompt.clone().unwrap_or_else(|| slot.prompt.clone());
            out.replies.push((text, BotMeta { kind: "prompt".into(), intent: Some(intent.name.clone()), ..Default::default() }));
        } else {
            out.state = State::Bot;
            let detail = format!("多次没有识别出「{}」，访客最后说：{}", slot.name, turn.text);
            self.hand_off(turn, request(Reason::SlotFailed, detail, Some(intent.name.clone())), out);
        }
        true
    }

    /// What the bot says when it hands off, to kefu's agents or the channel's: a handoff it
    /// chose after misses must not sound as if the visitor had asked.
    fn handoff_text(&self, req: &HandoffRequest) -> &String {
        if req.reason == Reason::RepeatedMisses {
            &self.rules.miss_handoff_text
        } else {
            &self.rules.handoff_text
        }
    }

    /// Queues a handoff when someone can take it; otherwise offers leave-a-message.
    fn hand_off(&self, turn: &Turn<'_>, req: HandoffRequest, out: &mut Outcome) {
        let availability = (turn.availability)(&req.skill);
        match availability {
            Availability::Available => {
                out.state = State::Queued;
                out.context.misses = 0;
                out.replies.push((self.handoff_text(&req).clone(), meta("handoff")));
                out.handoff = Some(req);
            }
            Availability::Elsewhere => {
                // The bot answers again when the visitor comes back from the channel's agents.
                out.state = State::Bot;
                out.context.misses = 0;
                out.replies.push((self.handoff_text(&req).clone(), meta("handoff")));
                out.transferred = true;
            }
            Availability::NoAgents | Availability::OutOfHours => {
                let text = if availability == Availability::NoAgents {
                    &self.rules.no_agents_text
                } else {
                    &self.rules.out_of_hours_text
                };
                out.state = State::LeavingMessage { asked_contact: false };
                out.context.ticket_reason = Some(req.reason);
                out.context.pending_message = None;
                out.replies.push((text.clone(), meta("ticket")));
            }
        }
    }

    fn leave_message(&self, asked_contact: bool, turn: &Turn<'_>, out: &mut Outcome) {
        let contact = nlu::slots::contact(turn.text);
        let reason = out.context.ticket_reason.clone().unwrap_or(Reason::Requested);
        let mut message = out.context.pending_message.take().unwrap_or_default();
        if !message.is_empty() {
            message.push('\n');
        }
        message.push_str(turn.text.trim());
        if contact.is_none() && !asked_contact {
            out.context.pending_message = Some(message);
            out.state = State::LeavingMessage { asked_contact: true };
            out.replies.push((self.rules.ask_contact_text.clone(), meta("ticket")));
            return;
        }
        // The confirmation quotes what was recorded, so nothing is taken as the message
        // without the visitor seeing it.
        let text = match &contact {
            Some(c) => self.rules.ticket_text.replace("{contact}", c),
            None => self.rules.ticket_without_contact_text.clone(),
        }
        .replace("{message}", &quote(&message));
        out.ticket = Some(TicketRequest { contact, message, reason });
        out.context.ticket_reason = None;
        out.state = State::Bot;
        out.replies.push((text, meta("ticket")));
    }
}

/// A queued visitor nobody will take (the agents left, or the wait ran out) is offered
/// leave-a-message: the next state and context. The caller says why in its message.
pub fn offer_message(context: &Context, reason: Reason) -> (State, Context) {
    let mut context = context.clone();
    context.ticket_reason = Some(reason);
    context.pending_message = None;
    context.misses = 0;
    (State::LeavingMessage { asked_contact: false }, context)
}

fn request(reason: Reason, detail: String, intent: Option<String>) -> HandoffRequest {
    HandoffRequest { reason, detail, priority: Priority::Normal, skill: "general".into(), intent }
}

#[cfg(test)]
mod tests;
