//! The bot in the product: each site's bot configuration and engine, the bot's turn after a
//! visitor writes, and the hand-over to people.
//!
//! A site with the bot enabled opens new conversations as `pending` with its welcome message;
//! while pending, every visitor message gets the bot's answer. Hand-over words, an answer that
//! says so, or two low-confidence turns in a row hand the conversation to people: it becomes
//! `open`, is assigned round-robin among online agents, and a system note says who comes next
//! (or, with nobody online, offers to leave contact details).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::bot::corpus::{Pack, PackLang, QaPair};
use crate::bot::{
    self, BotContext, BotEngine, BotSettings, HandoffWords, Intent, LlmSettings, RetrievalEngine,
    Secret, WebhookSettings,
};
use crate::storage::{SiteQa, Storage};

/// A site's bot, as the admin configures it (stored as JSON with the site).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BotConfig {
    pub enabled: bool,
    /// The name visitors see on the bot's messages.
    pub name: String,
    /// `retrieval`, `webhook` or `llm`.
    pub engine: String,
    /// Below this confidence the bot does not answer (0..1).
    pub threshold: f32,
    pub welcome: String,
    pub handoff_words: Vec<String>,
    /// Built-in packs to answer from (all when empty).
    pub packs: Vec<String>,
    pub webhook: WebhookConfig,
    pub llm: LlmConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LlmConfig {
    pub base_url: String,
    pub model: String,
    pub api_key: String,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            enabled: false,
            name: "Assistant".into(),
            engine: "retrieval".into(),
            threshold: BotSettings::default().threshold,
            welcome: "Hi! I'm the assistant. Ask me anything, or tap \"Talk to a person\".".into(),
            handoff_words: bot::DEFAULT_HANDOFF_WORDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            packs: Vec::new(),
            webhook: WebhookConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

impl BotConfig {
    pub fn parse(json: &str) -> BotConfig {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The configuration as the admin UI sees it: secrets blanked.
    pub fn redacted(&self) -> BotConfig {
        let mut c = self.clone();
        c.webhook.secret.clear();
        c.llm.api_key.clear();
        c
    }

    /// Checks an update from the admin UI; blank secrets keep the stored ones.
    pub fn merge_update(&self, mut new: BotConfig) -> Result<BotConfig, String> {
        if !(0.0..=1.0).contains(&new.threshold) {
            return Err(format!(
                "threshold must be between 0 and 1, got {}",
                new.threshold
            ));
        }
        if !["retrieval", "webhook", "llm"].contains(&new.engine.as_str()) {
            return Err(format!(
                "engine must be retrieval, webhook or llm, got {:?}",
                new.engine
            ));
        }
        if new.name.trim().is_empty() || new.name.chars().count() > 60 {
            return Err("name must be 1 to 60 characters".into());
        }
        if new.welcome.chars().count() > 2000 {
            return Err("welcome must be at most 2000 characters".into());
        }
        let names = bot::corpus::builtin_names();
        if let Some(p) = new.packs.iter().find(|p| !names.contains(&p.as_str())) {
            return Err(format!(
                "no built-in pack {p:?} (available: {})",
                names.join(", ")
            ));
        }
        for url in [&new.webhook.url, &new.llm.base_url] {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{url:?} is not an http(s) URL"));
            }
        }
        if new.webhook.secret.is_empty() {
            new.webhook.secret = self.webhook.secret.clone();
        }
        if new.llm.api_key.is_empty() {
            new.llm.api_key = self.llm.api_key.clone();
        }
        new.handoff_words.retain(|w| !w.trim().is_empty());
        Ok(new)
    }
}

/// A site's bot, ready to answer.
pub struct SiteBot {
    pub config: BotConfig,
    pub engine: Arc<dyn BotEngine>,
    pub handoff: HandoffWords,
}

impl SiteBot {
    pub fn context(&self, conversation_id: Option<&str>) -> BotContext {
        BotContext {
            conversation_id: conversation_id.map(str::to_owned),
            // The engine is built over this site's packs only.
            packs: Vec::new(),
            threshold: self.config.threshold,
        }
    }
}

/// What the bot decided about one visitor message.
pub struct Turn {
    pub intent: Intent,
    pub text: String,
    pub quick_replies: Vec<String>,
    /// Hand over now (after `text`, if any).
    pub handoff: bool,
    /// The bot did not understand (counts toward the two-strikes rule).
    pub low: bool,
}

/// The pack name of a site's own pairs.
pub const SITE_PACK: &str = "site";

pub struct Assistant {
    defaults: BotSettings,
    builtin: OnceLock<Vec<Pack>>,
    /// The built-in packs indexed once per selection of packs (sorted names, empty for all):
    /// every site with that selection searches the same index (see `build`), which is dropped
    /// with the last site that uses it.
    shared: Mutex<HashMap<Vec<String>, Weak<RetrievalEngine>>>,
    sites: RwLock<HashMap<String, Arc<SiteBot>>>,
    /// Sites known to have the bot off: their messages skip the bot without a lookup.
    off: RwLock<std::collections::HashSet<String>>,
    low_turns: Mutex<HashMap<String, u8>>,
}

impl Assistant {
    pub fn new(defaults: BotSettings) -> Self {
        Self {
            defaults,
            builtin: OnceLock::new(),
            shared: Mutex::new(HashMap::new()),
            sites: RwLock::new(HashMap::new()),
            off: RwLock::new(Default::default()),
            low_turns: Mutex::new(HashMap::new()),
        }
    }

    /// The built-in packs (or the configured corpus folder), parsed once.
    pub fn packs(&self) -> &[Pack] {
        self.builtin.get_or_init(|| {
            bot::Bot::load_packs(&BotSettings {
                packs: Vec::new(),
                ..self.defaults.clone()
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot load the bot's packs");
                Vec::new()
            })
        })
    }

    /// Forgets a site's engine after its configuration or pairs changed.
    pub fn invalidate(&self, site_id: &str) {
        self.sites.write().remove(site_id);
        self.off.write().remove(site_id);
    }

    /// The site's bot if it is enabled.
    pub async fn enabled_for(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        site_id: &str,
    ) -> Option<Arc<SiteBot>> {
        if self.off.read().contains(site_id) {
            return None;
        }
        if let Some(bot) = self.sites.read().get(site_id) {
            return bot.config.enabled.then(|| bot.clone());
        }
        // Building an engine is costly: only for sites that have the bot on.
        let site = storage.site(site_id).await.ok()??;
        if !BotConfig::parse(&site.bot).enabled {
            self.off.write().insert(site_id.to_owned());
            return None;
        }
        match self.for_site(storage, site_id).await {
            Ok(bot) => bot.config.enabled.then_some(bot),
            Err(e) => {
                tracing::error!(error = %e, site = site_id, "the bot could not start");
                None
            }
        }
    }

    /// The site's bot, built on first use (enabled or not: the admin's "try it" uses it too).
    pub async fn for_site(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        site_id: &str,
    ) -> anyhow::Result<Arc<SiteBot>> {
        if let Some(bot) = self.sites.read().get(site_id) {
            return Ok(bot.clone());
        }
        let site = storage
            .site(site_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no site {site_id}"))?;
        let config = BotConfig::parse(&site.bot);
        let own = storage.qa_list(site_id).await?;
        let this = self.clone();
        let cfg = config.clone();
        let bot = tokio::task::spawn_blocking(move || this.build(cfg, own)).await??;
        let bot = Arc::new(bot);
        self.sites.write().insert(site_id.to_owned(), bot.clone());
        Ok(bot)
    }

    /// Indexes of built-in packs some site still uses.
    #[cfg(test)]
    fn live_indexes(&self) -> usize {
        self.shared
            .lock()
            .values()
            .filter(|index| index.strong_count() > 0)
            .count()
    }

    /// Builds a site's engine: only the site's own pairs are indexed here; the built-in packs
    /// it selected are searched in the one index all sites share.
    fn build(&self, config: BotConfig, own: Vec<SiteQa>) -> anyhow::Result<SiteBot> {
        let mut selection = config.packs.clone();
        selection.sort();
        selection.dedup();
        // Held while indexing: two sites with one selection wait for one index.
        let mut indexes = self.shared.lock();
        indexes.retain(|_, index| index.strong_count() > 0);
        let shared = match indexes.get(&selection).and_then(Weak::upgrade) {
            Some(index) => index,
            None => {
                let packs = self
                    .packs()
                    .iter()
                    .filter(|p| selection.is_empty() || selection.contains(&p.name))
                    .cloned()
                    .collect();
                let index = Arc::new(RetrievalEngine::load(packs));
                indexes.insert(selection, Arc::downgrade(&index));
                index
            }
        };
        drop(indexes);
        let own = if own.is_empty() {
            Vec::new()
        } else {
            vec![site_pack(own)]
        };
        let handoff = HandoffWords::new(&config.handoff_words);
        let retrieval = Arc::new(RetrievalEngine::layered(shared, own, handoff.clone()));
        let engine: Arc<dyn BotEngine> = match config.engine.as_str() {
            "webhook" => Arc::new(bot::webhook::WebhookEngine::new(
                &WebhookSettings {
                    url: config.webhook.url.clone(),
                    secret: Secret::new(config.webhook.secret.clone()),
                    ..self.defaults.webhook.clone()
                },
                handoff.clone(),
            )?),
            "llm" => Arc::new(bot::llm::LlmEngine::new(
                &LlmSettings {
                    base_url: config.llm.base_url.clone(),
                    model: config.llm.model.clone(),
                    api_key: Secret::new(config.llm.api_key.clone()),
                    ..self.defaults.llm.clone()
                },
                retrieval,
            )?),
            _ => retrieval,
        };
        Ok(SiteBot {
            config,
            engine,
            handoff,
        })
    }

    /// The bot's answer to one visitor message, with the two-strikes rule applied.
    pub async fn turn(&self, bot: &SiteBot, conversation_id: &str, text: &str) -> Turn {
        let ctx = bot.context(Some(conversation_id));
        let intent = bot.engine.understand(&ctx, text).await;
        let reply = bot.engine.respond(&ctx, &intent).await;
        let asked = intent.name == Intent::HANDOFF;
        let low = intent.name == Intent::UNKNOWN;
        let strikes = {
            let mut map = self.low_turns.lock();
            if low {
                let n = map.entry(conversation_id.to_owned()).or_insert(0);
                *n += 1;
                *n
            } else {
                map.remove(conversation_id);
                0
            }
        };
        if low && strikes < 2 {
            return Turn {
                text: rephrase(&intent.lang).to_owned(),
                quick_replies: vec![person_button(&intent.lang).to_owned()],
                handoff: false,
                low,
                intent,
            };
        }
        if low || asked || reply.handoff || intent.handoff {
            self.low_turns.lock().remove(conversation_id);
        }
        Turn {
            // The generic "let me get a person" text is replaced by the hand-over note.
            text: if asked || low {
                String::new()
            } else {
                reply.text
            },
            quick_replies: reply.quick_replies,
            handoff: low || asked || reply.handoff || intent.handoff,
            low,
            intent,
        }
    }
}

fn site_pack(own: Vec<SiteQa>) -> Pack {
    let mut by_lang: HashMap<String, Vec<QaPair>> = HashMap::new();
    for qa in own {
        by_lang.entry(qa.lang.clone()).or_default().push(QaPair {
            id: format!("{SITE_PACK}.{}", qa.id),
            questions: qa.questions,
            answer: qa.answer,
            entities: Vec::new(),
            quick_replies: qa.quick_replies,
            handoff: qa.handoff,
            decline: false,
        });
    }
    Pack {
        name: SITE_PACK.into(),
        version: "1".into(),
        title: Default::default(),
        description: "The site's own pairs".into(),
        languages: by_lang
            .into_iter()
            .map(|(lang, qa)| PackLang {
                lang,
                synonyms: Vec::new(),
                qa,
            })
            .collect(),
    }
}

fn zh(lang: &str) -> bool {
    lang.starts_with("zh")
}

pub fn rephrase(lang: &str) -> &'static str {
    if zh(lang) {
        "抱歉，我没太明白。能换个说法再问一次吗？也可以点「转人工」联系客服。"
    } else {
        "Sorry, I'm not sure I understood. Could you put it another way? Or tap \"Talk to a person\"."
    }
}

pub fn person_button(lang: &str) -> &'static str {
    if zh(lang) {
        "转人工"
    } else {
        "Talk to a person"
    }
}

