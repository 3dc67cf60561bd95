//! A WebSocket that speaks the Kefu frames and reconnects by itself (browser only).
//!
//! The owner gets [`SocketEvent`]s: `Open`, every decoded frame, and `Closed`. What a frame
//! decodes into is the owner's choice ([`Frame`]): the console takes the whole
//! [`ServerFrame`], the widget a smaller type of its own (`widget::frames`). After a
//! close the socket waits 1 s, 2 s, 4 s … up to 15 s and dials again, at once when the browser
//! comes back `online`. A `hello` starts the heartbeat (`ping` every `heartbeat_ms`). The owner
//! decides what a (re)connect means (resume, resend) and may [`Socket::stop`] it for good, e.g.
//! to fall back to long-polling.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use kefu::frame::{ClientFrame, ServerFrame};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

/// What a [`Socket`] decodes the server's text frames into.
pub trait Frame: Sized + 'static {
    /// `None` for text this client cannot read; such frames are dropped.
    fn parse(text: &str) -> Option<Self>;
    /// The heartbeat interval, if this is a `hello`.
    fn heartbeat_ms(&self) -> Option<u64>;
}

impl Frame for ServerFrame {
    fn parse(text: &str) -> Option<Self> {
        // A frame type this client does not know yet (newer servers may add some) is dropped.
        serde_json::from_str(text).ok()
    }

    fn heartbeat_ms(&self) -> Option<u64> {
        match self {
            ServerFrame::Hello { heartbeat_ms, .. } => Some(*heartbeat_ms),
            _ => None,
        }
    }
}

pub enum SocketEvent<F = ServerFrame> {
    Open,
    Frame(Box<F>),
    /// The connection is gone. `failures_before_open` counts the dials in a row that never
    /// delivered a frame, while no dial ever has. (A dial that opens but closes before `hello`
    /// counts as failed: some proxies accept the upgrade and then cut the connection.)
    Closed {
        ever_opened: bool,
        failures_before_open: u32,
    },
}

type Handler<F> = Rc<dyn Fn(SocketEvent<F>)>;

struct Callbacks {
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

struct Inner<F> {
    url: String,
    ws: Option<WebSocket>,
    callbacks: Option<Callbacks>,
    /// Bumped on every dial so late events of an old socket are ignored.
    generation: u64,
    attempt: u32,
    ever_opened: bool,
    failures_before_open: u32,
    stopped: bool,
    retry: Option<Timeout>,
    heartbeat: Option<Interval>,
    handler: Handler<F>,
}

/// A cheap handle; clones share one connection.
pub struct Socket<F = ServerFrame>(Rc<RefCell<Inner<F>>>);

impl<F> Clone for Socket<F> {
    fn clone(&self) -> Self {
        Socket(self.0.clone())
    }
}

const MAX_BACKOFF_MS: u32 = 15_000;

impl<F: Frame> Socket<F> {
    pub fn new(url: String, handler: impl Fn(SocketEvent<F>) + 'static) -> Self {
        Socket(Rc::new(RefCell::new(Inner {
            url,
            ws: None,
            callbacks: None,
            generation: 0,
            attempt: 0,
            ever_opened: false,
            failures_before_open: 0,
            stopped: false,
            retry: None,
            heartbeat: None,
            handler: Rc::new(handler),
        })))
    }

    /// Dials now, unless a connection is already open or opening.
    pub fn connect(&self) {
        {
            let inner = self.0.borrow();
            if inner.stopped {
                return;
            }
            if let Some(ws) = &inner.ws
                && (ws.ready_state() == WebSocket::OPEN
                    || ws.ready_state() == WebSocket::CONNECTING)
            {
                return;
            }
        }
        self.dial();
    }

    /// Dials at once (the browser says it is back online), skipping the backoff wait.
    pub fn reconnect_now(&self) {
        self.0.borrow_mut().retry = None;
        self.0.borrow_mut().attempt = 0;
        self.connect();
    }

