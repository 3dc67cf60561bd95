//! Bodies of the HTTP endpoints (protocol sections 2 and 3).

use serde::{Deserialize, Serialize};

use crate::frame::ServerFrame;
use crate::model::{AgentInfo, Conversation, Message};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdentifiedUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Hex HMAC-SHA256 of `id` with the site's secret.
    #[serde(default)]
    pub hash: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionRequest {
    pub site_key: String,
    #[serde(default)]
    pub visitor_token: Option<String>,
    #[serde(default)]
    pub page_url: Option<String>,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
    #[serde(default)]
    pub user: Option<IdentifiedUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisitorRef {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationRef {
    pub id: String,
    pub last_seq: u64,
}

/// What the widget shows in its header before anyone has written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteBrief {
    pub name: String,
    #[serde(default)]
    pub agents_online: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    pub visitor_token: String,
    pub visitor: VisitorRef,
    pub conversation: Option<ConversationRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteBrief>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostMessage {
    pub client_msg_id: String,
    pub body: String,
    #[serde(default)]
    pub private: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: Message,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsResponse {
    pub events: Vec<ServerFrame>,
    pub last_seq: u64,
    /// Extension: the conversation the events belong to, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeResponse {
    pub agent: AgentInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationsResponse {
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationResponse {
    pub conversation: Conversation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub messages: Vec<Message>,
}

/// The body of every HTTP error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