/// The note posted when the conversation goes to people.
pub fn handoff_note(lang: &str, online: bool) -> &'static str {
    match (zh(lang), online) {
        (true, true) => "正在为您转接人工客服，请稍候……",
        (true, false) => {
            "现在没有客服在线。请留下您的问题和联系方式（邮箱或手机），我们会尽快回复您。"
        }
        (false, true) => "Connecting you to a person. Someone will be with you shortly.",
        (false, false) => {
            "No one is online right now. Leave your question and your email or phone number, and we'll get back to you."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_with_the_same_packs_share_one_index_while_they_use_it() {
        let assistant = Assistant::new(BotSettings::default());
        let config = BotConfig {
            enabled: true,
            packs: vec!["general".into()],
            ..BotConfig::default()
        };
        let own = SiteQa {
            id: "gift-wrap".into(),
            lang: "en".into(),
            questions: vec!["Do you gift wrap?".into(), "can you wrap my present".into()],
            answer: "Gift wrapping is free.".into(),
            quick_replies: vec![],
            handoff: false,
        };
        let plain = assistant.build(config.clone(), vec![]).unwrap();
        let with_own = assistant.build(config.clone(), vec![own]).unwrap();
        assert_eq!(assistant.live_indexes(), 1);
        let ctx = with_own.context(None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let intent = rt.block_on(with_own.engine.understand(&ctx, "could you gift wrap it?"));
        assert_eq!(intent.name, "site.gift-wrap");
        let intent = rt.block_on(plain.engine.understand(&ctx, "could you gift wrap it?"));
        assert_ne!(
            intent.name, "site.gift-wrap",
            "the other site does not see it"
        );
        drop((plain, with_own));
        assert_eq!(assistant.live_indexes(), 0);
    }
}
