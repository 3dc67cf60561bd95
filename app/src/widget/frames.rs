//! The server frames the widget acts on, decoded without [`kefu::frame::ServerFrame`].
//!
//! `ServerFrame` is an internally tagged enum (`{"type": "ack", …}`): serde decodes one by first
//! buffering the whole frame into a generic tree, then decoding every variant from that tree,
//! conversations and visitor details for agents included. In the widget's wasm that came to a
//! sizeable share of what the visitor downloads. Here the widget reads the `type`, then only the
//! fields it uses, into the same payload types ([`Message`], [`Party`], …). The tests check the
//! result against what the server actually sends, `ServerFrame` serialized.

use kefu::frame::{Party, TypingState};
use kefu::model::Message;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A frame from the server, as far as the widget is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Hello {
        heartbeat_ms: u64,
    },
    Ack {
        client_msg_id: String,
        message: Message,
    },
    Message {
        message: Message,
    },
    Typing {
        state: TypingState,
        from: Party,
    },
    /// A refused frame, with the `client_msg_id` of the send it refuses, if any.
    Error {
        client_msg_id: Option<String>,
    },
    /// Any other frame (`caught_up`, `read`, `pong`, `conversation`, or one added later): the
    /// widget has nothing to do with it.
    Other,
}

/// The fields of one variant (serde ignores the `type` and anything else).
fn fields<T: DeserializeOwned>(json: &str) -> Option<T> {
    serde_json::from_str(json).ok()
}

impl Incoming {
    /// Decodes one frame; `None` if it is not a frame at all.
    pub fn decode(json: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Tag {
            r#type: String,
        }
        #[derive(Deserialize)]
        struct Hello {
            heartbeat_ms: u64,
        }
        #[derive(Deserialize)]
        struct Ack {
            client_msg_id: String,
            message: Message,
        }
        #[derive(Deserialize)]
        struct Msg {
            message: Message,
        }
        #[derive(Deserialize)]
        struct Typing {
            state: TypingState,
            from: Party,
        }
        #[derive(Deserialize)]
        struct Error {
            #[serde(default)]
            client_msg_id: Option<String>,
        }

        let tag: Tag = fields(json)?;
        Some(match tag.r#type.as_str() {
            "hello" => {
                let Hello { heartbeat_ms } = fields(json)?;
                Incoming::Hello { heartbeat_ms }
            }
            "ack" => {
                let Ack {
                    client_msg_id,
                    message,
                } = fields(json)?;
                Incoming::Ack {
                    client_msg_id,
                    message,
                }
            }
            "message" => {
                let Msg { message } = fields(json)?;
                Incoming::Message { message }
            }
            "typing" => {
                let Typing { state, from } = fields(json)?;
                Incoming::Typing { state, from }
            }
            "error" => {
                let Error { client_msg_id } = fields(json)?;
                Incoming::Error { client_msg_id }
            }
            _ => Incoming::Other,
        })
    }
}

#[cfg(feature = "hydrate")]
impl crate::ws::Frame for Incoming {
    fn parse(text: &str) -> Option<Self> {
        Incoming::decode(text)
    }

    fn heartbeat_ms(&self) -> Option<u64> {
        match self {
            Incoming::Hello { heartbeat_ms } => Some(*heartbeat_ms),
            _ => None,
        }
    }
}

/// `GET /api/v1/widget/events`: [`kefu::api::EventsResponse`] with the frames left as JSON, for
/// [`Incoming::decode`].
#[derive(Debug, Deserialize)]
pub struct Events {
    pub events: Vec<Box<RawValue>>,
    pub last_seq: u64,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

impl Events {
    /// The frames the widget understands, in order.
    pub fn frames(&self) -> impl Iterator<Item = Incoming> + '_ {
        self.events.iter().filter_map(|e| Incoming::decode(e.get()))
    }
}

#[cfg(test)]
mod tests {
    use kefu::api::EventsResponse;
    use kefu::frame::{ErrorCode, ServerFrame};
    use kefu::model::{Conversation, SenderKind};

    use super::*;

