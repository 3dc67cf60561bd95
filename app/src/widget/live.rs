//! The widget's connection to the server (browser only).
//!
//! 1. `POST /api/v1/widget/sessions` with the stored visitor token (kept in `localStorage` per
//!    site key) gives the token and the open conversation.
//! 2. `/ws/visitor`: after every `hello`, `resume` the conversation from the highest `seq` shown
//!    (0 on a fresh page: the whole history) and resend every unacked message with its same
//!    `client_msg_id`; the server deduplicates.
//! 3. If the WebSocket fails twice before ever opening, switch to long-polling for good:
//!    `GET /api/v1/widget/events` in a loop and `POST /api/v1/widget/messages`.
//!
//! Unread counting for the launcher badge: agent and bot messages that arrive live while the
//! parent says the chat is closed.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use kefu::api::{MessageResponse, PostMessage, SessionRequest, SessionResponse};
use kefu::frame::{ClientFrame, TypingState};
use kefu::model::{Message, SenderKind};
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::WidgetState;
use super::frames::{Events, Incoming};
use crate::browser::{self, HttpError};
use crate::ws::{Socket, SocketEvent};

/// A message with no ack after this long is shown as failed (with a Retry button).
const ACK_TIMEOUT_MS: u32 = 10_000;
/// How long the server may hold a long-poll open, in seconds.
const POLL_WAIT_S: u32 = 25;

struct Inner {
    state: WidgetState,
    site_key: String,
    /// The parent page's origin: the only one we talk to with `postMessage`.
    origin: String,
    page_url: Option<String>,
    referrer: Option<String>,
    token: Option<String>,
    conversation: Option<String>,
    /// Messages of this conversation up to this seq were there before this page load: they never
    /// count as unread.
    baseline: Option<(String, u64)>,
    socket: Option<Socket<Incoming>>,
    long_polling: bool,
    /// The chat panel is open on the parent page.
    open: bool,
    unread: u32,
    typing_off: Option<Timeout>,
}

