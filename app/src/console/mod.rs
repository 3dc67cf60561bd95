//! The agent console (`/console`): a login form, then conversation list | conversation | visitor
//! panel (one pane at a time on narrow screens). Admins also get the bot's page (`/console/bot`,
//! [`bot::BotAdmin`]), drawn in place of the panes, which stay mounted (and live) underneath.
//!
//! Like the widget, the view draws a `Copy` struct of signals ([`ConsoleState`]) that the
//! browser-only [`live::Client`] fills from the REST API and the agent WebSocket.

pub mod bot;
pub mod list;
#[cfg(feature = "hydrate")]
mod live;

use kefu::model::{AgentInfo, Conversation, ConversationStatus, SenderKind, VisitorInfo};
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::browser::{self, is_web_url, visitor_label};
use crate::i18n::{I18n, K};
use crate::timeline::Timeline;
use crate::ui::{BackIcon, BotIcon, InfoIcon, MessageRow, SendIcon};
use list::Tab;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Asking `/api/v1/me` (also what the server renders).
    Checking,
    LoggedOut,
    LoggedIn,
}

/// Which pane a narrow screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    List,
    Chat,
    Info,
}

#[derive(Clone, Copy)]
pub struct ConsoleState {
    pub auth: RwSignal<Auth>,
    pub me: RwSignal<Option<AgentInfo>>,
    pub login_error: RwSignal<Option<String>>,
    pub login_busy: RwSignal<bool>,
    /// The list of the current tab, newest activity first.
    pub conversations: RwSignal<Vec<Conversation>>,
    pub tab: RwSignal<Tab>,
    pub list_loaded: RwSignal<bool>,
    pub selected: RwSignal<Option<String>>,
    /// The open conversation (kept when it leaves the list, e.g. once resolved).
    pub current: RwSignal<Option<Conversation>>,
    pub timeline: RwSignal<Timeline>,
    pub history_loading: RwSignal<bool>,
    pub pane: RwSignal<Pane>,
    pub offline: RwSignal<bool>,
    /// The conversation whose visitor is typing.
    pub visitor_typing: RwSignal<Option<String>>,
    /// The clock for relative times, ticking every 30 s (0 on the server).
    pub now: RwSignal<f64>,
}

impl ConsoleState {
    fn new() -> Self {
        ConsoleState {
            auth: RwSignal::new(Auth::Checking),
            me: RwSignal::new(None),
            login_error: RwSignal::new(None),
            login_busy: RwSignal::new(false),
            conversations: RwSignal::new(Vec::new()),
            tab: RwSignal::new(Tab::Open),
            list_loaded: RwSignal::new(false),
            selected: RwSignal::new(None),
            current: RwSignal::new(None),
            timeline: RwSignal::new(Timeline::new(SenderKind::Agent)),
            history_loading: RwSignal::new(false),
            pane: RwSignal::new(Pane::List),
            offline: RwSignal::new(false),
            visitor_typing: RwSignal::new(None),
            now: RwSignal::new(0.0),
        }
    }
}

/// What the view may ask of the live client. A no-op on the server.
#[derive(Clone, Copy)]
struct Actions {
    #[cfg(feature = "hydrate")]
    client: StoredValue<Option<live::Client>, LocalStorage>,
}

macro_rules! with_client {
    ($self:ident, $c:ident => $body:expr) => {{
        #[cfg(feature = "hydrate")]
        if let Some($c) = $self.client.get_value() {
            $body;
        }
    }};
}

impl Actions {
    fn new() -> Self {
        Actions {
            #[cfg(feature = "hydrate")]
            client: StoredValue::new_local(None),
        }
    }

    fn login(self, email: String, password: String) {
        with_client!(self, c => c.login(email, password));
        #[cfg(not(feature = "hydrate"))]
        let _ = (email, password);
    }

    fn logout(self) {
        with_client!(self, c => c.logout());
    }

