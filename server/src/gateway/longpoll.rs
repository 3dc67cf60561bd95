//! Long-polling: the same log and guarantees as the WebSocket, over plain HTTP requests, for
//! browsers or networks that cannot keep a WebSocket open.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use kefu::api::{EventsResponse, MessageResponse, PostMessage};
use kefu::frame::{ClientFrame, Command, ServerFrame};
use serde::Deserialize;

use crate::AppState;
use crate::http::error::{ApiError, ApiJson};
use crate::http::widget::AuthVisitor;

/// `POST /api/v1/widget/messages`: answers after the message is committed.
pub async fn post_message(
    State(state): State<AppState>,
    AuthVisitor(visitor): AuthVisitor,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<Json<MessageResponse>, ApiError> {
    if !state.settings.protocols.long_polling.enabled {
        return Err(ApiError::not_found(
            "long-polling is disabled on this server",
        ));
    }
    let frame = ClientFrame::Send {
        client_msg_id: body.client_msg_id,
        body: body.body,
        conversation_id: None,
        private: body.private,
    };
    let Command::Send(cmd) = frame.validate()? else {
        unreachable!("a send frame validates into a send command")
    };
    // Origin 0: no connection is excluded, so the visitor's open tabs get it as `message`.
    let outcome = state.hub.visitor_send(&visitor, 0, cmd).await?;
    Ok(Json(MessageResponse {
        message: outcome.message,
    }))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after_seq: u64,
    #[serde(default = "default_wait")]
    wait: u64,
}

fn default_wait() -> u64 {
    25
}

/// `GET /api/v1/widget/events?after_seq=N&wait=25`: events of the visitor's current
/// conversation after `N`, as soon as there are any, or an empty list after `wait` seconds.
pub async fn events(
    State(state): State<AppState>,
    AuthVisitor(visitor): AuthVisitor,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventsResponse>, ApiError> {
    if !state.settings.protocols.long_polling.enabled {
        return Err(ApiError::not_found(
            "long-polling is disabled on this server",
        ));
    }
    let wait = Duration::from_secs(q.wait.min(30));
    let _permit = state.conns.admit()?;
    // Listen before looking, so nothing committed in between is missed.
    let (_reg, mut rx) = state.hub.register_visitor(&visitor.id, 16);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let storage = state.hub.storage();
        let conversation = storage.current_conversation(&visitor.id).await?;
        if let Some(c) = &conversation {
            let messages = storage
                .messages_after(&c.id, q.after_seq, 200, false)
                .await?;
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline {
                let last_seq = messages.last().map_or(q.after_seq, |m| m.seq);
                return Ok(Json(EventsResponse {
                    events: messages
                        .into_iter()
                        .map(|message| ServerFrame::Message { message })
                        .collect(),
                    last_seq,
                    conversation_id: Some(c.id.clone()),
                }));
            }
        } else if tokio::time::Instant::now() >= deadline {
            return Ok(Json(EventsResponse {
                events: Vec::new(),
                last_seq: q.after_seq,
                conversation_id: None,
            }));
        }
        tokio::select! {
            _ = rx.recv() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => {
                return Err(ApiError::unavailable("the server is restarting; poll again"));
            }
        }
    }
}
