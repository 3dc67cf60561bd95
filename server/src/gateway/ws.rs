//! WebSocket sessions for visitors and agents: one task per connection that reads frames,
//! writes queued events, answers heartbeats and closes idle, slow or oversized peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use kefu::frame::{self, Command, ErrorCode, FrameError, Party, ServerFrame};
use kefu::model::{Conversation, SenderKind};
use serde::Deserialize;
use tokio::time::Instant;

use crate::AppState;
use crate::http::auth::AuthAgent;
use crate::http::error::ApiError;
use crate::hub::{AgentCtx, ConnId, Hub, RateLimiter, VisitorCtx, message_frame};

/// Close codes the clients act on.
pub mod close {
    /// Server shutting down or peer idle: reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// The client fell behind: reconnect and `resume`.
    pub const SLOW_CONSUMER: u16 = 1013;
    /// A frame over the hard size limit.
    pub const TOO_BIG: u16 = 1009;
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Bytes of outgoing frames an agent connection gathers before writing them to its socket.
/// Visitors write each frame at once (no buffer kept per idle visitor); an agent receives every
/// message of its sites, and with this buffer a burst of queued frames (see `MAX_BURST`) goes
/// out in one system call at the flush instead of one per frame.
const AGENT_WRITE_BUFFER: usize = 64 * 1024;

fn upgrade(ws: WebSocketUpgrade, state: &AppState, write_buffer: usize) -> WebSocketUpgrade {
    let hard = state.settings.limits.hard_frame_bytes;
    // Small buffers: axum's defaults cost about 128 KiB per connection.
    ws.read_buffer_size(state.settings.limits.ws_read_buffer_bytes.max(256))
        .write_buffer_size(write_buffer)
        .max_write_buffer_size((hard.max(64 * 1024) + write_buffer) * 4)
        .max_message_size(hard)
        .max_frame_size(hard)
}

pub async fn visitor(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(token) = q.token.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized("missing ?token= (the visitor_token of a widget session)")
            .into_response();
    };
    let Some(claims) = state.tokens.verify(&token) else {
        return ApiError::unauthorized("visitor token is invalid").into_response();
    };
    let visitor = VisitorCtx {
        id: claims.visitor_id,
        site_id: claims.site_id,
    };
    let permit = match state.conns.admit() {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let state2 = state.clone();
    let tasks = state.tasks.clone();
    upgrade(ws, &state, 0)
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                let _permit = permit;
                let (reg, rx) = state2
                    .hub
                    .register_visitor(&visitor.id, state2.settings.limits.conn_queue);
                let party = Party {
                    kind: SenderKind::Visitor,
                    id: visitor.id.clone(),
                    name: None,
                };
                let session = Session {
                    state: state2.clone(),
                    conn: reg.id(),
                    who: Who::Visitor(visitor),
                    party,
                    delivered: HashMap::new(),
                    frames: RateLimiter::new(
                        state2.settings.limits.conn_frames_per_sec,
                        state2.settings.limits.conn_frame_burst,
                    ),
                };
                run(socket, session, rx).await;
                drop(reg);
            })
        })
        .into_response()
}

pub async fn agent(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    ws: WebSocketUpgrade,
) -> Response {
    let site_ids = match state.hub.storage().agent_site_ids(&agent).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let ctx = AgentCtx {
        agent,
        site_ids: site_ids.into(),
    };
    let permit = match state.conns.admit() {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let state2 = state.clone();
    let tasks = state.tasks.clone();
    upgrade(ws, &state, AGENT_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                let _permit = permit;
                let (reg, rx) = state2.hub.register_agent(&ctx);
                let session = Session {
                    state: state2.clone(),
                    conn: reg.id(),
                    party: ctx.party(),
                    who: Who::Agent(ctx),
                    delivered: HashMap::new(),
                    frames: RateLimiter::new(
                        state2.settings.limits.conn_frames_per_sec * 4.0,
                        state2.settings.limits.conn_frame_burst * 4.0,
                    ),
                };
                run(socket, session, rx).await;
                drop(reg);
            })
        })
        .into_response()
}

enum Who {
    Visitor(VisitorCtx),
    Agent(AgentCtx),
}