    fn select(self, id: String) {
        with_client!(self, c => c.select(id));
        #[cfg(not(feature = "hydrate"))]
        let _ = id;
    }

    fn set_tab(self, tab: Tab) {
        with_client!(self, c => c.set_tab(tab));
        #[cfg(not(feature = "hydrate"))]
        let _ = tab;
    }

    fn send(self, body: String, private: bool) {
        with_client!(self, c => c.send(body, private));
        #[cfg(not(feature = "hydrate"))]
        let _ = (body, private);
    }

    fn retry(self, client_msg_id: String) {
        with_client!(self, c => c.retry(&client_msg_id));
        #[cfg(not(feature = "hydrate"))]
        let _ = client_msg_id;
    }

    fn set_status(self, status: ConversationStatus) {
        with_client!(self, c => c.set_status(status));
        #[cfg(not(feature = "hydrate"))]
        let _ = status;
    }
}

#[component]
pub fn Console() -> impl IntoView {
    let i = I18n::get();
    let state = ConsoleState::new();
    let actions = Actions::new();

    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        untrack(|| {
            if actions.client.with_value(Option::is_none) {
                actions.client.set_value(Some(live::Client::start(state)));
            }
        });
    });

    // `/console/bot`: the bot's page. The route's optional segment keeps the console mounted
    // (socket, open conversation) when moving between the two.
    let location = leptos_router::hooks::use_location();
    let bot_page = Signal::derive(move || {
        location
            .pathname
            .with(|p| p.trim_end_matches('/') == "/console/bot")
    });

    view! {
        <Title text=move || i.t(K::Console) />
        {move || match state.auth.get() {
            Auth::Checking => {
                view! {
                    <div class="flex h-dvh items-center justify-center bg-slate-100" aria-busy="true">
                        <div class="h-8 w-8 animate-spin rounded-full border-4 border-indigo-200 border-t-indigo-600"></div>
                    </div>
                }
                    .into_any()
            }
            Auth::LoggedOut => view! { <LoginForm state actions /> }.into_any(),
            Auth::LoggedIn => view! { <Workspace state actions bot_page /> }.into_any(),
        }}
    }
    .into_any()
}

#[component]
fn LoginForm(state: ConsoleState, actions: Actions) -> impl IntoView {
    let i = I18n::get();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let input = "mt-1 block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-slate-900 shadow-sm placeholder:text-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30";

    view! {
        <main class="flex min-h-dvh items-center justify-center bg-gradient-to-b from-indigo-50 to-slate-100 px-4">
            <form
                data-testid="login-form"
                class="w-full max-w-sm rounded-2xl bg-white p-8 shadow-xl ring-1 ring-slate-200"
                on:submit=move |ev| {
                    ev.prevent_default();
                    actions.login(email.get_untracked(), password.get_untracked());
                }
            >
                <div class="mb-6 flex items-center gap-3">
                    <div class="flex h-10 w-10 items-center justify-center rounded-xl bg-indigo-600 text-lg font-bold text-white" aria-hidden="true">
                        "K"
                    </div>
                    <div>
                        <h1 class="text-lg font-semibold text-slate-900">{move || i.t(K::SignInTitle)}</h1>
                        <p class="text-sm text-slate-500">{move || i.t(K::SignInSub)}</p>
                    </div>
                </div>
                <label class="block text-sm font-medium text-slate-700">
                    {move || i.t(K::Email)}
                    <input
                        type="email"
                        name="email"
                        required
                        autocomplete="username"
                        data-testid="login-email"
                        class=input
                        prop:value=move || email.get()
                        on:input=move |ev| email.set(event_target_value(&ev))
                    />
                </label>
                <label class="mt-4 block text-sm font-medium text-slate-700">
                    {move || i.t(K::Password)}
                    <input
                        type="password"
                        name="password"
                        required
                        autocomplete="current-password"
                        data-testid="login-password"
                        class=input
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                </label>
                <Show when=move || state.login_error.with(Option::is_some)>
                    <p role="alert" data-testid="login-error" class="mt-4 rounded-lg bg-red-50 px-3 py-2 text-sm text-red-700">
                        {move || state.login_error.get().unwrap_or_default()}
                    </p>
                </Show>
                <button
                    type="submit"
                    data-testid="login-submit"
                    class="mt-6 w-full rounded-lg bg-indigo-600 px-4 py-2.5 font-semibold text-white shadow-sm transition hover:bg-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:opacity-60"
                    disabled=move || state.login_busy.get()
                >
                    {move || if state.login_busy.get() { i.t(K::SigningIn) } else { i.t(K::SignIn) }}
                </button>
            </form>
        </main>
    }
    .into_any()
}

