//! Pieces both screens draw: a message row with its delivery state, and a few icons.
//!
//! Bodies are always text nodes (Leptos escapes them); nothing here takes HTML.

use kefu::model::SenderKind;
use leptos::either::Either;
use leptos::prelude::*;

use crate::browser;
use crate::i18n::{I18n, K};
use crate::timeline::{Delivery, Item};

/// One message. `own` is whose messages sit on the right (the visitor in the widget, agents in
/// the console); `show_names` puts the author's name over the other side's messages.
#[component]
pub fn MessageRow(
    item: Item,
    own: SenderKind,
    #[prop(optional)] show_names: bool,
    on_retry: Callback<String>,
) -> impl IntoView {
    let i = I18n::get();
    let mine = item.sender == own;
    let kind = item.sender.as_str();
    let time = browser::clock(&item.created_at);
    let seq = item.seq.to_string();

    // `Either` rather than `into_any()`: a type-erased view carries code for every way of
    // rendering it (async hydration included), which the widget's wasm would have to ship.
    if item.sender == SenderKind::System {
        return Either::Left(view! {
            <div
                data-testid="message"
                data-sender=kind
                data-seq=seq
                class="flex justify-center py-1"
            >
                <p class="max-w-[85%] whitespace-pre-wrap break-words rounded-full bg-slate-200/70 px-3 py-1 text-center text-xs text-slate-600">
                    {item.body}
                </p>
            </div>
        });
    }

    let bubble = if item.private {
        "border border-amber-300 bg-amber-50 text-amber-950"
    } else if mine {
        "bg-indigo-600 text-white rounded-br-md"
    } else if item.sender == SenderKind::Bot {
        "border border-emerald-200 bg-emerald-50 text-emerald-950 rounded-bl-md"
    } else {
        "border border-slate-200 bg-white text-slate-900 rounded-bl-md"
    };
    let bubble = format!(
        "max-w-[85%] rounded-2xl px-3.5 py-2 text-[15px] leading-relaxed shadow-sm whitespace-pre-wrap break-words {bubble}"
    );
    let row = if mine {
        "flex flex-col items-end gap-1"
    } else {
        "flex flex-col items-start gap-1"
    };
    // Bot messages always say so (a "Bot" label and avatar, the bot's name when it has one);
    // other authors are named only where `show_names` asks for it.
    let is_bot = item.sender == SenderKind::Bot;
    let name = if is_bot || (!mine && show_names) {
        item.sender_name.clone().filter(|n| !n.trim().is_empty())
    } else {
        None
    };
    let header = (is_bot || name.is_some()).then(|| {
        view! {
            <span class="flex items-center gap-1.5 px-1 text-xs text-slate-500">
                {is_bot.then(|| view! {
                    <span
                        data-testid="bot-avatar"
                        class="flex h-5 w-5 items-center justify-center rounded-full bg-emerald-100 text-emerald-700"
                        aria-hidden="true"
                    >
                        <BotIcon />
                    </span>
                })}
                {name}
                {is_bot.then(|| view! {
                    <span
                        data-testid="bot-label"
                        class="rounded bg-emerald-100 px-1.5 py-px text-[10px] font-semibold uppercase tracking-wide text-emerald-700"
                    >
                        {move || i.t(K::Bot)}
                    </span>
                })}
            </span>
        }
    });
    let note = item.private.then(|| {
        view! {
            <span
                data-testid="internal-note"
                class="mb-0.5 block text-[11px] font-semibold uppercase tracking-wide text-amber-700"
            >
                {move || i.t(K::InternalNote)}
            </span>
        }
    });
    let cmid = item.client_msg_id.clone().unwrap_or_default();
    let status = item.delivery.map(|d| {
        let label = move || match d {
            Delivery::Sending => i.t(K::Sending),
            Delivery::Sent => i.t(K::Sent),
            Delivery::Failed => i.t(K::Failed),
        };
        let color = match d {
            Delivery::Failed => "text-red-600 font-medium",
            _ => "text-slate-400",
        };
        let retry = (d == Delivery::Failed).then(|| {
            let cmid = cmid.clone();
            view! {
                <button
                    type="button"
                    data-testid="retry"
                    class="rounded px-1 font-semibold text-indigo-600 underline-offset-2 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                    on:click=move |_| on_retry.run(cmid.clone())
                >
                    {move || i.t(K::Retry)}
                </button>
            }
        });
        view! {
            <span class=format!("inline-flex items-center gap-1 {color}")>
                <span data-testid=format!("status-{}", d.as_str())>{label}</span>
                {retry}
            </span>
        }
    });

    Either::Right(view! {
        <div
            data-testid="message"
            data-sender=kind
            data-seq=seq
            data-private=item.private.to_string()
            class=row
        >
            {header}
            <div class=bubble>
                {note}
                <p data-testid="message-body">{item.body}</p>
            </div>
            <div class="flex items-center gap-2 px-1 text-[11px] text-slate-400">
                <span>{time}</span>
                {status}
            </div>
        </div>
    })
}

#[component]
pub fn CloseIcon() -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" class="h-5 w-5" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
            <path stroke-linecap="round" d="M6 6l12 12M18 6L6 18" />
        </svg>
    }
}

#[component]
pub fn SendIcon() -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" class="h-5 w-5" fill="currentColor" aria-hidden="true">
            <path d="M3.4 20.4l17.45-7.48a1 1 0 000-1.84L3.4 3.6a.993.993 0 00-1.39.91L2 9.12c0 .5.37.93.87.99L17 12 2.87 13.88c-.5.07-.87.5-.87 1l.01 4.61c0 .71.73 1.2 1.39.91z" />
        </svg>
    }
}

/// A small robot face, the bot's avatar.
#[component]
pub fn BotIcon() -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" class="h-3.5 w-3.5" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
            <rect x="4" y="8" width="16" height="12" rx="3" />
            <path stroke-linecap="round" d="M12 4v4M9 13h.01M15 13h.01M9.5 17h5" />
        </svg>
    }
}

#[component]
pub fn BackIcon() -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" class="h-5 w-5" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
            <path stroke-linecap="round" stroke-linejoin="round" d="M15 18l-6-6 6-6" />
        </svg>
    }
}

#[component]
pub fn InfoIcon() -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" class="h-5 w-5" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
            <circle cx="12" cy="12" r="9" />
            <path stroke-linecap="round" d="M12 11v5M12 8h.01" />
        </svg>
    }
}
