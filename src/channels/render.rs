//! What an answer looks like on each channel: answers and agents' replies are written in
//! Markdown, which the widget draws itself (`web/md.js`), while WeChat shows only text, so
//! for WeChat the Markdown is parsed and written out as plain text and cut into messages
//! that fit WeChat's length limit. Knows nothing of WeChat's API, quota or store.

use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// WeChat's limit on a text message's `Content`, in UTF-8 bytes. `docs/wechat.md` (our notes
/// from WeChat's pages) gives none, so this is the limit WeChat documents for passive text
/// replies, 2048 bytes; the customer-service message API takes longer texts, but one limit
/// for both keeps a reply the same size whichever way it goes (passive, or later through the
/// API after the budget), and a retried delivery gets exactly what the first one got.
pub const WECHAT_MAX_TEXT_BYTES: usize = 2048;

/// Where a text is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The chat widget and the consoles: they render the Markdown subset themselves.
    Widget,
    /// A 公众号: text messages there turn `<a href="…">…</a>` into a tappable link.
    WeChatOfficialAccount,
    /// A 小程序's customer-service chat: links are written as `text（url）`, because WeChat
    /// documents the `<a>` form for 公众号 text messages only, and an unsupported tag would
    /// show the user raw markup.
    WeChatMiniProgram,
}

/// Text for `channel`, cut into the messages to send, in order. The widget gets the Markdown
/// as it is, in one message. Every string is valid CommonMark, so this cannot fail.
pub fn messages(markdown: &str, channel: Channel) -> Vec<String> {
    match channel {
        Channel::Widget => vec![markdown.to_string()],
        Channel::WeChatOfficialAccount | Channel::WeChatMiniProgram => split(&wechat_text(markdown, channel), WECHAT_MAX_TEXT_BYTES),
    }
}

/// Plain text rendered from Markdown, with the byte ranges a message may not be cut inside:
/// each link (or the user gets half a URL, or half a tag shown as text), and each heading
/// with the first character after it (or a message ends on a heading whose text is in the
/// next one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub keep: Vec<Range<usize>>,
}

/// WeChat's text for an answer: no emphasis marks, headings as plain lines, list items as
/// "• " or "1. " lines, code unwrapped, links as the channel takes them, "\n" line breaks;
/// the author's blank lines between blocks are kept, so a list right under its lead-in line
/// stays right under it.
pub fn wechat_text(markdown: &str, channel: Channel) -> Rendered {
    let mut w = Writer { src: markdown, channel, out: String::new(), pending: None, lists: Vec::new(), link: None, link_depth: 0, heading: None, keep: Vec::new() };
    // No extensions: the widget draws plain CommonMark's subset, and tables or footnotes would
    // have nothing to become in a text message anyway.
    for (event, range) in Parser::new_ext(markdown, Options::empty()).into_offset_iter() {
        w.event(event, range);
    }
    let text = w.out.trim_end().to_string();
    let keep = w.keep.into_iter().filter(|r| r.end <= text.len()).collect();
    Rendered { text, keep }
}

/// A break owed before the next text: written only when more text follows, so empty blocks
/// and the end of the answer leave no stray lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Line,
    Blank,
}

struct Writer<'a> {
    src: &'a str,
    channel: Channel,
    out: String,
    pending: Option<Break>,
    /// Open lists, innermost last: the next number of an ordered one.
    lists: Vec<Option<u64>>,
    /// The open link (or image): where its text starts in `out`, and its destination.
    link: Option<(usize, String)>,
    link_depth: usize,
    heading: Option<Heading>,
    keep: Vec<Range<usize>>,
}

/// Where a heading is in `out`, to keep it with what follows.
#[derive(Debug, Clone, Copy)]
enum Heading {
    /// Its text has not begun.
    Open,
    /// Its text began here…
    At(usize),
    /// …and it has ended: kept with the next character written.
    Ended(usize),
}