#[component]
fn Workspace(state: ConsoleState, actions: Actions, bot_page: Signal<bool>) -> impl IntoView {
    let i = I18n::get();
    let pane = state.pane;
    let is_admin = move || {
        state
            .me
            .with(|m| m.as_ref().is_some_and(|a| a.role == "admin"))
    };
    let nav = move |active: bool| {
        if active {
            "rounded-lg bg-indigo-50 px-3 py-1.5 text-sm font-medium text-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        } else {
            "rounded-lg px-3 py-1.5 text-sm font-medium text-slate-600 transition hover:bg-slate-100 hover:text-slate-900 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
        }
    };
    let list_class = move || {
        if pane.get() == Pane::List {
            "flex w-full flex-col border-r border-slate-200 bg-white md:w-80 md:shrink-0"
        } else {
            "hidden w-full flex-col border-r border-slate-200 bg-white md:flex md:w-80 md:shrink-0"
        }
    };
    let chat_class = move || {
        if pane.get() == Pane::Chat {
            "flex min-w-0 flex-1 flex-col bg-slate-50"
        } else {
            "hidden min-w-0 flex-1 flex-col bg-slate-50 md:flex"
        }
    };
    let info_class = move || {
        if pane.get() == Pane::Info {
            "flex w-full flex-col overflow-y-auto border-l border-slate-200 bg-white lg:w-72 lg:shrink-0"
        } else {
            "hidden w-full flex-col overflow-y-auto border-l border-slate-200 bg-white lg:flex lg:w-72 lg:shrink-0"
        }
    };

    view! {
        <div class="flex h-dvh flex-col bg-slate-100">
            <header class="flex h-14 shrink-0 items-center gap-3 border-b border-slate-200 bg-white px-4">
                <div class="flex h-8 w-8 items-center justify-center rounded-lg bg-indigo-600 font-bold text-white" aria-hidden="true">
                    "K"
                </div>
                <span class="font-semibold text-slate-900">"Kefu"</span>
                <Show when=is_admin>
                    <nav class="ml-2 flex gap-1" aria-label=move || i.t(K::Console)>
                        <a
                            href="/console"
                            data-testid="inbox-link"
                            aria-current=move || if bot_page.get() { "false" } else { "page" }
                            class=move || nav(!bot_page.get())
                        >
                            {move || i.t(K::Inbox)}
                        </a>
                        <a
                            href="/console/bot"
                            data-testid="bot-admin-link"
                            aria-current=move || if bot_page.get() { "page" } else { "false" }
                            class=move || nav(bot_page.get())
                        >
                            {move || i.t(K::BotAdmin)}
                        </a>
                    </nav>
                </Show>
                <span class="flex-1"></span>
                <span data-testid="agent-name" class="hidden truncate text-sm text-slate-600 sm:inline">
                    {move || state.me.get().map(|a| a.name).unwrap_or_default()}
                </span>
                <button
                    type="button"
                    data-testid="logout"
                    class="rounded-lg px-3 py-1.5 text-sm font-medium text-slate-700 ring-1 ring-slate-300 transition hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                    on:click=move |_| actions.logout()
                >
                    {move || i.t(K::LogOut)}
                </button>
            </header>
            <Show when=move || state.offline.get()>
                <div role="status" data-testid="reconnecting" class="shrink-0 bg-amber-100 py-1 text-center text-xs font-medium text-amber-900">
                    {move || i.t(K::Reconnecting)}
                </div>
            </Show>
            <Show when=move || bot_page.get()>
                <bot::BotAdmin me=state.me />
            </Show>
            <div class=move || if bot_page.get() { "hidden" } else { "flex min-h-0 flex-1" }>
                <aside class=list_class aria-label=move || i.t(K::Inbox)>
                    <ConversationList state actions />
                </aside>
                <section class=chat_class>
                    <ConversationView state actions />
                </section>
                <aside data-testid="visitor-panel" class=info_class aria-label=move || i.t(K::VisitorPanel)>
                    <VisitorPanel state />
                </aside>
            </div>
        </div>
    }
    .into_any()
}

