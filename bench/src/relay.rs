//! The bare relay: the least a server can do to speak the same frames. It accepts
//! `/ws/visitor` and `/ws/agent` (any token, no auth), sends `hello`, decodes each client frame
//! with the protocol crate, answers `send` with an `ack` whose message has a `seq`, and forwards
//! the same message as a `message` frame to every agent connection. No storage, no bot, no
//! rate limits. Its sockets use the same buffer sizes as Kefu's gateway, so the difference
//! between the two is the product around the socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use kefu::frame::{self, Command, ErrorCode, FrameError, Party, ServerFrame};
use kefu::model::{Message, Sender, SenderKind};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued for one agent connection before it counts as too slow and is dropped.
const AGENT_QUEUE: usize = 65_536;
const HEARTBEAT_MS: u64 = 25_000;

/// The agent connections, each a bounded queue.
#[derive(Default)]
struct Agents {
    conns: Mutex<Vec<(u64, mpsc::Sender<Utf8Bytes>)>>,
}

impl Agents {
    fn add(&self, id: u64, tx: mpsc::Sender<Utf8Bytes>) {
        self.conns.lock().expect("not poisoned").push((id, tx));
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .expect("not poisoned")
            .retain(|(i, _)| *i != id);
    }

    /// Queues `frame` for every agent; drops the ones whose queue is full.
    fn broadcast(&self, frame: &Utf8Bytes) {
        let mut conns = self.conns.lock().expect("not poisoned");
        conns.retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
    }
}

struct Relay {
    agents: Agents,
    next_conn: AtomicU64,
    next_msg: AtomicU64,
}

/// Kefu's gateway settings: 2 KiB read buffer (`limits.ws_read_buffer_bytes`), no write
/// buffering.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(256 * 1024))
        .max_frame_size(Some(256 * 1024))
}

pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("relay listening on {}", listener.local_addr()?);
    let relay = Arc::new(Relay {
        agents: Agents::default(),
        next_conn: AtomicU64::new(1),
        next_msg: AtomicU64::new(1),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let relay = relay.clone();
        tokio::spawn(async move {
            let _ = connection(stream, relay).await;
        });
    }
}

// The callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, relay: Arc<Relay>) -> anyhow::Result<()> {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_owned();
        if path == "/ws/visitor" || path == "/ws/agent" {
            let token = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
            if path == "/ws/visitor" && token.is_none_or(str::is_empty) {
                return Err(reject(StatusCode::UNAUTHORIZED));
            }
            Ok(resp)
        } else {
            Err(reject(StatusCode::NOT_FOUND))
        }
    };
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await?;
    let conn = relay.next_conn.fetch_add(1, Ordering::Relaxed);
    if path == "/ws/agent" {
        agent(ws, conn, &relay).await
    } else {
        visitor(ws, conn, &relay).await
    }
}

fn reject(status: StatusCode) -> ErrorResponse {
    let mut r = ErrorResponse::new(None);
    *r.status_mut() = status;
    r
}

fn hello(kind: SenderKind, conn: u64) -> WsMessage {
    WsMessage::text(
        ServerFrame::Hello {
            protocol: kefu::PROTOCOL_VERSION,
            you: Party {
                kind,
                id: format!("{}-{conn}", kind.as_str()),
                name: None,
            },
            heartbeat_ms: HEARTBEAT_MS,
        }
        .to_json(),
    )
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn visitor(mut ws: Ws, conn: u64, relay: &Relay) -> anyhow::Result<()> {
    ws.send(hello(SenderKind::Visitor, conn)).await?;
    let visitor_id = format!("visitor-{conn}");
    let conversation_id = format!("conversation-{conn}");
    let mut seq = 0u64;
    while let Some(m) = ws.next().await {
        let text = match m? {
            WsMessage::Text(t) => t,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        let reply = match frame::decode(text.as_str()) {
            Ok(Command::Send(send)) => {
                seq += 1;
                let id = relay.next_msg.fetch_add(1, Ordering::Relaxed);
                let client_msg_id = send.client_msg_id.into_inner();
                let message = Message {
                    id: format!("message-{id}"),
                    conversation_id: conversation_id.clone(),
                    seq,
                    sender: Sender {
                        kind: SenderKind::Visitor,
                        id: visitor_id.clone(),
                        name: None,
                    },
                    body: send.body.into_inner(),
                    private: false,
                    client_msg_id: Some(client_msg_id.clone()),
                    created_at: crate::sysinfo::utc_now().1,
                    quick_replies: Vec::new(),
                    meta: None,
                };
                // Like the server: subscribers first, then the sender's ack.
                let forward = ServerFrame::Message {
                    message: message.clone(),
                };
                relay.agents.broadcast(&Utf8Bytes::from(forward.to_json()));
                ServerFrame::Ack {
                    client_msg_id,
                    message,
                }
            }
            Ok(Command::Ping) => ServerFrame::Pong,
            Ok(_) => ServerFrame::from(FrameError::new(
                ErrorCode::Invalid,
                "the relay handles only send and ping",
                None,
            )),
            Err(e) => e.into(),
        };
        ws.send(WsMessage::text(reply.to_json())).await?;
    }
    Ok(())
}

async fn agent(mut ws: Ws, conn: u64, relay: &Relay) -> anyhow::Result<()> {
    ws.send(hello(SenderKind::Agent, conn)).await?;
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(AGENT_QUEUE);
    relay.agents.add(conn, tx);
    let result = async {
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(text) => ws.send(WsMessage::Text(text)).await?,
                    None => break, // too slow: dropped from the broadcast list
                },
                m = ws.next() => match m {
                    Some(Ok(WsMessage::Text(t))) => {
                        if matches!(frame::decode(t.as_str()), Ok(Command::Ping)) {
                            ws.send(WsMessage::text(ServerFrame::Pong.to_json())).await?;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
            }
        }
        anyhow::Ok(())
    }
    .await;
    relay.agents.remove(conn);
    result
}
