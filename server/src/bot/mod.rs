//! The bot: answers a visitor first, from question-and-answer packs, and hands the conversation
//! to a person when it is unsure or asked to.
//!
//! ```text
//! message ─▶ BotEngine::understand ─▶ Intent { name, confidence, entities }
//!                                      └▶ BotEngine::respond ─▶ Response { text, quick_replies, handoff }
//! ```
//! - [`retrieval`]: the default engine, in memory, no network: jieba / Snowball tokens, BM25 and
//!   character n-grams over every question of the packs, calibrated confidence.
//! - [`webhook`]: an external service decides (HMAC-signed POST); timeout or error → person.
//! - [`llm`]: an OpenAI-compatible chat endpoint answers from the best-matching pairs only;
//!   `HANDOFF`, timeout or error → person.
//! - [`corpus`]: the packs (built into the binary from `corpus/`, or loaded from a folder);
//!   [`text`]: segmentation, stemming, synonyms; [`entities`]: order numbers, phones, emails,
//!   dates, amounts and `{placeholder}` filling; [`eval`]: `kefu bot eval` and `stats`.
//!
//! Every engine checks the hand-over words ("转人工", "real person" …) first, locally.
//!
//! To use it: `let bot = Bot::from_settings(&settings.bot)?;` once, then per message
//! `let ctx = BotContext::new(&settings.bot).conversation(id);`
//! `let intent = bot.understand(&ctx, text).await; let reply = bot.respond(&ctx, &intent).await;`
//! and hand over when `reply.handoff`.

pub mod corpus;
pub mod entities;
pub mod eval;
pub mod llm;
pub mod retrieval;
pub mod text;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use corpus::Pack;
pub use retrieval::RetrievalEngine;

/// What the bot understood of a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The pair id (`ecommerce.return-policy`), [`Intent::HANDOFF`] or [`Intent::UNKNOWN`].
    pub name: String,
    /// 0..1; comparable across packs and languages for the retrieval engine.
    pub confidence: f32,
    /// Entities found in the message, first of each kind: `order_no`, `phone`, `email`,
    /// `date`, `amount`.
    pub entities: BTreeMap<String, String>,
    /// The language the message was understood in (`en`, `zh-CN`).
    pub lang: String,
    /// An answer decided together with the intent (webhook and LLM engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The engine already decided to hand over (webhook, LLM).
    #[serde(default)]
    pub handoff: bool,
    /// The message is like one of the examples of what is not answered here (`decline` pairs):
    /// an [`Intent::UNKNOWN`] that hands over at once, not a doubt that asks to rephrase.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declined: bool,
}

impl Intent {
    /// The visitor asked for a person (or an engine decided so).
    pub const HANDOFF: &'static str = "handoff";
    /// Nothing matched well enough: below the threshold.
    pub const UNKNOWN: &'static str = "unknown";

    pub fn handoff(lang: &str, entities: BTreeMap<String, String>) -> Intent {
        Intent {
            name: Intent::HANDOFF.to_owned(),
            confidence: 1.0,
            entities,
            lang: lang.to_owned(),
            answer: None,
            handoff: true,
            declined: false,
        }
    }

    /// Like an example of what is not answered here (a `decline` pair): an unknown intent that
    /// hands over at once (see [`Intent::declined`]).
    pub fn declined(lang: &str, entities: BTreeMap<String, String>) -> Intent {
        Intent {
            declined: true,
            ..Intent::unknown(lang, entities, 0.0)
        }
    }

    /// Not understood: the bot does not answer, and the turn counts toward the two-strikes
    /// rule. Every engine says so the same way (a retrieval match below the threshold, a
    /// webhook reply below it, the LLM's `HANDOFF` reply).
    pub fn unknown(lang: &str, entities: BTreeMap<String, String>, confidence: f32) -> Intent {
        Intent {
            name: Intent::UNKNOWN.to_owned(),
            confidence,
            entities,
            lang: lang.to_owned(),
            answer: None,
            handoff: false,
            declined: false,
        }
    }
}

