//! The bot in the product: each site's bot configuration and engine, the bot's turn after a
//! visitor writes, and the hand-over to people.
//!
//! A site with the bot enabled opens new conversations as `pending` with its welcome message;
//! while pending, every visitor message gets the bot's answer. Hand-over words, an answer that
//! says so, or two low-confidence turns in a row hand the conversation to people: it becomes
//! `open`, is assigned round-robin among online agents, and a system note says who comes next
//! (or, with nobody online, offers to leave contact details).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The built-in packs it searches, as the shared indexes are keyed: sorted, each once
    /// (empty for all).
    pub fn selection(&self) -> Vec<String> {
        let mut packs = self.packs.clone();
        packs.sort();
        packs.dedup();
        packs
    }

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

    /// Checks an update from the admin UI. A blank secret keeps the stored one only while the
    /// URL it is sent to stays the same: the UI never sees secrets (see [`Self::redacted`]), so
    /// without this rule an admin session could point the URL at another host and have the
    /// stored key sent there.
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
        new.check_engine()?;
        new.webhook.secret = kept_secret(
            (&self.webhook.url, &self.webhook.secret),
            (&new.webhook.url, std::mem::take(&mut new.webhook.secret)),
            "webhook.secret: the webhook secret must be entered again because the webhook URL \
             changed",
        )?;
        new.llm.api_key = kept_secret(
            (&self.llm.base_url, &self.llm.api_key),
            (&new.llm.base_url, std::mem::take(&mut new.llm.api_key)),
            "llm.api_key: the API key must be entered again because the base URL changed",
        )?;
        new.handoff_words.retain(|w| !w.trim().is_empty());
        if new.handoff_words.len() > 200 {
            return Err(format!(
                "at most 200 hand-over words, got {}",
                new.handoff_words.len()
            ));
        }
        if let Some(w) = new.handoff_words.iter().find(|w| w.chars().count() > 60) {
            return Err(format!(
                "a hand-over word may have at most 60 characters: {w:?}"
            ));
        }
        Ok(new)
    }

    /// The settings the chosen engine cannot start without, the first one missing named.
    pub fn check_engine(&self) -> Result<(), String> {
        let missing = match self.engine.as_str() {
            "webhook" if self.webhook.url.trim().is_empty() => Some("webhook.url"),
            "llm" if self.llm.base_url.trim().is_empty() => Some("llm.base_url"),
            "llm" if self.llm.model.trim().is_empty() => Some("llm.model"),
            _ => None,
        };
        match missing {
            Some(field) => Err(format!(
                "the {} engine needs {field}: it is empty",
                self.engine
            )),
            None => Ok(()),
        }
    }
}

/// The secret to store: the one given, else the stored one if it goes to the same URL, else
/// none if the URL was cleared; a stored secret is never carried over to another URL.
fn kept_secret(
    (old_url, old_secret): (&str, &str),
    (new_url, new_secret): (&str, String),
    changed: &str,
) -> Result<String, String> {
    if !new_secret.is_empty() {
        Ok(new_secret)
    } else if old_secret.is_empty() || new_url == old_url {
        Ok(old_secret.to_owned())
    } else if new_url.trim().is_empty() {
        // Nowhere to send it any more: forgotten.
        Ok(String::new())
    } else {
        Err(changed.to_owned())
    }
}

/// A shared index of built-in packs held for a site across an edit (see `Assistant::retired`).
struct Kept {
    /// As [`BotConfig::selection`] gives them.
    packs: Vec<String>,
    _index: Arc<RetrievalEngine>,
}