    fn dial(&self) {
        let url = self.0.borrow().url.clone();
        let ws = match WebSocket::new(&url) {
            Ok(ws) => ws,
            Err(_) => {
                // A malformed URL or a blocked scheme: count it like a failed dial.
                self.0.borrow_mut().generation += 1;
                self.closed();
                return;
            }
        };
        let generation = {
            let mut inner = self.0.borrow_mut();
            inner.generation += 1;
            inner.retry = None;
            inner.generation
        };

        let me = self.clone();
        let open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if me.0.borrow().generation != generation {
                return;
            }
            let handler = me.0.borrow().handler.clone();
            handler(SocketEvent::Open);
        });
        let me = self.clone();
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            if me.0.borrow().generation != generation {
                return;
            }
            {
                // The server spoke: this transport works, and the backoff starts over.
                let mut inner = me.0.borrow_mut();
                inner.ever_opened = true;
                inner.failures_before_open = 0;
                inner.attempt = 0;
            }
            let Some(text) = ev.data().as_string() else {
                return;
            };
            let Some(frame) = F::parse(&text) else {
                return;
            };
            if let Some(heartbeat_ms) = frame.heartbeat_ms() {
                me.start_heartbeat(heartbeat_ms);
            }
            let handler = me.0.borrow().handler.clone();
            handler(SocketEvent::Frame(Box::new(frame)));
        });
        let me = self.clone();
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            if me.0.borrow().generation != generation {
                return;
            }
            me.closed();
        });
        ws.set_onopen(Some(open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));

        let mut inner = self.0.borrow_mut();
        if let Some(old) = inner.ws.take() {
            detach(&old);
        }
        inner.ws = Some(ws);
        inner.callbacks = Some(Callbacks {
            _open: open,
            _message: message,
            _close: close,
        });
    }

    fn closed(&self) {
        let (handler, event, stopped) = {
            let mut inner = self.0.borrow_mut();
            inner.heartbeat = None;
            if !inner.ever_opened {
                inner.failures_before_open += 1;
            }
            (
                inner.handler.clone(),
                SocketEvent::Closed {
                    ever_opened: inner.ever_opened,
                    failures_before_open: inner.failures_before_open,
                },
                inner.stopped,
            )
        };
        if stopped {
            return;
        }
        handler(event);
        self.schedule_retry();
    }

    fn schedule_retry(&self) {
        let mut inner = self.0.borrow_mut();
        if inner.stopped {
            return;
        }
        let delay = 1000u32
            .saturating_mul(1 << inner.attempt.min(4))
            .min(MAX_BACKOFF_MS);
        inner.attempt = inner.attempt.saturating_add(1);
        let me = self.clone();
        inner.retry = Some(Timeout::new(delay, move || me.connect()));
    }

    fn start_heartbeat(&self, heartbeat_ms: u64) {
        let every = heartbeat_ms.clamp(1_000, 120_000) as u32;
        let me = self.clone();
        self.0.borrow_mut().heartbeat = Some(Interval::new(every, move || {
            me.send(&ClientFrame::Ping);
        }));
    }

    pub fn is_open(&self) -> bool {
        self.0
            .borrow()
            .ws
            .as_ref()
            .is_some_and(|ws| ws.ready_state() == WebSocket::OPEN)
    }

    /// Sends a frame if the connection is open. Returns whether it was handed to the socket.
    pub fn send(&self, frame: &ClientFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let inner = self.0.borrow();
        match &inner.ws {
            Some(ws) if ws.ready_state() == WebSocket::OPEN => ws.send_with_str(&text).is_ok(),
            _ => false,
        }
    }

    /// Closes the connection and never dials again.
    pub fn stop(&self) {
        let mut inner = self.0.borrow_mut();
        inner.stopped = true;
        inner.retry = None;
        inner.heartbeat = None;
        inner.generation += 1;
        if let Some(ws) = inner.ws.take() {
            detach(&ws);
            let _ = ws.close();
        }
        // The callbacks stay alive: `stop` may run inside one of them (a close that makes the
        // owner fall back to long-polling), and a closure must not be dropped while it runs.
    }
}

fn detach(ws: &WebSocket) {
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onclose(None);
}
