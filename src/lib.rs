//! Kefu's shared vocabulary: the objects and wire frames of the public protocol
//! (`docs/protocol.md`), used by the server, the browser UI (compiled to wasm) and test clients.
//!
//! - [`model`]: `Message`, `Conversation`, `Sender`, the visitor context the console shows.
//! - [`frame`]: WebSocket frames in both directions, their decoding with precise errors, and the
//!   error codes of the protocol.
//! - [`api`]: request and response bodies of the HTTP endpoints.
//! - [`validate`]: the validated newtypes (`MessageBody`, `ClientMsgId`) every edge parses into.
//!
//! Nothing here does I/O, so it builds for `wasm32-unknown-unknown` and native alike.

#![forbid(unsafe_code)]

pub mod api;
pub mod frame;
pub mod model;
pub mod validate;

pub use frame::{ClientFrame, ErrorCode, FrameError, ServerFrame};
pub use model::{
    Conversation, ConversationStatus, Message, MessageMeta, Sender, SenderKind, VisitorInfo,
};
pub use validate::{ClientMsgId, MessageBody};

/// Version of the wire protocol announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
