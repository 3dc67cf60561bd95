//! What the widget adds while the bot answers: its suggestions as buttons, the "talk to a person"
//! button, and the contact form offered when no agent is online.
//!
//! The bot's messages themselves are ordinary rows ([`crate::ui::MessageRow`] labels them); these
//! pieces hang off the timeline (`Timeline::quick_replies_at`, `with_bot`, `offline_note`). Everything is text: suggestions are button labels, never markup.

use leptos::prelude::*;
#[cfg(feature = "hydrate")]
use serde::Serialize;

use crate::i18n::{I18n, K};

/// The bot's suggestions under its message; a click sends the suggestion as the visitor's message.
#[component]
pub fn QuickReplies(replies: Vec<String>, on_pick: Callback<String>) -> impl IntoView {
    let i = I18n::get();
    view! {
        <div
            data-testid="quick-replies"
            role="group"
            aria-label=move || i.t(K::Suggestions)
            class="-mt-1 flex flex-wrap gap-2 pl-1"
        >
            {replies
                .into_iter()
                .map(|text| {
                    let label = text.clone();
                    view! {
                        <button
                            type="button"
                            data-testid="quick-reply"
                            class="rounded-full border border-indigo-200 bg-white px-3 py-1 text-sm text-indigo-700 shadow-sm transition hover:border-indigo-400 hover:bg-indigo-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                            on:click=move |_| on_pick.run(text.clone())
                        >
                            {label}
                        </button>
                    }
                })
                .collect::<Vec<_>>()}
        </div>
    }
}

/// "Talk to a person": sends the localized words, which the server takes as a hand-over request.
#[component]
pub fn HandoffButton(on_pick: Callback<String>) -> impl IntoView {
    let i = I18n::get();
    view! {
        <div class="flex justify-center pb-2">
            <button
                type="button"
                data-testid="handoff"
                class="inline-flex items-center gap-1.5 rounded-full border border-slate-300 bg-white px-3 py-1 text-xs font-medium text-slate-700 shadow-sm transition hover:border-indigo-400 hover:text-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                on:click=move |_| on_pick.run(i.t(K::Handoff).to_owned())
            >
                <svg viewBox="0 0 24 24" class="h-3.5 w-3.5" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
                    <circle cx="12" cy="8" r="4" />
                    <path stroke-linecap="round" d="M4 20c1.5-4 4.5-6 8-6s6.5 2 8 6" />
                </svg>
                {move || i.t(K::Handoff)}
            </button>
        </div>
    }
}