impl Writer<'_> {
    fn owe(&mut self, b: Break) {
        self.pending = self.pending.max(Some(b));
    }

    fn flush(&mut self) {
        if let Some(b) = self.pending.take() {
            if !self.out.is_empty() {
                self.out.push_str(if b == Break::Blank { "\n\n" } else { "\n" });
            }
        }
    }

    fn push(&mut self, s: &str) {
        let Some(first) = s.chars().next() else { return };
        self.flush();
        match self.heading {
            Some(Heading::Open) => self.heading = Some(Heading::At(self.out.len())),
            Some(Heading::Ended(at)) => {
                self.keep.push(at..self.out.len() + first.len_utf8());
                self.heading = None;
            }
            _ => {}
        }
        self.out.push_str(s);
    }

    /// A block begins at `start` in the source: outside lists it is set off as the author set
    /// it off, by a blank line or a line break (blocks begin their line, so the whitespace
    /// right before one holds a blank line when it holds two line breaks).
    fn block(&mut self, start: usize) {
        if !self.lists.is_empty() {
            return;
        }
        let before = &self.src[..start];
        let space = &before[before.trim_end().len()..];
        self.owe(if space.matches('\n').count() >= 2 { Break::Blank } else { Break::Line });
    }

    fn end_block(&mut self) {
        self.owe(Break::Line);
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.push(&t),
            // `code` shows as its text; WeChat has no monospace.
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => self.push(&t),
            // Raw HTML is shown as written (WeChat would show the tags as text anyway), except
            // comments, which an author means nobody to see.
            Event::Html(t) | Event::InlineHtml(t) => {
                if !t.trim_start().starts_with("<!--") {
                    self.push(t.trim_end_matches('\n'));
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                self.flush();
                self.out.push('\n');
            }
            Event::Rule => {
                self.block(range.start);
                self.push("——————");
                self.end_block();
            }
            Event::FootnoteReference(_) | Event::TaskListMarker(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Heading { .. } => {
                self.block(range.start);
                self.heading = Some(Heading::Open);
            }
            Tag::Paragraph | Tag::CodeBlock(_) | Tag::HtmlBlock | Tag::BlockQuote(_) => self.block(range.start),
            Tag::List(first) => {
                self.block(range.start);
                self.owe(Break::Line);
                self.lists.push(first);
            }
            Tag::Item => {
                self.owe(Break::Line);
                let depth = self.lists.len().saturating_sub(1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "• ".to_string(),
                };
                self.push(&format!("{}{marker}", "  ".repeat(depth)));
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                // An image inside a link's text becomes its alt text: one link, not two.
                self.link_depth += 1;
                if self.link_depth == 1 {
                    self.flush();
                    self.link = Some((self.out.len(), dest_url.to_string()));
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                self.heading = match self.heading {
                    Some(Heading::At(at)) => Some(Heading::Ended(at)),
                    _ => None,
                };
                self.end_block();
            }
            TagEnd::Paragraph | TagEnd::HtmlBlock | TagEnd::BlockQuote(_) => self.end_block(),
            TagEnd::CodeBlock => {
                let kept = self.out.trim_end_matches('\n').len();
                self.out.truncate(kept);
                self.end_block();
            }
            TagEnd::Item => self.owe(Break::Line),
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.end_block();
                }
            }
            TagEnd::Link | TagEnd::Image => {
                self.link_depth = self.link_depth.saturating_sub(1);
                if self.link_depth > 0 {
                    return;
                }
                let Some((at, url)) = self.link.take() else { return };
                let text = self.out.split_off(at);
                let shown = link(text.trim(), &url, self.channel, tag == TagEnd::Image);
                let start = self.out.len();
                self.out.push_str(&shown);
                self.keep.push(start..self.out.len());
            }
            _ => {}
        }
    }
}