fn display_name(i: I18n, c: &Conversation) -> String {
    c.visitor
        .as_ref()
        .and_then(|v| v.name.clone().or_else(|| v.email.clone()))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| visitor_label(i, &c.visitor_id))
}

fn initials(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(browser::upper)
        .unwrap_or_else(|| "?".into())
}

#[component]
fn ConversationList(state: ConsoleState, actions: Actions) -> impl IntoView {
    let i = I18n::get();
    let tab_class = move |tab: Tab| {
        move || {
            if state.tab.get() == tab {
                "flex-1 rounded-md bg-white px-3 py-1.5 text-sm font-medium text-slate-900 shadow-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
            } else {
                "flex-1 rounded-md px-3 py-1.5 text-sm font-medium text-slate-500 hover:text-slate-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
            }
        }
    };
    view! {
        <div class="shrink-0 border-b border-slate-200 px-4 pt-4 pb-3">
            <h2 class="text-base font-semibold text-slate-900">{move || i.t(K::Inbox)}</h2>
            <div class="mt-3 flex gap-1 rounded-lg bg-slate-100 p-1" role="tablist">
                <button
                    type="button"
                    role="tab"
                    data-testid="tab-open"
                    aria-selected=move || (state.tab.get() == Tab::Open).to_string()
                    class=tab_class(Tab::Open)
                    on:click=move |_| actions.set_tab(Tab::Open)
                >
                    {move || i.t(K::OpenTab)}
                </button>
                <button
                    type="button"
                    role="tab"
                    data-testid="tab-resolved"
                    aria-selected=move || (state.tab.get() == Tab::Resolved).to_string()
                    class=tab_class(Tab::Resolved)
                    on:click=move |_| actions.set_tab(Tab::Resolved)
                >
                    {move || i.t(K::ResolvedTab)}
                </button>
            </div>
        </div>
        <ul data-testid="conversation-list" class="min-h-0 flex-1 divide-y divide-slate-100 overflow-y-auto">
            <Show when=move || state.list_loaded.get() && state.conversations.with(Vec::is_empty)>
                <li class="px-4 py-10 text-center text-sm text-slate-400">
                    {move || i.t(K::NoConversations)}
                </li>
            </Show>
            <For
                each=move || state.conversations.get()
                key=|c| {
                    format!(
                        "{}:{}:{}:{}:{}:{}",
                        c.id,
                        c.last_seq,
                        c.unread.unwrap_or(0),
                        c.updated_at,
                        c.status.as_str(),
                        c.visitor.as_ref().and_then(|v| v.name.as_deref()).unwrap_or(""),
                    )
                }
                children=move |c| view! { <ConversationItem c state actions /> }
            />
        </ul>
    }
    .into_any()
}