/// `POST /api/v1/widget/contact`.
#[cfg(feature = "hydrate")]
#[derive(Serialize)]
struct ContactRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Roughly an address: something@something.something.
pub fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((user, host)) => {
            !user.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Roughly a phone number: digits (at least five) with the usual punctuation.
pub fn looks_like_phone(s: &str) -> bool {
    let s = s.trim();
    s.chars().filter(char::is_ascii_digit).count() >= 5
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'))
}

/// The storage key that remembers a sent form, so a reload shows the thank-you, not the form.
#[cfg(feature = "hydrate")]
fn sent_key(note_id: &str) -> String {
    format!("kefu:contact:{note_id}")
}

/// Name, email or phone, and a note, under the "no agent is online" message. `token` gives the
/// visitor's credential for the request.
#[component]
pub fn ContactForm(note_id: String, token: Callback<(), Option<String>>) -> impl IntoView {
    let i = I18n::get();
    let name = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let sent = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let key = StoredValue::new(sent_key(&note_id));
    #[cfg(feature = "hydrate")]
    if key.with_value(|k| crate::browser::storage_get(k).is_some()) {
        sent.set(true);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&note_id, token);

    let submit = move || {
        let (e, p) = (email.get_untracked(), phone.get_untracked());
        let e_ok = !e.trim().is_empty() && looks_like_email(&e);
        let p_ok = !p.trim().is_empty() && looks_like_phone(&p);
        let bad = (!e.trim().is_empty() && !e_ok) || (!p.trim().is_empty() && !p_ok);
        if bad || !(e_ok || p_ok) {
            error.set(Some(i.t(K::ContactNeedOne).to_owned()));
            return;
        }
        error.set(None);
        #[cfg(feature = "hydrate")]
        {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            let field = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            let req = ContactRequest {
                name: field(name.get_untracked()),
                email: field(e),
                phone: field(p),
                note: field(note.get_untracked()),
            };
            let bearer = token.run(());
            let key = key.get_value();
            leptos::task::spawn_local(async move {
                let body = serde_json::to_string(&req).unwrap_or_default();
                let r = crate::browser::request_text(
                    "POST",
                    "/api/v1/widget/contact",
                    Some(("application/json", body)),
                    bearer.as_deref(),
                )
                .await;
                busy.set(false);
                match r {
                    Ok(_) => {
                        crate::browser::storage_set(&key, "1");
                        sent.set(true);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };

    let input = "mt-1 block w-full rounded-lg border border-slate-300 bg-white px-2.5 py-1.5 text-[16px] text-slate-900 placeholder:text-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30 sm:text-sm";
    let label = "block text-xs font-medium text-slate-600";

    view! {
        <Show
            when=move || !sent.get()
            fallback=move || {
                view! {
                    <p
                        data-testid="contact-thanks"
                        role="status"
                        class="mx-auto max-w-[85%] rounded-2xl bg-emerald-50 px-4 py-3 text-center text-sm text-emerald-800 ring-1 ring-emerald-200"
                    >
                        {move || i.t(K::ContactThanks)}
                    </p>
                }
            }
        >
            <form
                data-testid="contact-form"
                novalidate
                class="mx-auto w-full max-w-[90%] space-y-2 rounded-2xl bg-white p-4 shadow-sm ring-1 ring-slate-200"
                on:submit=move |ev| {
                    ev.prevent_default();
                    submit();
                }
            >
                <p class="text-sm font-semibold text-slate-900">{move || i.t(K::ContactTitle)}</p>
                <p class="text-xs text-slate-500">{move || i.t(K::ContactSub)}</p>
                <label class=label>
                    {move || i.t(K::Name)}
                    <input
                        type="text"
                        autocomplete="name"
                        data-testid="contact-name"
                        class=input
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                </label>
                <label class=label>
                    {move || i.t(K::Email)}
                    <input
                        type="email"
                        autocomplete="email"
                        data-testid="contact-email"
                        class=input
                        prop:value=move || email.get()
                        on:input=move |ev| email.set(event_target_value(&ev))
                    />
                </label>
                <label class=label>
                    {move || i.t(K::Phone)}
                    <input
                        type="tel"
                        autocomplete="tel"
                        data-testid="contact-phone"
                        class=input
                        prop:value=move || phone.get()
                        on:input=move |ev| phone.set(event_target_value(&ev))
                    />
                </label>
                <label class=label>
                    {move || i.t(K::ContactNote)}
                    <textarea
                        rows="2"
                        data-testid="contact-note"
                        class=input
                        prop:value=move || note.get()
                        on:input=move |ev| note.set(event_target_value(&ev))
                    ></textarea>
                </label>
                <Show when=move || error.with(Option::is_some)>
                    <p role="alert" data-testid="contact-error" class="rounded-lg bg-red-50 px-2.5 py-1.5 text-xs text-red-700">
                        {move || error.get().unwrap_or_default()}
                    </p>
                </Show>
                <button
                    type="submit"
                    data-testid="contact-submit"
                    class="w-full rounded-lg bg-indigo-600 px-3 py-2 text-sm font-semibold text-white shadow-sm transition hover:bg-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:opacity-60"
                    disabled=move || busy.get()
                >
                    {move || i.t(K::ContactSubmit)}
                </button>
            </form>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_contact_details_loosely() {
        assert!(looks_like_email("ann@shop.example"));
        assert!(!looks_like_email("ann@shop"));
        assert!(!looks_like_email("ann shop@x.io"));
        assert!(!looks_like_email("@x.io"));
        assert!(looks_like_phone("+86 138-0013-8000"));
        assert!(looks_like_phone("(555) 123 4567"));
        assert!(!looks_like_phone("1234"));
        assert!(!looks_like_phone("call me maybe 12345"));
    }
}