struct Session {
    state: AppState,
    conn: ConnId,
    who: Who,
    party: Party,
    /// Highest `seq` a `resume` replayed, per conversation, so a message it replayed is not
    /// delivered again when it also comes live. Only resumed conversations have an entry, and
    /// only until the live stream passes it: messages come live in `seq` order, so nothing
    /// after that can be a repeat (an agent's connection sees every conversation of its sites,
    /// and keeping one entry for each would grow for as long as it stays open).
    delivered: HashMap<Arc<str>, u64>,
    frames: RateLimiter,
}

/// Runs one connection until it closes. Generic over the socket so it can be driven by any
/// `Stream` + `Sink` of WebSocket messages.
async fn run<S>(
    socket: S,
    mut session: Session,
    mut rx: tokio::sync::mpsc::Receiver<crate::hub::Outbound>,
) where
    S: Stream<Item = Result<WsMessage, axum::Error>> + Sink<WsMessage, Error = axum::Error> + Unpin,
{
    let mut socket = socket;
    let heartbeat_ms = session.state.settings.protocols.websocket.heartbeat_ms;
    let idle = Duration::from_millis(heartbeat_ms * 2 + 10_000);
    let hello = ServerFrame::Hello {
        protocol: kefu::PROTOCOL_VERSION,
        you: session.party.clone(),
        heartbeat_ms,
    };
    if socket.send(text(hello.to_json())).await.is_err() {
        return;
    }
    let shutdown = session.state.shutdown.clone();
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    let outcome: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Some((close::GOING_AWAY, "server shutting down; reconnect")),
            event = rx.recv() => match event {
                Some(ev) => {
                    // What else is already queued goes out in the same write: an agent who
                    // receives many conversations pays one syscall per burst, not per frame,
                    // and keeps up with the writer's commits instead of falling behind.
                    let (mut fed, mut ok, mut burst, mut next) = (false, true, 0, Some(ev));
                    while let Some(ev) = next.take() {
                        if session.fresh(&ev) {
                            ok = socket.feed(WsMessage::Text(ev.text.clone())).await.is_ok();
                            fed = true;
                        }
                        burst += 1;
                        if ok && burst < MAX_BURST {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !ok || (fed && socket.flush().await.is_err()) {
                        break None;
                    }
                }
                None => break Some((close::SLOW_CONSUMER, "too far behind; reconnect and resume")),
            },
            incoming = socket.next() => {
                deadline.as_mut().reset(Instant::now() + idle);
                match incoming {
                    Some(Ok(WsMessage::Text(t))) => {
                        // Boxed: an idle connection's task then does not carry the (larger)
                        // state of handling a frame.
                        if Box::pin(session.handle(&mut socket, t)).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        let e = FrameError::new(ErrorCode::BadFrame, "binary frames are not supported; send JSON text", None);
                        if socket.send(text(ServerFrame::from(e).to_json())).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | None => break None,
                    Some(Ok(_)) => {} // ping/pong are answered by the protocol layer
                    Some(Err(e)) => {
                        let msg = e.to_string();
                        if msg.contains("too long") || msg.contains("Space limit") || msg.contains("size") {
                            break Some((close::TOO_BIG, "frame over the hard size limit"));
                        }
                        break None;
                    }
                }
            }
            _ = &mut deadline => break Some((close::GOING_AWAY, "idle: no frame within two heartbeats")),
        }
    };
    if let Some((code, reason)) = outcome {
        let _ = socket
            .send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
    let _ = socket.close().await;
}

/// Queued frames written together before one flush.
const MAX_BURST: usize = 64;

fn text(s: String) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(s))
}

impl Session {
    /// False for a `message` frame a `resume` already delivered.
    fn fresh(&mut self, ev: &crate::hub::Frame) -> bool {
        if ev.seq == 0 {
            return true;
        }
        match self.delivered.get(&ev.conversation_id) {
            None => true,
            Some(&replayed) if ev.seq <= replayed => false,
            Some(_) => {
                self.delivered.remove(&ev.conversation_id);
                true
            }
        }
    }