/// What the bot says back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The answer with entities filled in.
    pub text: String,
    /// Up to three suggestions to show as buttons.
    pub quick_replies: Vec<String>,
    /// Hand the conversation to a person (after showing `text`).
    pub handoff: bool,
}

/// Where a message is understood: the site's packs and threshold, the conversation.
#[derive(Debug, Clone, Serialize)]
pub struct BotContext {
    pub conversation_id: Option<String>,
    /// Packs active for the site (all loaded packs when empty).
    pub packs: Vec<String>,
    /// Below this confidence the bot hands over.
    pub threshold: f32,
}

impl BotContext {
    pub fn new(settings: &BotSettings) -> BotContext {
        BotContext {
            conversation_id: None,
            packs: Vec::new(),
            threshold: settings.threshold,
        }
    }

    pub fn conversation(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    pub fn packs(mut self, packs: Vec<String>) -> Self {
        self.packs = packs;
        self
    }
}

impl Default for BotContext {
    fn default() -> Self {
        BotContext::new(&BotSettings::default())
    }
}

/// The bot's two steps. Engines never fail: when they cannot decide they hand over.
#[async_trait]
pub trait BotEngine: Send + Sync {
    async fn understand(&self, ctx: &BotContext, text: &str) -> Intent;
    async fn respond(&self, ctx: &BotContext, intent: &Intent) -> Response;
}

#[async_trait]
impl BotEngine for RetrievalEngine {
    async fn understand(&self, ctx: &BotContext, text: &str) -> Intent {
        self.understand_text(ctx, text)
    }

    async fn respond(&self, _ctx: &BotContext, intent: &Intent) -> Response {
        self.respond_to(intent)
    }
}

/// The reply when the bot hands over without an answer of its own.
pub fn fallback_text(lang: &str, asked_for_person: bool) -> &'static str {
    match (text::Family::of(lang) == text::Family::Zh, asked_for_person) {
        (true, true) => "好的，正在为您转接人工客服，请稍候。",
        (true, false) => "这个问题我还不太确定，正在为您转接人工客服，请稍候。",
        (false, true) => "Sure, I'm connecting you to a person now. Please hold on.",
        (false, false) => "I'm not sure I can answer that. Let me connect you to a person.",
    }
}

/// The reply of engines that decide the answer in `understand` (webhook, LLM).
pub(crate) fn answer_or_fallback(intent: &Intent) -> Response {
    match &intent.answer {
        Some(a) if !a.trim().is_empty() => Response {
            text: clip_answer(entities::fill(a, &intent.entities)),
            quick_replies: Vec::new(),
            handoff: intent.handoff,
        },
        _ => Response {
            text: fallback_text(&intent.lang, intent.name == Intent::HANDOFF).to_owned(),
            quick_replies: Vec::new(),
            handoff: true,
        },
    }
}

