//! The console's connection to the server (browser only).
//!
//! `GET /api/v1/me` decides between the login form and the workspace. Logged in, the list comes
//! from `GET /api/v1/conversations` and stays current from `/ws/agent` (`message` and
//! `conversation` frames for every conversation the agent may see). Opening a conversation pages
//! its history through the REST API, merges live frames into the same timeline (deduplicated by
//! id) and sends `read`. After a reconnect the list is fetched again and the open conversation is
//! resumed from its last `seq`.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use kefu::api::{
    ConversationResponse, ConversationsResponse, LoginRequest, MeResponse, MessageResponse,
    MessagesResponse, PostMessage,
};
use kefu::frame::{ClientFrame, ServerFrame, TypingState};
use kefu::model::{AgentInfo, Conversation, ConversationStatus, Message, SenderKind};
use leptos::prelude::*;
use serde::Serialize;

use super::list::{self, Tab};
use super::{Auth, ConsoleState, Pane};
use crate::browser::{self, HttpError};
use crate::i18n::{I18n, K};
use crate::timeline::Timeline;
use crate::ws::{Socket, SocketEvent};

const ACK_TIMEOUT_MS: u32 = 10_000;
const PAGE: usize = 100;

/// `POST /api/v1/conversations/{id}/status`.
#[derive(Serialize)]
struct StatusRequest {
    status: ConversationStatus,
}

struct Inner {
    state: ConsoleState,
    i18n: I18n,
    socket: Option<Socket>,
    /// A `hello` was seen on this login: the next one is a reconnect.
    connected_before: bool,
    /// Bumped by every live change of the list, so a fetch that raced with one merges instead
    /// of overwriting it.
    list_version: u64,
    _clock: Option<Interval>,
    typing_off: Option<Timeout>,
}

#[derive(Clone)]
pub struct Client(Rc<RefCell<Inner>>);