    /// Handles one frame and sends its reply; `Err` when the socket is gone.
    async fn handle<S>(&mut self, socket: &mut S, raw: Utf8Bytes) -> Result<(), ()>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let reply = self.dispatch(socket, raw).await?;
        if let Some(frame) = reply
            && socket.send(text(frame.to_json())).await.is_err()
        {
            return Err(());
        }
        Ok(())
    }

    /// Handles one frame; returns the reply to send, if any.
    async fn dispatch<S>(
        &mut self,
        socket: &mut S,
        raw: Utf8Bytes,
    ) -> Result<Option<ServerFrame>, ()>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let limits = &self.state.settings.limits;
        if !self.frames.allow() {
            return Ok(Some(
                FrameError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many frames: at most {} per second on one connection",
                        limits.conn_frames_per_sec
                    ),
                    None,
                )
                .into(),
            ));
        }
        if raw.len() > limits.max_frame_bytes {
            return Ok(Some(
                FrameError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "frame is {} bytes; the limit is {}",
                        raw.len(),
                        limits.max_frame_bytes
                    ),
                    None,
                )
                .into(),
            ));
        }
        let cmd = match frame::decode(raw.as_str()) {
            Ok(c) => c,
            Err(e) => return Ok(Some(e.into())),
        };
        let hub: &Arc<Hub> = &self.state.hub;
        let result: Result<Option<ServerFrame>, FrameError> = match cmd {
            Command::Ping => Ok(Some(ServerFrame::Pong)),
            Command::Send(send) => {
                let outcome = match &self.who {
                    Who::Visitor(v) => hub.visitor_send(v, self.conn, send).await,
                    Who::Agent(a) => hub.agent_send(a, self.conn, send).await,
                };
                outcome.map(|o| {
                    Some(ServerFrame::Ack {
                        client_msg_id: o.message.client_msg_id.clone().unwrap_or_default(),
                        message: o.message,
                    })
                })
            }
            Command::Resume {
                conversation_id,
                after_seq,
            } => match self.conversation(&conversation_id).await {
                Ok(c) => return self.resume(socket, c, after_seq).await.map(Some),
                Err(e) => Err(e),
            },
            Command::Typing {
                conversation_id,
                state,
            } => match self.conversation_or_current(conversation_id).await {
                Ok(c) => {
                    hub.relay_typing(&c, self.party.clone(), state, self.conn);
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            Command::Read {
                conversation_id,
                seq,
            } => match self.conversation_or_current(conversation_id).await {
                Ok(c) => hub
                    .read(&c, self.party.clone(), seq, self.conn)
                    .await
                    .map(|_| None),
                Err(e) => Err(e),
            },
        };
        Ok(match result {
            Ok(reply) => reply,
            Err(e) => Some(e.into()),
        })
    }

    async fn conversation(&self, id: &str) -> Result<Conversation, FrameError> {
        match &self.who {
            Who::Visitor(v) => self.state.hub.visitor_conversation(v, id).await,
            Who::Agent(a) => self.state.hub.agent_conversation(a, id).await,
        }
    }

    async fn conversation_or_current(
        &self,
        id: Option<String>,
    ) -> Result<Conversation, FrameError> {
        match (id, &self.who) {
            (Some(id), _) => self.conversation(&id).await,
            (None, Who::Visitor(v)) => self
                .state
                .hub
                .storage()
                .current_conversation(&v.id)
                .await
                .map_err(|e| crate::hub::storage_error(e, None))?
                .ok_or_else(|| {
                    FrameError::new(
                        ErrorCode::NotFound,
                        "you have no open conversation yet",
                        None,
                    )
                }),
            (None, Who::Agent(_)) => Err(FrameError::new(
                ErrorCode::Invalid,
                "agents must give conversation_id",
                None,
            )),
        }
    }

    /// Replays every message after `after_seq` in order, then `caught_up`.
    async fn resume<S>(
        &mut self,
        socket: &mut S,
        c: Conversation,
        after_seq: u64,
    ) -> Result<ServerFrame, ()>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let include_private = matches!(self.who, Who::Agent(_));
        let key: Arc<str> = Arc::from(c.id.as_str());
        let mut cursor = after_seq;
        let mut last_seq = c.last_seq.max(after_seq);
        loop {
            let page = match self
                .state
                .hub
                .storage()
                .messages_after(&c.id, cursor, 500, include_private)
                .await
            {
                Ok(p) => p,
                Err(e) => return Ok(crate::hub::storage_error(e, None).into()),
            };
            let done = page.len() < 500;
            for m in &page {
                cursor = m.seq;
                last_seq = last_seq.max(m.seq);
                let delivered = self.delivered.entry(key.clone()).or_insert(0);
                if m.seq > *delivered {
                    *delivered = m.seq;
                }
                socket
                    .feed(WsMessage::Text(message_frame(m)))
                    .await
                    .map_err(|_| ())?;
            }
            socket.flush().await.map_err(|_| ())?;
            if done {
                break;
            }
        }
        Ok(ServerFrame::CaughtUp {
            conversation_id: c.id,
            last_seq,
        })
    }
}