#[derive(Clone)]
pub struct Client(Rc<RefCell<Inner>>);

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Client {
    /// Starts the session and the connection. Called once, after hydration.
    pub fn start(state: WidgetState) -> Self {
        crate::i18n::I18n::get().detect();
        let site_key = browser::query_param("site").unwrap_or_default();
        let origin = browser::query_param("origin").unwrap_or_default();
        let client = Client(Rc::new(RefCell::new(Inner {
            state,
            token: browser::storage_get(&token_key(&site_key)),
            conversation: browser::storage_get(&conversation_key(&site_key)),
            site_key,
            origin,
            page_url: non_empty(browser::query_param("page")),
            referrer: non_empty(browser::query_param("ref")),
            baseline: None,
            socket: None,
            long_polling: false,
            // Opened directly (not in an iframe), the chat is always "open".
            open: !in_iframe(),
            unread: 0,
            typing_off: None,
        })));

        let me = client.clone();
        window_event_listener(leptos::ev::message, move |ev| me.on_parent_message(ev));
        let me = client.clone();
        window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" {
                me.close();
            }
        });
        let me = client.clone();
        window_event_listener(leptos::ev::online, move |_| {
            let socket = me.0.borrow().socket.clone();
            if let Some(s) = socket {
                s.reconnect_now();
            }
        });
        client.post_parent("ready", None);

        let me = client.clone();
        leptos::task::spawn_local(async move { me.open_session().await });
        client
    }

    fn state(&self) -> WidgetState {
        self.0.borrow().state
    }

    /// Tells the loader on the parent page `{"kefu": kind, "count": count}`.
    fn post_parent(&self, kind: &str, count: Option<u32>) {
        let origin = self.0.borrow().origin.clone();
        if in_iframe() {
            browser::post_to_parent(kind, count, &origin);
        }
    }

    async fn open_session(&self) {
        let mut delay = 1000;
        loop {
            let (req, had_token) = {
                let inner = self.0.borrow();
                let (timezone, offset) = browser_zone();
                (
                    SessionRequest {
                        site_key: inner.site_key.clone(),
                        visitor_token: inner.token.clone(),
                        page_url: inner.page_url.clone(),
                        referrer: inner.referrer.clone(),
                        locale: window().navigator().language(),
                        timezone,
                        utc_offset_minutes: Some(offset),
                        user: None,
                    },
                    inner.token.is_some(),
                )
            };
            match browser::post_json::<SessionResponse>("/api/v1/widget/sessions", &req, None).await
            {
                Ok(s) => {
                    self.session_ready(s);
                    return;
                }
                // A token from another server or an old secret: start as a new visitor.
                Err(HttpError {
                    status: 400 | 401, ..
                }) if had_token => {
                    let mut inner = self.0.borrow_mut();
                    inner.token = None;
                    inner.conversation = None;
                    browser::storage_remove(&token_key(&inner.site_key));
                    browser::storage_remove(&conversation_key(&inner.site_key));
                }
                Err(HttpError { status, message }) if (400..500).contains(&status) => {
                    self.state().fatal.set(Some(message));
                    return;
                }
                Err(_) => {
                    self.state().offline.set(true);
                    browser::sleep_ms(delay).await;
                    delay = (delay * 2).min(15_000);
                }
            }
        }
    }

    fn session_ready(&self, s: SessionResponse) {
        let state = self.state();
        state.offline.set(false);
        if let Some(site) = &s.site {
            state.site_name.set(site.name.clone());
            state.agents_online.set(site.agents_online);
        }
        {
            let mut inner = self.0.borrow_mut();
            browser::storage_set(&token_key(&inner.site_key), &s.visitor_token);
            inner.token = Some(s.visitor_token.clone());
            match &s.conversation {
                Some(c) => {
                    inner.baseline = Some((c.id.clone(), c.last_seq));
                    inner.conversation = Some(c.id.clone());
                    browser::storage_set(&conversation_key(&inner.site_key), &c.id);
                }
                None => {
                    // The old conversation is closed: the next message opens a new one.
                    inner.conversation = None;
                    browser::storage_remove(&conversation_key(&inner.site_key));
                }
            }
        }
        let url = browser::ws_url(&format!(
            "/ws/visitor?token={}",
            String::from(js_sys::encode_uri_component(&s.visitor_token))
        ));
        let me = self.clone();
        let socket = Socket::new(url, move |ev| me.on_socket(ev));
        self.0.borrow_mut().socket = Some(socket.clone());
        socket.connect();
    }

    fn on_socket(&self, ev: SocketEvent<Incoming>) {
        let state = self.state();
        match ev {
            SocketEvent::Open => {
                state.offline.set(false);
                state.transport.set("websocket");
            }
            SocketEvent::Frame(frame) => self.on_frame(*frame),
            SocketEvent::Closed {
                ever_opened,
                failures_before_open,
            } => {
                if !ever_opened && failures_before_open >= 2 {
                    let socket = self.0.borrow_mut().socket.take();
                    if let Some(s) = socket {
                        s.stop();
                    }
                    self.start_long_polling();
                } else {
                    state.offline.set(true);
                }
            }
        }
    }

    fn on_frame(&self, frame: Incoming) {
        let state = self.state();
        match frame {
            Incoming::Hello { .. } => {
                state.offline.set(false);
                let (conversation, socket) = {
                    let inner = self.0.borrow();
                    (inner.conversation.clone(), inner.socket.clone())
                };
                let Some(socket) = socket else { return };
                if let Some(conversation_id) = conversation {
                    let after_seq = state
                        .timeline
                        .with_untracked(|t| t.last_seq(&conversation_id));
                    socket.send(&ClientFrame::Resume {
                        conversation_id,
                        after_seq,
                    });
                }
                for (client_msg_id, body, _) in state.timeline.with_untracked(|t| t.unacked()) {
                    socket.send(&ClientFrame::Send {
                        client_msg_id,
                        body,
                        conversation_id: None,
                        private: false,
                    });
                }
            }
            Incoming::Ack {
                client_msg_id,
                message,
            } => self.on_ack(&client_msg_id, message),
            Incoming::Message { message } => self.on_message(message),
            Incoming::Typing {
                state: typing,
                from,
            } if from.kind != SenderKind::Visitor => {
                let on = typing == TypingState::On;
                state.typing.set(on);
                // A lost "off" must not leave the dots forever.
                let me = self.clone();
                self.0.borrow_mut().typing_off =
                    on.then(|| Timeout::new(8_000, move || me.state().typing.set(false)));
            }
            Incoming::Error {
                client_msg_id: Some(cmid),
            } => {
                state.timeline.update(|t| {
                    t.fail(&cmid);
                });
            }
            _ => {}
        }
    }

    fn remember_conversation(&self, conversation_id: &str) {
        let mut inner = self.0.borrow_mut();
        if inner.conversation.as_deref() != Some(conversation_id) {
            inner.conversation = Some(conversation_id.to_owned());
            browser::storage_set(&conversation_key(&inner.site_key), conversation_id);
        }
    }

    fn on_ack(&self, client_msg_id: &str, message: Message) {
        self.remember_conversation(&message.conversation_id);
        self.state().timeline.update(|t| {
            t.apply_ack(client_msg_id, &message);
        });
    }

    fn on_message(&self, message: Message) {
        let state = self.state();
        if message.sender.kind == SenderKind::Visitor {
            self.remember_conversation(&message.conversation_id);
        }
        let mut new = false;
        state.timeline.update(|t| new = t.apply_message(&message));
        if !new {
            return;
        }
        if !matches!(message.sender.kind, SenderKind::Agent | SenderKind::Bot) {
            return;
        }
        if message.sender.kind == SenderKind::Agent {
            self.remember_conversation(&message.conversation_id);
            state.typing.set(false);
            if let Some(name) = message.sender.name.clone().filter(|n| !n.is_empty()) {
                state.agent_name.set(Some(name));
            }
        }
        let (open, history) = {
            let inner = self.0.borrow();
            let history = inner
                .baseline
                .as_ref()
                .is_some_and(|(c, seq)| *c == message.conversation_id && message.seq <= *seq);
            (inner.open, history)
        };
        if open {
            self.mark_read();
        } else if !history {
            let count = {
                let mut inner = self.0.borrow_mut();
                inner.unread += 1;
                inner.unread
            };
            self.post_parent("unread", Some(count));
        }
    }

    /// Tells the server the visitor has seen everything shown.
    fn mark_read(&self) {
        let (conversation, socket) = {
            let inner = self.0.borrow();
            (inner.conversation.clone(), inner.socket.clone())
        };
        if let (Some(conversation_id), Some(socket)) = (conversation, socket) {
            let seq = self
                .state()
                .timeline
                .with_untracked(|t| t.last_seq(&conversation_id));
            if seq > 0 {
                socket.send(&ClientFrame::Read {
                    conversation_id: Some(conversation_id),
                    seq,
                });
            }
        }
    }

    fn on_parent_message(&self, ev: web_sys::MessageEvent) {
        if ev.origin() != self.0.borrow().origin {
            return;
        }
        let data = ev.data();
        let kind = js_sys::Reflect::get(&data, &JsValue::from_str("kefu"))
            .ok()
            .and_then(|v| v.as_string());
        match kind.as_deref() {
            Some("opened") => {
                {
                    let mut inner = self.0.borrow_mut();
                    inner.open = true;
                    inner.unread = 0;
                }
                self.post_parent("unread", Some(0));
                self.mark_read();
            }
            Some("closed") => self.0.borrow_mut().open = false,
            _ => {}
        }
    }

    /// Sends a new message from the composer.
    pub fn send(&self, body: String) {
        let cmid = browser::new_id();
        let now = browser::now_iso();
        self.state()
            .timeline
            .update(|t| t.add_pending(&cmid, &body, false, &now));
        self.transmit(cmid, body);
    }

    /// Sends a failed message again, with the same `client_msg_id`.
    pub fn retry(&self, client_msg_id: &str) {
        let mut again = None;
        self.state()
            .timeline
            .update(|t| again = t.retry(client_msg_id));
        if let Some((body, _)) = again {
            self.transmit(client_msg_id.to_owned(), body);
        }
    }

    /// The visitor token, once the session is open.
    pub fn token(&self) -> Option<String> {
        self.0.borrow().token.clone()
    }

    /// Asks the parent page to close the chat panel.
    pub fn close(&self) {
        self.post_parent("close", None);
    }

    fn transmit(&self, client_msg_id: String, body: String) {
        let (long_polling, socket) = {
            let inner = self.0.borrow();
            (inner.long_polling, inner.socket.clone())
        };
        if long_polling {
            let me = self.clone();
            let cmid = client_msg_id.clone();
            leptos::task::spawn_local(async move { me.post_message(cmid, body).await });
        } else if let Some(socket) = socket {
            // Not open yet: the message is resent after the next `hello`.
            socket.send(&ClientFrame::Send {
                client_msg_id: client_msg_id.clone(),
                body,
                conversation_id: None,
                private: false,
            });
        }
        let state = self.state();
        Timeout::new(ACK_TIMEOUT_MS, move || {
            state.timeline.update(|t| {
                t.fail(&client_msg_id);
            });
        })
        .forget();
    }

    async fn post_message(&self, client_msg_id: String, body: String) {
        let token = self.0.borrow().token.clone();
        let req = PostMessage {
            client_msg_id: client_msg_id.clone(),
            body,
            private: false,
        };
        match browser::post_json::<MessageResponse>(
            "/api/v1/widget/messages",
            &req,
            token.as_deref(),
        )
        .await
        {
            Ok(r) => self.on_ack(&client_msg_id, r.message),
            Err(_) => self.state().timeline.update(|t| {
                t.fail(&client_msg_id);
            }),
        }
    }

    fn start_long_polling(&self) {
        let state = self.state();
        state.transport.set("long-polling");
        self.0.borrow_mut().long_polling = true;
        // Whatever the WebSocket could not deliver goes by POST now.
        for (cmid, body, _) in state.timeline.with_untracked(|t| t.unacked()) {
            let me = self.clone();
            leptos::task::spawn_local(async move { me.post_message(cmid, body).await });
        }
        let me = self.clone();
        leptos::task::spawn_local(async move { me.poll_loop().await });
    }

    async fn poll_loop(&self) {
        let state = self.state();
        let mut polled_conversation = self.0.borrow().conversation.clone();
        let mut after = polled_conversation
            .as_deref()
            .map_or(0, |c| state.timeline.with_untracked(|t| t.last_seq(c)));
        let mut delay = 1000;
        loop {
            let token = self.0.borrow().token.clone();
            let url = format!("/api/v1/widget/events?after_seq={after}&wait={POLL_WAIT_S}");
            match browser::get_json::<Events>(&url, token.as_deref()).await {
                Ok(r) => {
                    delay = 1000;
                    state.offline.set(false);
                    for frame in r.frames() {
                        self.on_frame(frame);
                    }
                    match r.conversation_id {
                        Some(c) if polled_conversation.as_deref() != Some(c.as_str()) => {
                            self.remember_conversation(&c);
                            polled_conversation = Some(c);
                            after = r.last_seq;
                        }
                        _ => after = after.max(r.last_seq),
                    }
                }
                Err(_) => {
                    state.offline.set(true);
                    browser::sleep_ms(delay).await;
                    delay = (delay * 2).min(15_000);
                }
            }
        }
    }
}

fn token_key(site_key: &str) -> String {
    format!("kefu:{site_key}:visitor_token")
}

fn conversation_key(site_key: &str) -> String {
    format!("kefu:{site_key}:conversation")
}

fn in_iframe() -> bool {
    let w = window();
    match w.parent() {
        Ok(Some(parent)) => JsValue::from(parent) != JsValue::from(w),
        _ => false,
    }
}

/// The browser's IANA zone and its offset in minutes east of UTC.
fn browser_zone() -> (Option<String>, i32) {
    let offset = -(js_sys::Date::new_0().get_timezone_offset() as i32);
    let options = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let zone = js_sys::Reflect::get(&options, &JsValue::from_str("timeZone"))
        .ok()
        .and_then(|z| z.as_string())
        .filter(|z| !z.is_empty());
    (zone, offset)
}
