//! The bot's admin page (`/console/bot`, admins only): per site, the bot's settings, a "try it"
//! box, the site's QA pairs (search, add, edit, delete, import) and the questions the bot could
//! not answer.
//!
//! Each card is a component keyed by the chosen site, so switching sites starts it afresh. All
//! requests go through [`call`], which exists on the server too (it is never called there: the
//! server renders the console as a spinner). API errors (`{"error": {"message"}}`) are shown as
//! they come; every body, question and answer is rendered as text.

use std::future::Future;

use kefu::model::AgentInfo;
use leptos::html;
use leptos::prelude::*;
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::i18n::{I18n, K, Lang};

// ---------------------------------------------------------------------------------------------
// Wire types (see the admin endpoints in docs/protocol.md). Decoding is lenient: `null` or a
// missing field reads as empty, and fields this page does not know are kept and sent back.

/// `null` reads as the default.
fn lenient<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Site {
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient")]
    pub site_key: String,
}

#[derive(Deserialize)]
struct SitesResponse {
    sites: Vec<Site>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    #[serde(default, deserialize_with = "lenient")]
    pub url: String,
    /// Comes back empty; sent empty it keeps the stored secret.
    #[serde(default, deserialize_with = "lenient")]
    pub secret: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    #[serde(default, deserialize_with = "lenient")]
    pub base_url: String,
    #[serde(default, deserialize_with = "lenient")]
    pub model: String,
    /// Comes back empty; sent empty it keeps the stored key.
    #[serde(default, deserialize_with = "lenient")]
    pub api_key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotConfig {
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient")]
    pub engine: String,
    #[serde(default, deserialize_with = "lenient")]
    pub threshold: f64,
    #[serde(default, deserialize_with = "lenient")]
    pub welcome: String,
    #[serde(default, deserialize_with = "lenient")]
    pub handoff_words: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub packs: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub webhook: WebhookConfig,
    #[serde(default, deserialize_with = "lenient")]
    pub llm: LlmConfig,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BotResponse {
    bot: BotConfig,
}

/// True when the server says a secret is stored (`<field>_set: true`, should it send one), or,
/// since secrets come back blank, when the engine's address is configured.
fn secret_hint(extra: &Map<String, Value>, flag: &str, address: &str) -> bool {
    match extra.get(flag).and_then(Value::as_bool) {
        Some(set) => set,
        None => !address.trim().is_empty(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PackTitle {
    #[serde(default, deserialize_with = "lenient")]
    pub en: String,
    #[serde(rename = "zh-CN", default, deserialize_with = "lenient")]
    pub zh: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PackInfo {
    pub pack: String,
    #[serde(default, deserialize_with = "lenient")]
    pub title: PackTitle,
    #[serde(default, deserialize_with = "lenient")]
    pub languages: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub qa_pairs: u64,
}

impl PackInfo {
    fn title(&self, lang: Lang) -> String {
        let t = match lang {
            Lang::En => &self.title.en,
            Lang::Zh => &self.title.zh,
        };
        if t.is_empty() {
            self.pack.clone()
        } else {
            t.clone()
        }
    }
}

#[derive(Deserialize)]
struct PacksResponse {
    packs: Vec<PackInfo>,
}

#[derive(Serialize)]
struct TryRequest<'a> {
    text: &'a str,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TryResult {
    #[serde(default, deserialize_with = "lenient")]
    pub intent: String,
    #[serde(default, deserialize_with = "lenient")]
    pub confidence: f64,
    #[serde(default, deserialize_with = "lenient")]
    pub entities: Map<String, Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub answer: String,
    #[serde(default, deserialize_with = "lenient")]
    pub handoff: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub quick_replies: Vec<String>,
    /// Like an example of what is not answered here.
    #[serde(default, deserialize_with = "lenient")]
    pub declined: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QaPair {
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub lang: String,
    #[serde(default, deserialize_with = "lenient")]
    pub questions: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub answer: String,
    #[serde(default, deserialize_with = "lenient")]
    pub quick_replies: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub handoff: bool,
    /// An example of what is not answered.
    #[serde(default, deserialize_with = "lenient")]
    pub decline: bool,
    /// Entity kinds it lists (kept as they are when the pair is edited).
    #[serde(default, deserialize_with = "lenient")]
    pub entities: Vec<String>,
    /// `site`, or `pack:<name>` (read-only).
    #[serde(default, deserialize_with = "lenient")]
    pub source: String,
}

impl QaPair {
    fn editable(&self) -> bool {
        self.source.is_empty() || self.source == "site"
    }
}

#[derive(Deserialize)]
struct QaListResponse {
    qa: Vec<QaPair>,
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Deserialize)]
struct QaResponse {
    #[allow(dead_code)]
    qa: QaPair,
}

/// A QA pair as the add and edit forms send it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct QaInput {
    lang: String,
    questions: Vec<String>,
    answer: String,
    quick_replies: Vec<String>,
    handoff: bool,
    decline: bool,
    entities: Vec<String>,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Deserialize)]
struct ImportResponse {
    imported: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Unanswered {
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub question: String,
    #[serde(default, deserialize_with = "lenient")]
    pub conversation_id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: String,
}

#[derive(Deserialize)]
struct UnansweredResponse {
    items: Vec<Unanswered>,
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One line per entry, blank lines dropped.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The language a question is probably in: Chinese if it has any CJK character.
pub fn guess_lang(text: &str) -> &'static str {
    if text
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c))
    {
        "zh-CN"
    } else {
        "en"
    }
}

/// The content type of an import file: JSON for `.json` names or content that starts with `{`,
/// otherwise CSV.
pub fn import_type(name: &str, text: &str) -> &'static str {
    if name.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('{') {
        "application/json"
    } else {
        "text/csv"
    }
}

/// A JSON body.
fn json(body: &impl Serialize) -> Option<(&'static str, String)> {
    Some((
        "application/json",
        serde_json::to_string(body).unwrap_or_default(),
    ))
}

/// A request; the answer's body as text (empty for a `204`), or the error to show.
async fn call_text(
    method: &'static str,
    url: String,
    body: Option<(&'static str, String)>,
) -> Result<String, String> {
    #[cfg(feature = "hydrate")]
    {
        crate::browser::request_text(method, &url, body, None)
            .await
            .map_err(|e| {
                if e.message.is_empty() {
                    format!("HTTP {}", e.status)
                } else {
                    e.message
                }
            })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, url, body);
        Err(String::new())
    }
}

/// A request whose answer is JSON.
async fn call<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    body: Option<(&'static str, String)>,
) -> Result<T, String> {
    let text = call_text(method, url, body).await?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn spawn(fut: impl Future<Output = ()> + 'static) {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(fut);
    #[cfg(not(feature = "hydrate"))]
    drop(fut);
}

async fn sleep(ms: u32) {
    #[cfg(feature = "hydrate")]
    crate::browser::sleep_ms(ms).await;
    #[cfg(not(feature = "hydrate"))]
    let _ = ms;
}

/// Runs `f` after `ms` unless `generation` moved on meanwhile (debounce); returns the generation
/// `f` belongs to, for checking again when its answer arrives.
fn debounce<F, Fut>(generation: StoredValue<u64>, ms: u32, f: F)
where
    F: FnOnce(u64) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let g = generation.get_value() + 1;
    generation.set_value(g);
    spawn(async move {
        sleep(ms).await;
        if generation.try_get_value() == Some(g) {
            f(g).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The page.

/// The QA form: a new pair (`id` None), an edit, or a pair for an unanswered question.
#[derive(Debug, Clone, Default, PartialEq)]
struct Draft {
    id: Option<String>,
    lang: String,
    questions: String,
    answer: String,
    quick_replies: String,
    handoff: bool,
    decline: bool,
    entities: Vec<String>,
    /// The unanswered question this pair answers: dismissed once the pair is saved.
    unanswered: Option<String>,
}

#[derive(Clone, Copy)]
struct Admin {
    site: RwSignal<Option<String>>,
    packs: RwSignal<Vec<PackInfo>>,
    /// The QA form, when open.
    editor: RwSignal<Option<Draft>>,
    /// Bumped to fetch the QA list again.
    qa_reload: RwSignal<u64>,
    /// Bumped to fetch the unanswered questions again.
    unanswered_reload: RwSignal<u64>,
}

const CARD: &str = "rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200";
const INPUT: &str = "mt-1 block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm text-slate-900 shadow-sm placeholder:text-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30";
const LABEL: &str = "block text-sm font-medium text-slate-700";
const BUTTON: &str = "rounded-lg bg-indigo-600 px-3 py-2 text-sm font-semibold text-white shadow-sm transition hover:bg-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:opacity-60";
const BUTTON_QUIET: &str = "rounded-lg px-3 py-2 text-sm font-medium text-slate-700 ring-1 ring-slate-300 transition hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500";
/// The badge of a pair or a message the site does not answer (a decline example).
const DECLINED_BADGE: &str =
    "rounded bg-rose-50 px-1.5 py-px text-[11px] font-medium text-rose-700";
const SMALL: &str = "rounded-md px-2 py-1 text-xs font-medium text-slate-600 ring-1 ring-slate-300 transition hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500";

fn error_box(error: RwSignal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.with(Option::is_some)>
            <p role="alert" data-testid="bot-error" class="mt-3 rounded-lg bg-red-50 px-3 py-2 text-sm text-red-700">
                {move || error.get().unwrap_or_default()}
            </p>
        </Show>
    }
}

/// The whole page. `me` decides whether it shows anything: the server refuses non-admins anyway.
#[component]
pub fn BotAdmin(me: RwSignal<Option<AgentInfo>>) -> impl IntoView {
    let i = I18n::get();
    let is_admin = move || me.with(|m| m.as_ref().is_some_and(|a| a.role == "admin"));
    view! {
        <main data-testid="bot-admin" class="min-h-0 flex-1 overflow-y-auto bg-slate-100">
            <Show
                when=is_admin
                fallback=move || {
                    view! {
                        <p class="mx-auto mt-16 max-w-md rounded-2xl bg-white p-6 text-center text-slate-600 shadow-sm ring-1 ring-slate-200">
                            {move || i.t(K::AdminsOnly)}
                        </p>
                    }
                }
            >
                <AdminPage />
            </Show>
        </main>
    }
    .into_any()
}

#[component]
fn AdminPage() -> impl IntoView {
    let i = I18n::get();
    let admin = Admin {
        site: RwSignal::new(None),
        packs: RwSignal::new(Vec::new()),
        editor: RwSignal::new(None),
        qa_reload: RwSignal::new(0),
        unanswered_reload: RwSignal::new(0),
    };
    let sites = RwSignal::new(Vec::<Site>::new());
    let loaded = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        spawn(async move {
            match call::<SitesResponse>("GET", "/api/v1/sites".into(), None).await {
                Ok(r) => {
                    if admin.site.try_get_untracked().flatten().is_none() {
                        admin.site.set(r.sites.first().map(|s| s.id.clone()));
                    }
                    sites.set(r.sites);
                }
                Err(e) => error.set(Some(e)),
            }
            loaded.set(true);
        });
        spawn(async move {
            if let Ok(r) = call::<PacksResponse>("GET", "/api/v1/bot/packs".into(), None).await {
                admin.packs.set(r.packs);
            }
        });
    });

    view! {
        <div class="mx-auto max-w-6xl space-y-4 p-4 sm:p-6">
            <div class="flex flex-wrap items-center gap-3">
                <h1 class="flex-1 text-xl font-semibold text-slate-900">{move || i.t(K::BotAdminTitle)}</h1>
                <label class="flex items-center gap-2 text-sm font-medium text-slate-700">
                    {move || i.t(K::Site)}
                    <select
                        data-testid="bot-site"
                        class="rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm text-slate-900 shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30"
                        prop:value=move || admin.site.get().unwrap_or_default()
                        on:change=move |ev| {
                            admin.editor.set(None);
                            admin.site.set(Some(event_target_value(&ev)).filter(|s| !s.is_empty()));
                        }
                    >
                        <For
                            each=move || sites.get()
                            key=|s| s.id.clone()
                            children=move |s| {
                                let id = s.id.clone();
                                let selected = move || admin.site.with(|x| x.as_deref() == Some(id.as_str()));
                                view! {
                                    <option value=s.id.clone() selected=selected>
                                        {if s.name.is_empty() { s.site_key.clone() } else { s.name.clone() }}
                                    </option>
                                }
                            }
                        />
                    </select>
                </label>
            </div>
            {error_box(error)}
            <Show when=move || loaded.get() && sites.with(Vec::is_empty) && error.with(Option::is_none)>
                <p class="text-sm text-slate-500">{move || i.t(K::NoSites)}</p>
            </Show>
            {move || {
                admin
                    .site
                    .get()
                    .map(|site| {
                        view! {
                            <div class="grid gap-4 lg:grid-cols-2">
                                <Settings site=site.clone() admin />
                                <div class="space-y-4">
                                    <TryIt site=site.clone() />
                                    <UnansweredList site=site.clone() admin />
                                </div>
                            </div>
                            <QaList site admin />
                        }
                    })
            }}
        </div>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// Settings.

#[component]
fn Settings(site: String, admin: Admin) -> impl IntoView {
    let i = I18n::get();
    let url = format!("/api/v1/sites/{}/bot", enc(&site));
    let form = RwSignal::new(None::<BotConfig>);
    let handoff_text = RwSignal::new(String::new());
    let threshold_text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    let busy = RwSignal::new(false);

    let fill = move |c: BotConfig| {
        handoff_text.set(c.handoff_words.join("\n"));
        threshold_text.set(format!("{:.2}", c.threshold));
        form.set(Some(c));
    };
    {
        let url = url.clone();
        spawn(async move {
            match call::<BotResponse>("GET", url, None).await {
                Ok(r) => fill(r.bot),
                Err(e) => error.set(Some(e)),
            }
        });
    }

    let url = StoredValue::new(url);
    let save = move || {
        let Some(mut c) = form.get_untracked() else {
            return;
        };
        let threshold = threshold_text.get_untracked().trim().replace(',', ".");
        match threshold.parse::<f64>() {
            Ok(t) if (0.0..=1.0).contains(&t) => c.threshold = t,
            _ => {
                error.set(Some(format!("{}: 0 – 1", i.t(K::Threshold))));
                return;
            }
        }
        c.handoff_words = lines(&handoff_text.get_untracked());
        busy.set(true);
        error.set(None);
        let url = url.get_value();
        spawn(async move {
            let r = call::<BotResponse>("PUT", url, json(&c)).await;
            busy.set(false);
            match r {
                Ok(r) => {
                    fill(r.bot);
                    saved.set(true);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <section class=CARD aria-labelledby="bot-settings-title">
            <h2 id="bot-settings-title" class="text-base font-semibold text-slate-900">{move || i.t(K::SiteSettings)}</h2>
            <Show
                when=move || form.with(Option::is_some)
                fallback=move || view! { <p class="mt-3 text-sm text-slate-400">{move || i.t(K::Loading)}</p> }
            >
                <form
                    data-testid="bot-settings"
                    class="mt-4 space-y-4"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        save();
                    }
                >
                    <BasicFields form saved threshold_text handoff_text />
                    <EngineFields form saved packs=admin.packs />
                    <div class="flex items-center gap-3">
                        <button type="submit" data-testid="bot-save" class=BUTTON disabled=move || busy.get()>
                            {move || if busy.get() { i.t(K::Saving) } else { i.t(K::Save) }}
                        </button>
                        <Show when=move || saved.get()>
                            <span data-testid="bot-saved" role="status" class="text-sm text-emerald-700">{move || i.t(K::Saved)}</span>
                        </Show>
                    </div>
                </form>
            </Show>
            {error_box(error)}
        </section>
    }
    .into_any()
}

/// Whether the bot answers, its name, engine, threshold, welcome and hand-over words.
#[component]
fn BasicFields(
    form: RwSignal<Option<BotConfig>>,
    saved: RwSignal<bool>,
    threshold_text: RwSignal<String>,
    handoff_text: RwSignal<String>,
) -> impl IntoView {
    let i = I18n::get();
    let (edit, get) = editors(form, saved);
    let engine = move || form.with(|c| c.as_ref().map(|c| c.engine.clone()).unwrap_or_default());
    view! {
        <label class="flex items-center gap-3 text-sm font-medium text-slate-800">
            <input
                type="checkbox"
                data-testid="bot-enabled"
                class="h-4 w-4 rounded border-slate-300 text-indigo-600 focus:ring-indigo-500"
                prop:checked=move || form.with(|c| c.as_ref().is_some_and(|c| c.enabled))
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    edit(&|c| c.enabled = on);
                }
            />
            {move || i.t(K::BotEnabled)}
        </label>
        <div class="grid gap-4 sm:grid-cols-2">
            <label class=LABEL>
                {move || i.t(K::BotName)}
                <input
                    type="text"
                    data-testid="bot-name"
                    class=INPUT
                    maxlength="60"
                    prop:value=get(|c| c.name.clone())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|c| c.name = v.clone());
                    }
                />
            </label>
            <label class=LABEL>
                {move || i.t(K::Engine)}
                <select
                    data-testid="bot-engine"
                    class=INPUT
                    prop:value=get(|c| c.engine.clone())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|c| c.engine = v.clone());
                    }
                >
                    <option value="retrieval" selected=move || engine() == "retrieval">{move || i.t(K::EngineRetrieval)}</option>
                    <option value="webhook" selected=move || engine() == "webhook">{move || i.t(K::EngineWebhook)}</option>
                    <option value="llm" selected=move || engine() == "llm">{move || i.t(K::EngineLlm)}</option>
                </select>
            </label>
        </div>
        <div>
            <label class=LABEL for="bot-threshold">{move || i.t(K::Threshold)}</label>
            <div class="mt-1 flex items-center gap-3">
                <input
                    type="range"
                    min="0"
                    max="1"
                    step="0.05"
                    aria-hidden="true"
                    tabindex="-1"
                    class="flex-1 accent-indigo-600"
                    prop:value=move || threshold_text.get()
                    on:input=move |ev| {
                        threshold_text.set(event_target_value(&ev));
                        saved.set(false);
                    }
                />
                <input
                    id="bot-threshold"
                    type="number"
                    min="0"
                    max="1"
                    step="0.01"
                    data-testid="bot-threshold"
                    class="w-24 rounded-lg border border-slate-300 px-2 py-1.5 text-sm shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30"
                    prop:value=move || threshold_text.get()
                    on:input=move |ev| {
                        threshold_text.set(event_target_value(&ev));
                        saved.set(false);
                    }
                />
            </div>
            <p class="mt-1 text-xs text-slate-500">{move || i.t(K::ThresholdHelp)}</p>
        </div>
        <label class=LABEL>
            {move || i.t(K::Welcome)}
            <textarea
                rows="2"
                data-testid="bot-welcome"
                class=INPUT
                prop:value=get(|c| c.welcome.clone())
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    edit(&|c| c.welcome = v.clone());
                }
            ></textarea>
        </label>
        <label class=LABEL>
            {move || i.t(K::HandoffWords)}
            <textarea
                rows="3"
                data-testid="bot-handoff-words"
                class=INPUT
                prop:value=move || handoff_text.get()
                on:input=move |ev| {
                    handoff_text.set(event_target_value(&ev));
                    saved.set(false);
                }
            ></textarea>
        </label>
    }
    .into_any()
}

/// The fields of the chosen engine: packs for the built-in one, an address and a secret for the
/// others (secrets come back blank; left blank they keep the stored one).
#[component]
fn EngineFields(
    form: RwSignal<Option<BotConfig>>,
    saved: RwSignal<bool>,
    packs: RwSignal<Vec<PackInfo>>,
) -> impl IntoView {
    let i = I18n::get();
    let (edit, get) = editors(form, saved);
    let engine = move || form.with(|c| c.as_ref().map(|c| c.engine.clone()).unwrap_or_default());
    let webhook_hint = move || {
        form.with(|c| {
            c.as_ref()
                .is_some_and(|c| secret_hint(&c.webhook.extra, "secret_set", &c.webhook.url))
        })
    };
    let llm_hint = move || {
        form.with(|c| {
            c.as_ref()
                .is_some_and(|c| secret_hint(&c.llm.extra, "api_key_set", &c.llm.base_url))
        })
    };

    view! {
        <Show when=move || engine() == "retrieval">
            <fieldset>
                <legend class=LABEL>{move || i.t(K::Packs)}</legend>
                <div class="mt-2 grid gap-2 sm:grid-cols-2">
                    <For
                        each=move || packs.get()
                        key=|p| p.pack.clone()
                        children=move |p| {
                            let name = p.pack.clone();
                            let checked = {
                                let name = name.clone();
                                move || form.with(|c| c.as_ref().is_some_and(|c| c.packs.contains(&name)))
                            };
                            let count = p.qa_pairs;
                            let title = p.clone();
                            view! {
                                <label class="flex items-start gap-2 rounded-lg px-2 py-1.5 text-sm ring-1 ring-slate-200 hover:bg-slate-50">
                                    <input
                                        type="checkbox"
                                        data-testid="bot-pack"
                                        data-pack=name.clone()
                                        class="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600 focus:ring-indigo-500"
                                        prop:checked=checked
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            let name = name.clone();
                                            edit(&|c| {
                                                c.packs.retain(|x| *x != name);
                                                if on {
                                                    c.packs.push(name.clone());
                                                }
                                            });
                                        }
                                    />
                                    <span class="min-w-0">
                                        <span class="block font-medium text-slate-800">{move || title.title(i.lang())}</span>
                                        <span class="block text-xs text-slate-500">
                                            {move || i.tn(K::PackPairs, count)}
                                            " · "
                                            {p.languages.join(", ")}
                                        </span>
                                    </span>
                                </label>
                            }
                        }
                    />
                </div>
                <p class="mt-1 text-xs text-slate-500">{move || i.t(K::PacksAll)}</p>
            </fieldset>
        </Show>
        <Show when=move || engine() == "webhook">
            <div class="grid gap-4 sm:grid-cols-2">
                <label class=LABEL>
                    {move || i.t(K::WebhookUrl)}
                    <input
                        type="url"
                        data-testid="bot-webhook-url"
                        class=INPUT
                        placeholder="https://"
                        prop:value=get(|c| c.webhook.url.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            edit(&|c| c.webhook.url = v.clone());
                        }
                    />
                </label>
                <label class=LABEL>
                    {move || i.t(K::WebhookSecret)}
                    <input
                        type="password"
                        autocomplete="off"
                        data-testid="bot-webhook-secret"
                        class=INPUT
                        placeholder=move || if webhook_hint() { i.t(K::SecretSet) } else { "" }
                        prop:value=get(|c| c.webhook.secret.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            edit(&|c| c.webhook.secret = v.clone());
                        }
                    />
                    <Show when=webhook_hint>
                        <span class="mt-1 block text-xs font-normal text-slate-500">{move || i.t(K::SecretSet)}</span>
                    </Show>
                </label>
            </div>
        </Show>
        <Show when=move || engine() == "llm">
            <div class="grid gap-4 sm:grid-cols-2">
                <label class=LABEL>
                    {move || i.t(K::LlmBaseUrl)}
                    <input
                        type="url"
                        data-testid="bot-llm-base-url"
                        class=INPUT
                        placeholder="https://"
                        prop:value=get(|c| c.llm.base_url.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            edit(&|c| c.llm.base_url = v.clone());
                        }
                    />
                </label>
                <label class=LABEL>
                    {move || i.t(K::LlmModel)}
                    <input
                        type="text"
                        data-testid="bot-llm-model"
                        class=INPUT
                        prop:value=get(|c| c.llm.model.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            edit(&|c| c.llm.model = v.clone());
                        }
                    />
                </label>
                <label class=LABEL>
                    {move || i.t(K::LlmApiKey)}
                    <input
                        type="password"
                        autocomplete="off"
                        data-testid="bot-llm-api-key"
                        class=INPUT
                        placeholder=move || if llm_hint() { i.t(K::SecretSet) } else { "" }
                        prop:value=get(|c| c.llm.api_key.clone())
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            edit(&|c| c.llm.api_key = v.clone());
                        }
                    />
                    <Show when=llm_hint>
                        <span class="mt-1 block text-xs font-normal text-slate-500">{move || i.t(K::SecretSet)}</span>
                    </Show>
                </label>
            </div>
        </Show>
    }
    .into_any()
}