impl Client {
    pub fn start(state: ConsoleState) -> Self {
        // Read the context here, inside the effect: async tasks later run without an owner.
        let i18n = I18n::get();
        i18n.detect();
        state.now.set(browser::now_ms());
        let clock = Interval::new(30_000, move || state.now.set(browser::now_ms()));
        let client = Client(Rc::new(RefCell::new(Inner {
            state,
            i18n,
            socket: None,
            connected_before: false,
            list_version: 0,
            _clock: Some(clock),
            typing_off: None,
        })));

        window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" && state.pane.get_untracked() != Pane::List {
                state.pane.set(Pane::List);
            }
        });
        let me = client.clone();
        window_event_listener(leptos::ev::online, move |_| {
            let socket = me.0.borrow().socket.clone();
            if let Some(s) = socket {
                s.reconnect_now();
            }
        });

        let me = client.clone();
        leptos::task::spawn_local(async move { me.check_session().await });
        client
    }

    fn state(&self) -> ConsoleState {
        self.0.borrow().state
    }

    async fn check_session(&self) {
        let mut delay = 1000;
        loop {
            match browser::get_json::<MeResponse>("/api/v1/me", None).await {
                Ok(me) => return self.logged_in(me.agent),
                Err(HttpError { status, .. }) if (400..500).contains(&status) => {
                    self.state().auth.set(Auth::LoggedOut);
                    return;
                }
                Err(_) => {
                    browser::sleep_ms(delay).await;
                    delay = (delay * 2).min(15_000);
                }
            }
        }
    }

    pub fn login(&self, email: String, password: String) {
        let state = self.state();
        if state.login_busy.get_untracked() {
            return;
        }
        state.login_busy.set(true);
        state.login_error.set(None);
        let me = self.clone();
        let i18n = self.0.borrow().i18n;
        leptos::task::spawn_local(async move {
            let req = LoginRequest { email, password };
            let result = browser::post_json::<MeResponse>("/api/v1/auth/login", &req, None).await;
            state.login_busy.set(false);
            match result {
                Ok(r) => me.logged_in(r.agent),
                Err(e) => {
                    let message = if e.message.is_empty() {
                        i18n.t(K::LoginFailed).to_owned()
                    } else {
                        e.message
                    };
                    state.login_error.set(Some(message));
                }
            }
        });
    }

    fn logged_in(&self, agent: AgentInfo) {
        let state = self.state();
        state.me.set(Some(agent));
        state.auth.set(Auth::LoggedIn);
        self.refresh_list();
        let me = self.clone();
        let socket = Socket::new(browser::ws_url("/ws/agent"), move |ev| me.on_socket(ev));
        {
            let mut inner = self.0.borrow_mut();
            inner.connected_before = false;
            inner.socket = Some(socket.clone());
        }
        socket.connect();
    }

    pub fn logout(&self) {
        let socket = self.0.borrow_mut().socket.take();
        if let Some(s) = socket {
            s.stop();
        }
        let state = self.state();
        leptos::task::spawn_local(async move {
            let _ = browser::post_empty("/api/v1/auth/logout").await;
            state.me.set(None);
            state.conversations.set(Vec::new());
            state.list_loaded.set(false);
            state.selected.set(None);
            state.current.set(None);
            state.timeline.set(Timeline::new(SenderKind::Agent));
            state.pane.set(Pane::List);
            state.offline.set(false);
            state.auth.set(Auth::LoggedOut);
        });
    }

    fn refresh_list(&self) {
        let me = self.clone();
        leptos::task::spawn_local(async move { me.fetch_list().await });
    }

    async fn fetch_list(&self) {
        let state = self.state();
        let tab = state.tab.get_untracked();
        let version = self.0.borrow().list_version;
        let url = format!("/api/v1/conversations{}", tab.query());
        match browser::get_json::<ConversationsResponse>(&url, None).await {
            Ok(r) => {
                if state.tab.get_untracked() != tab {
                    return;
                }
                let mut conversations = r.conversations;
                if self.0.borrow().list_version != version {
                    conversations = state
                        .conversations
                        .with_untracked(|live| list::reconcile(conversations, live));
                }
                list::sort(&mut conversations);
                if let Some(sel) = state.selected.get_untracked() {
                    // The open conversation is being read: nothing in it is unread.
                    list::mark_read(&mut conversations, &sel);
                    if let Some(c) = conversations.iter().find(|c| c.id == sel) {
                        let fresh = c.clone();
                        state.current.update(|cur| {
                            if let Some(old) = cur.as_ref() {
                                *cur = Some(list::merge(old, fresh));
                            }
                        });
                    }
                }
                state.conversations.set(conversations);
                state.list_loaded.set(true);
            }
            Err(HttpError { status: 401, .. }) => self.session_lost(),
            Err(_) => {}
        }
    }

    fn session_lost(&self) {
        let socket = self.0.borrow_mut().socket.take();
        if let Some(s) = socket {
            s.stop();
        }
        let state = self.state();
        state.me.set(None);
        state.auth.set(Auth::LoggedOut);
    }

    pub fn set_tab(&self, tab: Tab) {
        let state = self.state();
        if state.tab.get_untracked() == tab {
            return;
        }
        state.tab.set(tab);
        state.list_loaded.set(false);
        state.conversations.set(Vec::new());
        self.refresh_list();
    }

    fn on_socket(&self, ev: SocketEvent) {
        let state = self.state();
        match ev {
            SocketEvent::Open => state.offline.set(false),
            SocketEvent::Closed { .. } => state.offline.set(true),
            SocketEvent::Frame(frame) => self.on_frame(*frame),
        }
    }

    fn on_frame(&self, frame: ServerFrame) {
        let state = self.state();
        match frame {
            ServerFrame::Hello { .. } => {
                state.offline.set(false);
                // The list fetched at login may predate this connection: fetch it again, on
                // every (re)connect, and resume the open conversation from what is shown.
                let reconnect = std::mem::replace(&mut self.0.borrow_mut().connected_before, true);
                if reconnect || state.list_loaded.get_untracked() {
                    self.refresh_list();
                }
                if let Some(sel) = state.selected.get_untracked() {
                    let after_seq = state.timeline.with_untracked(|t| t.last_seq(&sel));
                    self.send_frame(&ClientFrame::Resume {
                        conversation_id: sel.clone(),
                        after_seq,
                    });
                    for (client_msg_id, body, private) in
                        state.timeline.with_untracked(Timeline::unacked)
                    {
                        self.send_frame(&ClientFrame::Send {
                            client_msg_id,
                            body,
                            conversation_id: Some(sel.clone()),
                            private,
                        });
                    }
                }
            }
            ServerFrame::Message { message } => self.on_message(message),
            ServerFrame::Ack {
                client_msg_id,
                message,
            } => {
                if state.selected.get_untracked().as_deref() == Some(&message.conversation_id) {
                    state.timeline.update(|t| {
                        t.apply_ack(&client_msg_id, &message);
                    });
                }
                state.conversations.update(|l| {
                    list::on_message(l, &message, true);
                });
            }
            ServerFrame::Conversation { conversation } => self.on_conversation(conversation),
            ServerFrame::Typing {
                conversation_id,
                state: typing,
                from,
            } if from.kind == SenderKind::Visitor => {
                let on = typing == TypingState::On;
                state.visitor_typing.set(on.then_some(conversation_id));
                self.0.borrow_mut().typing_off =
                    on.then(|| Timeout::new(8_000, move || state.visitor_typing.set(None)));
            }
            ServerFrame::Error {
                client_msg_id: Some(cmid),
                ..
            } => state.timeline.update(|t| {
                t.fail(&cmid);
            }),
            _ => {}
        }
    }

    fn on_message(&self, m: Message) {
        let state = self.state();
        let viewing = state.selected.get_untracked().as_deref() == Some(&m.conversation_id);
        if viewing {
            let mut new = false;
            state.timeline.update(|t| new = t.apply_message(&m));
            if new && m.sender.kind == SenderKind::Visitor {
                state.visitor_typing.set(None);
                self.send_frame(&ClientFrame::Read {
                    conversation_id: Some(m.conversation_id.clone()),
                    seq: m.seq,
                });
            }
        }
        let mut found = false;
        self.0.borrow_mut().list_version += 1;
        state
            .conversations
            .update(|l| found = list::on_message(l, &m, viewing));
        if !found && state.tab.get_untracked() == Tab::Open {
            // A conversation we have not seen: fetch it whole (visitor, unread, preview).
            let me = self.clone();
            let id = m.conversation_id.clone();
            leptos::task::spawn_local(async move {
                let url = format!("/api/v1/conversations/{}", encode(&id));
                if let Ok(r) = browser::get_json::<ConversationResponse>(&url, None).await {
                    let mut c = r.conversation;
                    if c.last_message.as_ref().is_none_or(|l| l.seq < m.seq) {
                        c.last_message = Some(Box::new(m));
                    }
                    me.on_conversation(c);
                }
            });
        }
    }

    fn on_conversation(&self, c: Conversation) {
        let state = self.state();
        self.0.borrow_mut().list_version += 1;
        let tab = state.tab.get_untracked();
        let id = c.id.clone();
        let viewing = state.selected.get_untracked().as_deref() == Some(id.as_str());
        if viewing {
            let fresh = c.clone();
            state.current.update(|cur| {
                *cur = Some(match cur.as_ref() {
                    Some(old) => list::merge(old, fresh),
                    None => fresh,
                });
            });
        }
        state.conversations.update(|l| {
            list::upsert(l, c, tab);
            if viewing {
                list::mark_read(l, &id);
            }
        });
    }

    /// Opens a conversation: its history, then live frames.
    pub fn select(&self, id: String) {
        let state = self.state();
        state.pane.set(Pane::Chat);
        if state.selected.get_untracked().as_deref() == Some(id.as_str()) {
            return;
        }
        let current = state
            .conversations
            .with_untracked(|l| l.iter().find(|c| c.id == id).cloned());
        state.selected.set(Some(id.clone()));
        state.current.set(current);
        state.timeline.set(Timeline::new(SenderKind::Agent));
        state.history_loading.set(true);
        let me = self.clone();
        leptos::task::spawn_local(async move { me.load_history(id).await });
    }

    async fn load_history(&self, id: String) {
        let state = self.state();
        let still_open = || state.selected.get_untracked().as_deref() == Some(id.as_str());
        let mut after = 0;
        loop {
            let url = format!(
                "/api/v1/conversations/{}/messages?after_seq={after}&limit={PAGE}",
                encode(&id)
            );
            let page = match browser::get_json::<MessagesResponse>(&url, None).await {
                Ok(r) => r.messages,
                Err(HttpError { status: 401, .. }) => return self.session_lost(),
                Err(_) => break,
            };
            if !still_open() {
                return;
            }
            let full = page.len() >= PAGE;
            after = page.iter().map(|m| m.seq).max().unwrap_or(after);
            state.timeline.update(|t| {
                for m in &page {
                    t.apply_message(m);
                }
            });
            if !full {
                break;
            }
        }
        if !still_open() {
            return;
        }
        state.history_loading.set(false);
        // Whatever came while the pages loaded is in the timeline too; a resume closes any gap
        // between the last page and the live frames (duplicates are dropped).
        let seq = state.timeline.with_untracked(|t| t.last_seq(&id));
        self.send_frame(&ClientFrame::Resume {
            conversation_id: id.clone(),
            after_seq: seq,
        });
        if seq > 0 {
            self.send_frame(&ClientFrame::Read {
                conversation_id: Some(id.clone()),
                seq,
            });
        }
        state.conversations.update(|l| list::mark_read(l, &id));
        // The list entry may be old or missing: the conversation itself has the visitor panel.
        let url = format!("/api/v1/conversations/{}", encode(&id));
        if let Ok(r) = browser::get_json::<ConversationResponse>(&url, None).await
            && still_open()
        {
            let mut c = r.conversation;
            c.unread = Some(0);
            self.on_conversation(c);
        }
    }

    pub fn send(&self, body: String, private: bool) {
        let state = self.state();
        let Some(conversation_id) = state.selected.get_untracked() else {
            return;
        };
        let cmid = browser::new_id();
        let now = browser::now_iso();
        state
            .timeline
            .update(|t| t.add_pending(&cmid, &body, private, &now));
        self.transmit(cmid, body, private, conversation_id);
    }

    pub fn retry(&self, client_msg_id: &str) {
        let state = self.state();
        let Some(conversation_id) = state.selected.get_untracked() else {
            return;
        };
        let mut again = None;
        state.timeline.update(|t| again = t.retry(client_msg_id));
        if let Some((body, private)) = again {
            self.transmit(client_msg_id.to_owned(), body, private, conversation_id);
        }
    }

    fn transmit(
        &self,
        client_msg_id: String,
        body: String,
        private: bool,
        conversation_id: String,
    ) {
        let sent = self.send_frame(&ClientFrame::Send {
            client_msg_id: client_msg_id.clone(),
            body: body.clone(),
            conversation_id: Some(conversation_id.clone()),
            private,
        });
        if !sent {
            // No socket right now: post it over HTTP. Should the socket come back first, the
            // resend after `hello` carries the same client_msg_id and the server keeps one copy.
            let me = self.clone();
            let cmid = client_msg_id.clone();
            leptos::task::spawn_local(async move {
                let url = format!(
                    "/api/v1/conversations/{}/messages",
                    encode(&conversation_id)
                );
                let req = PostMessage {
                    client_msg_id: cmid.clone(),
                    body,
                    private,
                };
                if let Ok(r) = browser::post_json::<MessageResponse>(&url, &req, None).await {
                    me.on_frame(ServerFrame::Ack {
                        client_msg_id: cmid,
                        message: r.message,
                    });
                }
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

    fn send_frame(&self, frame: &ClientFrame) -> bool {
        let socket = self.0.borrow().socket.clone();
        socket.is_some_and(|s| s.send(frame))
    }

    pub fn set_status(&self, status: ConversationStatus) {
        let state = self.state();
        let Some(id) = state.selected.get_untracked() else {
            return;
        };
        let me = self.clone();
        leptos::task::spawn_local(async move {
            let url = format!("/api/v1/conversations/{}/status", encode(&id));
            match browser::post_json::<ConversationResponse>(&url, &StatusRequest { status }, None)
                .await
            {
                Ok(r) => me.on_conversation(r.conversation),
                Err(HttpError { status: 401, .. }) => me.session_lost(),
                Err(_) => {}
            }
        });
    }
}

fn encode(id: &str) -> String {
    js_sys::encode_uri_component(id).into()
}
