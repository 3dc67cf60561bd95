//! The agents' REST API: conversations and their messages.

use axum::Json;
use axum::extract::{Path, Query, State};
use kefu::api::{
    ConversationResponse, ConversationsResponse, MessageResponse, MessagesResponse, PostMessage,
};
use kefu::frame::{ClientFrame, Command};
use kefu::model::ConversationStatus;
use serde::Deserialize;

use super::auth::AuthAgent;
use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::hub::AgentCtx;
use crate::storage::ConversationFilter;

async fn ctx(state: &AppState, agent: crate::storage::Agent) -> Result<AgentCtx, ApiError> {
    let site_ids = state.hub.storage().agent_site_ids(&agent).await?;
    Ok(AgentCtx {
        agent,
        site_ids: site_ids.into(),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/conversations?status=open`: without `status`, every conversation that is not
/// resolved.
pub async fn list(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationsResponse>, ApiError> {
    let statuses = match q.status.as_deref() {
        None | Some("") | Some("active") => vec![
            ConversationStatus::Open,
            ConversationStatus::Pending,
            ConversationStatus::Snoozed,
        ],
        Some("all") => Vec::new(),
        Some(s) => vec![ConversationStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be open, pending, resolved, snoozed, active or all; got {s:?}"
            ))
        })?],
    };
    let ctx = ctx(&state, agent).await?;
    let conversations = state
        .hub
        .storage()
        .list_conversations(ConversationFilter {
            site_ids: Some(ctx.site_ids.to_vec()),
            statuses,
            limit: q.limit.unwrap_or(200),
        })
        .await?;
    Ok(Json(ConversationsResponse { conversations }))
}

/// `GET /api/v1/conversations/{id}`
pub async fn get(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(id): Path<String>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let ctx = ctx(&state, agent).await?;
    let mut conversation = state.hub.agent_conversation(&ctx, &id).await?;
    conversation.visitor = state
        .hub
        .storage()
        .visitor(&conversation.visitor_id)
        .await?
        .map(|v| v.info);
    Ok(Json(ConversationResponse { conversation }))
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    #[serde(default)]
    after_seq: u64,
    limit: Option<u32>,
}

/// `GET /api/v1/conversations/{id}/messages?after_seq=N&limit=100`
pub async fn messages(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<MessagesResponse>, ApiError> {
    let ctx = ctx(&state, agent).await?;
    state.hub.agent_conversation(&ctx, &id).await?;
    let messages = state
        .hub
        .storage()
        .messages_after(&id, q.after_seq, q.limit.unwrap_or(100).min(1000), true)
        .await?;
    Ok(Json(MessagesResponse { messages }))
}

/// `POST /api/v1/conversations/{id}/messages`
pub async fn post_message(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<Json<MessageResponse>, ApiError> {
    let ctx = ctx(&state, agent).await?;
    let frame = ClientFrame::Send {
        client_msg_id: body.client_msg_id,
        body: body.body,
        conversation_id: Some(id),
        private: body.private,
    };
    let Command::Send(cmd) = frame.validate()? else {
        unreachable!("a send frame validates into a send command")
    };
    let outcome = state.hub.agent_send(&ctx, 0, cmd).await?;
    Ok(Json(MessageResponse {
        message: outcome.message,
    }))
}

#[derive(Deserialize)]
pub struct StatusBody {
    status: String,
}

/// `POST /api/v1/conversations/{id}/status` `{"status": "resolved"}`
pub async fn set_status(
    State(state): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let status = ConversationStatus::parse(&body.status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be open, pending, resolved or snoozed; got {:?}",
            body.status
        ))
    })?;
    let ctx = ctx(&state, agent).await?;
    let conversation = state.hub.set_status(&ctx, &id, status).await?;
    Ok(Json(ConversationResponse { conversation }))
}
