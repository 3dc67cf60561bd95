//! The HTTP surface: the API routes, the WebSocket upgrades, the Leptos pages, static files.

pub mod agent;
pub mod auth;
pub mod bot;
pub mod demo;
pub mod error;
pub mod widget;

use std::path::Path;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::AppState;
use crate::gateway::{longpoll, ws};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/widget/sessions", post(widget::create_session))
        .route("/widget/messages", post(longpoll::post_message))
        .route("/widget/events", get(longpoll::events))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/conversations", get(agent::list))
        .route("/conversations/{id}", get(agent::get))
        .route(
            "/conversations/{id}/messages",
            get(agent::messages).post(agent::post_message),
        )
        .route("/conversations/{id}/status", post(agent::set_status))
        .route("/widget/contact", post(widget::contact))
        .route("/sites", get(bot::sites))
        .route("/sites/{id}/bot", get(bot::get_config).put(bot::put_config))
        .route("/sites/{id}/bot/try", post(bot::try_it))
        .route("/sites/{id}/bot/unanswered", get(bot::unanswered))
        .route(
            "/sites/{id}/bot/unanswered/{item}",
            axum::routing::delete(bot::unanswered_delete),
        )
        .route("/sites/{id}/qa", get(bot::qa_list).post(bot::qa_create))
        // Not held to `max_body_bytes` (the layer below): the handler reads the body itself, up
        // to `limits.import_max_bytes` (pack files are around a megabyte).
        .route("/sites/{id}/qa/import", post(bot::qa_import))
        .route(
            "/sites/{id}/qa/{qa_id}",
            axum::routing::put(bot::qa_update).delete(bot::qa_delete),
        )
        .route("/bot/packs", get(bot::packs))
        .fallback(|| async { error::ApiError::not_found("no such API endpoint") });

    let site_root = state.leptos.site_root.to_string();
    let static_files = ServeDir::new(&site_root).append_index_html_on_directories(false);
    let leptos_options = state.leptos.clone();
    let routes = generate_route_list(app::App);

    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(|| async { Redirect::temporary("/console") }))
        .route("/demo", get(demo::page))
        .route("/ws/visitor", get(ws::visitor))
        .route("/ws/agent", get(ws::agent))
        .nest("/api/v1", api)
        .leptos_routes(&state, routes, move || app::shell(leptos_options.clone()))
        .fallback_service(static_files)
        .layer(middleware::from_fn_with_state(state.clone(), headers))
        .layer(CompressionLayer::new())
        .layer(DefaultBodyLimit::max(state.settings.limits.max_body_bytes))
        .layer(state.sessions.clone())
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.hub.storage().ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable").into_response()
        }
    }
}

/// Security and caching headers: who may frame which page, and how long files may be cached.
async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let frame_ancestors = if path == "/widget/frame" {
        // Read as the frame's script reads it (`URLSearchParams.get`: decoded, first match),
        // so a second or encoded `site` cannot make this header speak of another site.
        let key = req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "site")
                .map(|(_, v)| v.into_owned())
        });
        Some(widget_frame_ancestors(&state, key.as_deref()).await)
    } else if path.starts_with("/console") {
        Some("'none'".to_owned())
    } else {
        None
    };
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(fa) = frame_ancestors
        && let Ok(v) = HeaderValue::from_str(&format!("frame-ancestors {fa}"))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if !h.contains_key(header::CACHE_CONTROL) && res.status().is_success() {
        let cache = if path.starts_with("/pkg/") && state.leptos.hash_files {
            "public, max-age=31536000, immutable"
        } else if path.starts_with("/pkg/") || path == "/widget.js" || path == "/favicon.ico" {
            "public, max-age=300"
        } else {
            "no-cache"
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    res
}

/// `frame-ancestors` for the widget frame: the site's allowed origins, or any page when the
/// site lists none.
async fn widget_frame_ancestors(state: &AppState, site_key: Option<&str>) -> String {
    let Some(key) = site_key else {
        return "'self'".into();
    };
    match state.hub.storage().site_by_key(key).await {
        Ok(Some(site)) if site.allowed_origins.is_empty() => "*".into(),
        Ok(Some(site)) => {
            let mut v = vec!["'self'".to_owned()];
            v.extend(
                site.allowed_origins
                    .iter()
                    .filter(|o| {
                        o.chars()
                            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
                    })
                    .cloned(),
            );
            v.join(" ")
        }
        _ => "'self'".into(),
    }
}

/// Whether the built site has hashed file names (`hash.txt` beside the binary).
pub fn hashed_build() -> bool {
    if let Ok(v) = std::env::var("LEPTOS_HASH_FILES") {
        return v == "true";
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("hash.txt")))
        .is_some_and(|p| Path::new(&p).exists())
}
