//! Kefu's browser UI, rendered on the server (feature `ssr`) and hydrated in the browser
//! (feature `hydrate`) from this one crate.
//!
//! - [`shell`]: the HTML document the server wraps around every page.
//! - [`App`]: the router: `/widget/frame` → [`widget::WidgetFrame`] (the visitor chat inside the
//!   loader's iframe), `/console` → [`console::Console`] (agents).
//! - [`widget`], [`console`]: each screen is a view over a `Copy` struct of signals, plus a
//!   `live` module (browser only) that owns the connection and writes those signals.
//! - [`ws`]: the reconnecting WebSocket both screens use; [`browser`]: storage, HTTP, time.
//! - [`timeline`]: the pure model of a chat window (dedupe, seq order, delivery states).
//! - [`i18n`]: every UI string in English and Chinese; [`ui`]: the message row and icons.
//!
//! The server renders an empty, language-neutral (English) shell and fetches no data. Every
//! request, socket and language switch starts in an `Effect` after hydration, so the hydrated
//! markup always matches the server's.

#![forbid(unsafe_code)]

pub mod browser;
pub mod console;
pub mod i18n;
pub mod timeline;
pub mod ui;
pub mod widget;
#[cfg(feature = "hydrate")]
pub mod ws;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

/// The whole document, for the server's Leptos handler.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en" class="h-full">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover" />
                <meta name="color-scheme" content="light" />
                <AutoReload options=options.clone() />
                <HydrationScripts options=options.clone() />
                <leptos_meta::HashedStylesheet options id="leptos" />
                <link rel="icon" href="/favicon.ico" />
                <MetaTags />
            </head>
            <body class="h-full bg-white font-sans text-slate-900 antialiased">
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    i18n::I18n::provide();

    view! {
        <Title formatter=|page: String| format!("{page} · Kefu") />
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/widget/frame") view=widget::WidgetFrame />
                // `/console` and `/console/bot` (the bot's admin page): one route, so moving
                // between them keeps the console and its connection.
                <Route path=path!("/console/:section?") view=console::Console />
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found" />
        <main class="flex h-full items-center justify-center p-8 text-center">
            <div>
                <p class="text-5xl font-bold text-indigo-600">"404"</p>
                <p class="mt-2 text-slate-600">"This page does not exist."</p>
                <a
                    href="/console"
                    class="mt-4 inline-block rounded-lg px-3 py-2 text-indigo-600 hover:bg-indigo-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                >
                    "Kefu console"
                </a>
            </div>
        </main>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    /// What the server sends for a path, without the document shell.
    fn render(path: &str) -> String {
        let owner = Owner::new();
        owner.with(|| {
            provide_context(leptos_router::location::RequestUrl::new(path));
            let (meta, _) = leptos_meta::ServerMetaContext::new();
            provide_context(meta);
            view! { <App /> }.to_html()
        })
    }

    #[test]
    fn the_widget_frame_renders_an_empty_chat() {
        let html = render("/widget/frame?site=abc&origin=https%3A%2F%2Fshop.example");
        assert!(html.contains(r#"data-transport="websocket""#), "{html}");
        assert!(html.contains(r#"data-testid="composer""#));
        assert!(html.contains(r#"data-testid="greeting""#));
    }

    #[test]
    fn the_console_renders_a_spinner_until_the_browser_asks_who_is_logged_in() {
        for path in ["/console", "/console/bot"] {
            let html = render(path);
            assert!(html.contains(r#"aria-busy="true""#), "{path}: {html}");
            assert!(!html.contains("login-email"));
        }
    }
}