/// A link as WeChat shows it. Web links: `<a href>` on a 公众号, `text（url）` elsewhere, the
/// bare URL when its text is the URL (WeChat makes a bare URL tappable itself). `mailto:` and
/// `tel:` show the address or number. Anything else (a relative path, `javascript:`, `data:`)
/// leads nowhere from a chat, so only its text is kept.
fn link(text: &str, url: &str, channel: Channel, image: bool) -> String {
    let text = if text.is_empty() && image { "图片" } else { text };
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        if text.is_empty() || text == url {
            return url.to_string();
        }
        // The attribute cannot be escaped in a WeChat text, so a URL that would end it early
        // (or text that would open another tag) is written out instead.
        let tag_safe = !url.contains(['"', '<', '>', ' ', '\n']) && !text.contains(['<', '>']);
        if channel == Channel::WeChatOfficialAccount && tag_safe {
            return format!("<a href=\"{url}\">{text}</a>");
        }
        return format!("{text}（{url}）");
    }
    for scheme in ["mailto:", "tel:"] {
        if lower.starts_with(scheme) {
            let address = &url[scheme.len()..];
            return if text.is_empty() || text == address || text == url { address.to_string() } else { format!("{text}（{address}）") };
        }
    }
    text.to_string()
}

/// Cuts `r` into messages of at most `max_bytes` bytes each. A cut goes, by preference, at a
/// paragraph break, a line break, the end of a sentence, a comma or space, and only then
/// anywhere, never inside a UTF-8 character nor inside a link or right after a heading (unless
/// one link alone is longer than a message). The preferred breaks count only in the second half of a message, so that
/// no message is left nearly empty: each one spends a message of the user's WeChat quota.
pub fn split(r: &Rendered, max_bytes: usize) -> Vec<String> {
    // Four bytes hold any character, so every cut makes progress.
    assert!(max_bytes >= 4, "a message must hold at least one character");
    let text = r.text.as_str();
    let inside_kept = |i: usize| r.keep.iter().any(|l| l.start < i && i < l.end);
    let mut parts = Vec::new();
    let mut pos = skip_space(text, 0);
    while pos < text.len() {
        if text.len() - pos <= max_bytes {
            parts.push(text[pos..].trim_end().to_string());
            break;
        }
        let end = floor_char_boundary(text, pos + max_bytes);
        // The last cut of each kind in the window: paragraph, line, sentence, clause, any.
        let mut best: [Option<usize>; 5] = [None; 5];
        let window = &text[pos..end];
        let mut prev: Option<char> = None;
        for (off, c) in window.char_indices().chain(std::iter::once((window.len(), '\0'))) {
            let i = pos + off;
            if let Some(p) = prev {
                if !inside_kept(i) {
                    let at_end = i == end;
                    let next = if at_end { text[i..].chars().next().unwrap_or('\0') } else { c };
                    let kind = match p {
                        '\n' if text[..i].ends_with("\n\n") => 0,
                        '\n' => 1,
                        '。' | '！' | '？' | '；' | '…' | '!' | '?' | ';' => 2,
                        '.' if next.is_whitespace() => 2,
                        '，' | '、' | '：' | ',' | ':' | ' ' | '\u{3000}' => 3,
                        _ => 4,
                    };
                    best[kind] = Some(i);
                }
            }
            prev = Some(c);
        }
        let half = pos + max_bytes / 2;
        let cut = best[..4]
            .iter()
            .flatten()
            .copied()
            .find(|&i| i >= half)
            .or_else(|| best.iter().flatten().copied().max())
            // A link longer than a message: cut it, at a character boundary at least.
            .unwrap_or(end);
        let part = text[pos..cut].trim_end();
        if !part.is_empty() {
            parts.push(part.to_string());
        }
        pos = skip_space(text, cut);
    }
    parts
}

