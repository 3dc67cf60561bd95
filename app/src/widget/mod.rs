//! The visitor chat inside the widget iframe (`/widget/frame?site=…&origin=…&page=…&ref=…`).
//!
//! The server renders an empty chat; after hydration [`live::Client`] opens the session, connects
//! (WebSocket, or long-polling when that cannot open) and fills [`WidgetState`], which the view
//! draws. The parent page (the loader script) talks to the frame with `postMessage`.

mod bot;
#[cfg(any(feature = "hydrate", test))]
mod frames;
#[cfg(feature = "hydrate")]
mod live;

use kefu::model::SenderKind;
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::i18n::{I18n, K};
use crate::timeline::Timeline;
use crate::ui::{CloseIcon, MessageRow, SendIcon};
use bot::{ContactForm, HandoffButton, QuickReplies};

/// Everything the chat shows. All signals, so it is `Copy` and the view reads it freely.
#[derive(Clone, Copy)]
pub struct WidgetState {
    pub timeline: RwSignal<Timeline>,
    /// `websocket` or `long-polling`, on the root as `data-transport`.
    pub transport: RwSignal<&'static str>,
    /// True while the connection is lost (shows the "reconnecting…" bar).
    pub offline: RwSignal<bool>,
    pub site_name: RwSignal<String>,
    pub agent_name: RwSignal<Option<String>>,
    pub agents_online: RwSignal<u32>,
    /// A session error we cannot recover from (unknown site, origin not allowed).
    pub fatal: RwSignal<Option<String>>,
    /// The agent is typing.
    pub typing: RwSignal<bool>,
    /// The page is hydrated and the client runs (`data-hydrated` on the root, for tests).
    pub ready: RwSignal<bool>,
}

impl WidgetState {
    fn new() -> Self {
        WidgetState {
            timeline: RwSignal::new(Timeline::new(SenderKind::Visitor)),
            transport: RwSignal::new("websocket"),
            offline: RwSignal::new(false),
            site_name: RwSignal::new(String::new()),
            agent_name: RwSignal::new(None),
            agents_online: RwSignal::new(0),
            fatal: RwSignal::new(None),
            typing: RwSignal::new(false),
            ready: RwSignal::new(false),
        }
    }
}

/// What the view may ask of the live client. A no-op on the server.
#[derive(Clone, Copy)]
struct Actions {
    #[cfg(feature = "hydrate")]
    client: StoredValue<Option<live::Client>, LocalStorage>,
}

impl Actions {
    fn new() -> Self {
        Actions {
            #[cfg(feature = "hydrate")]
            client: StoredValue::new_local(None),
        }
    }

    #[cfg(feature = "hydrate")]
    fn client(self) -> Option<live::Client> {
        self.client.get_value()
    }