#[component]
fn ConversationItem(c: Conversation, state: ConsoleState, actions: Actions) -> impl IntoView {
    let i = I18n::get();
    let id = c.id.clone();
    let name = display_name(i, &c);
    let avatar = initials(&name);
    let unread = c.unread.unwrap_or(0);
    let last_at = c
        .last_message
        .as_ref()
        .map_or_else(|| c.updated_at.clone(), |m| m.created_at.clone());
    let preview = c.last_message.as_ref().map(|m| {
        let prefix = match m.sender.kind {
            SenderKind::Agent if m.private => format!("{}: ", i.t(K::InternalNote)),
            SenderKind::Agent => format!("{}: ", i.t(K::You)),
            SenderKind::Bot => format!("{}: ", i.t(K::Bot)),
            _ => String::new(),
        };
        // One line of plain text: newlines would only be collapsed by the browser anyway.
        format!("{prefix}{}", m.body.replace(['\n', '\r'], " "))
    });
    let is_selected = {
        let id = id.clone();
        move || state.selected.with(|s| s.as_deref() == Some(id.as_str()))
    };
    let selected_for_class = is_selected.clone();
    let class = move || {
        if selected_for_class() {
            "flex w-full items-start gap-3 bg-indigo-50 px-4 py-3 text-left transition focus:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500"
        } else {
            "flex w-full items-start gap-3 px-4 py-3 text-left transition hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-500"
        }
    };
    let open_id = id.clone();
    // Pending: the bot is answering; a hand-over makes it open (and the badge goes).
    let bot_badge = (c.status == ConversationStatus::Pending).then(|| {
        view! {
            <span
                data-testid="bot-badge"
                title=move || i.t(K::BotAnswering)
                class="inline-flex shrink-0 items-center gap-1 rounded-full bg-emerald-100 px-1.5 py-px text-[10px] font-semibold uppercase tracking-wide text-emerald-700"
            >
                <BotIcon />
                {move || i.t(K::Bot)}
            </span>
        }
    });

    view! {
        <li>
            <button
                type="button"
                data-testid="conversation-item"
                data-conversation-id=id
                data-status=c.status.as_str()
                aria-current=move || if is_selected() { "true" } else { "false" }
                class=class
                on:click=move |_| actions.select(open_id.clone())
            >
                <span class="flex h-10 w-10 shrink-0 items-center justify-center rounded-full bg-indigo-100 font-semibold text-indigo-700" aria-hidden="true">
                    {avatar}
                </span>
                <span class="min-w-0 flex-1">
                    <span class="flex items-baseline gap-2">
                        <span data-testid="conversation-name" class="min-w-0 flex-1 truncate font-medium text-slate-900">{name}</span>
                        {bot_badge}
                        <span class="shrink-0 text-xs text-slate-400">
                            {move || browser::relative(&last_at, state.now.get(), i)}
                        </span>
                    </span>
                    <span class="mt-0.5 flex items-center gap-2">
                        <span data-testid="conversation-preview" class="min-w-0 flex-1 truncate text-sm text-slate-500">
                            {preview}
                        </span>
                        {(unread > 0).then(|| view! {
                            <span
                                data-testid="unread-badge"
                                class="inline-flex min-w-5 shrink-0 items-center justify-center rounded-full bg-indigo-600 px-1.5 text-xs font-semibold text-white"
                            >
                                {unread}
                            </span>
                        })}
                    </span>
                </span>
            </button>
        </li>
    }
    .into_any()
}

fn status_label(i: I18n, s: ConversationStatus) -> &'static str {
    match s {
        ConversationStatus::Open => i.t(K::StatusOpen),
        ConversationStatus::Pending => i.t(K::BotAnswering),
        ConversationStatus::Resolved => i.t(K::StatusResolved),
        ConversationStatus::Snoozed => i.t(K::StatusSnoozed),
    }
}

