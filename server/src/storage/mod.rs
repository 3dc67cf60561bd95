//! Storage: durability and order. One trait, one implementation per backend, chosen by the URL
//! scheme; every append goes through the group-commit [`writer`] so that "durable before ack"
//! costs one commit per batch, not per message.

pub mod sqlite;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use kefu::model::{
    Conversation, ConversationStatus, Message, MessageMeta, Sender, SenderKind, VisitorInfo,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StorageError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Conflict(db.message().to_owned())
            }
            _ => StorageError::Unavailable(e.to_string()),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub site_key: String,
    pub secret: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    /// The site's bot configuration, as stored (JSON; see `assistant::BotConfig`).
    pub bot: String,
}

#[derive(Clone)]
pub struct Agent {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Agent {
    pub fn info(&self) -> kefu::model::AgentInfo {
        kefu::model::AgentInfo {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role.as_str().to_owned(),
        }
    }
}

pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
}

/// What a widget session tells about the visitor; `None` fields keep what is stored.
#[derive(Debug, Clone, Default)]
pub struct VisitorUpsert {
    /// An existing visitor (from a valid token) or `None` for a new one.
    pub id: Option<String>,
    pub site_id: String,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub utc_offset_minutes: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct VisitorRecord {
    pub site_id: String,
    pub info: VisitorInfo,
}

/// Where an appended message goes.
#[derive(Debug, Clone)]
pub enum AppendTarget {
    Conversation(String),
    /// The visitor's current (not resolved) conversation, opened if there is none.
    VisitorCurrent {
        visitor_id: String,
        site_id: String,
        /// Assigned if the conversation is opened by this append.
        assignee_if_new: Option<String>,
        /// Opened as `pending` (the bot's turn) rather than `open`.
        pending_if_new: bool,
        /// Written first if the conversation is opened by this append (the bot's welcome).
        welcome: Option<(Sender, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub target: AppendTarget,
    pub sender: Sender,
    pub body: String,
    pub private: bool,
    pub client_msg_id: Option<String>,
    pub quick_replies: Vec<String>,
    pub meta: Option<MessageMeta>,
}

impl AppendRequest {
    /// A plain text message.
    pub fn text(target: AppendTarget, sender: Sender, body: String) -> Self {
        Self {
            target,
            sender,
            body,
            private: false,
            client_msg_id: None,
            quick_replies: Vec::new(),
            meta: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppendOutcome {
    /// Messages written just before `message` by the same append (the bot's welcome).
    pub prelude: Vec<Message>,
    pub message: Message,
    /// The conversation after the append.
    pub conversation: Conversation,
    /// The `client_msg_id` had been used: `message` is the one stored the first time.
    pub duplicate: bool,
    /// This append opened the conversation.
    pub opened: bool,
}

/// A QA pair of a site's own, edited in the admin UI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteQa {
    #[serde(default)]
    pub id: String,
    pub lang: String,
    pub questions: Vec<String>,
    /// Required, except of a decline example.
    #[serde(default)]
    pub answer: String,
    #[serde(default)]
    pub quick_replies: Vec<String>,
    #[serde(default)]
    pub handoff: bool,
    /// An example of what the site does not answer: a message closest to it is declined.
    #[serde(default)]
    pub decline: bool,
    /// Entity kinds its answer uses (`bot::entities::KINDS`), besides the placeholders in it.
    #[serde(default)]
    pub entities: Vec<String>,
}

/// A question the bot could not answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unanswered {
    pub id: String,
    pub question: String,
    pub conversation_id: Option<String>,
    pub created_at: String,
}

/// Contact details a visitor leaves when nobody is online.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VisitorContact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only these sites; `None` for every site.
    pub site_ids: Option<Vec<String>>,
    pub statuses: Vec<ConversationStatus>,
    pub limit: u32,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;

    /// Returns the named secret, storing `fresh` first if there is none.
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>>;

    /// Creates a site. Admins see it at once; agents join it with [`Storage::add_agent_to_site`].
    async fn create_site(&self, name: &str, allowed_origins: &[String]) -> Result<Site>;
    async fn add_agent_to_site(&self, site_id: &str, agent_id: &str) -> Result<()>;
    async fn site(&self, id: &str) -> Result<Option<Site>>;
    async fn site_by_key(&self, site_key: &str) -> Result<Option<Site>>;
    async fn sites(&self) -> Result<Vec<Site>>;

    /// Creates an agent; `Conflict` if the email is taken. New agents join every existing site.
    async fn create_agent(&self, agent: NewAgent) -> Result<Agent>;
    async fn agent(&self, id: &str) -> Result<Option<Agent>>;
    async fn agent_by_email(&self, email: &str) -> Result<Option<Agent>>;
    async fn agent_count(&self) -> Result<u64>;
    /// The sites whose conversations the agent sees (every site for admins).
    async fn agent_site_ids(&self, agent: &Agent) -> Result<Vec<String>>;
    async fn create_api_token(&self, agent_id: &str, token_hash: &str) -> Result<()>;
    async fn agent_by_token_hash(&self, token_hash: &str) -> Result<Option<Agent>>;

    async fn upsert_visitor(&self, visitor: VisitorUpsert) -> Result<VisitorRecord>;
    async fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>>;

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>>;
    /// The visitor's newest conversation that is not resolved.
    async fn current_conversation(&self, visitor_id: &str) -> Result<Option<Conversation>>;
    /// Conversations with the console's extensions (visitor, unread, last message), newest
    /// activity first.
    async fn list_conversations(&self, filter: ConversationFilter) -> Result<Vec<Conversation>>;
    async fn set_status(
        &self,
        id: &str,
        status: ConversationStatus,
    ) -> Result<Option<Conversation>>;
    /// Assigns the conversation to `agent_id` if it has no assignee; returns it when it changed.
    async fn claim(&self, id: &str, agent_id: &str) -> Result<Option<Conversation>>;
    /// Hands a `pending` conversation to people: status `open`, assigned to `assignee` unless it
    /// already has one. Returns it, or `None` if it does not exist or is not `pending` (already
    /// handed over: a second hand-over changes nothing).
    async fn hand_over(&self, id: &str, assignee: Option<&str>) -> Result<Option<Conversation>>;
    /// Records that `reader` has read up to `seq` (never moves backwards).
    async fn mark_read(&self, id: &str, reader: SenderKind, seq: u64) -> Result<()>;

    async fn set_site_bot(&self, site_id: &str, bot_json: &str) -> Result<()>;
    async fn qa_list(&self, site_id: &str) -> Result<Vec<SiteQa>>;
    /// Creates (empty id) or replaces (known id) a site's QA pair; `NotFound` for an unknown id.
    async fn qa_save(&self, site_id: &str, qa: SiteQa) -> Result<SiteQa>;
    /// Saves every pair as [`Storage::qa_save`] does, in order, in one transaction: if any of
    /// them fails (`NotFound` for an unknown id included), none is stored.
    async fn qa_save_all(&self, site_id: &str, pairs: Vec<SiteQa>) -> Result<Vec<SiteQa>>;
    async fn qa_delete(&self, site_id: &str, id: &str) -> Result<bool>;
    async fn unanswered_add(
        &self,
        site_id: &str,
        conversation_id: Option<&str>,
        question: &str,
    ) -> Result<()>;
    async fn unanswered_list(&self, site_id: &str, limit: u32) -> Result<Vec<Unanswered>>;
    async fn unanswered_delete(&self, site_id: &str, id: &str) -> Result<bool>;
    async fn set_visitor_contact(&self, visitor_id: &str, contact: VisitorContact) -> Result<()>;

    /// Appends every request in one transaction, in order; one result per request.
    /// A storage failure fails the whole batch (nothing of it is committed).
    async fn append_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Result<AppendOutcome>>>;
    /// Upkeep that must run between two batches, called by the group commit after a batch that
    /// committed, once its outcomes are handed on (the batch it follows is not held up by it;
    /// the next one is). Nothing by default.
    async fn between_batches(&self) {}
    /// Messages with `seq > after_seq`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
        include_private: bool,
    ) -> Result<Vec<Message>>;
}

/// Opens the storage named by `url`, creating and migrating the database as needed.
pub async fn connect(
    settings: &crate::config::StorageSettings,
) -> anyhow::Result<Arc<dyn Storage>> {
    let url = settings.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStorage::open(settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        anyhow::bail!(
            "storage.url {}: PostgreSQL is not available in this build yet; use sqlite://",
            crate::config::redact_url(url)
        )
    } else {
        anyhow::bail!(
            "storage.url {}: unknown scheme (expected sqlite:// or postgres://)",
            crate::config::redact_url(url)
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, as the protocol's times are.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A new opaque id: UUIDv7 (time-ordered, so indexes stay compact), as 32 hex digits.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