    // Test data from JSON rather than struct literals: the model may grow optional fields.
    fn message(seq: u64) -> Message {
        serde_json::from_value(serde_json::json!({
            "id": format!("m{seq}"),
            "conversation_id": "c1",
            "seq": seq,
            "sender": {"kind": "agent", "id": "a1", "name": "Alice"},
            "body": "Hi \"there\" <b>",
            "client_msg_id": "cm1",
            "created_at": "2026-11-27T10:00:00Z",
        }))
        .unwrap()
    }

    fn conversation() -> Conversation {
        serde_json::from_value(serde_json::json!({
            "id": "c1",
            "site_id": "s1",
            "visitor_id": "v1",
            "status": "open",
            "assignee_id": null,
            "last_seq": 2,
            "created_at": "2026-11-27T10:00:00Z",
            "updated_at": "2026-11-27T10:00:00Z",
            "visitor": {"id": "v1", "name": "Bob"},
            "unread": 1,
            "last_message": message(2),
        }))
        .unwrap()
    }

    fn party(kind: SenderKind) -> Party {
        Party {
            kind,
            id: "a1".into(),
            name: None,
        }
    }

    /// Every variant of what the server sends, and what the widget must make of it.
    fn cases() -> Vec<(ServerFrame, Incoming)> {
        vec![
            (
                ServerFrame::Hello {
                    protocol: 1,
                    you: party(SenderKind::Visitor),
                    heartbeat_ms: 25_000,
                },
                Incoming::Hello {
                    heartbeat_ms: 25_000,
                },
            ),
            (
                ServerFrame::Ack {
                    client_msg_id: "cm1".into(),
                    message: message(1),
                },
                Incoming::Ack {
                    client_msg_id: "cm1".into(),
                    message: message(1),
                },
            ),
            (
                ServerFrame::Message {
                    message: message(2),
                },
                Incoming::Message {
                    message: message(2),
                },
            ),
            (
                ServerFrame::CaughtUp {
                    conversation_id: "c1".into(),
                    last_seq: 2,
                },
                Incoming::Other,
            ),
            (
                ServerFrame::Conversation {
                    conversation: conversation(),
                },
                Incoming::Other,
            ),
            (
                ServerFrame::Typing {
                    conversation_id: "c1".into(),
                    state: TypingState::On,
                    from: party(SenderKind::Agent),
                },
                Incoming::Typing {
                    state: TypingState::On,
                    from: party(SenderKind::Agent),
                },
            ),
            (
                ServerFrame::Read {
                    conversation_id: "c1".into(),
                    seq: 2,
                    from: party(SenderKind::Agent),
                },
                Incoming::Other,
            ),
            (ServerFrame::Pong, Incoming::Other),
            (
                ServerFrame::Error {
                    code: ErrorCode::Invalid,
                    message: "body is empty".into(),
                    client_msg_id: Some("cm9".into()),
                },
                Incoming::Error {
                    client_msg_id: Some("cm9".into()),
                },
            ),
            (
                ServerFrame::Error {
                    code: ErrorCode::RateLimited,
                    message: "slow down".into(),
                    client_msg_id: None,
                },
                Incoming::Error {
                    client_msg_id: None,
                },
            ),
        ]
    }

    #[test]
    fn reads_every_frame_the_server_sends() {
        for (frame, expected) in cases() {
            let json = frame.to_json();
            assert_eq!(Incoming::decode(&json), Some(expected), "{json}");
        }
    }

    #[test]
    fn ignores_unknown_frames_and_rejects_garbage() {
        assert_eq!(
            Incoming::decode(r#"{"type":"from_the_future","x":1}"#),
            Some(Incoming::Other)
        );
        assert_eq!(Incoming::decode("not json"), None);
        assert_eq!(Incoming::decode(r#"{"no_type":1}"#), None);
        assert_eq!(Incoming::decode(r#"{"type":"ack"}"#), None);
    }

    #[test]
    fn reads_a_long_poll_answer() {
        let (frames, expected): (Vec<_>, Vec<_>) = cases().into_iter().unzip();
        let body = serde_json::to_string(&EventsResponse {
            events: frames,
            last_seq: 2,
            conversation_id: Some("c1".into()),
        })
        .unwrap();
        let events: Events = serde_json::from_str(&body).unwrap();
        assert_eq!(events.last_seq, 2);
        assert_eq!(events.conversation_id.as_deref(), Some("c1"));
        assert_eq!(events.frames().collect::<Vec<_>>(), expected);
    }
}
