//! The WebSocket client side: connecting from a chosen source address, and reading the few
//! fields the load generator needs out of a frame without parsing all of it.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers for connections that mostly sit idle (a browser tab holds about this much).
pub fn idle_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Buffers for connections that carry load: frames fed together go out in one write.
pub fn load_config(read: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read)
        .write_buffer_size(64 * 1024)
}

/// Opens a WebSocket to `server` + `path`, from `source` (port chosen by the kernel) when given,
/// with `Authorization: Bearer` when given. Spreading sockets over several loopback source
/// addresses keeps clear of the ephemeral port range of any one of them.
pub async fn connect(
    server: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    bearer: Option<&str>,
    config: WebSocketConfig,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding to {ip}"))?;
    }
    let stream = socket.connect(server).await?;
    // Browsers disable Nagle on WebSocket connections too.
    stream.set_nodelay(true)?;
    let mut req = format!("ws://{server}{path}").into_client_request()?;
    if let Some(token) = bearer {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
    Ok(ws)
}

/// The server's frame kinds the generator acts on. Both servers serialize the `type` tag first.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Hello,
    Ack,
    Message,
    Pong,
    Error,
    Other,
}

pub fn kind(text: &str) -> Kind {
    let Some(rest) = text.strip_prefix("{\"type\":\"") else {
        return Kind::Other;
    };
    let end = rest.find('"').unwrap_or(0);
    match &rest[..end] {
        "hello" => Kind::Hello,
        "ack" => Kind::Ack,
        "message" => Kind::Message,
        "pong" => Kind::Pong,
        "error" => Kind::Error,
        _ => Kind::Other,
    }
}

/// The first `"client_msg_id":"…"` of a frame. Ids made by the generator hold no escapes, and a
/// body cannot hold this pattern unescaped, so the first match is the id.
pub fn client_msg_id(text: &str) -> Option<&str> {
    string_field(text, "\"client_msg_id\":\"")
}

/// The first string value after `pattern` (which ends with the opening quote).
pub fn string_field<'a>(text: &'a str, pattern: &str) -> Option<&'a str> {
    let start = text.find(pattern)? + pattern.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kefu_frames() {
        let ack = r#"{"type":"ack","client_msg_id":"r1-2-3","message":{"id":"m","conversation_id":"c","seq":4,"sender":{"kind":"visitor","id":"v"},"body":"say \"client_msg_id\":\"x\"","private":false,"client_msg_id":"r1-2-3","created_at":"t"}}"#;
        assert_eq!(kind(ack), Kind::Ack);
        assert_eq!(client_msg_id(ack), Some("r1-2-3"));
        let msg = r#"{"type":"message","message":{"id":"m","conversation_id":"c","seq":4,"sender":{"kind":"visitor","id":"v"},"body":"b","private":false,"client_msg_id":"r1-2-3","created_at":"t"}}"#;
        assert_eq!(kind(msg), Kind::Message);
        assert_eq!(client_msg_id(msg), Some("r1-2-3"));
        assert_eq!(kind(r#"{"type":"pong"}"#), Kind::Pong);
        assert_eq!(
            kind(r#"{"type":"conversation","conversation":{}}"#),
            Kind::Other
        );
        assert_eq!(kind("[]"), Kind::Other);
        let err =
            r#"{"type":"error","code":"rate_limited","message":"m","client_msg_id":"r1-0-9"}"#;
        assert_eq!(string_field(err, "\"code\":\""), Some("rate_limited"));
    }
}
