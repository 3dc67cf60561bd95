//! WebSocket frames (protocol section 4) and their decoding.
//!
//! Decoding is two steps: JSON into [`ClientFrame`] (shape errors become `bad_frame`), then
//! [`ClientFrame::validate`] into values that cannot be wrong (`invalid`). Both errors carry the
//! frame's `client_msg_id` when it could be read, so the client knows which send failed.

use serde::{Deserialize, Serialize};

use crate::model::{Conversation, Message, SenderKind};
use crate::validate::{ClientMsgId, MessageBody};

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        client_msg_id: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        private: bool,
    },
    Resume {
        conversation_id: String,
        after_seq: u64,
    },
    Typing {
        /// Visitors may omit it: their current conversation is meant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        state: TypingState,
    },
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        seq: u64,
    },
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    On,
    Off,
}

/// A `send` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCommand {
    pub client_msg_id: ClientMsgId,
    pub body: MessageBody,
    pub conversation_id: Option<String>,
    pub private: bool,
}

/// A client frame whose values have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send(SendCommand),
    Resume {
        conversation_id: String,
        after_seq: u64,
    },
    Typing {
        conversation_id: Option<String>,
        state: TypingState,
    },
    Read {
        conversation_id: Option<String>,
        seq: u64,
    },
    Ping,
}

/// Longest id a client may name (conversation ids are far shorter).
pub const MAX_ID_LEN: usize = 128;

impl ClientFrame {
    /// Checks the values of the frame. Errors are `invalid`.
    pub fn validate(self) -> Result<Command, FrameError> {
        let check_id = |id: &Option<String>, cmid: Option<&str>| -> Result<(), FrameError> {
            match id {
                Some(id) if id.is_empty() || id.len() > MAX_ID_LEN => Err(FrameError::new(
                    ErrorCode::Invalid,
                    format!("conversation_id must be 1 to {MAX_ID_LEN} bytes"),
                    cmid.map(str::to_owned),
                )),
                _ => Ok(()),
            }
        };
        match self {
            ClientFrame::Send {
                client_msg_id,
                body,
                conversation_id,
                private,
            } => {
                check_id(&conversation_id, Some(&client_msg_id))?;
                let echo = client_msg_id.clone();
                let client_msg_id = ClientMsgId::parse(client_msg_id).map_err(|e| {
                    // An id too long to be valid is not echoed back whole.
                    let echo = (echo.chars().count() <= 64 && !echo.is_empty()).then_some(echo);
                    FrameError::new(ErrorCode::Invalid, e, echo)
                })?;
                let body = MessageBody::parse(body).map_err(|e| {
                    FrameError::new(ErrorCode::Invalid, e, Some(client_msg_id.to_string()))
                })?;
                Ok(Command::Send(SendCommand {
                    client_msg_id,
                    body,
                    conversation_id,
                    private,
                }))
            }
            ClientFrame::Resume {
                conversation_id,
                after_seq,
            } => {
                check_id(&Some(conversation_id.clone()), None)?;
                Ok(Command::Resume {
                    conversation_id,
                    after_seq,
                })
            }
            ClientFrame::Typing {
                conversation_id,
                state,
            } => {
                check_id(&conversation_id, None)?;
                Ok(Command::Typing {
                    conversation_id,
                    state,
                })
            }
            ClientFrame::Read {
                conversation_id,
                seq,
            } => {
                check_id(&conversation_id, None)?;
                Ok(Command::Read {
                    conversation_id,
                    seq,
                })
            }
            ClientFrame::Ping => Ok(Command::Ping),
        }
    }
}

/// Decodes and validates one text frame.
pub fn decode(text: &str) -> Result<Command, FrameError> {
    if text.trim().is_empty() {
        return Err(FrameError::new(ErrorCode::BadFrame, "empty frame", None));
    }
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame.validate(),
        Err(e) => {
            #[derive(Deserialize)]
            struct Echo {
                client_msg_id: Option<String>,
            }
            let echo = serde_json::from_str::<Echo>(text)
                .ok()
                .and_then(|e| e.client_msg_id)
                .filter(|id| !id.is_empty() && id.chars().count() <= 64);
            let message = if e.is_syntax() || e.is_eof() {
                format!("frame is not valid JSON: {e}")
            } else {
                format!("frame has the wrong shape: {e}")
            };
            Err(FrameError::new(ErrorCode::BadFrame, message, echo))
        }
    }
}