#[component]
fn ConversationView(state: ConsoleState, actions: Actions) -> impl IntoView {
    let i = I18n::get();
    let draft = RwSignal::new(String::new());
    let private = RwSignal::new(false);
    let list_ref = NodeRef::<html::Div>::new();
    let input_ref = NodeRef::<html::Textarea>::new();

    Effect::new(move |_| {
        let _rows = state.timeline.with(Timeline::len);
        #[cfg(feature = "hydrate")]
        if let Some(el) = list_ref.get() {
            browser::scroll_to_bottom(el.into());
        }
    });

    let submit = move || {
        let body = draft.get_untracked();
        if body.trim().is_empty() {
            return;
        }
        actions.send(body, private.get_untracked());
        draft.set(String::new());
    };
    let on_retry = Callback::new(move |cmid: String| actions.retry(cmid));
    let has_current = move || state.current.with(Option::is_some);
    let title = move || {
        state
            .current
            .with(|c| c.as_ref().map(|c| display_name(i, c)))
            .unwrap_or_default()
    };
    let status = move || state.current.with(|c| c.as_ref().map(|c| c.status));
    let typing = move || {
        let sel = state.selected.get();
        sel.is_some() && state.visitor_typing.get() == sel
    };

    view! {
        <Show
            when=has_current
            fallback=move || {
                view! {
                    <div class="flex flex-1 flex-col items-center justify-center p-8 text-center">
                        <div class="flex h-14 w-14 items-center justify-center rounded-2xl bg-indigo-100 text-2xl" aria-hidden="true">
                            "💬"
                        </div>
                        <p class="mt-4 font-medium text-slate-800">{move || i.t(K::PickConversation)}</p>
                        <p class="mt-1 text-sm text-slate-500">{move || i.t(K::PickConversationSub)}</p>
                    </div>
                }
            }
        >
            <div class="flex h-14 shrink-0 items-center gap-2 border-b border-slate-200 bg-white px-3">
                <button
                    type="button"
                    data-testid="back"
                    class="rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 md:hidden"
                    aria-label=move || i.t(K::Back)
                    on:click=move |_| state.pane.set(Pane::List)
                >
                    <BackIcon />
                </button>
                <div class="min-w-0 flex-1">
                    <h2 data-testid="conversation-title" class="truncate font-semibold text-slate-900">{title}</h2>
                    <p class="text-xs text-slate-500">
                        {move || {
                            if typing() {
                                i.t(K::Typing).to_owned()
                            } else {
                                status().map(|s| status_label(i, s).to_owned()).unwrap_or_default()
                            }
                        }}
                    </p>
                </div>
                <button
                    type="button"
                    data-testid="details"
                    class="rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 lg:hidden"
                    aria-label=move || i.t(K::Details)
                    on:click=move |_| state.pane.set(Pane::Info)
                >
                    <InfoIcon />
                </button>
                <button
                    type="button"
                    data-testid="status-toggle"
                    class=move || {
                        if status() == Some(ConversationStatus::Resolved) {
                            "rounded-lg px-3 py-1.5 text-sm font-medium text-slate-700 ring-1 ring-slate-300 transition hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                        } else {
                            "rounded-lg bg-emerald-600 px-3 py-1.5 text-sm font-medium text-white shadow-sm transition hover:bg-emerald-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-emerald-500 focus-visible:ring-offset-2"
                        }
                    }
                    on:click=move |_| {
                        let next = if status() == Some(ConversationStatus::Resolved) {
                            ConversationStatus::Open
                        } else {
                            ConversationStatus::Resolved
                        };
                        actions.set_status(next);
                    }
                >
                    {move || {
                        if status() == Some(ConversationStatus::Resolved) {
                            i.t(K::Reopen)
                        } else {
                            i.t(K::Resolve)
                        }
                    }}
                </button>
            </div>
            <div
                node_ref=list_ref
                data-testid="message-list"
                role="log"
                aria-live="polite"
                class="min-h-0 flex-1 space-y-3 overflow-y-auto px-4 py-4"
            >
                <Show when=move || state.history_loading.get()>
                    <p class="text-center text-sm text-slate-400">{move || i.t(K::Loading)}</p>
                </Show>
                <Show when=move || !state.history_loading.get() && state.timeline.with(Timeline::is_empty)>
                    <p class="text-center text-sm text-slate-400">{move || i.t(K::NoMessagesYet)}</p>
                </Show>
                <For
                    each=move || state.timeline.with(Timeline::rows)
                    key=|item| item.render_key()
                    children=move |item| {
                        view! { <MessageRow item own=SenderKind::Agent show_names=false on_retry /> }
                    }
                />
            </div>
            <form
                class="shrink-0 border-t border-slate-200 bg-white p-3"
                on:submit=move |ev| {
                    ev.prevent_default();
                    submit();
                }
            >
                <div class="mb-2 flex gap-1 text-sm">
                    <button
                        type="button"
                        data-testid="mode-reply"
                        aria-pressed=move || (!private.get()).to_string()
                        class=move || {
                            if private.get() {
                                "rounded-md px-2.5 py-1 font-medium text-slate-500 hover:text-slate-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                            } else {
                                "rounded-md bg-indigo-50 px-2.5 py-1 font-medium text-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                            }
                        }
                        on:click=move |_| private.set(false)
                    >
                        {move || i.t(K::Reply)}
                    </button>
                    <button
                        type="button"
                        data-testid="note-toggle"
                        aria-pressed=move || private.get().to_string()
                        class=move || {
                            if private.get() {
                                "rounded-md bg-amber-100 px-2.5 py-1 font-medium text-amber-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-amber-500"
                            } else {
                                "rounded-md px-2.5 py-1 font-medium text-slate-500 hover:text-slate-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-amber-500"
                            }
                        }
                        on:click=move |_| private.set(true)
                    >
                        {move || i.t(K::NoteToggle)}
                    </button>
                </div>
                <div class=move || {
                    if private.get() {
                        "flex items-end gap-2 rounded-xl border border-amber-300 bg-amber-50 px-3 py-2 focus-within:ring-2 focus-within:ring-amber-400/40"
                    } else {
                        "flex items-end gap-2 rounded-xl border border-slate-300 bg-white px-3 py-2 focus-within:border-indigo-500 focus-within:ring-2 focus-within:ring-indigo-500/30"
                    }
                }>
                    <textarea
                        node_ref=input_ref
                        data-testid="reply"
                        rows="2"
                        class="max-h-40 flex-1 resize-none border-0 bg-transparent p-0 text-[15px] leading-6 text-slate-900 placeholder:text-slate-400 focus:outline-none focus:ring-0"
                        placeholder=move || {
                            if private.get() { i.t(K::NotePlaceholder) } else { i.t(K::ReplyPlaceholder) }
                        }
                        aria-label=move || i.t(K::Reply)
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                                ev.prevent_default();
                                submit();
                            }
                        }
                    ></textarea>
                    <button
                        type="submit"
                        data-testid="send"
                        class="flex h-9 shrink-0 items-center gap-1.5 rounded-lg bg-indigo-600 px-3 text-sm font-semibold text-white transition hover:bg-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:cursor-not-allowed disabled:bg-slate-300"
                        disabled=move || draft.with(|d| d.trim().is_empty())
                    >
                        <SendIcon />
                        <span>{move || i.t(K::Send)}</span>
                    </button>
                </div>
            </form>
        </Show>
    }
    .into_any()
}

