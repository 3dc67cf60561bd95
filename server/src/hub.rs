//! The hub owns the rules: who may post where, which conversation a visitor's message opens,
//! assignment, presence, rate limits, and fan-out of committed messages to connections.
//! It knows nothing of sockets: a connection is an id and a bounded queue of [`Outbound`]
//! frames, each serialized once and shared by every receiver.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use kefu::frame::{ErrorCode, FrameError, Party, SendCommand, ServerFrame, TypingState};
use kefu::model::{Conversation, ConversationStatus, Message, MessageMeta, Sender, SenderKind};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::assistant::{Assistant, SiteBot, Turn};
use crate::config::Limits;
use crate::storage::writer::Writer;
use crate::storage::{
    Agent, AppendOutcome, AppendRequest, AppendTarget, Role, Storage, StorageError,
};

pub type ConnId = u64;

/// A frame queued for connections: serialized once, shared by every receiver (one pointer per
/// queue slot keeps idle queues small). `seq > 0` marks a `message` frame, which connections
/// use to skip what a `resume` already replayed.
pub type Outbound = Arc<Frame>;

#[derive(Debug)]
pub struct Frame {
    pub conversation_id: Arc<str>,
    pub seq: u64,
    pub text: Utf8Bytes,
}

fn control(frame: &ServerFrame) -> Outbound {
    Arc::new(Frame {
        conversation_id: Arc::from(""),
        seq: 0,
        text: Utf8Bytes::from(frame.to_json()),
    })
}

/// A visitor, as proven by a valid token.
#[derive(Debug, Clone)]
pub struct VisitorCtx {
    pub id: String,
    pub site_id: String,
}

/// An agent and the sites it may see, fixed when it connects.
#[derive(Debug, Clone)]
pub struct AgentCtx {
    pub agent: Agent,
    pub site_ids: Arc<[String]>,
}

impl AgentCtx {
    pub fn may_see(&self, site_id: &str) -> bool {
        self.agent.role == Role::Admin || self.site_ids.iter().any(|s| s == site_id)
    }

    pub fn party(&self) -> Party {
        Party {
            kind: SenderKind::Agent,
            id: self.agent.id.clone(),
            name: Some(self.agent.name.clone()),
        }
    }
}

struct Conn {
    id: ConnId,
    tx: mpsc::Sender<Outbound>,
}