/// Who a relayed frame comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub kind: SenderKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Frames the server sends.
// Frames live only between building and serializing; boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        protocol: u32,
        you: Party,
        heartbeat_ms: u64,
    },
    Ack {
        client_msg_id: String,
        message: Message,
    },
    Message {
        message: Message,
    },
    CaughtUp {
        conversation_id: String,
        last_seq: u64,
    },
    Conversation {
        conversation: Conversation,
    },
    Typing {
        conversation_id: String,
        state: TypingState,
        from: Party,
    },
    Read {
        conversation_id: String,
        seq: u64,
        from: Party,
    },
    Pong,
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }
}

impl From<FrameError> for ServerFrame {
    fn from(e: FrameError) -> Self {
        ServerFrame::Error {
            code: e.code,
            message: e.message,
            client_msg_id: e.client_msg_id,
        }
    }
}

/// The error codes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadFrame,
    Invalid,
    TooLarge,
    RateLimited,
    Forbidden,
    NotFound,
    Unavailable,
    Unauthorized,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

/// A frame the server refuses, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub client_msg_id: Option<String>,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>, client_msg_id: Option<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_msg_id,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for FrameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_client_frame() {
        let send = decode(r#"{"type":"send","client_msg_id":"c1","body":"hi"}"#).unwrap();
        let Command::Send(s) = send else {
            panic!("not a send")
        };
        assert_eq!(s.client_msg_id.as_str(), "c1");
        assert_eq!(s.body.as_str(), "hi");
        assert!(!s.private && s.conversation_id.is_none());

        let note = decode(
            r#"{"type":"send","client_msg_id":"c2","body":"n","conversation_id":"k","private":true}"#,
        )
        .unwrap();
        assert!(matches!(
            note,
            Command::Send(SendCommand { private: true, .. })
        ));
        assert_eq!(
            decode(r#"{"type":"resume","conversation_id":"k","after_seq":3}"#).unwrap(),
            Command::Resume {
                conversation_id: "k".into(),
                after_seq: 3
            }
        );
        assert_eq!(
            decode(r#"{"type":"typing","conversation_id":"k","state":"on"}"#).unwrap(),
            Command::Typing {
                conversation_id: Some("k".into()),
                state: TypingState::On
            }
        );
        assert_eq!(
            decode(r#"{"type":"read","conversation_id":"k","seq":9}"#).unwrap(),
            Command::Read {
                conversation_id: Some("k".into()),
                seq: 9
            }
        );
        assert_eq!(decode(r#"{"type":"ping"}"#).unwrap(), Command::Ping);
    }

    #[test]
    fn shape_errors_are_bad_frame_and_say_what() {
        let e = decode("not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);

        let e = decode(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert!(e.message.contains("dance"), "{}", e.message);

        let e = decode(r#"{"type":"send","client_msg_id":"c9"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert!(e.message.contains("body"), "{}", e.message);
        assert_eq!(e.client_msg_id.as_deref(), Some("c9"));

        assert_eq!(decode("").unwrap_err().code, ErrorCode::BadFrame);
        assert_eq!(decode("[1,2]").unwrap_err().code, ErrorCode::BadFrame);
        assert_eq!(
            decode(r#"{"type":"resume","conversation_id":"k","after_seq":-1}"#)
                .unwrap_err()
                .code,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn value_errors_are_invalid_and_echo_the_id() {
        let e = decode(r#"{"type":"send","client_msg_id":"c3","body":"  "}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
        assert_eq!(e.client_msg_id.as_deref(), Some("c3"));
        assert!(e.message.contains("empty"));

        let long = "x".repeat(65);
        let e = decode(&format!(
            r#"{{"type":"send","client_msg_id":"{long}","body":"b"}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
        assert_eq!(e.client_msg_id, None);

        let e = decode(r#"{"type":"send","client_msg_id":"","body":"b"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
    }

    #[test]
    fn server_frames_match_the_protocol_text() {
        let f = ServerFrame::CaughtUp {
            conversation_id: "k".into(),
            last_seq: 7,
        };
        assert_eq!(
            f.to_json(),
            r#"{"type":"caught_up","conversation_id":"k","last_seq":7}"#
        );
        assert_eq!(ServerFrame::Pong.to_json(), r#"{"type":"pong"}"#);
        let e: ServerFrame =
            FrameError::new(ErrorCode::RateLimited, "slow down", Some("c".into())).into();
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down","client_msg_id":"c"}"#
        );
    }
}