#[component]
fn VisitorPanel(state: ConsoleState) -> impl IntoView {
    let i = I18n::get();
    let visitor = move || {
        state
            .current
            .with(|c| c.as_ref().map(|c| c.visitor.clone().unwrap_or_default()))
    };
    view! {
        <div class="flex h-14 shrink-0 items-center gap-2 border-b border-slate-200 px-3">
            <button
                type="button"
                class="rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 lg:hidden"
                aria-label=move || i.t(K::Back)
                on:click=move |_| state.pane.set(Pane::Chat)
            >
                <BackIcon />
            </button>
            <h2 class="font-semibold text-slate-900">{move || i.t(K::VisitorPanel)}</h2>
        </div>
        {move || visitor().map(|v| view! { <VisitorDetails v state /> })}
    }
    .into_any()
}

#[component]
fn VisitorDetails(v: VisitorInfo, state: ConsoleState) -> impl IntoView {
    let i = I18n::get();
    let row = |label: K, testid: &'static str, value: Option<String>| {
        view! {
            <div class="py-2">
                <dt class="text-xs font-medium uppercase tracking-wide text-slate-400">{move || i.t(label)}</dt>
                <dd data-testid=testid class="mt-0.5 break-words text-sm text-slate-800">
                    {value.filter(|s| !s.is_empty()).unwrap_or_else(|| "—".to_owned())}
                </dd>
            </div>
        }
    };
    let page = v.page_url.clone().filter(|p| !p.is_empty()).map(|url| {
        if is_web_url(&url) {
            view! {
                <a
                    href=url.clone()
                    target="_blank"
                    rel="noopener noreferrer"
                    class="break-all text-indigo-600 underline-offset-2 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                >
                    {url.clone()}
                </a>
            }
            .into_any()
        } else {
            view! { <span class="break-all">{url}</span> }.into_any()
        }
    });
    let (tz, offset) = (v.timezone.clone(), v.utc_offset_minutes);
    let local_time = move || {
        let _tick = state.now.get();
        #[cfg(feature = "hydrate")]
        {
            browser::time_in_zone(tz.as_deref(), offset).unwrap_or_else(|| "—".to_owned())
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (&tz, offset);
            String::from("—")
        }
    };
    let name = v
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| visitor_label(i, &v.id));

    view! {
        <div class="px-4 py-4">
            <div class="flex items-center gap-3">
                <span class="flex h-12 w-12 items-center justify-center rounded-full bg-indigo-100 text-lg font-semibold text-indigo-700" aria-hidden="true">
                    {initials(&name)}
                </span>
                <div class="min-w-0">
                    <p data-testid="visitor-name" class="truncate font-semibold text-slate-900">{name}</p>
                    <p data-testid="visitor-email" class="truncate text-sm text-slate-500">{v.email.clone().unwrap_or_default()}</p>
                </div>
            </div>
            <dl class="mt-4 divide-y divide-slate-100">
                <div class="py-2">
                    <dt class="text-xs font-medium uppercase tracking-wide text-slate-400">{move || i.t(K::CurrentPage)}</dt>
                    <dd data-testid="visitor-page" class="mt-0.5 text-sm text-slate-800">
                        {page.unwrap_or_else(|| view! { <span>"—"</span> }.into_any())}
                    </dd>
                </div>
                {v.phone.clone().filter(|p| !p.is_empty()).map(|p| row(K::Phone, "visitor-phone", Some(p)))}
                {v.note.clone().filter(|n| !n.is_empty()).map(|n| row(K::ContactNote, "visitor-note", Some(n)))}
                {row(K::Referrer, "visitor-referrer", v.referrer.clone())}
                {row(K::Browser, "visitor-browser", v.browser.clone())}
                {row(K::Os, "visitor-os", v.os.clone())}
                {row(K::Ip, "visitor-ip", v.ip.clone())}
                {row(K::Locale, "visitor-locale", v.locale.clone())}
                <div class="py-2">
                    <dt class="text-xs font-medium uppercase tracking-wide text-slate-400">{move || i.t(K::LocalTime)}</dt>
                    <dd data-testid="visitor-local-time" class="mt-0.5 text-sm text-slate-800">{local_time}</dd>
                </div>
            </dl>
        </div>
    }
    .into_any()
}