struct AgentConn {
    id: ConnId,
    agent_id: Arc<str>,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
struct SiteRoom {
    agents: Vec<AgentConn>,
    /// Round-robin position among the distinct online agents.
    next: usize,
}

impl SiteRoom {
    fn online_agents(&self) -> Vec<Arc<str>> {
        let mut ids: Vec<Arc<str>> = Vec::new();
        for c in &self.agents {
            if !ids.contains(&c.agent_id) {
                ids.push(c.agent_id.clone());
            }
        }
        ids
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket: `rate` per second, up to `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    bucket: Bucket,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            bucket: Bucket {
                tokens: burst,
                at: Instant::now(),
            },
        }
    }

    pub fn allow(&mut self) -> bool {
        take(&mut self.bucket, self.rate, self.burst)
    }
}

/// Token buckets by key (a visitor, a client address): `rate` per second, up to `burst` each.
pub struct KeyedLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyedLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one from `key`'s bucket.
    pub fn allow(&self, key: &str) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        let mut map = self.buckets.lock();
        if map.len() > 50_000 {
            // Forget keys whose bucket has refilled: they are as good as new.
            let now = Instant::now();
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        // Every visitor message passes here: the key is copied only when it is new.
        if let Some(bucket) = map.get_mut(key) {
            return take(bucket, rate, burst);
        }
        let mut bucket = Bucket {
            tokens: burst,
            at: Instant::now(),
        };
        let allowed = take(&mut bucket, rate, burst);
        map.insert(key.to_owned(), bucket);
        allowed
    }
}

fn take(b: &mut Bucket, rate: f64, burst: f64) -> bool {
    let now = Instant::now();
    b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

pub struct Hub {
    storage: Arc<dyn Storage>,
    assistant: Arc<Assistant>,
    writer: Writer,
    limits: Limits,
    visitors: RwLock<HashMap<String, Vec<Conn>>>,
    sites: RwLock<HashMap<String, SiteRoom>>,
    visitor_msgs: KeyedLimiter,
    next_conn: AtomicU64,
    /// Serializes, per conversation (striped by its id), what the bot posts and the hand-over:
    /// a bot turn checks that the conversation is still the bot's and posts in one step, so a
    /// turn that finishes after the hand-over posts nothing.
    handovers: Box<[tokio::sync::Mutex<()>]>,
}

/// Stripes of [`Hub::handovers`].
const HANDOVER_STRIPES: usize = 1024;

/// Unregisters a connection when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    id: ConnId,
    kind: RegKind,
}

enum RegKind {
    Visitor(String),
    Agent(Arc<[String]>),
}

impl Drop for Registration {
    fn drop(&mut self) {
        match &self.kind {
            RegKind::Visitor(visitor_id) => {
                let mut map = self.hub.visitors.write();
                if let Some(conns) = map.get_mut(visitor_id) {
                    conns.retain(|c| c.id != self.id);
                    if conns.is_empty() {
                        map.remove(visitor_id);
                    }
                }
            }
            RegKind::Agent(sites) => {
                let mut map = self.hub.sites.write();
                for site in sites.iter() {
                    if let Some(room) = map.get_mut(site) {
                        room.agents.retain(|c| c.id != self.id);
                    }
                }
            }
        }
    }
}

impl Registration {
    pub fn id(&self) -> ConnId {
        self.id
    }
}

fn bot_sender(bot: &SiteBot) -> Sender {
    Sender {
        kind: SenderKind::Bot,
        id: "bot".into(),
        name: Some(bot.config.name.clone()),
    }
}

/// A `message` frame serialized straight from a borrowed message.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct MessageFrame<'a> {
    message: &'a Message,
}

pub fn message_frame(message: &Message) -> Utf8Bytes {
    Utf8Bytes::from(
        serde_json::to_string(&MessageFrame { message }).expect("messages always serialize"),
    )
}

pub fn storage_error(e: StorageError, client_msg_id: Option<String>) -> FrameError {
    match e {
        StorageError::NotFound => {
            FrameError::new(ErrorCode::NotFound, "no such conversation", client_msg_id)
        }
        StorageError::Conflict(m) => FrameError::new(ErrorCode::Invalid, m, client_msg_id),
        StorageError::Unavailable(m) => {
            tracing::error!(error = %m, "storage unavailable");
            FrameError::new(
                ErrorCode::Unavailable,
                "storage is unavailable; nothing was stored, retry with the same client_msg_id",
                client_msg_id,
            )
        }
    }
}

impl Hub {
    pub fn new(
        storage: Arc<dyn Storage>,
        assistant: Arc<Assistant>,
        limits: Limits,
        commits: &crate::config::StorageSettings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let weak = weak.clone();
            let writer = Writer::spawn(
                storage.clone(),
                commits.max_batch,
                std::time::Duration::from_micros(commits.commit_delay_us),
                Arc::new(move |outcome, origin| {
                    if let Some(hub) = weak.upgrade() {
                        hub.fanout(outcome, origin);
                    }
                }),
            );
            Hub {
                storage,
                assistant,
                writer,
                visitor_msgs: KeyedLimiter::new(limits.visitor_msgs_per_sec, limits.visitor_burst),
                limits,
                visitors: RwLock::new(HashMap::new()),
                sites: RwLock::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                handovers: (0..HANDOVER_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            }
        })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn assistant(&self) -> &Arc<Assistant> {
        &self.assistant
    }

    /// Waits until every append queued so far is committed (used at shutdown).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    fn conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn register_visitor(
        self: &Arc<Self>,
        visitor_id: &str,
        queue: usize,
    ) -> (Registration, mpsc::Receiver<Outbound>) {
        let id = self.conn_id();
        let (tx, rx) = mpsc::channel(queue.max(1));
        self.visitors
            .write()
            .entry(visitor_id.to_owned())
            .or_default()
            .push(Conn { id, tx });
        let reg = Registration {
            hub: self.clone(),
            id,
            kind: RegKind::Visitor(visitor_id.to_owned()),
        };
        (reg, rx)
    }

    pub fn register_agent(
        self: &Arc<Self>,
        agent: &AgentCtx,
    ) -> (Registration, mpsc::Receiver<Outbound>) {
        let id = self.conn_id();
        let (tx, rx) = mpsc::channel(self.limits.conn_queue.max(1));
        let agent_id: Arc<str> = Arc::from(agent.agent.id.as_str());
        {
            let mut map = self.sites.write();
            for site in agent.site_ids.iter() {
                map.entry(site.clone()).or_default().agents.push(AgentConn {
                    id,
                    agent_id: agent_id.clone(),
                    tx: tx.clone(),
                });
            }
        }
        let reg = Registration {
            hub: self.clone(),
            id,
            kind: RegKind::Agent(agent.site_ids.clone()),
        };
        (reg, rx)
    }

    pub fn online_agents(&self, site_id: &str) -> u32 {
        self.sites
            .read()
            .get(site_id)
            .map(|r| r.online_agents().len() as u32)
            .unwrap_or(0)
    }

    /// The agent a conversation opened now would go to (round robin over online agents).
    fn peek_assignee(&self, site_id: &str) -> Option<String> {
        let map = self.sites.read();
        let room = map.get(site_id)?;
        let online = room.online_agents();
        (!online.is_empty()).then(|| online[room.next % online.len()].to_string())
    }

    fn advance_round_robin(&self, site_id: &str) {
        if let Some(room) = self.sites.write().get_mut(site_id) {
            room.next = room.next.wrapping_add(1);
        }
    }

    /// Takes one message from the visitor's budget, shared by all its tabs and transports.
    pub fn allow_visitor_message(&self, visitor_id: &str) -> bool {
        self.visitor_msgs.allow(visitor_id)
    }

    /// A visitor's conversation, or `forbidden` / `not_found`.
    pub async fn visitor_conversation(
        &self,
        visitor: &VisitorCtx,
        conversation_id: &str,
    ) -> Result<Conversation, FrameError> {
        self.conversation_if(
            conversation_id,
            |c| c.visitor_id == visitor.id,
            "that conversation is not yours",
        )
        .await
    }

    /// A conversation the agent may see, or `forbidden` / `not_found`.
    pub async fn agent_conversation(
        &self,
        agent: &AgentCtx,
        conversation_id: &str,
    ) -> Result<Conversation, FrameError> {
        self.conversation_if(
            conversation_id,
            |c| agent.may_see(&c.site_id),
            "that conversation belongs to a site you are not a member of",
        )
        .await
    }

    /// The conversation `id` if `allowed` says the caller may touch it.
    async fn conversation_if(
        &self,
        id: &str,
        allowed: impl FnOnce(&Conversation) -> bool,
        forbidden: &str,
    ) -> Result<Conversation, FrameError> {
        match self.storage.conversation(id).await {
            Ok(Some(c)) if allowed(&c) => Ok(c),
            Ok(Some(_)) => Err(FrameError::new(ErrorCode::Forbidden, forbidden, None)),
            Ok(None) => Err(FrameError::new(
                ErrorCode::NotFound,
                format!("no conversation {id}"),
                None,
            )),
            Err(e) => Err(storage_error(e, None)),
        }
    }

    /// Posts a visitor's message: to the named conversation (theirs only) or to their current
    /// one, opened and assigned if there is none.
    pub async fn visitor_send(
        self: &Arc<Self>,
        visitor: &VisitorCtx,
        origin: ConnId,
        cmd: SendCommand,
    ) -> Result<AppendOutcome, FrameError> {
        let cmid = cmd.client_msg_id.into_inner();
        if cmd.private {
            return Err(FrameError::new(
                ErrorCode::Forbidden,
                "visitors cannot send private notes",
                Some(cmid),
            ));
        }
        if !self.allow_visitor_message(&visitor.id) {
            return Err(FrameError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many messages: at most {} per second (bursts of {}); retry this one later",
                    self.limits.visitor_msgs_per_sec, self.limits.visitor_burst
                ),
                Some(cmid),
            ));
        }
        let bot = self
            .assistant
            .enabled_for(&self.storage, &visitor.site_id)
            .await;
        let target = match cmd.conversation_id {
            Some(id) => {
                self.visitor_conversation(visitor, &id)
                    .await
                    .map_err(|e| FrameError {
                        client_msg_id: Some(cmid.clone()),
                        ..e
                    })?;
                AppendTarget::Conversation(id)
            }
            None => AppendTarget::VisitorCurrent {
                visitor_id: visitor.id.clone(),
                site_id: visitor.site_id.clone(),
                // With the bot on, a new conversation is the bot's until it hands over.
                assignee_if_new: match bot {
                    Some(_) => None,
                    None => self.peek_assignee(&visitor.site_id),
                },
                pending_if_new: bot.is_some(),
                welcome: bot
                    .as_ref()
                    .filter(|b| !b.config.welcome.trim().is_empty())
                    .map(|b| (bot_sender(b), b.config.welcome.clone())),
            },
        };
        let req = AppendRequest {
            target,
            sender: Sender {
                kind: SenderKind::Visitor,
                id: visitor.id.clone(),
                name: None,
            },
            body: cmd.body.into_inner(),
            private: false,
            client_msg_id: Some(cmid.clone()),
            quick_replies: Vec::new(),
            meta: None,
        };
        let outcome = self
            .writer
            .append(req, origin)
            .await
            .map_err(|e| storage_error(e, Some(cmid)))?;
        if outcome.opened && outcome.conversation.status != ConversationStatus::Pending {
            self.advance_round_robin(&visitor.site_id);
        }
        if !outcome.duplicate && outcome.conversation.status == ConversationStatus::Pending {
            let hub = self.clone();
            let (conversation, message) = (outcome.conversation.clone(), outcome.message.clone());
            // The bot answers after the ack: the visitor's message is never held up by it.
            tokio::spawn(async move {
                match bot {
                    Some(bot) => hub.bot_turn(bot, conversation, message).await,
                    // The bot was switched off while this conversation was its.
                    None => hub.hand_over(&conversation, "en", None).await,
                }
            });
        }
        Ok(outcome)
    }

    /// The lock of a conversation's bot posts and hand-over (see [`Hub::handovers`]).
    fn handover_lock(&self, conversation_id: &str) -> &tokio::sync::Mutex<()> {
        let mut h = rustc_hash::FxHasher::default();
        conversation_id.hash(&mut h);
        &self.handovers[h.finish() as usize % self.handovers.len()]
    }

    /// The bot's answer to a visitor message in a `pending` conversation.
    async fn bot_turn(self: Arc<Self>, bot: Arc<SiteBot>, c: Conversation, m: Message) {
        let turn = self.assistant.turn(&bot, &c.id, &m.body).await;
        let _posting = self.handover_lock(&c.id).lock().await;
        // A webhook or LLM turn can take seconds: meanwhile the visitor may have asked for a
        // person, or an agent taken over. The conversation is theirs now; the turn is dropped.
        let pending = match self.storage.conversation(&c.id).await {
            Ok(Some(now)) => now.status == ConversationStatus::Pending,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "the bot's turn is dropped: its conversation could not be read");
                false
            }
        };
        if !pending {
            self.assistant.forget(&c.id);
        } else {
            self.post_turn(&bot, &c, &m, turn).await;
        }
        tracing::debug!(
            conversation = %c.id,
            message_id = %m.id,
            dropped = !pending,
            "bot turn done"
        );
    }

    /// Posts a bot turn in a conversation still `pending` (under its hand-over lock).
    async fn post_turn(&self, bot: &SiteBot, c: &Conversation, m: &Message, turn: Turn) {
        if turn.low
            && let Err(e) = self
                .storage
                .unanswered_add(&c.site_id, Some(&c.id), &m.body)
                .await
        {
            tracing::warn!(error = %e, "could not record an unanswered question");
        }
        if !turn.text.is_empty() {
            let req = AppendRequest {
                // Idempotent: one answer per visitor message, whatever happens.
                client_msg_id: Some(format!("bot:{}", m.id)),
                quick_replies: turn.quick_replies,
                meta: Some(MessageMeta {
                    intent: Some(turn.intent.name.clone()),
                    ..MessageMeta::default()
                }),
                ..AppendRequest::text(
                    AppendTarget::Conversation(c.id.clone()),
                    bot_sender(bot),
                    turn.text,
                )
            };
            if let Err(e) = self.writer.append(req, 0).await {
                tracing::error!(error = %e, "the bot's answer could not be stored");
            }
        }
        if turn.handoff {
            self.hand_over_locked(c, &turn.intent.lang, None).await;
        }
    }

    /// Gives a `pending` conversation to people: `open`, assigned (to `agent`, else round robin
    /// among online agents), with a note telling the visitor what happens next. Once only: for
    /// a conversation already handed over it posts nothing and assigns nobody.
    pub async fn hand_over(&self, c: &Conversation, lang: &str, agent: Option<&str>) {
        let _posting = self.handover_lock(&c.id).lock().await;
        self.hand_over_locked(c, lang, agent).await;
    }

    /// [`Hub::hand_over`], its conversation's hand-over lock held.
    async fn hand_over_locked(&self, c: &Conversation, lang: &str, agent: Option<&str>) {
        // Whatever happens below, the bot is done with this conversation.
        self.assistant.forget(&c.id);
        let assignee = agent
            .map(str::to_owned)
            .or_else(|| self.peek_assignee(&c.site_id));
        let updated = match self.storage.hand_over(&c.id, assignee.as_deref()).await {
            Ok(Some(u)) => u,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "hand-over failed");
                return;
            }
        };
        if agent.is_none() && assignee.is_some() {
            self.advance_round_robin(&c.site_id);
        }
        self.publish_conversation(&updated);
        if agent.is_some() {
            return; // an agent took over by answering: their reply says it all
        }
        let online = self.online_agents(&c.site_id) > 0;
        let req = AppendRequest {
            meta: Some(MessageMeta {
                offline: !online,
                handoff: true,
                ..MessageMeta::default()
            }),
            ..AppendRequest::text(
                AppendTarget::Conversation(c.id.clone()),
                Sender {
                    kind: SenderKind::System,
                    id: "system".into(),
                    name: None,
                },
                crate::assistant::handoff_note(lang, online).to_owned(),
            )
        };
        if let Err(e) = self.writer.append(req, 0).await {
            tracing::error!(error = %e, "the hand-over note could not be stored");
        }
    }

    /// Posts an agent's reply or private note. The first agent to answer an unassigned
    /// conversation takes it.
    pub async fn agent_send(
        &self,
        agent: &AgentCtx,
        origin: ConnId,
        cmd: SendCommand,
    ) -> Result<AppendOutcome, FrameError> {
        let cmid = cmd.client_msg_id.into_inner();
        let Some(conversation_id) = cmd.conversation_id else {
            return Err(FrameError::new(
                ErrorCode::Invalid,
                "agents must give conversation_id",
                Some(cmid),
            ));
        };
        let conversation = self
            .agent_conversation(agent, &conversation_id)
            .await
            .map_err(|e| FrameError {
                client_msg_id: Some(cmid.clone()),
                ..e
            })?;
        let req = AppendRequest {
            target: AppendTarget::Conversation(conversation_id.clone()),
            sender: Sender {
                kind: SenderKind::Agent,
                id: agent.agent.id.clone(),
                name: Some(agent.agent.name.clone()),
            },
            body: cmd.body.into_inner(),
            private: cmd.private,
            client_msg_id: Some(cmid.clone()),
            quick_replies: Vec::new(),
            meta: None,
        };
        let outcome = self
            .writer
            .append(req, origin)
            .await
            .map_err(|e| storage_error(e, Some(cmid)))?;
        if conversation.status == ConversationStatus::Pending && !outcome.duplicate && !cmd.private
        {
            // An agent answering the bot's conversation takes it over.
            self.hand_over(&conversation, "en", Some(&agent.agent.id))
                .await;
        } else if conversation.assignee_id.is_none() && !outcome.duplicate && !cmd.private {
            match self.storage.claim(&conversation_id, &agent.agent.id).await {
                Ok(Some(c)) => self.publish_conversation(&c),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not assign the conversation"),
            }
        }
        Ok(outcome)
    }

    pub async fn set_status(
        &self,
        agent: &AgentCtx,
        conversation_id: &str,
        status: ConversationStatus,
    ) -> Result<Conversation, FrameError> {
        self.agent_conversation(agent, conversation_id).await?;
        let c = self
            .storage
            .set_status(conversation_id, status)
            .await
            .map_err(|e| storage_error(e, None))?
            .ok_or_else(|| FrameError::new(ErrorCode::NotFound, "no such conversation", None))?;
        // Resolved, reopened or snoozed by an agent: the bot's two strikes start over.
        self.assistant.forget(&c.id);
        self.publish_conversation(&c);
        Ok(c)
    }

    /// Tells the site's agents that a conversation changed.
    pub fn publish_conversation(&self, c: &Conversation) {
        let frame = control(&ServerFrame::Conversation {
            conversation: c.clone(),
        });
        self.to_site(&c.site_id, 0, &frame);
    }

    /// Relays `typing` to the other side (and to the site's other agents).
    pub fn relay_typing(&self, c: &Conversation, from: Party, state: TypingState, origin: ConnId) {
        let to_visitor = from.kind != SenderKind::Visitor;
        let frame = control(&ServerFrame::Typing {
            conversation_id: c.id.clone(),
            state,
            from,
        });
        self.to_site(&c.site_id, origin, &frame);
        if to_visitor {
            self.to_visitor(&c.visitor_id, origin, &frame);
        }
    }

    /// Stores a read mark and relays it.
    pub async fn read(
        &self,
        c: &Conversation,
        from: Party,
        seq: u64,
        origin: ConnId,
    ) -> Result<(), FrameError> {
        self.storage
            .mark_read(&c.id, from.kind, seq)
            .await
            .map_err(|e| storage_error(e, None))?;
        let to_visitor = from.kind != SenderKind::Visitor;
        let frame = control(&ServerFrame::Read {
            conversation_id: c.id.clone(),
            seq: seq.min(c.last_seq),
            from,
        });
        self.to_site(&c.site_id, origin, &frame);
        if to_visitor {
            self.to_visitor(&c.visitor_id, origin, &frame);
        }
        Ok(())
    }

    /// Called by the writer for each new message, in commit order.
    fn fanout(&self, o: &AppendOutcome, origin: ConnId) {
        let c = &o.conversation;
        if o.opened {
            let mut conversation = c.clone();
            conversation.unread = Some(0);
            self.to_site(
                &c.site_id,
                0,
                &control(&ServerFrame::Conversation { conversation }),
            );
        }
        let conversation_id: Arc<str> = Arc::from(c.id.as_str());
        for m in &o.prelude {
            // The welcome that opened the conversation: every tab gets it, the sender's too.
            let frame = Arc::new(Frame {
                conversation_id: conversation_id.clone(),
                seq: m.seq,
                text: message_frame(m),
            });
            self.to_visitor(&c.visitor_id, 0, &frame);
            self.to_site(&c.site_id, 0, &frame);
        }
        let frame = Arc::new(Frame {
            conversation_id,
            seq: o.message.seq,
            text: message_frame(&o.message),
        });
        if !o.message.private {
            self.to_visitor(&c.visitor_id, origin, &frame);
        }
        self.to_site(&c.site_id, origin, &frame);
    }

    fn to_visitor(&self, visitor_id: &str, origin: ConnId, frame: &Outbound) {
        let mut slow = Vec::new();
        if let Some(conns) = self.visitors.read().get(visitor_id) {
            for c in conns.iter().filter(|c| c.id != origin) {
                if c.tx.try_send(frame.clone()).is_err() {
                    slow.push(c.id);
                }
            }
        }
        if !slow.is_empty() {
            // Dropping its queue's sender ends the connection, which then tells the client to
            // reconnect and resume: nothing committed is lost, memory stays bounded.
            let mut map = self.visitors.write();
            if let Some(conns) = map.get_mut(visitor_id) {
                conns.retain(|c| !slow.contains(&c.id));
            }
        }
    }

    fn to_site(&self, site_id: &str, origin: ConnId, frame: &Outbound) {
        let mut slow = Vec::new();
        if let Some(room) = self.sites.read().get(site_id) {
            for c in room.agents.iter().filter(|c| c.id != origin) {
                if c.tx.try_send(frame.clone()).is_err() {
                    slow.push(c.id);
                }
            }
        }
        if !slow.is_empty() {
            tracing::warn!(connections = slow.len(), "closing slow agent connections");
            let mut map = self.sites.write();
            for room in map.values_mut() {
                room.agents.retain(|c| !slow.contains(&c.id));
            }
        }
    }
}
