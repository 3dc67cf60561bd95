//! Small browser helpers: storage, ids, time formatting, query parameters, JSON over HTTP.
//!
//! Everything touching `window` exists only with the `hydrate` feature. The formatting functions
//! that views call also exist on the server, where they return empty strings: the server renders
//! no data, so they are never called with any there.

use crate::i18n::{I18n, K};

/// An HTTP failure: `status` 0 means the request never got an answer.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

/// Local wall-clock time `HH:MM` of an RFC 3339 timestamp.
pub fn clock(iso: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let Some(ms) = parse_ms(iso) else {
            return String::new();
        };
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = iso;
        String::new()
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp such as `2026-11-27T10:00:00.123Z` or
/// `…+08:00`. Pure Rust, so lists sort the same everywhere and tests can run it.
pub fn parse_ms(iso: &str) -> Option<i64> {
    let b = iso.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = std::str::from_utf8(b.get(from..from + len)?).ok()?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(4) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = std::str::from_utf8(&b[start..i]).ok()?;
        let first3: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = first3.parse::<i64>().ok()?;
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') | None => 0,
        Some(sign @ (b'+' | b'-')) => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

/// "3 min ago" for a timestamp, relative to `now_ms`.
pub fn relative(iso: &str, now_ms: f64, i: I18n) -> String {
    let Some(then) = parse_ms(iso) else {
        return String::new();
    };
    if now_ms <= 0.0 {
        return String::new();
    }
    let secs = ((now_ms - then as f64) / 1000.0).max(0.0) as u64;
    match secs {
        0..60 => i.t(K::JustNow).to_owned(),
        60..3600 => i.tn(K::MinutesAgo, secs / 60),
        3600..86400 => i.tn(K::HoursAgo, secs / 3600),
        _ => i.tn(K::DaysAgo, secs / 86400),
    }
}

/// A short label for an anonymous visitor: "Visitor 1a2b" from the last characters of the id.
pub fn visitor_label(i: I18n, id: &str) -> String {
    format!("{} {}", i.t(K::VisitorLabel), short_id(id))
}

/// The last four letters or digits of an id, lower case.
pub fn short_id(id: &str) -> String {
    let tail: Vec<char> = id
        .chars()
        .rev()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    tail.into_iter()
        .rev()
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `c` in upper case, as an avatar letter. In the browser JavaScript does it: Rust's own
/// `to_uppercase` would put Unicode case tables (about 12 KB) in the wasm every page loads.
pub fn upper(c: char) -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::JsString::from(c).to_upper_case().into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        c.to_uppercase().to_string()
    }
}

/// True for links we are willing to put in an `href`.
pub fn is_web_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

#[cfg(feature = "hydrate")]
pub use live::*;

#[cfg(feature = "hydrate")]
mod live {
    use gloo_net::http::{Request, RequestBuilder, Response};
    use kefu::api::ErrorBody;
    use leptos::prelude::window;
    use serde::{Serialize, de::DeserializeOwned};
    use wasm_bindgen::{JsCast, JsValue};

    use super::HttpError;

    pub fn now_ms() -> f64 {
        js_sys::Date::now()
    }

    pub fn now_iso() -> String {
        js_sys::Date::new_0().to_iso_string().into()
    }

    fn storage() -> Option<web_sys::Storage> {
        window().local_storage().ok().flatten()
    }

    pub fn storage_get(key: &str) -> Option<String> {
        storage()?.get_item(key).ok().flatten()
    }

    pub fn storage_set(key: &str, value: &str) {
        if let Some(s) = storage() {
            let _ = s.set_item(key, value);
        }
    }

    pub fn storage_remove(key: &str) {
        if let Some(s) = storage() {
            let _ = s.remove_item(key);
        }
    }

    /// A fresh random id (32 hex digits) for `client_msg_id`.
    pub fn new_id() -> String {
        let mut bytes = [0u8; 16];
        let filled = window()
            .crypto()
            .ok()
            .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
            .is_some();
        if !filled {
            for b in bytes.iter_mut() {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A query parameter of the current page.
    pub fn query_param(name: &str) -> Option<String> {
        let search = window().location().search().ok()?;
        web_sys::UrlSearchParams::new_with_str(&search)
            .ok()?
            .get(name)
    }

    /// `ws://host/path` or `wss://host/path` for the page's own host.
    pub fn ws_url(path_and_query: &str) -> String {
        let loc = window().location();
        let scheme = if loc.protocol().ok().as_deref() == Some("https:") {
            "wss"
        } else {
            "ws"
        };
        format!(
            "{scheme}://{}{path_and_query}",
            loc.host().unwrap_or_default()
        )
    }

    /// The time now in an IANA zone (or at a fixed UTC offset), `HH:MM`, for the visitor panel.
    pub fn time_in_zone(timezone: Option<&str>, utc_offset_minutes: Option<i32>) -> Option<String> {
        let now = js_sys::Date::new_0();
        if let Some(tz) = timezone.filter(|t| !t.is_empty()) {
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&options, &"timeZone".into(), &tz.into());
            let _ = js_sys::Reflect::set(&options, &"hour".into(), &"2-digit".into());
            let _ = js_sys::Reflect::set(&options, &"minute".into(), &"2-digit".into());
            let _ = js_sys::Reflect::set(&options, &"hour12".into(), &false.into());
            // An unknown zone throws a RangeError: call through Function::call2 to catch it.
            let f = js_sys::Reflect::get(&now, &"toLocaleTimeString".into())
                .ok()
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            if let Some(f) = f
                && let Ok(s) = f.call2(&now, &JsValue::UNDEFINED, &options)
                && let Some(s) = s.as_string()
            {
                return Some(format!("{s} ({tz})"));
            }
        }
        let offset = utc_offset_minutes?;
        let shifted = js_sys::Date::new(&JsValue::from_f64(
            now.get_time() + f64::from(offset) * 60_000.0,
        ));
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        Some(format!(
            "{:02}:{:02} (UTC{sign}{:02}:{:02})",
            shifted.get_utc_hours(),
            shifted.get_utc_minutes(),
            abs / 60,
            abs % 60
        ))
    }

    /// Posts `{"kefu": kind}` (with `count` when given) to the parent window, to exactly
    /// `origin`. A plain object built in place: no JSON value type in the widget's wasm.
    pub fn post_to_parent(kind: &str, count: Option<u32>, origin: &str) {
        if origin.is_empty() {
            return;
        }
        let Ok(Some(parent)) = window().parent() else {
            return;
        };
        let msg = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&msg, &"kefu".into(), &kind.into());
        if let Some(n) = count {
            let _ = js_sys::Reflect::set(&msg, &"count".into(), &n.into());
        }
        let _ = parent.post_message(&msg, origin);
    }

    async fn send(rb: RequestBuilder, body: Option<String>) -> Result<Response, HttpError> {
        let req = match body {
            Some(b) => rb.header("Content-Type", "application/json").body(b),
            None => rb.build(),
        }
        .map_err(|e| HttpError {
            status: 0,
            message: e.to_string(),
        })?;
        let resp = req.send().await.map_err(|e| HttpError {
            status: 0,
            message: e.to_string(),
        })?;
        if resp.ok() {
            return Ok(resp);
        }
        let status = resp.status();
        let message = match resp.json::<ErrorBody>().await {
            Ok(b) => b.error.message,
            Err(_) => format!("HTTP {status}"),
        };
        Err(HttpError { status, message })
    }

    fn with_bearer(rb: RequestBuilder, bearer: Option<&str>) -> RequestBuilder {
        match bearer {
            Some(t) => rb.header("Authorization", &format!("Bearer {t}")),
            None => rb,
        }
    }

    async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, HttpError> {
        let status = resp.status();
        resp.json::<T>().await.map_err(|e| HttpError {
            status,
            message: e.to_string(),
        })
    }

    pub async fn get_json<T: DeserializeOwned>(
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        decode(send(with_bearer(Request::get(url), bearer), None).await?).await
    }

    pub async fn post_json<T: DeserializeOwned>(
        url: &str,
        body: &impl Serialize,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        let body = serde_json::to_string(body).map_err(|e| HttpError {
            status: 0,
            message: e.to_string(),
        })?;
        decode(send(with_bearer(Request::post(url), bearer), Some(body)).await?).await
    }

    /// A POST whose answer has no body we need (e.g. logout's 204).
    pub async fn post_empty(url: &str) -> Result<(), HttpError> {
        send(Request::post(url), None).await.map(|_| ())
    }

    /// Any request the helpers above do not cover (`PUT`, `DELETE`, a body that is not JSON, an
    /// answer with no body): `method` with an optional `(content type, body)`; the answer's body
    /// as text (empty for a `204`). Errors carry the server's `{"error": {"message"}}`.
    pub async fn request_text(
        method: &str,
        url: &str,
        body: Option<(&str, String)>,
        bearer: Option<&str>,
    ) -> Result<String, HttpError> {
        let rb = match method {
            "GET" => Request::get(url),
            "PUT" => Request::put(url),
            "DELETE" => Request::delete(url),
            _ => Request::post(url),
        };
        let rb = with_bearer(rb, bearer);
        let req = match body {
            Some((content_type, b)) => rb.header("Content-Type", content_type).body(b),
            None => rb.build(),
        }
        .map_err(|e| HttpError {
            status: 0,
            message: e.to_string(),
        })?;
        let resp = req.send().await.map_err(|e| HttpError {
            status: 0,
            message: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if resp.ok() {
            return Ok(text);
        }
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| format!("HTTP {status}"));
        Err(HttpError { status, message })
    }

    /// Sleeps without blocking the page.
    pub async fn sleep_ms(ms: u32) {
        gloo_timers::future::TimeoutFuture::new(ms).await;
    }

    /// Scrolls an element to its bottom on the next frame (after the new rows are laid out).
    pub fn scroll_to_bottom(el: web_sys::Element) {
        leptos::prelude::request_animation_frame(move || {
            el.set_scroll_top(el.scroll_height());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_ms("2026-11-27T10:00:00Z"), Some(1_795_773_600_000));
        assert_eq!(parse_ms("2026-11-27T10:00:00.5Z"), Some(1_795_773_600_500));
        assert_eq!(
            parse_ms("2026-11-27T18:00:00.123456+08:00"),
            Some(1_795_773_600_123)
        );
        assert_eq!(parse_ms("2000-02-29T00:00:00-01:30"), Some(951_787_800_000));
        assert_eq!(parse_ms("yesterday"), None);
    }

    #[test]
    fn upper_cases_one_letter() {
        assert_eq!(upper('a'), "A");
        assert_eq!(upper('é'), "É");
        assert_eq!(upper('客'), "客");
    }

    #[test]
    fn labels_anonymous_visitors() {
        assert_eq!(short_id("vis_01J9ZX1A2B"), "1a2b");
        assert_eq!(short_id("a-b"), "ab");
    }

    #[test]
    fn only_web_links_are_links() {
        assert!(is_web_url("https://shop.example/a"));
        assert!(is_web_url("HTTP://x"));
        assert!(!is_web_url("javascript:alert(1)"));
        assert!(!is_web_url("data:text/html,x"));
    }
}