/// Setters and getters of the settings form: `edit` changes the form (and clears "Saved"),
/// `get` reads a field for an input's value.
#[allow(clippy::type_complexity)]
fn editors(
    form: RwSignal<Option<BotConfig>>,
    saved: RwSignal<bool>,
) -> (
    impl Fn(&dyn Fn(&mut BotConfig)) + Copy + 'static,
    impl Fn(fn(&BotConfig) -> String) -> Box<dyn Fn() -> String + Send + Sync> + Copy + 'static,
) {
    let edit = move |f: &dyn Fn(&mut BotConfig)| {
        form.update(|c| {
            if let Some(c) = c {
                f(c);
            }
        });
        saved.set(false);
    };
    let get = move |f: fn(&BotConfig) -> String| -> Box<dyn Fn() -> String + Send + Sync> {
        Box::new(move || form.with(|c| c.as_ref().map(f).unwrap_or_default()))
    };
    (edit, get)
}

// ---------------------------------------------------------------------------------------------
// Try it.

/// A JSON value as one line of text.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[component]
fn TryIt(site: String) -> impl IntoView {
    let i = I18n::get();
    let url = StoredValue::new(format!("/api/v1/sites/{}/bot/try", enc(&site)));
    let text = RwSignal::new(String::new());
    let result = RwSignal::new(None::<TryResult>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let generation = StoredValue::new(0u64);

    let ask = move |q: String| {
        debounce(generation, 250, move |g| async move {
            if q.trim().is_empty() {
                result.set(None);
                error.set(None);
                return;
            }
            busy.set(true);
            let Some(url) = url.try_get_value() else {
                return;
            };
            let r = call::<TryResult>("POST", url, json(&TryRequest { text: &q })).await;
            if generation.try_get_value() != Some(g) {
                return;
            }
            busy.set(false);
            match r {
                Ok(r) => {
                    error.set(None);
                    result.set(Some(r));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let field = move |label: K, body: AnyView| {
        view! {
            <div class="py-2">
                <dt class="text-xs font-medium uppercase tracking-wide text-slate-400">{move || i.t(label)}</dt>
                <dd class="mt-0.5 text-sm text-slate-800">{body}</dd>
            </div>
        }
    };

    view! {
        <section class=CARD aria-labelledby="bot-try-title">
            <h2 id="bot-try-title" class="text-base font-semibold text-slate-900">{move || i.t(K::TryIt)}</h2>
            <input
                type="text"
                data-testid="bot-try-input"
                class=INPUT
                placeholder=move || i.t(K::TryPlaceholder)
                aria-label=move || i.t(K::TryIt)
                aria-busy=move || busy.get().to_string()
                prop:value=move || text.get()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    text.set(v.clone());
                    ask(v);
                }
            />
            {error_box(error)}
            {move || {
                result
                    .get()
                    .map(|r| {
                        let pct = (r.confidence.clamp(0.0, 1.0) * 100.0).round();
                        let intent = if r.intent.is_empty() { i.t(K::NoneFound).to_owned() } else { r.intent.clone() };
                        let entities = if r.entities.is_empty() {
                            view! { <span class="text-slate-400">{i.t(K::NoneFound)}</span> }.into_any()
                        } else {
                            view! {
                                <ul data-testid="bot-try-entities" class="flex flex-wrap gap-1.5">
                                    {r
                                        .entities
                                        .iter()
                                        .map(|(k, v)| {
                                            view! {
                                                <li class="rounded-md bg-slate-100 px-2 py-0.5 text-xs">
                                                    <span class="font-medium text-slate-600">{k.clone()}</span>
                                                    ": "
                                                    <span class="text-slate-900">{value_text(v)}</span>
                                                </li>
                                            }
                                        })
                                        .collect::<Vec<_>>()}
                                </ul>
                            }
                                .into_any()
                        };
                        let bar = if r.confidence >= 0.7 {
                            "h-full rounded-full bg-emerald-500"
                        } else if r.confidence >= 0.4 {
                            "h-full rounded-full bg-amber-500"
                        } else {
                            "h-full rounded-full bg-red-500"
                        };
                        let replies = (!r.quick_replies.is_empty()).then(|| {
                            view! {
                                <ul class="mt-2 flex flex-wrap gap-1.5">
                                    {r
                                        .quick_replies
                                        .iter()
                                        .map(|q| view! { <li class="rounded-full border border-indigo-200 px-2.5 py-0.5 text-xs text-indigo-700">{q.clone()}</li> })
                                        .collect::<Vec<_>>()}
                                </ul>
                            }
                        });
                        view! {
                            <dl data-testid="bot-try-result" class="mt-3 divide-y divide-slate-100">
                                {field(K::Intent, view! { <code data-testid="bot-try-intent" class="break-all text-sm">{intent}</code> }.into_any())}
                                {field(
                                    K::Confidence,
                                    view! {
                                        <div class="flex items-center gap-3">
                                            <div
                                                class="h-2 flex-1 overflow-hidden rounded-full bg-slate-100"
                                                role="meter"
                                                aria-valuemin="0"
                                                aria-valuemax="1"
                                                aria-valuenow=format!("{:.2}", r.confidence)
                                            >
                                                <div class=bar style=format!("width: {pct}%")></div>
                                            </div>
                                            <span data-testid="bot-try-confidence" class="w-12 text-right font-mono text-sm tabular-nums">
                                                {format!("{:.2}", r.confidence)}
                                            </span>
                                        </div>
                                    }
                                        .into_any(),
                                )}
                                {field(K::Entities, entities)}
                                {field(
                                    K::Answer,
                                    view! {
                                        <div>
                                            <p data-testid="bot-try-answer" class="whitespace-pre-wrap break-words">{r.answer.clone()}</p>
                                            {replies}
                                        </div>
                                    }
                                        .into_any(),
                                )}
                                {field(
                                    K::HandsOver,
                                    view! {
                                        <span data-testid="bot-try-handoff" data-handoff=r.handoff.to_string()>
                                            {move || if r.handoff { i.t(K::Yes) } else { i.t(K::No) }}
                                            {r.declined.then(|| view! {
                                                " "
                                                <span data-testid="bot-try-declined" class=DECLINED_BADGE>
                                                    {move || i.t(K::Declines)}
                                                </span>
                                            })}
                                        </span>
                                    }
                                        .into_any(),
                                )}
                            </dl>
                        }
                    })
            }}
        </section>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// Unanswered questions.

#[component]
fn UnansweredList(site: String, admin: Admin) -> impl IntoView {
    let i = I18n::get();
    let base = StoredValue::new(format!("/api/v1/sites/{}/bot/unanswered", enc(&site)));
    let items = RwSignal::new(Vec::<Unanswered>::new());
    let loaded = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        admin.unanswered_reload.track();
        let Some(url) = base.try_get_value() else {
            return;
        };
        spawn(async move {
            match call::<UnansweredResponse>("GET", url, None).await {
                Ok(r) => {
                    items.set(r.items);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
            loaded.set(true);
        });
    });

    let dismiss = move |id: String| {
        let url = format!("{}/{}", base.get_value(), enc(&id));
        spawn(async move {
            match call_text("DELETE", url, None).await {
                Ok(_) => items.update(|l| l.retain(|x| x.id != id)),
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class=CARD aria-labelledby="bot-unanswered-title">
            <h2 id="bot-unanswered-title" class="text-base font-semibold text-slate-900">{move || i.t(K::Unanswered)}</h2>
            {error_box(error)}
            <Show when=move || loaded.get() && items.with(Vec::is_empty)>
                <p class="mt-3 text-sm text-slate-400">{move || i.t(K::NoUnanswered)}</p>
            </Show>
            <ul class="mt-2 max-h-80 divide-y divide-slate-100 overflow-y-auto">
                <For
                    each=move || items.get()
                    key=|u| u.id.clone()
                    children=move |u| {
                        let (id, id2) = (u.id.clone(), u.id.clone());
                        let question = u.question.clone();
                        view! {
                            <li data-testid="unanswered-item" class="flex items-start gap-3 py-2">
                                <p class="min-w-0 flex-1 whitespace-pre-wrap break-words text-sm text-slate-800">{u.question.clone()}</p>
                                <button
                                    type="button"
                                    data-testid="unanswered-create"
                                    class=SMALL
                                    on:click=move |_| {
                                        admin.editor.set(Some(Draft {
                                            lang: guess_lang(&question).to_owned(),
                                            questions: question.clone(),
                                            unanswered: Some(id.clone()),
                                            ..Draft::default()
                                        }));
                                    }
                                >
                                    {move || i.t(K::CreateQa)}
                                </button>
                                <button
                                    type="button"
                                    data-testid="unanswered-dismiss"
                                    class=SMALL
                                    on:click=move |_| dismiss(id2.clone())
                                >
                                    {move || i.t(K::Dismiss)}
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </section>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// QA pairs.

const PAGE: u64 = 50;

#[component]
fn QaList(site: String, admin: Admin) -> impl IntoView {
    let i = I18n::get();
    let base = StoredValue::new(format!("/api/v1/sites/{}/qa", enc(&site)));
    let search = RwSignal::new(String::new());
    let query = RwSignal::new(String::new());
    let offset = RwSignal::new(0u64);
    let items = RwSignal::new(Vec::<QaPair>::new());
    let total = RwSignal::new(0u64);
    let loaded = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let import_result = RwSignal::new(None::<Result<u64, String>>);
    let importing = RwSignal::new(false);
    let search_gen = StoredValue::new(0u64);
    let fetch_gen = StoredValue::new(0u64);

    Effect::new(move |_| {
        admin.qa_reload.track();
        let (q, off) = (query.get(), offset.get());
        let Some(base) = base.try_get_value() else {
            return;
        };
        let g = fetch_gen.get_value() + 1;
        fetch_gen.set_value(g);
        let url = format!("{base}?q={}&limit={PAGE}&offset={off}", enc(&q));
        spawn(async move {
            let r = call::<QaListResponse>("GET", url, None).await;
            if fetch_gen.try_get_value() != Some(g) {
                return;
            }
            match r {
                Ok(r) => {
                    total.set(r.total.unwrap_or(r.qa.len() as u64));
                    items.set(r.qa);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
            loaded.set(true);
        });
    });

    let delete = move |id: String| {
        let url = format!("{}/{}", base.get_value(), enc(&id));
        spawn(async move {
            match call_text("DELETE", url, None).await {
                Ok(_) => admin.qa_reload.update(|n| *n += 1),
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let on_file = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            let input = event_target::<web_sys::HtmlInputElement>(&ev);
            let url = format!("{}/import", base.get_value());
            importing.set(true);
            import_result.set(None);
            read_file(&input, move |file| {
                let Some((name, text)) = file else {
                    importing.set(false);
                    return;
                };
                // The browser reads the file as UTF-8 and replaces what is not (a GBK file saved
                // by Excel on Chinese Windows): say so instead of importing mangled text.
                if text.contains('\u{FFFD}') {
                    importing.set(false);
                    import_result.set(Some(Err(i.t(K::ImportNotUtf8).to_owned())));
                    return;
                }
                let content_type = import_type(&name, &text);
                spawn(async move {
                    let r = call::<ImportResponse>("POST", url, Some((content_type, text))).await;
                    importing.set(false);
                    import_result.set(Some(r.map(|r| r.imported)));
                    admin.qa_reload.update(|n| *n += 1);
                });
            });
            // The same file again is a new import.
            input.set_value("");
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    view! {
        <section class=CARD aria-labelledby="bot-qa-title">
            <div class="flex flex-wrap items-center gap-3">
                <h2 id="bot-qa-title" class="text-base font-semibold text-slate-900">{move || i.t(K::QaPairs)}</h2>
                <span data-testid="qa-total" class="text-sm text-slate-500">{move || i.tn(K::QaTotal, total.get())}</span>
                <span class="flex-1"></span>
                <label class=format!("{BUTTON_QUIET} cursor-pointer")>
                    {move || if importing.get() { i.t(K::Importing) } else { i.t(K::Import) }}
                    <input
                        type="file"
                        data-testid="qa-import"
                        accept=".csv,.json,text/csv,application/json"
                        class="sr-only"
                        on:change=on_file
                    />
                </label>
                <button
                    type="button"
                    data-testid="qa-add"
                    class=BUTTON
                    on:click=move |_| {
                        admin.editor.set(Some(Draft {
                            lang: i.lang().html_tag().to_owned(),
                            ..Draft::default()
                        }));
                    }
                >
                    {move || i.t(K::QaAdd)}
                </button>
            </div>
            <p class="mt-1 text-xs text-slate-500">{move || i.t(K::ImportHelp)}</p>
            {move || {
                import_result
                    .get()
                    .map(|r| match r {
                        Ok(n) => view! {
                            <p data-testid="qa-import-result" role="status" class="mt-3 rounded-lg bg-emerald-50 px-3 py-2 text-sm text-emerald-800">
                                {i.tn(K::Imported, n)}
                            </p>
                        }
                            .into_any(),
                        Err(e) => view! {
                            <p data-testid="qa-import-result" role="alert" class="mt-3 rounded-lg bg-red-50 px-3 py-2 text-sm text-red-700">
                                {e}
                            </p>
                        }
                            .into_any(),
                    })
            }}
            {move || admin.editor.get().map(|draft| view! { <QaEditor draft base=base.get_value() admin /> })}
            <input
                type="search"
                data-testid="qa-search"
                class=INPUT
                placeholder=move || i.t(K::QaSearch)
                aria-label=move || i.t(K::QaSearch)
                prop:value=move || search.get()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    search.set(v.clone());
                    debounce(search_gen, 250, move |_| async move {
                        offset.set(0);
                        query.set(v);
                    });
                }
            />
            {error_box(error)}
            <Show when=move || loaded.get() && items.with(Vec::is_empty)>
                <p class="mt-3 text-sm text-slate-400">{move || i.t(K::NoQa)}</p>
            </Show>
            <ul data-testid="qa-list" class="mt-2 divide-y divide-slate-100">
                <For
                    each=move || items.get()
                    key=|q| format!("{}:{}:{}:{}", q.id, q.answer.len(), q.questions.join("\u{1f}"), q.handoff)
                    children=move |q| view! { <QaRow q admin delete=Callback::new(delete) /> }
                />
            </ul>
            <Show when=move || { total.get() > PAGE }>
                <div class="mt-3 flex items-center justify-end gap-2 text-sm">
                    <span class="text-slate-500">
                        {move || format!("{}–{} / {}", offset.get() + 1, (offset.get() + PAGE).min(total.get()), total.get())}
                    </span>
                    <button
                        type="button"
                        class=SMALL
                        disabled=move || offset.get() == 0
                        on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))
                    >
                        {move || i.t(K::Previous)}
                    </button>
                    <button
                        type="button"
                        class=SMALL
                        disabled=move || offset.get() + PAGE >= total.get()
                        on:click=move |_| offset.update(|o| *o += PAGE)
                    >
                        {move || i.t(K::Next)}
                    </button>
                </div>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn QaRow(q: QaPair, admin: Admin, delete: Callback<String>) -> impl IntoView {
    let i = I18n::get();
    let confirming = RwSignal::new(false);
    let editable = q.editable();
    let first = q.questions.first().cloned().unwrap_or_default();
    let more = q.questions.len().saturating_sub(1);
    let source = if editable {
        None
    } else {
        Some(
            q.source
                .strip_prefix("pack:")
                .unwrap_or(&q.source)
                .to_owned(),
        )
    };
    let draft = Draft {
        id: Some(q.id.clone()),
        lang: q.lang.clone(),
        questions: q.questions.join("\n"),
        answer: q.answer.clone(),
        quick_replies: q.quick_replies.join("\n"),
        handoff: q.handoff,
        decline: q.decline,
        entities: q.entities.clone(),
        unanswered: None,
    };
    let id = q.id.clone();
    let actions = editable.then(|| {
        view! {
            <div class="flex shrink-0 gap-1.5">
                <button
                    type="button"
                    data-testid="qa-edit"
                    class=SMALL
                    on:click=move |_| admin.editor.set(Some(draft.clone()))
                >
                    {move || i.t(K::Edit)}
                </button>
                <button
                    type="button"
                    data-testid="qa-delete"
                    class=move || {
                        if confirming.get() {
                            "rounded-md bg-red-600 px-2 py-1 text-xs font-medium text-white focus:outline-none focus-visible:ring-2 focus-visible:ring-red-500"
                        } else {
                            SMALL
                        }
                    }
                    on:click=move |_| {
                        if confirming.get_untracked() {
                            delete.run(id.clone());
                        } else {
                            confirming.set(true);
                        }
                    }
                    on:blur=move |_| confirming.set(false)
                >
                    {move || if confirming.get() { i.t(K::ConfirmDelete) } else { i.t(K::Delete) }}
                </button>
            </div>
        }
    });
    view! {
        <li data-testid="qa-item" data-qa-id=q.id.clone() data-source=q.source.clone() class="flex items-start gap-3 py-3">
            <div class="min-w-0 flex-1">
                <div class="flex flex-wrap items-center gap-1.5">
                    <span class="rounded bg-slate-100 px-1.5 py-px text-[11px] font-medium text-slate-600">{q.lang.clone()}</span>
                    {match source {
                        Some(pack) => view! {
                            <span class="rounded bg-violet-50 px-1.5 py-px text-[11px] font-medium text-violet-700">
                                {move || i.t(K::FromPack)}
                                " "
                                {pack.clone()}
                            </span>
                        }
                            .into_any(),
                        None => view! {
                            <span class="rounded bg-indigo-50 px-1.5 py-px text-[11px] font-medium text-indigo-700">
                                {move || i.t(K::OwnPair)}
                            </span>
                        }
                            .into_any(),
                    }}
                    {q.handoff.then(|| view! {
                        <span class="rounded bg-amber-50 px-1.5 py-px text-[11px] font-medium text-amber-700">{move || i.t(K::HandsOver)}</span>
                    })}
                    {q.decline.then(|| view! {
                        <span data-testid="qa-declines" class=DECLINED_BADGE>{move || i.t(K::Declines)}</span>
                    })}
                    <p data-testid="qa-question" class="min-w-0 break-words font-medium text-slate-900">{first}</p>
                    {(more > 0).then(|| view! { <span class="text-xs text-slate-400">{move || i.tn(K::MoreQuestions, more)}</span> })}
                </div>
                <p data-testid="qa-item-answer" class="mt-1 line-clamp-3 whitespace-pre-wrap break-words text-sm text-slate-600">{q.answer.clone()}</p>
            </div>
            {actions}
        </li>
    }
    .into_any()
}

#[component]
fn QaEditor(draft: Draft, base: String, admin: Admin) -> impl IntoView {
    let i = I18n::get();
    let editing = draft.id.clone();
    let unanswered = draft.unanswered.clone();
    let lang = RwSignal::new(if draft.lang.is_empty() {
        "en".to_owned()
    } else {
        draft.lang.clone()
    });
    let questions = RwSignal::new(draft.questions.clone());
    let answer = RwSignal::new(draft.answer.clone());
    let replies = RwSignal::new(draft.quick_replies.clone());
    let handoff = RwSignal::new(draft.handoff);
    let decline = RwSignal::new(draft.decline);
    let entities = StoredValue::new(draft.entities.clone());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let questions_ref = NodeRef::<html::Textarea>::new();
    let answer_ref = NodeRef::<html::Textarea>::new();

    // Opened from an unanswered question, the answer is what is missing; else the questions.
    let focus_answer = unanswered.is_some();
    Effect::new(move |_| {
        let el = if focus_answer {
            answer_ref.get()
        } else {
            questions_ref.get()
        };
        if let Some(el) = el {
            let _ = el.focus();
        }
    });

    let target = StoredValue::new(match &editing {
        Some(id) => ("PUT", format!("{base}/{}", enc(id))),
        None => ("POST", base),
    });
    let unanswered = StoredValue::new(unanswered);
    let save = move || {
        let mut input = QaInput {
            lang: lang.get_untracked(),
            questions: lines(&questions.get_untracked()),
            answer: answer.get_untracked().trim().to_owned(),
            quick_replies: lines(&replies.get_untracked()),
            handoff: handoff.get_untracked(),
            decline: decline.get_untracked(),
            entities: entities.get_value(),
        };
        // A decline example answers nothing: it needs questions only, and the fields it hides
        // (kept in the form, should the box be unticked again) are not sent.
        if input.decline {
            input.answer.clear();
            input.quick_replies.clear();
            input.handoff = false;
            if input.questions.is_empty() {
                error.set(Some(i.t(K::QaNeedQuestion).to_owned()));
                return;
            }
        } else if input.questions.is_empty() || input.answer.is_empty() {
            error.set(Some(i.t(K::QaNeedQuestionAndAnswer).to_owned()));
            return;
        }
        busy.set(true);
        error.set(None);
        let (method, url) = target.get_value();
        let unanswered = unanswered.get_value();
        let site = admin.site.get_untracked().unwrap_or_default();
        spawn(async move {
            let r = call::<QaResponse>(method, url, json(&input)).await;
            busy.set(false);
            if let Err(e) = r {
                error.set(Some(e));
                return;
            }
            if let Some(uid) = unanswered {
                let url = format!("/api/v1/sites/{}/bot/unanswered/{}", enc(&site), enc(&uid));
                let _ = call_text("DELETE", url, None).await;
                admin.unanswered_reload.update(|n| *n += 1);
            }
            admin.editor.set(None);
            admin.qa_reload.update(|n| *n += 1);
        });
    };

    view! {
        <form
            data-testid="qa-form"
            class="my-4 space-y-3 rounded-xl bg-slate-50 p-4 ring-1 ring-slate-200"
            on:submit=move |ev| {
                ev.prevent_default();
                save();
            }
        >
            <div class="flex items-center gap-3">
                <h3 class="flex-1 font-semibold text-slate-900">
                    {move || if editing.is_some() { i.t(K::QaEdit) } else { i.t(K::QaAdd) }}
                </h3>
                <label class="flex items-center gap-2 text-sm text-slate-700">
                    {move || i.t(K::Language)}
                    <select
                        data-testid="qa-lang"
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm"
                        prop:value=move || lang.get()
                        on:change=move |ev| lang.set(event_target_value(&ev))
                    >
                        <option value="en" selected=move || lang.get() == "en">"English"</option>
                        <option value="zh-CN" selected=move || lang.get() == "zh-CN">"简体中文"</option>
                    </select>
                </label>
            </div>
            <label class=LABEL>
                {move || i.t(K::QaQuestions)}
                <textarea
                    node_ref=questions_ref
                    rows="3"
                    data-testid="qa-questions"
                    class=INPUT
                    prop:value=move || questions.get()
                    on:input=move |ev| questions.set(event_target_value(&ev))
                ></textarea>
            </label>
            <label class="flex items-start gap-2 text-sm text-slate-700">
                <input
                    type="checkbox"
                    data-testid="qa-decline"
                    class="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600 focus:ring-indigo-500"
                    prop:checked=move || decline.get()
                    on:change=move |ev| decline.set(event_target_checked(&ev))
                />
                <span>
                    {move || i.t(K::QaDecline)}
                    <span class="block text-xs text-slate-500">{move || i.t(K::QaDeclineHelp)}</span>
                </span>
            </label>
            <div class="space-y-3" class:hidden=move || decline.get()>
                <label class=LABEL>
                    {move || i.t(K::Answer)}
                    <textarea
                        node_ref=answer_ref
                        rows="4"
                        data-testid="qa-answer"
                        class=INPUT
                        prop:value=move || answer.get()
                        on:input=move |ev| answer.set(event_target_value(&ev))
                    ></textarea>
                    <span class="mt-1 block text-xs font-normal text-slate-500">{move || i.t(K::QaPlaceholders)}</span>
                </label>
                <label class=LABEL>
                    {move || i.t(K::QaQuickReplies)}
                    <textarea
                        rows="2"
                        data-testid="qa-quick-replies"
                        class=INPUT
                        prop:value=move || replies.get()
                        on:input=move |ev| replies.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <label class="flex items-center gap-2 text-sm text-slate-700">
                    <input
                        type="checkbox"
                        data-testid="qa-handoff"
                        class="h-4 w-4 rounded border-slate-300 text-indigo-600 focus:ring-indigo-500"
                        prop:checked=move || handoff.get()
                        on:change=move |ev| handoff.set(event_target_checked(&ev))
                    />
                    {move || i.t(K::QaHandoff)}
                </label>
            </div>
            {error_box(error)}
            <div class="flex gap-2">
                <button type="submit" data-testid="qa-save" class=BUTTON disabled=move || busy.get()>
                    {move || if busy.get() { i.t(K::Saving) } else { i.t(K::Save) }}
                </button>
                <button type="button" data-testid="qa-cancel" class=BUTTON_QUIET on:click=move |_| admin.editor.set(None)>
                    {move || i.t(K::Cancel)}
                </button>
            </div>
        </form>
    }
    .into_any()
}

/// Reads the first file of a file input as text: `done(Some((name, text)))`, or `None` when
/// there is no file or it cannot be read.
#[cfg(feature = "hydrate")]
fn read_file(
    input: &web_sys::HtmlInputElement,
    done: impl FnOnce(Option<(String, String)>) + 'static,
) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::JsValue;
    use wasm_bindgen::prelude::Closure;

    let get =
        |target: &JsValue, key: &str| js_sys::Reflect::get(target, &JsValue::from_str(key)).ok();
    let file = get(input, "files")
        .and_then(|files| js_sys::Reflect::get_u32(&files, 0).ok())
        .filter(|f| !f.is_undefined() && !f.is_null());
    let Some(file) = file else {
        return done(None);
    };
    let name = get(&file, "name")
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    let promise = get(&file, "text")
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&file).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let Some(promise) = promise else {
        return done(None);
    };
    let done = std::rc::Rc::new(std::cell::RefCell::new(Some(done)));
    let failed = done.clone();
    let ok = Closure::once(move |text: JsValue| {
        if let Some(done) = done.borrow_mut().take() {
            done(text.as_string().map(|t| (name, t)));
        }
    });
    let err = Closure::once(move |_: JsValue| {
        if let Some(done) = failed.borrow_mut().take() {
            done(None);
        }
    });
    let _ = promise.then2(&ok, &err);
    ok.forget();
    err.forget();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments_and_queries() {
        assert_eq!(enc("site_01AB"), "site_01AB");
        assert_eq!(enc("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(enc("退货"), "%E9%80%80%E8%B4%A7");
    }

    #[test]
    fn splits_lines_and_guesses_languages() {
        assert_eq!(lines(" a \n\n b\r\n"), ["a", "b"]);
        assert_eq!(guess_lang("怎么退货？"), "zh-CN");
        assert_eq!(guess_lang("How do I return this?"), "en");
        assert_eq!(import_type("faq.JSON", "x"), "application/json");
        assert_eq!(
            import_type("faq.txt", "  {\"format\": 1}"),
            "application/json"
        );
        assert_eq!(import_type("faq.csv", "question,answer"), "text/csv");
    }

    #[test]
    fn bot_config_round_trips_what_it_does_not_know() {
        let json = r#"{"enabled":true,"name":"Ava","engine":"retrieval","threshold":0.5,
            "welcome":"Hi","handoff_words":null,"packs":["ecommerce"],
            "webhook":{"url":"","secret":"","timeout_ms":3000},"llm":null,"future":1}"#;
        let c: BotConfig = serde_json::from_str(json).unwrap();
        assert!(c.enabled && c.handoff_words.is_empty() && c.llm == LlmConfig::default());
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["future"], 1);
        assert_eq!(back["webhook"]["timeout_ms"], 3000);
        assert_eq!(back["llm"]["api_key"], "");
    }

    #[test]
    fn a_secret_counts_as_set_when_the_server_says_so_or_the_engine_is_configured() {
        let mut extra = Map::new();
        assert!(!secret_hint(&extra, "secret_set", ""));
        assert!(secret_hint(&extra, "secret_set", "https://hook.example"));
        extra.insert("secret_set".into(), Value::Bool(false));
        assert!(!secret_hint(&extra, "secret_set", "https://hook.example"));
    }

    #[test]
    fn reads_qa_lists_and_try_answers() {
        let r: QaListResponse = serde_json::from_str(
            r#"{"qa":[{"id":"q1","lang":"en","questions":["a","b"],"answer":"x","quick_replies":[],
                "handoff":false,"source":"pack:ecommerce"}],"total":7}"#,
        )
        .unwrap();
        assert_eq!(r.total, Some(7));
        assert!(!r.qa[0].editable());
        let t: TryResult = serde_json::from_str(
            r#"{"intent":"ecommerce.shipping-time","confidence":0.83,"entities":{"order_no":"A1"},
                "answer":"3-5 days","handoff":false,"quick_replies":["Track"]}"#,
        )
        .unwrap();
        assert_eq!(value_text(&t.entities["order_no"]), "A1");
    }
}
