//! `/demo`: a sample shop page that embeds the widget exactly as a customer would.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;

#[derive(serde::Deserialize)]
pub struct DemoQuery {
    site: Option<String>,
}

/// `/demo` embeds the first site; `/demo?site=<site_key>` another one.
pub async fn page(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<DemoQuery>,
) -> Response {
    let site_key = match state.hub.storage().sites().await {
        Ok(sites) => match q.site {
            Some(key) => sites
                .into_iter()
                .find(|s| s.site_key == key)
                .map(|s| s.site_key),
            None => sites.into_iter().next().map(|s| s.site_key),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot list sites for the demo page");
            None
        }
    };
    let snippet = match site_key {
        Some(key) => format!(
            r#"<script src="/widget.js" data-site="{}" async></script>"#,
            html_escape(&key)
        ),
        None => "<!-- no site yet: create one with `kefu site add --name Shop` -->".to_owned(),
    };
    let html = include_str!("demo.html").replace("<!--KEFU_SNIPPET-->", &snippet);
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
