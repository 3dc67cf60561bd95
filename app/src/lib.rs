//! Kefu's browser UI, rendered on the server (feature `ssr`) and hydrated in the browser
//! (feature `hydrate`) from this one crate.
//!
//! - [`shell`]: the HTML document the server wraps around every page.
//! - [`App`]: the router: `/widget/frame` → [`widget::WidgetFrame`] (the visitor chat inside the
//!   loader's iframe), `/console` → [`console::Console`] (agents).
//! - [`hydrate`]: the browser entry point. The widget frame hydrates [`WidgetPage`] alone, without
//!   the router; every other page hydrates [`App`], which a split build
//!   (`cargo leptos build --split`, see `build.rs`) puts in a separate wasm file, so the visitor's
//!   browser never downloads the console.
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
// The widget's view is one concrete type (no `into_any()`, see `ui::MessageRow`); the router
// nests it deeply enough to need more than the default 128.
#![recursion_limit = "256"]

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

/// Where the loader's iframe points.
pub const WIDGET_PATH: &str = "/widget/frame";

/// The contexts every page needs, and the document title's suffix.
fn page_setup() -> impl IntoView {
    provide_meta_context();
    i18n::I18n::provide();
    view! { <Title formatter=|page: String| format!("{page} · Kefu") /> }
}

/// Every page, as the server renders it.
#[component]
pub fn App() -> impl IntoView {
    view! {
        {page_setup()}
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/widget/frame") view=widget::WidgetFrame />
                // `/console` and `/console/bot` (the bot's admin page): one route, so moving
                // between them keeps the console and its connection.
                <Route path=path!("/console/:section?") view=ConsolePage />
            </Routes>
        </Router>
    }
}

/// What [`App`] renders at [`WIDGET_PATH`], without the router: the router adds no markup of its
/// own, so this hydrates the server's page for the widget frame exactly.
#[component]
pub fn WidgetPage() -> impl IntoView {
    view! {
        {page_setup()}
        <widget::WidgetFrame />
    }
}

/// Hydrates the page the server rendered (browser only; the `frontend` crate calls it).
///
/// The widget frame runs [`WidgetPage`] and nothing else. Any other page loads and hydrates the
/// whole [`App`]: in a split build that code (the router, the console) is a separate wasm file
/// that only those pages download; otherwise it is all one file, as before.
#[cfg(feature = "hydrate")]
pub fn hydrate() {
    let path = window().location().pathname().unwrap_or_default();
    if path == WIDGET_PATH {
        leptos::mount::hydrate_body(WidgetPage);
    } else {
        #[cfg(kefu_split)]
        wasm_bindgen_futures::spawn_local(hydrate_app());
        #[cfg(not(kefu_split))]
        hydrate_app();
    }
}

/// Split: a lazy function, whose code is loaded on the first call.
///
/// On the server the same `#[lazy]` (same place in the source, so the same name) makes an async
/// no-op that, called while a page renders, has Leptos put `<link rel="preload">`s for this
/// function's wasm file in the page (see [`preload_app`]). Without a split build there is no
/// such file and no link.
#[cfg(any(feature = "hydrate", feature = "ssr"))]
#[cfg_attr(any(kefu_split, feature = "ssr"), leptos::lazy)]
fn hydrate_app() {
    #[cfg(feature = "hydrate")]
    leptos::mount::hydrate_body(App);
}

/// Room for the wasm splitter to move data (the console's strings, mostly) into the split file.
///
/// cargo-leptos 0.3.10 splits with wasm_split_cli_support 0.2.3, which lays each file's data out
/// anew inside the linker's data segment; when that needs a few bytes more than the segment had
/// (alignment, strings shared by both files), it gives up and leaves *all* the data in the main
/// file ("Overlong segment 0 by 227 after relocation, putting it in main module"). These bytes
/// are in the segment but nothing uses them, so they end up in neither file: they only make the
/// segment long enough. Not all zeros, or it would go to `.bss`.
#[cfg(kefu_split)]
#[used]
static SPLIT_DATA_SLACK: [u8; 4096] = [1; 4096];

/// Asks for the preload links of [`hydrate_app`]'s wasm file, so a page other than the widget
/// fetches it alongside the main one instead of after it. Server only.
fn preload_app() {
    #[cfg(feature = "ssr")]
    {
        use std::future::Future;
        use std::task::{Context, Waker};
        // Its body runs on the first poll: it only records the name, there is nothing to wait for.
        let _ = std::pin::pin!(hydrate_app()).poll(&mut Context::from_waker(Waker::noop()));
    }
}

#[component]
fn ConsolePage() -> impl IntoView {
    preload_app();
    view! { <console::Console /> }
}

#[component]
fn NotFound() -> impl IntoView {
    preload_app();
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
        render_with(path, || view! { <App /> }.into_any())
    }

    fn render_with(path: &str, page: impl FnOnce() -> AnyView) -> String {
        let owner = Owner::new();
        owner.with(|| {
            provide_context(leptos_router::location::RequestUrl::new(path));
            let (meta, _) = leptos_meta::ServerMetaContext::new();
            provide_context(meta);
            page().to_html()
        })
    }

    /// The browser hydrates the widget frame with `WidgetPage`, not `App`: both must make the
    /// same markup, or hydration would go wrong.
    #[test]
    fn the_widget_page_is_what_the_router_renders_for_the_frame() {
        let path = "/widget/frame?site=abc&origin=https%3A%2F%2Fshop.example";
        let routed = render(path);
        let alone = render_with(path, || view! { <WidgetPage /> }.into_any());
        assert!(routed.contains(r#"data-testid="chat-root""#), "{routed}");
        assert_eq!(routed, alone);
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