/// An engine's answer as a message may carry it: at most [`kefu::validate::MAX_BODY_CHARS`]
/// characters (a longer one is cut, with an ellipsis), or it could not be posted at all.
fn clip_answer(text: String) -> String {
    let max = kefu::validate::MAX_BODY_CHARS;
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// A URL as logs may show it: scheme, host, port and path; no credentials, query or fragment
/// (a webhook URL may carry `?token=…`).
pub fn url_for_log(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            )
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Words that mean "let me talk to a person". A word matches anywhere in the message (whole
/// words for Latin script); one written `=word` only when it is the whole message.
#[derive(Debug, Clone)]
pub struct HandoffWords {
    anywhere: Vec<String>,
    whole: Vec<String>,
}

/// The default hand-over words. Bare "人工", "human" and "agent" count only as the whole
/// message: inside a sentence they are too often something else (人工智能, human papillomavirus,
/// travel agent).
pub const DEFAULT_HANDOFF_WORDS: &[&str] = &[
    "转人工",
    "人工客服",
    "人工服务",
    "找人工",
    "要人工",
    "接人工",
    "真人客服",
    "客服人员",
    "=人工",
    "=客服",
    "=真人",
    "real person",
    "live person",
    "live agent",
    "human agent",
    "a human",
    "to human",
    "an agent",
    "customer service agent",
    "representative",
    "talk to a person",
    "speak to a person",
    "talk to someone",
    "speak to someone",
    "speak with someone",
    "talk with someone",
    "=human",
    "=agent",
    "=person",
    "=operator",
];

fn normalize_space(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl HandoffWords {
    /// `words`, and the label of the widget's hand-over button (as a whole message), which
    /// counts whatever words a site's admin lists: a visitor can always reach a person.
    pub fn new<S: AsRef<str>>(words: &[S]) -> HandoffWords {
        let (button_en, button_zh) = app::i18n::pair(app::i18n::K::Handoff);
        let mut h = HandoffWords {
            anywhere: Vec::new(),
            whole: vec![normalize_space(button_en), normalize_space(button_zh)],
        };
        for w in words {
            let w = w.as_ref().trim();
            if let Some(whole) = w.strip_prefix('=') {
                h.whole.push(normalize_space(whole));
            } else if !w.is_empty() {
                h.anywhere.push(normalize_space(w));
            }
        }
        h
    }

    /// Whether `message` asks for a person.
    pub fn matches(&self, message: &str) -> bool {
        let m = normalize_space(message);
        let bare = m.trim_matches(|c: char| !c.is_alphanumeric());
        if self.whole.iter().any(|w| w == bare) {
            return true;
        }
        self.anywhere.iter().any(|w| {
            if w.chars().any(text::is_cjk) {
                return m.contains(w.as_str());
            }
            m.match_indices(w.as_str()).any(|(i, _)| {
                let before = m[..i].chars().next_back();
                let after = m[i + w.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        })
    }
}

impl Default for HandoffWords {
    fn default() -> Self {
        HandoffWords::new(DEFAULT_HANDOFF_WORDS)
    }
}

/// A secret setting (webhook secret, API key): deserialized from a string, never printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Which engine answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Retrieval,
    Webhook,
    Llm,
}

/// A list given as a YAML list or as one comma-separated string (handy in `KEFU__BOT__PACKS`).
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        One(String),
        Many(Vec<String>),
    }
    Ok(match L::deserialize(d)? {
        L::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        L::Many(v) => v,
    })
}

/// The `bot:` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BotSettings {
    /// `retrieval` (default), `webhook` or `llm`.
    pub engine: EngineKind,
    /// Load packs from this folder instead of the built-in ones.
    pub corpus: Option<PathBuf>,
    /// Packs to load (all when empty).
    #[serde(deserialize_with = "list")]
    pub packs: Vec<String>,
    /// Below this confidence the bot hands over (0..1, default 0.5).
    pub threshold: f32,
    /// Hand-over words; `=word` matches only the whole message.
    #[serde(deserialize_with = "list")]
    pub handoff_words: Vec<String>,
    pub webhook: WebhookSettings,
    pub llm: LlmSettings,
}

impl Default for BotSettings {
    fn default() -> Self {
        BotSettings {
            engine: EngineKind::Retrieval,
            corpus: None,
            packs: Vec::new(),
            threshold: 0.5,
            handoff_words: DEFAULT_HANDOFF_WORDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            webhook: WebhookSettings::default(),
            llm: LlmSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    pub url: String,
    /// Signs each request: `X-Kefu-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub secret: Secret,
    pub timeout_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: String::new(),
            secret: Secret::default(),
            timeout_ms: 3000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    pub api_key: Secret,
    pub timeout_ms: u64,
    /// How many of the best-matching pairs go into the prompt.
    pub context_pairs: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            base_url: String::new(),
            model: String::new(),
            api_key: Secret::default(),
            timeout_ms: 3000,
            context_pairs: 5,
        }
    }
}

impl WebhookSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

impl LlmSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// Builds the configured engine.
pub struct Bot;

impl Bot {
    /// Loads the packs named by the settings: from `corpus` if set, else the built-in ones.
    pub fn load_packs(settings: &BotSettings) -> anyhow::Result<Vec<Pack>> {
        match &settings.corpus {
            Some(dir) => corpus::load_dir(dir, &settings.packs),
            None => corpus::builtin(&settings.packs),
        }
    }

    /// The retrieval engine over the configured packs (also the context source of the LLM
    /// engine). Loading segments every Chinese question, so it also loads jieba's dictionary.
    pub fn retrieval(settings: &BotSettings) -> anyhow::Result<Arc<RetrievalEngine>> {
        if settings.corpus.is_none() {
            // The built-in packs all have Chinese: jieba's dictionary loads on a thread of its
            // own while they are parsed, instead of after, in front of the Chinese questions.
            std::thread::spawn(|| {
                text::jieba();
            });
        }
        let packs = Self::load_packs(settings)?;
        Ok(Arc::new(RetrievalEngine::with_handoff_words(
            packs,
            HandoffWords::new(&settings.handoff_words),
        )))
    }

    /// The engine the settings ask for. Call once at start; the engine is shared (`Arc`).
    pub fn from_settings(settings: &BotSettings) -> anyhow::Result<Arc<dyn BotEngine>> {
        Ok(match settings.engine {
            EngineKind::Retrieval => Self::retrieval(settings)?,
            EngineKind::Webhook => Arc::new(webhook::WebhookEngine::new(
                &settings.webhook,
                HandoffWords::new(&settings.handoff_words),
            )?),
            EngineKind::Llm => Arc::new(llm::LlmEngine::new(
                &settings.llm,
                Self::retrieval(settings)?,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engines_answer_fits_in_a_message() {
        let long = "答".repeat(kefu::validate::MAX_BODY_CHARS + 10);
        let clipped = clip_answer(long);
        assert_eq!(clipped.chars().count(), kefu::validate::MAX_BODY_CHARS);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_answer("short".into()), "short");
    }

    #[test]
    fn handoff_words() {
        let h = HandoffWords::default();
        for m in [
            "转人工",
            "我要转人工！",
            "人工",
            "人工。",
            "I want to talk to a real person",
            "can I speak to someone please",
            "Human",
            "agent!!",
            "connect me with a live agent",
        ] {
            assert!(h.matches(m), "{m}");
        }
        for m in [
            "人工智能课程有吗",
            "Is the HPV vaccine for human papillomavirus?",
            "are you a travel agent?",
            "where is my order",
            "personal data",
        ] {
            assert!(!h.matches(m), "{m}");
        }
        // The widget's button works with any list, even an empty one.
        let none = HandoffWords::new::<&str>(&[]);
        assert!(none.matches("Talk to a person") && none.matches("转人工"));
        assert!(!none.matches("talk to a person about returns"));
        let custom = HandoffWords::new(&["operator", "=help"]);
        assert!(custom.matches("get me an operator"));
        assert!(custom.matches("Help!"));
        assert!(!custom.matches("help with my order"));
    }

    #[test]
    fn urls_in_logs_keep_only_scheme_host_and_path() {
        assert_eq!(
            url_for_log("https://user:pw@hooks.example:8443/bot/in?token=s3cret#x"),
            "https://hooks.example:8443/bot/in"
        );
        assert_eq!(
            url_for_log("http://127.0.0.1/hook?token=abc"),
            "http://127.0.0.1/hook"
        );
        assert_eq!(url_for_log("not a url ?token=abc"), "(not a URL)");
    }

    #[test]
    fn settings_parse_lists_and_hide_secrets() {
        let s: BotSettings = serde_json::from_value(serde_json::json!({
            "packs": "ecommerce, general",
            "threshold": 0.6,
            "webhook": {"url": "http://x", "secret": "s3cret"},
        }))
        .unwrap();
        assert_eq!(s.packs, ["ecommerce", "general"]);
        assert_eq!(s.threshold, 0.6);
        assert_eq!(s.webhook.timeout_ms, 3000);
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!s.handoff_words.is_empty());
    }
}