    fn send(self, body: String) {
        #[cfg(feature = "hydrate")]
        if let Some(c) = self.client() {
            c.send(body);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = body;
    }

    fn retry(self, client_msg_id: String) {
        #[cfg(feature = "hydrate")]
        if let Some(c) = self.client() {
            c.retry(&client_msg_id);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = client_msg_id;
    }

    /// The visitor's credential, for requests outside the chat (the contact form).
    fn token(self) -> Option<String> {
        #[cfg(feature = "hydrate")]
        {
            self.client().and_then(|c| c.token())
        }
        #[cfg(not(feature = "hydrate"))]
        None
    }

    fn close(self) {
        #[cfg(feature = "hydrate")]
        if let Some(c) = self.client() {
            c.close();
        }
    }
}

#[component]
pub fn WidgetFrame() -> impl IntoView {
    let i = I18n::get();
    let state = WidgetState::new();
    let actions = Actions::new();
    let draft = RwSignal::new(String::new());
    let list_ref = NodeRef::<html::Div>::new();
    let input_ref = NodeRef::<html::Textarea>::new();

    // Browser only, after hydration: the markup above is what the server sent.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        untrack(|| {
            if actions.client.with_value(Option::is_none) {
                actions.client.set_value(Some(live::Client::start(state)));
            }
        });
        state.ready.set(true);
    });

    // Keep the newest message in view.
    Effect::new(move |_| {
        let _rows = state.timeline.with(Timeline::len);
        let _typing = state.typing.get();
        #[cfg(feature = "hydrate")]
        if let Some(el) = list_ref.get() {
            crate::browser::scroll_to_bottom(el.into());
        }
    });

    let submit = move || {
        let body = draft.get_untracked();
        if body.trim().is_empty() {
            return;
        }
        actions.send(body);
        draft.set(String::new());
        #[cfg(feature = "hydrate")]
        if let Some(el) = input_ref.get_untracked() {
            let _ = el.focus();
        }
    };
    let on_retry = Callback::new(move |cmid: String| actions.retry(cmid));
    // A suggestion or "talk to a person": sent as if typed.
    let on_pick = Callback::new(move |text: String| actions.send(text));
    let token = Callback::new(move |()| actions.token());
    let quick_replies_at = Memo::new(move |_| state.timeline.with(Timeline::quick_replies_at));
    let offline_note = Memo::new(move |_| state.timeline.with(Timeline::offline_note));
    let with_bot = Memo::new(move |_| state.timeline.with(Timeline::with_bot));

    let subtitle = move || {
        if let Some(name) = state.agent_name.get() {
            name
        } else if state.agents_online.get() > 0 {
            i.t(K::AgentsOnline).to_owned()
        } else {
            i.t(K::TypicalReply).to_owned()
        }
    };
    let initial = move || {
        state
            .site_name
            .with(|n| n.chars().next().map(crate::browser::upper))
            .unwrap_or_else(|| "K".to_owned())
    };

    view! {
        <Title text="Chat" />
        <div
            id="kefu-chat"
            data-testid="chat-root"
            data-transport=move || state.transport.get()
            data-hydrated=move || state.ready.get().to_string()
            class="flex h-dvh flex-col overflow-hidden bg-white text-slate-900 antialiased"
        >
            <header class="flex shrink-0 items-center gap-3 bg-indigo-600 px-4 py-3 text-white shadow-sm">
                <div
                    class="flex h-10 w-10 shrink-0 items-center justify-center rounded-full bg-white/15 text-lg font-semibold"
                    aria-hidden="true"
                >
                    {initial}
                </div>
                <div class="min-w-0 flex-1">
                    <h1 data-testid="site-name" class="truncate text-base font-semibold leading-tight">
                        {move || state.site_name.get()}
                    </h1>
                    <p data-testid="agent-name" class="flex items-center gap-1.5 truncate text-xs text-indigo-100">
                        <span
                            class=move || {
                                if state.agents_online.get() > 0 || state.agent_name.with(Option::is_some) {
                                    "inline-block h-2 w-2 rounded-full bg-emerald-400"
                                } else {
                                    "inline-block h-2 w-2 rounded-full bg-indigo-300"
                                }
                            }
                            aria-hidden="true"
                        ></span>
                        <span class="truncate">{subtitle}</span>
                    </p>
                </div>
                <button
                    type="button"
                    data-testid="close"
                    class="rounded-full p-2 text-white/90 transition hover:bg-white/15 hover:text-white focus:outline-none focus-visible:ring-2 focus-visible:ring-white"
                    aria-label=move || i.t(K::Close)
                    title=move || i.t(K::Close)
                    on:click=move |_| actions.close()
                >
                    <CloseIcon />
                </button>
            </header>
            <Show when=move || state.offline.get()>
                <div
                    role="status"
                    data-testid="reconnecting"
                    class="shrink-0 bg-amber-100 px-4 py-1 text-center text-xs font-medium text-amber-900"
                >
                    {move || i.t(K::Reconnecting)}
                </div>
            </Show>
            <Show when=move || state.fatal.with(Option::is_some)>
                <div role="alert" class="shrink-0 bg-red-50 px-4 py-2 text-center text-sm text-red-700">
                    {move || i.t(K::ChatUnavailable)}
                    " "
                    {move || state.fatal.get().unwrap_or_default()}
                </div>
            </Show>
            <div
                node_ref=list_ref
                data-testid="message-list"
                role="log"
                aria-live="polite"
                class="flex-1 space-y-3 overflow-y-auto overscroll-contain bg-slate-50 px-4 py-4"
            >
                <Show when=move || state.timeline.with(Timeline::is_empty)>
                    <div data-testid="greeting" class="mx-auto mt-6 max-w-xs rounded-2xl bg-white p-5 text-center shadow-sm ring-1 ring-slate-200">
                        <p class="text-lg font-semibold text-slate-900">{move || i.t(K::Greeting)}</p>
                        <p class="mt-1 text-sm text-slate-500">{move || i.t(K::GreetingSub)}</p>
                    </div>
                </Show>
                <For
                    each=move || state.timeline.with(Timeline::rows)
                    key=|item| item.render_key()
                    children=move |item| {
                        let id = item.id.clone();
                        let replies = item.quick_replies.clone();
                        let has_replies = !replies.is_empty();
                        let offline = item.offline;
                        let (qr_id, note_id) = (id.clone(), id);
                        view! {
                            <MessageRow item own=SenderKind::Visitor show_names=true on_retry />
                            {has_replies.then(|| view! {
                                <Show when=move || quick_replies_at.with(|at| at.as_deref() == Some(qr_id.as_str()))>
                                    <QuickReplies replies=replies.clone() on_pick />
                                </Show>
                            })}
                            {offline.then(|| {
                                let shown = note_id.clone();
                                view! {
                                    <Show when=move || offline_note.with(|at| at.as_deref() == Some(shown.as_str()))>
                                        <ContactForm note_id=note_id.clone() token />
                                    </Show>
                                }
                            })}
                        }
                    }
                />
                <Show when=move || state.typing.get()>
                    <div data-testid="typing" class="flex items-center gap-1 px-1 text-xs text-slate-400">
                        <span class="inline-flex gap-0.5" aria-hidden="true">
                            <span class="h-1.5 w-1.5 animate-bounce rounded-full bg-slate-400"></span>
                            <span class="h-1.5 w-1.5 animate-bounce rounded-full bg-slate-400 [animation-delay:150ms]"></span>
                            <span class="h-1.5 w-1.5 animate-bounce rounded-full bg-slate-400 [animation-delay:300ms]"></span>
                        </span>
                        {move || i.t(K::Typing)}
                    </div>
                </Show>
            </div>
            <form
                class="shrink-0 border-t border-slate-200 bg-white px-3 pt-3 pb-[max(0.75rem,env(safe-area-inset-bottom))]"
                on:submit=move |ev| {
                    ev.prevent_default();
                    submit();
                }
            >
                <Show when=move || with_bot.get()>
                    <HandoffButton on_pick />
                </Show>
                <div class="flex items-end gap-2 rounded-2xl border border-slate-300 bg-white px-3 py-2 shadow-sm focus-within:border-indigo-500 focus-within:ring-2 focus-within:ring-indigo-500/30">
                    <textarea
                        node_ref=input_ref
                        data-testid="composer"
                        rows="1"
                        class="max-h-32 min-h-[1.5rem] flex-1 resize-none border-0 bg-transparent p-0 text-[16px] leading-6 text-slate-900 placeholder:text-slate-400 focus:outline-none focus:ring-0"
                        placeholder=move || i.t(K::TypeMessage)
                        aria-label=move || i.t(K::TypeMessage)
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
                        class="flex h-9 w-9 shrink-0 items-center justify-center rounded-full bg-indigo-600 text-white transition hover:bg-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:cursor-not-allowed disabled:bg-slate-300"
                        disabled=move || draft.with(|d| d.trim().is_empty())
                        aria-label=move || i.t(K::Send)
                        title=move || i.t(K::Send)
                    >
                        <SendIcon />
                    </button>
                </div>
                <p class="mt-1.5 text-center text-[10px] text-slate-400">{move || i.t(K::PoweredBy)}</p>
            </form>
        </div>
    }
}