fn skip_space(text: &str, from: usize) -> usize {
    from + (text[from..].len() - text[from..].trim_start().len())
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP: Channel = Channel::WeChatOfficialAccount;
    const MINI: Channel = Channel::WeChatMiniProgram;

    fn text(md: &str) -> String {
        wechat_text(md, MP).text
    }

    /// The body of `knowledge/账户安全/account-hacked.md` as shipped: bold, a numbered list
    /// right under its lead-in line, and a last line that CommonMark reads as part of item 3.
    const ACCOUNT_HACKED: &str = "请立即：\n1. 在 **我的→设置→账户与安全** **修改登录密码和支付密码**，并在 **登录设备管理** 里下线陌生设备；\n2. 已经无法登录的，在登录页点 **忘记密码** 重置，或联系客服 **冻结账号**；\n3. 检查 **收货地址、绑定手机号** 是否被篡改，尽快取消不是你下的异常订单，积分、余额莫名减少的也请记下时间。\n然后联系在线客服提交 **账号被盗申诉**，说明异常订单和时间，我们会核查并协助追回损失；有资金损失的建议同时报警。客服 **不会向你索要验证码**，请不要告诉任何人。\n";

    #[test]
    fn a_shipped_article_loses_its_marks_and_keeps_its_lines() {
        assert_eq!(
            text(ACCOUNT_HACKED),
            "请立即：\n1. 在 我的→设置→账户与安全 修改登录密码和支付密码，并在 登录设备管理 里下线陌生设备；\n2. 已经无法登录的，在登录页点 忘记密码 重置，或联系客服 冻结账号；\n3. 检查 收货地址、绑定手机号 是否被篡改，尽快取消不是你下的异常订单，积分、余额莫名减少的也请记下时间。\n然后联系在线客服提交 账号被盗申诉，说明异常订单和时间，我们会核查并协助追回损失；有资金损失的建议同时报警。客服 不会向你索要验证码，请不要告诉任何人。"
        );
    }

    #[test]
    fn bold_italic_code_and_headings_become_plain_lines() {
        let md = "## 退货运费\n\n**质量问题**由我们承担运费，*非质量问题*由买家承担。\n\n### 运费险\n\n下单时勾选了 `运费险` 的，退货后 __自动理赔__。";
        assert_eq!(text(md), "退货运费\n\n质量问题由我们承担运费，非质量问题由买家承担。\n\n运费险\n\n下单时勾选了 运费险 的，退货后 自动理赔。");
        // A heading right above its text stays right above it.
        assert_eq!(text("# 开发票\n登录后在订单详情里申请。"), "开发票\n登录后在订单详情里申请。");
        // A code block keeps its lines.
        assert_eq!(text("复制下面的地址：\n\n```\n上海市浦东新区\n某某路 1 号\n```\n"), "复制下面的地址：\n\n上海市浦东新区\n某某路 1 号");
    }

    #[test]
    fn lists_become_bullet_and_numbered_lines() {
        let md = "可以这样退货：\n\n- 在 **我的订单** 里申请\n- 等待审核\n  1. 审核通过后寄回\n  2. 填写快递单号\n- 仓库验货后退款\n\n3. 第三步\n4. 第四步\n";
        assert_eq!(
            text(md),
            "可以这样退货：\n\n• 在 我的订单 里申请\n• 等待审核\n  1. 审核通过后寄回\n  2. 填写快递单号\n• 仓库验货后退款\n\n3. 第三步\n4. 第四步"
        );
        // A loose list (blank lines between items) is written tight: a chat bubble is small.
        assert_eq!(text("* 一\n\n* 二\n\n  二的说明\n"), "• 一\n• 二\n二的说明");
    }

    #[test]
    fn links_are_tags_on_an_official_account_and_text_elsewhere() {
        let md = "详见 [退货政策](https://shop.example.com/help/return?id=7&from=wx) 或拨打 [客服热线](tel:400-820-8820)，也可以发邮件到 <mailto:kefu@example.com>。";
        assert_eq!(
            text(md),
            "详见 <a href=\"https://shop.example.com/help/return?id=7&from=wx\">退货政策</a> 或拨打 客服热线（400-820-8820），也可以发邮件到 kefu@example.com。"
        );
        assert_eq!(
            wechat_text(md, MINI).text,
            "详见 退货政策（https://shop.example.com/help/return?id=7&from=wx） 或拨打 客服热线（400-820-8820），也可以发邮件到 kefu@example.com。"
        );
        // The URL as its own text is written once; a bold link text loses its marks; a link
        // that leads nowhere from a chat keeps only its text; an image shows as a link to it.
        assert_eq!(text("<https://shop.example.com>"), "https://shop.example.com");
        assert_eq!(text("[**领券中心**](https://shop.example.com/coupons)"), "<a href=\"https://shop.example.com/coupons\">领券中心</a>");
        assert_eq!(text("[点这里](javascript:alert(1)) 或 [帮助](/help)"), "点这里 或 帮助");
        assert_eq!(text("![发票样例](https://shop.example.com/invoice.png)"), "<a href=\"https://shop.example.com/invoice.png\">发票样例</a>");
        // A picture without alt text as a link's whole text leaves the bare link.
        assert_eq!(text("[![](https://x.example/a.png)](https://x.example/a)"), "https://x.example/a");
        assert_eq!(text("![](https://x.example/a.png)"), "<a href=\"https://x.example/a.png\">图片</a>");
        // A URL that would end the attribute early is not put in one.
        assert_eq!(text("[看](<https://x.example/a\"b>)"), "看（https://x.example/a\"b）");
        let r = wechat_text(md, MP);
        let first = &r.text[r.keep[0].clone()];
        assert_eq!(first, "<a href=\"https://shop.example.com/help/return?id=7&from=wx\">退货政策</a>");
    }

    #[test]
    fn comments_are_dropped_and_other_html_is_shown_as_written() {
        assert_eq!(text("<!-- 内部备注：下月改 -->\n\n退款 1-3 个工作日到账。"), "退款 1-3 个工作日到账。");
        assert_eq!(text("满 99 元<b>包邮</b>"), "满 99 元<b>包邮</b>");
        // Entities are what they stand for.
        assert_eq!(text("A &amp; B"), "A & B");
    }

    #[test]
    fn the_widget_gets_the_markdown_unchanged() {
        assert_eq!(messages(ACCOUNT_HACKED, Channel::Widget), vec![ACCOUNT_HACKED.to_string()]);
    }

    fn plain(text: &str) -> Rendered {
        Rendered { text: text.into(), keep: vec![] }
    }

    #[test]
    fn a_short_answer_is_one_message() {
        let parts = messages(ACCOUNT_HACKED, MP);
        assert_eq!(parts, vec![text(ACCOUNT_HACKED)]);
        assert!(parts[0].len() <= WECHAT_MAX_TEXT_BYTES);
    }

    #[test]
    fn a_long_answer_is_cut_at_paragraphs_within_the_byte_limit() {
        // Eight paragraphs of about 600 bytes each (three bytes a character).
        let paragraphs: Vec<String> = (1..=8).map(|i| format!("第{i}段：{}", "签收后七天内可以申请无理由退货，商品需保持完好。".repeat(8))).collect();
        let md = paragraphs.join("\n\n");
        let parts = messages(&md, MP);
        assert!(parts.len() >= 3, "{} bytes in {} parts", md.len(), parts.len());
        for p in &parts {
            assert!(p.len() <= WECHAT_MAX_TEXT_BYTES, "{} bytes", p.len());
            assert!(p.starts_with('第') && p.ends_with('。'), "cut inside a paragraph: {p}");
        }
        assert_eq!(parts.join("\n\n"), md, "nothing lost, nothing added");
    }

    #[test]
    fn a_long_paragraph_is_cut_after_a_sentence_never_inside_a_character() {
        let sentence = "退款审核通过后，原路退回到您的支付账户，一般一到三个工作日到账。";
        let md = sentence.repeat(40);
        let parts = split(&plain(&md), 500);
        for p in &parts {
            assert!(p.len() <= 500);
            assert!(p.ends_with('。'), "not cut at a sentence end: {p}");
        }
        assert_eq!(parts.concat(), md);
        // No punctuation at all: cut anywhere, but on a character boundary (a `String` could
        // not even hold half a character, so this checks the byte counts add up).
        let md = "退".repeat(1000);
        let parts = split(&plain(&md), 100);
        assert!(parts.iter().all(|p| p.len() <= 100 && p.len() % 3 == 0), "{:?}", parts.iter().map(|p| p.len()).collect::<Vec<_>>());
        assert_eq!(parts.len(), 31, "99 bytes (33 characters) a part");
        assert_eq!(parts.concat(), md);
    }

    #[test]
    fn a_cut_never_falls_inside_a_link() {
        let link = "[查看物流详情](https://shop.example.com/orders/202611300001/logistics?from=wechat&track=1)";
        let md = format!("{}{link}，{}", "您的包裹已经发出".repeat(10), "请耐心等待".repeat(10));
        let r = wechat_text(&md, MP);
        let tag = "<a href=\"https://shop.example.com/orders/202611300001/logistics?from=wechat&track=1\">查看物流详情</a>";
        // Every limit that would cut the tag in two if cuts ignored links.
        let at = r.text.find(tag).unwrap();
        for max in [at + 10, at + 40, at + tag.len() - 1] {
            let parts = split(&r, max);
            assert!(parts.iter().any(|p| p.contains(tag)), "max {max}: the link was cut: {parts:?}");
            assert!(parts.iter().all(|p| p.len() <= max));
        }
        // A link longer than a whole message is cut rather than never sent.
        let parts = split(&r, 60);
        assert!(parts.iter().all(|p| p.len() <= 60));
        assert_eq!(parts.concat(), r.text);
    }

    #[test]
    fn a_long_list_is_cut_between_items() {
        let items: String = (1..=60).map(|i| format!("{i}. 第{i}项：请在订单详情页点击申请售后\n")).collect();
        let parts = messages(&format!("售后步骤如下：\n{items}"), MINI);
        assert!(parts.len() >= 2);
        for p in &parts[1..] {
            assert!(p.split('\n').all(|line| line.contains(". 第")), "a list item was cut: {p}");
        }
        assert!(parts.iter().all(|p| p.len() <= WECHAT_MAX_TEXT_BYTES));
    }

    #[test]
    fn empty_and_blank_answers_are_no_messages() {
        assert!(messages("", MP).is_empty());
        assert!(messages(" \n\n ", MP).is_empty());
    }

    #[test]
    fn every_shipped_article_reaches_wechat_without_markdown() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge");
        let loaded = crate::knowledge::load(&dir).unwrap();
        assert!(loaded.articles.len() > 50);
        for a in &loaded.articles {
            for channel in [MP, MINI] {
                let parts = messages(&a.answer, channel);
                assert!(!parts.is_empty(), "{}", a.id);
                for p in &parts {
                    assert!(p.len() <= WECHAT_MAX_TEXT_BYTES, "{}: {} bytes", a.id, p.len());
                    assert!(!p.contains("**") && !p.contains('`') && !p.contains("]("), "{}: {p}", a.id);
                    assert!(p.lines().all(|l| !l.starts_with('#') && !l.starts_with("- ")), "{}: {p}", a.id);
                }
            }
        }
    }

    #[test]
    fn a_message_never_ends_on_a_heading() {
        let para = "旧机估价以质检结果为准，质检时会检查外观、屏幕和电池。".repeat(3);
        let md = format!("### 一、估价\n\n{para}\n\n### 二、回收\n\n{para}\n\n### 三、补贴\n\n{para}");
        let r = wechat_text(&md, MP);
        for max in (200..r.text.len()).step_by(37) {
            for p in split(&r, max) {
                assert!(!p.ends_with("估价") && !p.ends_with("回收") && !p.ends_with("补贴"), "max {max}: ends on a heading: {p}");
            }
        }
    }
}