/// A site's bot, ready to answer.
pub struct SiteBot {
    pub config: BotConfig,
    pub engine: Arc<dyn BotEngine>,
    pub handoff: HandoffWords,
    /// The index of built-in packs it searches (shared by the sites of one selection); empty
    /// for a webhook engine, which searches none (`build` makes it no index).
    builtin_index: Weak<RetrievalEngine>,
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

/// A site's engine as last built from its configuration: ready, or the reason it could not
/// start. A failure is kept like a success, so a site whose engine cannot start is not rebuilt
/// (its packs indexed again) on every visitor message, only once its configuration changes.
#[derive(Clone)]
enum Built {
    Ready(Arc<SiteBot>),
    Failed(Arc<str>),
}

/// At most this many conversations are remembered as having had a low turn last.
const LOW_TURNS_CAP: usize = 100_000;

/// Conversations whose last bot turn was not understood, with the count of such turns in a row
/// (the two-strikes rule). Bounded: an entry goes when its conversation gets an answer, is
/// handed over or resolved ([`Assistant::forget`]); one whose conversation just went quiet stays
/// until the map holds `cap` entries, and then the oldest go first.
struct LowTurns {
    /// Conversation -> (low turns in a row, stamp of the last one).
    count: HashMap<String, (u8, u64)>,
    /// Stamp -> conversation, oldest first: what goes when the map is full.
    order: BTreeMap<u64, String>,
    next: u64,
    cap: usize,
}

impl LowTurns {
    fn new(cap: usize) -> Self {
        LowTurns {
            count: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// Records a low turn; returns how many in a row the conversation has had.
    fn strike(&mut self, conversation_id: &str) -> u8 {
        let stamp = self.next;
        self.next += 1;
        let n = match self.count.get_mut(conversation_id) {
            Some((n, at)) => {
                self.order.remove(at);
                *n = n.saturating_add(1);
                *at = stamp;
                *n
            }
            None => {
                self.count.insert(conversation_id.to_owned(), (1, stamp));
                1
            }
        };
        self.order.insert(stamp, conversation_id.to_owned());
        while self.count.len() > self.cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.count.remove(&oldest);
        }
        n
    }

    fn clear(&mut self, conversation_id: &str) {
        if let Some((_, at)) = self.count.remove(conversation_id) {
            self.order.remove(&at);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.count.len()
    }
}

pub struct Assistant {
    defaults: BotSettings,
    builtin: OnceLock<Vec<Pack>>,
    /// The built-in packs indexed once per selection of packs (sorted names, empty for all):
    /// every site with that selection searches the same index (see `build`), which is dropped
    /// with the last site that uses it.
    shared: Mutex<HashMap<Vec<String>, Weak<RetrievalEngine>>>,
    sites: RwLock<HashMap<String, Built>>,
    /// The shared index a site's engine searched before its last
    /// `invalidate`, held until the site's next engine is built, so that editing a pair
    /// re-indexes the site's own pairs, not the built-in packs (about a second and 250 MB at
    /// the peak) when no other site holds them.
    retired: Mutex<HashMap<String, Kept>>,
    /// Bumped by every `invalidate`: a build that started before keeps its result to itself
    /// instead of caching what an older configuration gave.
    generation: AtomicU64,
    /// Sites known to have the bot off: their messages skip the bot without a lookup.
    off: RwLock<std::collections::HashSet<String>>,
    low_turns: Mutex<LowTurns>,
    /// Engines built (or tried), and indexes of built-in packs built, for tests.
    #[cfg(test)]
    builds: std::sync::atomic::AtomicUsize,
    #[cfg(test)]
    indexed: std::sync::atomic::AtomicUsize,
}

impl Assistant {
    pub fn new(defaults: BotSettings) -> Self {
        Self {
            defaults,
            builtin: OnceLock::new(),
            shared: Mutex::new(HashMap::new()),
            sites: RwLock::new(HashMap::new()),
            retired: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            off: RwLock::new(Default::default()),
            low_turns: Mutex::new(LowTurns::new(LOW_TURNS_CAP)),
            #[cfg(test)]
            builds: Default::default(),
            #[cfg(test)]
            indexed: Default::default(),
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

    /// Forgets a site's engine (or why it could not start) after its configuration or pairs
    /// changed.
    pub fn invalidate(&self, site_id: &str) {
        let mut sites = self.sites.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let old = sites.remove(site_id);
        drop(sites);
        self.off.write().remove(site_id);
        if let Some(Built::Ready(bot)) = old
            && let Some(index) = bot.builtin_index.upgrade()
        {
            let kept = Kept {
                packs: bot.config.selection(),
                _index: index,
            };
            let older = self.retired.lock().insert(site_id.to_owned(), kept);
            drop(older);
        }
    }

    /// Lets go of the index `invalidate` kept for `site_id` (its successor is built, or the
    /// bot is off); dropped outside the lock.
    fn retire(&self, site_id: &str) {
        let old = self.retired.lock().remove(site_id);
        drop(old);
    }

    /// Forgets a conversation's low turns: it was handed over or resolved.
    pub fn forget(&self, conversation_id: &str) {
        self.low_turns.lock().clear(conversation_id);
    }

    /// The site's bot if it is enabled and could start.
    pub async fn enabled_for(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        site_id: &str,
    ) -> Option<Arc<SiteBot>> {
        if self.off.read().contains(site_id) {
            return None;
        }
        match self.sites.read().get(site_id) {
            Some(Built::Ready(bot)) => return bot.config.enabled.then(|| bot.clone()),
            // Logged once, when it failed.
            Some(Built::Failed(_)) => return None,
            None => {}
        }
        // Building an engine is costly: only for sites that have the bot on.
        let site = storage.site(site_id).await.ok()??;
        if !BotConfig::parse(&site.bot).enabled {
            self.off.write().insert(site_id.to_owned());
            self.retire(site_id);
            return None;
        }
        match self.load(storage, site_id).await {
            Ok(Built::Ready(bot)) => bot.config.enabled.then_some(bot),
            Ok(Built::Failed(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, site = site_id, "the bot's configuration could not be read");
                None
            }
        }
    }

    /// The site's bot, built on first use (enabled or not: the admin's "try it" uses it too),
    /// or why it cannot start.
    pub async fn for_site(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        site_id: &str,
    ) -> anyhow::Result<Arc<SiteBot>> {
        match self.load(storage, site_id).await? {
            Built::Ready(bot) => Ok(bot),
            Built::Failed(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    /// The site's engine from the cache, else built and cached, failure included. `Err` is a
    /// storage error (not cached: the next message tries again).
    async fn load(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        site_id: &str,
    ) -> anyhow::Result<Built> {
        if let Some(built) = self.sites.read().get(site_id) {
            return Ok(built.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let site = storage
            .site(site_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no site {site_id}"))?;
        let config = BotConfig::parse(&site.bot);
        let own = storage.qa_list(site_id).await?;
        // The index kept from before the edit helps only if it holds the same packs;
        // otherwise it goes now, not after the new index is built beside it.
        let same_packs = self
            .retired
            .lock()
            .get(site_id)
            .is_some_and(|kept| kept.packs == config.selection());
        if !same_packs {
            self.retire(site_id);
        }
        let this = self.clone();
        let built = match tokio::task::spawn_blocking(move || this.build(config, own)).await {
            Ok(Ok(bot)) => Built::Ready(Arc::new(bot)),
            Ok(Err(e)) => Built::Failed(format!("{e:#}").into()),
            Err(e) => Built::Failed(format!("building the engine failed: {e}").into()),
        };
        let mut sites = self.sites.write();
        if self.generation.load(Ordering::SeqCst) == generation {
            if let Built::Failed(e) = &built {
                // Once per configuration: the failure is cached with it.
                tracing::error!(error = %e, site = site_id, "the bot could not start");
            }
            sites.insert(site_id.to_owned(), built.clone());
        }
        drop(sites);
        self.retire(site_id);
        Ok(built)
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
        #[cfg(test)]
        self.builds.fetch_add(1, Ordering::SeqCst);
        // Before indexing anything: a configuration stored before it was checked on saving.
        config.check_engine().map_err(anyhow::Error::msg)?;
        let handoff = HandoffWords::new(&config.handoff_words);
        if config.engine == "webhook" {
            // The webhook answers from its own knowledge: nothing here to index or search.
            let engine = Arc::new(bot::webhook::WebhookEngine::new(
                &WebhookSettings {
                    url: config.webhook.url.clone(),
                    secret: Secret::new(config.webhook.secret.clone()),
                    ..self.defaults.webhook.clone()
                },
                handoff.clone(),
            )?);
            return Ok(SiteBot {
                config,
                engine,
                handoff,
                builtin_index: Weak::new(),
            });
        }
        let selection = config.selection();
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
                #[cfg(test)]
                self.indexed.fetch_add(1, Ordering::SeqCst);
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
        let builtin_index = Arc::downgrade(&shared);
        let retrieval = Arc::new(RetrievalEngine::layered(shared, own, handoff.clone()));
        let engine: Arc<dyn BotEngine> = match config.engine.as_str() {
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
            builtin_index,
        })
    }

    /// The bot's answer to one visitor message, with the two-strikes rule applied.
    pub async fn turn(&self, bot: &SiteBot, conversation_id: &str, text: &str) -> Turn {
        let ctx = bot.context(Some(conversation_id));
        let intent = bot.engine.understand(&ctx, text).await;
        let reply = bot.engine.respond(&ctx, &intent).await;
        let asked = intent.name == Intent::HANDOFF;
        // Not answered here on purpose: handed over at once, and not kept for the admin as a
        // question the bot could not answer (the admin, or the pack, said so).
        let declined = intent.declined;
        let low = intent.name == Intent::UNKNOWN && !declined;
        let strikes = {
            let mut low_turns = self.low_turns.lock();
            if low {
                low_turns.strike(conversation_id)
            } else {
                low_turns.clear(conversation_id);
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
        let handoff = low || asked || declined || reply.handoff || intent.handoff;
        if handoff {
            self.forget(conversation_id);
        }
        Turn {
            // The generic "let me get a person" text is replaced by the hand-over note.
            text: if asked || low || declined {
                String::new()
            } else {
                reply.text
            },
            quick_replies: reply.quick_replies,
            handoff,
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
            entities: qa.entities,
            quick_replies: qa.quick_replies,
            handoff: qa.handoff,
            decline: qa.decline,
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

    /// A site's own pair about gift wrapping (`id` empty: a new one, when stored).
    fn gift_wrap(id: &str) -> SiteQa {
        SiteQa {
            id: id.into(),
            lang: "en".into(),
            questions: vec!["Do you gift wrap?".into(), "can you wrap my present".into()],
            answer: "Gift wrapping is free.".into(),
            quick_replies: vec![],
            handoff: false,
            decline: false,
            entities: vec![],
        }
    }

    #[test]
    fn sites_with_the_same_packs_share_one_index_while_they_use_it() {
        let assistant = Assistant::new(BotSettings::default());
        let config = BotConfig {
            enabled: true,
            packs: vec!["general".into()],
            ..BotConfig::default()
        };
        let own = gift_wrap("gift-wrap");
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

    fn llm_config(base_url: &str, api_key: &str) -> BotConfig {
        BotConfig {
            engine: "llm".into(),
            llm: LlmConfig {
                base_url: base_url.into(),
                model: "tiny".into(),
                api_key: api_key.into(),
            },
            ..BotConfig::default()
        }
    }

    #[test]
    fn an_engine_without_its_endpoint_is_refused_naming_the_field() {
        let stored = BotConfig::default();
        let mut no_model = llm_config("http://llm.example/v1", "k");
        no_model.llm.model = " ".into();
        let mut no_base = llm_config("", "k");
        no_base.llm.model = "tiny".into();
        let no_url = BotConfig {
            engine: "webhook".into(),
            ..BotConfig::default()
        };
        for (config, field) in [
            (no_model, "llm.model"),
            (no_base, "llm.base_url"),
            (no_url, "webhook.url"),
        ] {
            let e = stored.merge_update(config).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        // Switching to retrieval leaves the others' settings free to be empty.
        assert!(stored.merge_update(BotConfig::default()).is_ok());
    }

    #[test]
    fn a_stored_secret_stays_with_its_url() {
        let stored = llm_config("https://llm.example/v1", "sk-stored");
        stored.merge_update(stored.clone()).unwrap();
        // The UI sends the key back blank (it only ever sees it redacted).
        let same = stored
            .merge_update(llm_config("https://llm.example/v1", ""))
            .unwrap();
        assert_eq!(same.llm.api_key, "sk-stored");
        let e = stored
            .merge_update(llm_config("https://evil.example/v1", ""))
            .unwrap_err();
        assert!(
            e.contains("API key") && e.contains("entered again") && e.contains("base URL changed"),
            "{e}"
        );
        let moved = stored
            .merge_update(llm_config("https://other.example/v1", "sk-new"))
            .unwrap();
        assert_eq!(moved.llm.api_key, "sk-new");
        // Back to retrieval with the endpoint cleared: the key is forgotten, not carried over.
        let cleared = stored.merge_update(BotConfig::default()).unwrap();
        assert_eq!(cleared.llm.api_key, "");

        let hook = |url: &str, secret: &str| BotConfig {
            engine: "webhook".into(),
            webhook: WebhookConfig {
                url: url.into(),
                secret: secret.into(),
            },
            ..BotConfig::default()
        };
        let stored = hook("https://hooks.example/bot", "s3cret");
        let same = stored
            .merge_update(hook("https://hooks.example/bot", ""))
            .unwrap();
        assert_eq!(same.webhook.secret, "s3cret");
        let e = stored
            .merge_update(hook("https://hooks.example/bot?to=elsewhere", ""))
            .unwrap_err();
        assert!(
            e.contains("webhook secret") && e.contains("webhook URL changed"),
            "{e}"
        );
    }

    #[test]
    fn low_turns_are_bounded_oldest_out_first() {
        let mut low = LowTurns::new(3);
        assert_eq!(low.strike("a"), 1);
        assert_eq!(low.strike("b"), 1);
        assert_eq!(low.strike("c"), 1);
        assert_eq!(low.strike("a"), 2, "a is now the newest");
        assert_eq!(low.strike("d"), 1);
        assert_eq!(low.len(), 3);
        assert_eq!(low.strike("b"), 1, "b, the oldest, went to make room for d");
        low.clear("a");
        low.clear("never-seen");
        assert_eq!(low.len(), 2);
        assert_eq!(low.order.len(), 2);
        assert_eq!(low.strike("a"), 1);
    }

    /// A fresh SQLite database (in the returned folder) with one site.
    async fn shop() -> (tempfile::TempDir, Arc<dyn Storage>, crate::storage::Site) {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::config::Settings::default();
        settings.storage.url = format!("sqlite://{}", dir.path().join("k.db").display());
        let storage = crate::storage::connect(&settings.storage).await.unwrap();
        let site = storage.create_site("Shop", &[]).await.unwrap();
        (dir, storage, site)
    }

    #[tokio::test]
    async fn a_bot_that_cannot_start_is_tried_once_per_configuration() {
        let (_dir, storage, site) = shop().await;
        // Stored as an older version could (merge_update now refuses it): no model.
        let mut broken = llm_config("http://127.0.0.1:9/v1", "");
        broken.enabled = true;
        broken.packs = vec!["general".into()];
        broken.llm.model.clear();
        let json = serde_json::to_string(&broken).unwrap();
        storage.set_site_bot(&site.id, &json).await.unwrap();

        let assistant = Arc::new(Assistant::new(BotSettings::default()));
        for _ in 0..3 {
            assert!(assistant.enabled_for(&storage, &site.id).await.is_none());
        }
        let e = assistant.for_site(&storage, &site.id).await.err().unwrap();
        assert!(e.to_string().contains("llm.model"), "{e}");
        assert_eq!(assistant.builds.load(Ordering::SeqCst), 1);
        assert_eq!(assistant.live_indexes(), 0, "no packs indexed for it");

        // Fixed by the admin: the next message builds it again.
        broken.engine = "retrieval".into();
        let json = serde_json::to_string(&broken).unwrap();
        storage.set_site_bot(&site.id, &json).await.unwrap();
        assistant.invalidate(&site.id);
        assert!(assistant.enabled_for(&storage, &site.id).await.is_some());
        assert!(assistant.enabled_for(&storage, &site.id).await.is_some());
        assert_eq!(assistant.builds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_webhook_site_indexes_no_packs() {
        let (_dir, storage, site) = shop().await;
        let config = BotConfig {
            enabled: true,
            engine: "webhook".into(),
            webhook: WebhookConfig {
                url: "http://127.0.0.1:9/bot".into(),
                secret: "s3cret".into(),
            },
            ..BotConfig::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        storage.set_site_bot(&site.id, &json).await.unwrap();
        storage
            .qa_save_all(&site.id, vec![gift_wrap("")])
            .await
            .unwrap();
        let assistant = Arc::new(Assistant::new(BotSettings::default()));
        let bot = assistant.enabled_for(&storage, &site.id).await.unwrap();
        assert_eq!(assistant.builds.load(Ordering::SeqCst), 1);
        assert_eq!(assistant.indexed.load(Ordering::SeqCst), 0);
        assert_eq!(assistant.live_indexes(), 0);
        // Its hand-over words still work without a search.
        let ctx = bot.context(None);
        let intent = bot.engine.understand(&ctx, "转人工").await;
        assert_eq!(intent.name, Intent::HANDOFF);
    }

    #[tokio::test]
    async fn editing_a_sites_pairs_does_not_index_the_built_in_packs_again() {
        let (_dir, storage, site) = shop().await;
        let mut config = BotConfig {
            enabled: true,
            packs: vec!["general".into()],
            ..BotConfig::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        storage.set_site_bot(&site.id, &json).await.unwrap();
        let assistant = Arc::new(Assistant::new(BotSettings::default()));
        let ask = |bot: Arc<SiteBot>, text: &'static str| async move {
            let ctx = bot.context(None);
            bot.engine.understand(&ctx, text).await.name
        };

        let bot = assistant.enabled_for(&storage, &site.id).await.unwrap();
        let before = ask(bot.clone(), "could you gift wrap it?").await;
        assert!(!before.starts_with(SITE_PACK), "{before}");
        drop(bot);
        // The only site using the index: an edit must not throw it away.
        let saved = storage
            .qa_save_all(&site.id, vec![gift_wrap("")])
            .await
            .unwrap();
        let intent = format!("{SITE_PACK}.{}", saved[0].id);
        assistant.invalidate(&site.id);
        let bot = assistant.enabled_for(&storage, &site.id).await.unwrap();
        assert_eq!(ask(bot.clone(), "could you gift wrap it?").await, intent);
        assert_eq!(assistant.builds.load(Ordering::SeqCst), 2);
        assert_eq!(
            assistant.indexed.load(Ordering::SeqCst),
            1,
            "packs indexed once"
        );
        drop(bot);

        // Turned off: nothing is held for it any more.
        config.enabled = false;
        let json = serde_json::to_string(&config).unwrap();
        storage.set_site_bot(&site.id, &json).await.unwrap();
        assistant.invalidate(&site.id);
        assert!(assistant.enabled_for(&storage, &site.id).await.is_none());
        assert_eq!(assistant.live_indexes(), 0);
    }
}
