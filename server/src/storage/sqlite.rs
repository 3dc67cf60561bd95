//! SQLite: WAL, one write connection (all writes are serialized there, so there is no
//! `SQLITE_BUSY` between our own writers) and a small pool of read connections.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kefu::model::{Conversation, ConversationStatus, Message, Sender, SenderKind, VisitorInfo};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::*;

pub struct SqliteStorage {
    write: SqlitePool,
    read: SqlitePool,
    /// Set by the checkpoint task when the write-ahead log should start over (see
    /// `checkpoints`); the writer does it once it has answered its next successful batch.
    restart_log: Arc<AtomicBool>,
    /// The key of the idempotency hash (see [`MessageKey`]).
    message_key: MessageKey,
    /// Stops the checkpoint task (and closes its connection) with the storage.
    _checkpoints: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const MSG_COLS: &str = "id, conversation_id, seq, sender_kind, sender_id, sender_name, body, private, client_msg_id, created_at, quick_replies, meta";
const MSG_COLS_M: &str = "m.id, m.conversation_id, m.seq, m.sender_kind, m.sender_id, m.sender_name, m.body, m.private, m.client_msg_id, m.created_at, m.quick_replies, m.meta";
const CONV_COLS: &str =
    "id, site_id, visitor_id, status, assignee_id, last_seq, created_at, updated_at";
const VISITOR_COLS: &str = "id, site_id, external_id, name, email, phone, note, page_url, referrer, user_agent, ip, locale, timezone, utc_offset_minutes, last_seen_at";
const AGENT_COLS: &str = "id, email, name, password_hash, role";
const SITE_COLS: &str = "id, site_key, secret, name, allowed_origins, bot";

impl SqliteStorage {
    pub async fn open(settings: &crate::config::StorageSettings) -> anyhow::Result<Self> {
        // Before SQLite's first connection in the process (the crate says why); the binary
        // installed it first thing in `main`, and this returns that result.
        if let Err(e) = sqlite_pcache::install() {
            tracing::warn!("{e}; SQLite keeps its default page cache");
        }
        sqlite_pcache::set_lean(settings.sqlite_lean_truncate);
        let url = settings.url.as_str();
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("storage.url {url}: {e}"))?;
        let path = options.get_filename().to_owned();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create the database folder {}: {e}", dir.display())
            })?;
        }
        let synchronous = match settings.sqlite_synchronous.as_str() {
            "normal" => SqliteSynchronous::Normal,
            "full" => SqliteSynchronous::Full,
            other => anyhow::bail!(
                "storage.sqlite_synchronous must be \"full\" or \"normal\", not {other:?}"
            ),
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .statement_cache_capacity(64);
        // The writer never checkpoints during a commit: copying the write-ahead log into the
        // database (and fsyncing it) would stall the commit that crossed the threshold, and
        // every ack queued behind it. A connection of its own does it beside the writer
        // (`checkpoints`); the writer only restarts the log between batches.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .pragma(
                        "cache_size",
                        format!("-{}", u64::from(settings.sqlite_cache_mib.max(1)) * 1024),
                    )
                    .pragma("journal_size_limit", (64 * 1024 * 1024).to_string()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
        let message_key = MessageKey::load(&write)
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the message keys: {e}"))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let restart_log = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(settings.checkpoint_interval_ms.max(10));
        let task = tokio::spawn(checkpoints(checkpointer, every, restart_log.clone()));
        Ok(Self {
            write,
            read,
            restart_log,
            message_key,
            _checkpoints: AbortOnDrop(task.abort_handle()),
        })
    }

    /// A transaction that holds the write lock from its start (`BEGIN IMMEDIATE`): one that
    /// read first and wrote later could find its snapshot gone after the checkpointer restarted
    /// the log, and fail with `SQLITE_BUSY` instead of waiting its turn.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    /// Deletes row `id` of `table` if it belongs to `site_id`; whether there was one.
    async fn delete_of_site(&self, table: &'static str, site_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = ? AND site_id = ?"))
            .bind(id)
            .bind(site_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The pool for other stores that keep their tables in the same database (sessions).
    pub fn write_pool(&self) -> SqlitePool {
        self.write.clone()
    }
}

/// Copies committed pages from the write-ahead log into the database `every` (200 ms by default), on
/// a connection of its own. `PASSIVE` never blocks the writer or readers; a page written many
/// times between two passes is copied once.
///
/// Under steady writes a passive pass never finds the whole log copied with no commit under way,
/// so the log never starts over by itself and grows without bound (1.6 GB in 30 s at 8,000
/// messages per second). Once it holds more than [`WAL_RESTART_FRAMES`] pages, this task asks the
/// writer to restart it between two batches (`restart_log`): on the writer's own connection a
/// `RESTART` checkpoint waits for no other writer, and what it copies is what came in since the
/// last passive pass. (Run here instead, it and the writer wait for each other through
/// SQLite's busy handler, whose sleeps held commits for 150-200 ms.)
async fn checkpoints(pool: SqlitePool, every: Duration, restart_log: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // (busy, pages in the log, pages copied)
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, frames, _)) if frames >= WAL_RESTART_FRAMES => {
                restart_log.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint of the write-ahead log failed; retrying");
            }
        }
    }
}

/// Pages in the write-ahead log (16 MiB of 4 KiB pages) past which it is restarted: each restart
/// holds commits for a few to 30 ms.
const WAL_RESTART_FRAMES: i64 = 4_096;

fn message_from_row(row: &SqliteRow) -> Message {
    let kind: String = row.get("sender_kind");
    Message {
        id: row.get("id"),
        conversation_id: row.get("conversation_id"),
        seq: row.get::<i64, _>("seq") as u64,
        sender: Sender {
            kind: SenderKind::parse(&kind).unwrap_or(SenderKind::System),
            id: row.get("sender_id"),
            name: row.get("sender_name"),
        },
        body: row.get("body"),
        private: row.get::<i64, _>("private") != 0,
        client_msg_id: row.get("client_msg_id"),
        created_at: rfc3339(row.get("created_at")),
        quick_replies: row
            .get::<Option<String>, _>("quick_replies")
            .and_then(|q| serde_json::from_str(&q).ok())
            .unwrap_or_default(),
        meta: row
            .get::<Option<String>, _>("meta")
            .and_then(|m| serde_json::from_str(&m).ok()),
    }
}

fn conversation_from_row(row: &SqliteRow) -> Conversation {
    conversation_from_cols((
        row.get("id"),
        row.get("site_id"),
        row.get("visitor_id"),
        row.get("status"),
        row.get("assignee_id"),
        row.get("last_seq"),
        row.get("created_at"),
        row.get("updated_at"),
    ))
}

/// A conversation's [`CONV_COLS`], in order, as a row or as `json_array(CONV_COLS)` gives them.
type ConvCols = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);

fn conversation_from_cols(
    (id, site_id, visitor_id, status, assignee_id, last_seq, created_at, updated_at): ConvCols,
) -> Conversation {
    Conversation {
        id,
        site_id,
        visitor_id,
        status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Open),
        assignee_id,
        last_seq: last_seq as u64,
        created_at: rfc3339(created_at),
        updated_at: rfc3339(updated_at),
        visitor: None,
        unread: None,
        last_message: None,
    }
}

/// `json_group_array(json_array(CONV_COLS))`: many conversations come back as one row and one
/// string instead of a row each (each row costs more to hand over from SQLite's thread than
/// parsing it as JSON does).
fn conversations_from_json(text: &str) -> Result<Vec<Conversation>, sqlx::Error> {
    let rows: Vec<ConvCols> =
        serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(rows.into_iter().map(conversation_from_cols).collect())
}

fn visitor_from_row(row: &SqliteRow) -> VisitorRecord {
    let ua: Option<String> = row.get("user_agent");
    let (browser, os) = ua
        .as_deref()
        .map(crate::useragent::describe)
        .unwrap_or((None, None));
    VisitorRecord {
        site_id: row.get("site_id"),
        info: VisitorInfo {
            id: row.get("id"),
            name: row.get("name"),
            email: row.get("email"),
            phone: row.get("phone"),
            note: row.get("note"),
            external_id: row.get("external_id"),
            page_url: row.get("page_url"),
            referrer: row.get("referrer"),
            browser,
            os,
            ip: row.get("ip"),
            locale: row.get("locale"),
            timezone: row.get("timezone"),
            utc_offset_minutes: row
                .get::<Option<i64>, _>("utc_offset_minutes")
                .map(|m| m as i32),
            last_seen_at: Some(rfc3339(row.get("last_seen_at"))),
        },
    }
}

fn agent_from_row(row: &SqliteRow) -> Agent {
    let role: String = row.get("role");
    Agent {
        id: row.get("id"),
        email: row.get("email"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        role: Role::parse(&role).unwrap_or(Role::Agent),
    }
}

fn site_from_row(row: &SqliteRow) -> Site {
    let origins: String = row.get("allowed_origins");
    Site {
        id: row.get("id"),
        site_key: row.get("site_key"),
        secret: row.get("secret"),
        name: row.get("name"),
        allowed_origins: serde_json::from_str(&origins).unwrap_or_default(),
        bot: row.get("bot"),
    }
}

/// The named secret, storing `fresh` first if there is none (see [`Storage::secret`]).
async fn stored_secret(
    pool: &SqlitePool,
    name: &str,
    fresh: Vec<u8>,
) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(&fresh)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// A sender's `client_msg_id` as the idempotency index holds it: SipHash-1-3 of the sender id
/// and the id, under a random key kept in `secrets` (so that no client can choose ids that
/// collide and slow the lookups down). The hash finds candidates; the columns decide.
#[derive(Clone, Copy)]
struct MessageKey([u8; 16]);

impl MessageKey {
    /// The database's key (made on first start), and the hash of every message stored before
    /// the hash existed (migration 20261128000003), after which the string index goes.
    async fn load(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let mut fresh = vec![0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut fresh);
        let stored = stored_secret(pool, "message_key", fresh).await?;
        let key = Self(stored.try_into().map_err(|v: Vec<u8>| {
            sqlx::Error::Protocol(format!("secret message_key has {} bytes, not 16", v.len()))
        })?);
        let old_index: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'messages_idempotency'",
        )
        .fetch_optional(pool)
        .await?;
        if old_index.is_some() {
            key.backfill(pool).await?;
        }
        Ok(key)
    }

    /// Hashes the keyed messages that have no hash yet, in rowid order, and drops the old
    /// index, in one transaction: interrupted, it starts again on the next start.
    async fn backfill(self, pool: &SqlitePool) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut after = 0i64;
        loop {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT rowid, sender_id, client_msg_id FROM messages \
                 WHERE rowid > ? AND client_msg_id IS NOT NULL ORDER BY rowid LIMIT 10000",
            )
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let hashes: Vec<(i64, i64)> = rows
                .iter()
                .map(|(rowid, sender, cmid)| (*rowid, self.hash(sender, cmid)))
                .collect();
            sqlx::query(
                "UPDATE messages SET key_hash = j.value ->> 1 \
                 FROM json_each(?) AS j WHERE messages.rowid = j.value ->> 0",
            )
            .bind(json(&hashes))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DROP INDEX messages_idempotency")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// The same on every platform (the length as 8 little-endian bytes), so a database can move
    /// machines.
    fn hash(self, sender_id: &str, client_msg_id: &str) -> i64 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_key(&self.0);
        h.write(&(sender_id.len() as u64).to_le_bytes());
        h.write(sender_id.as_bytes());
        h.write(client_msg_id.as_bytes());
        h.finish() as i64
    }
}

/// The writer's connection while `append_all` may hold a transaction open (it begins and commits
/// with plain SQL, which the pool does not track): if the append is dropped half-way, the
/// connection is closed rather than handed back mid-transaction. Set to `None` once settled.
struct OpenTransaction(Option<sqlx::pool::PoolConnection<Sqlite>>);

impl OpenTransaction {
    fn get(&mut self) -> &mut SqliteConnection {
        self.0
            .as_mut()
            .expect("the connection is held until settled")
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// A value as JSON text: batch rows for `json_each`, and the JSON columns.
fn json<T: serde::Serialize>(rows: &T) -> String {
    serde_json::to_string(rows).expect("batch rows always serialize")
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl SqliteStorage {
    /// Creates (empty id) or replaces (known id, `NotFound` if the site has none) a QA pair on
    /// `conn`: the writer's connection, or a transaction on it.
    async fn qa_write(
        conn: &mut SqliteConnection,
        site_id: &str,
        mut qa: SiteQa,
        now: i64,
    ) -> Result<SiteQa> {
        // One parameter order for both statements: ?1 id, ?2 site, then the pair's fields.
        let sql = if qa.id.is_empty() {
            qa.id = new_id();
            "INSERT INTO qa_pairs (id, site_id, lang, questions, answer, quick_replies, handoff, updated_at, decline, entities) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        } else {
            "UPDATE qa_pairs SET lang = ?3, questions = ?4, answer = ?5, quick_replies = ?6, handoff = ?7, updated_at = ?8, decline = ?9, entities = ?10 WHERE id = ?1 AND site_id = ?2"
        };
        let done = sqlx::query(sql)
            .bind(&qa.id)
            .bind(site_id)
            .bind(&qa.lang)
            .bind(json(&qa.questions))
            .bind(&qa.answer)
            .bind(json(&qa.quick_replies))
            .bind(qa.handoff as i64)
            .bind(now)
            .bind(qa.decline as i64)
            .bind(json(&qa.entities))
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            // Only an update can change nothing: the site has no pair of that id.
            return Err(StorageError::NotFound);
        }
        Ok(qa)
    }

    async fn conversation_in(
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<Option<Conversation>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {CONV_COLS} FROM conversations WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.as_ref().map(conversation_from_row))
    }

    /// Runs `sql` (parameters: `value`, now, `id`) on the writing connection and returns the
    /// conversation as it is after it, or `None` when no row matched.
    async fn update_conversation(
        &self,
        sql: &str,
        value: Option<&str>,
        id: &str,
    ) -> Result<Option<Conversation>> {
        let mut conn = self.write.acquire().await?;
        let done = sqlx::query(sql)
            .bind(value)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(Self::conversation_in(&mut conn, id).await?)
    }

    /// Appends a batch in one transaction, which it begins and commits, with two round trips to
    /// SQLite's thread whatever the batch size (see below). On the outer error the caller rolls
    /// back: nothing of the batch is stored.
    async fn append_all(
        conn: &mut SqliteConnection,
        key: MessageKey,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome>>, sqlx::Error> {
        let now = now_ms();
        let now_text = rfc3339(now);
        let mut out: Vec<Option<Result<AppendOutcome>>> = batch.iter().map(|_| None).collect();

        // The batch travels as one JSON parameter (`json_each(?1, '$.…')`), and its statements
        // as two fixed SQL texts: one that begins the transaction and reads, one that writes
        // and commits. SQLite prepares each once per connection whatever the batch size, and a
        // batch costs two round trips to SQLite's thread instead of one per statement (each a
        // pair of thread switches, which cost more than the statements themselves). The
        // messages' rows are first turned into SQLite's binary JSON, once each (`jsonb`, in a
        // materialized table): read straight from `json_each`, each of a row's twelve `->>`
        // would have it render the row as text again and look that text up or parse it
        // (`jsonb_each`, which does this by itself, needs SQLite 3.47; this one is 3.46).

        // 1. Begin; read the retries (messages already stored under the same sender and
        //    client_msg_id) and the conversations the batch writes to.
        let hashes: Vec<Option<i64>> = batch
            .iter()
            .map(|r| Some(key.hash(&r.sender.id, r.client_msg_id.as_deref()?)))
            .collect();
        let keys: Vec<(&str, &str, i64)> = batch
            .iter()
            .zip(&hashes)
            .filter_map(|(r, h)| Some((r.sender.id.as_str(), r.client_msg_id.as_deref()?, (*h)?)))
            .collect();
        let mut by_id: Vec<&str> = Vec::new();
        let mut by_visitor: Vec<&str> = Vec::new();
        for r in batch {
            match &r.target {
                AppendTarget::Conversation(id) => by_id.push(id.as_str()),
                AppendTarget::VisitorCurrent { visitor_id, .. } => {
                    by_visitor.push(visitor_id.as_str())
                }
            };
        }
        #[derive(serde::Serialize)]
        struct Reads<'a> {
            keys: &'a [(&'a str, &'a str, i64)],
            ids: &'a [&'a str],
            visitors: &'a [&'a str],
        }
        let reads = json(&Reads {
            keys: &keys,
            ids: &by_id,
            visitors: &by_visitor,
        });
        let rows = sqlx::query(&format!(
            "BEGIN IMMEDIATE; \
             SELECT 'stored' AS src, {MSG_COLS_M} FROM json_each(?1, '$.keys') AS j JOIN messages m \
             ON m.key_hash = j.value ->> 2 AND m.sender_id = j.value ->> 0 AND m.client_msg_id = j.value ->> 1; \
             SELECT 'conversations' AS src, \
             (SELECT json_group_array(json_array({CONV_COLS})) FROM conversations \
              WHERE id IN (SELECT value FROM json_each(?1, '$.ids'))) AS by_id, \
             (SELECT json_group_array(json_array({CONV_COLS}) ORDER BY created_at) FROM conversations \
              WHERE status <> 'resolved' \
              AND visitor_id IN (SELECT value FROM json_each(?1, '$.visitors'))) AS by_visitor"
        ))
        .bind(reads)
        .fetch_all(&mut *conn)
        .await?;
        let mut stored: Vec<Message> = Vec::new();
        let mut convs: HashMap<String, Conversation> = HashMap::new();
        let mut current: HashMap<String, String> = HashMap::new();
        for row in &rows {
            match row.get::<&str, _>("src") {
                "stored" => {
                    stored.push(message_from_row(row));
                }
                _ => {
                    for c in conversations_from_json(row.get("by_id"))? {
                        convs.insert(c.id.clone(), c);
                    }
                    // Ordered by creation: the newest open one wins.
                    for c in conversations_from_json(row.get("by_visitor"))? {
                        current.insert(c.visitor_id.clone(), c.id.clone());
                        convs.insert(c.id.clone(), c);
                    }
                }
            }
        }

        // Retries, by (sender id, client_msg_id) as the index has them (ids are unique across
        // kinds): of a stored message, or of an earlier request of this batch.
        enum Retry<'a> {
            Stored(&'a Message),
            InBatch(usize),
        }
        let mut retries: HashMap<(&str, &str), Retry> = stored
            .iter()
            .map(|m| {
                let key = (
                    m.sender.id.as_str(),
                    m.client_msg_id.as_deref().unwrap_or(""),
                );
                (key, Retry::Stored(m))
            })
            .collect();

        // 2. Sequence numbers, in batch order; conversations opened where needed.
        let mut opened: Vec<String> = Vec::new();
        let mut rows: Vec<(usize, Message)> = Vec::new();
        let mut prelude: HashMap<usize, Vec<Message>> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            if let Some(cmid) = &r.client_msg_id {
                let first = match retries.get(&(r.sender.id.as_str(), cmid.as_str())) {
                    Some(Retry::Stored(m)) => Some(*m),
                    Some(Retry::InBatch(k)) => Some(&rows[*k].1),
                    None => None,
                };
                if let Some(m) = first {
                    let conversation = match convs.get(&m.conversation_id) {
                        Some(c) => Some(c.clone()),
                        None => Self::conversation_in(conn, &m.conversation_id).await?,
                    };
                    out[i] = Some(match conversation {
                        Some(conversation) => Ok(AppendOutcome {
                            prelude: Vec::new(),
                            message: m.clone(),
                            conversation,
                            duplicate: true,
                            opened: false,
                        }),
                        None => Err(StorageError::NotFound),
                    });
                    continue;
                }
            }
            let conv_id = match &r.target {
                AppendTarget::Conversation(id) => {
                    if !convs.contains_key(id) {
                        out[i] = Some(Err(StorageError::NotFound));
                        continue;
                    }
                    id.clone()
                }
                AppendTarget::VisitorCurrent {
                    visitor_id,
                    site_id,
                    assignee_if_new,
                    pending_if_new,
                    welcome,
                } => match current.get(visitor_id) {
                    Some(id) => id.clone(),
                    None => {
                        let mut c = Conversation {
                            id: new_id(),
                            site_id: site_id.clone(),
                            visitor_id: visitor_id.clone(),
                            status: if *pending_if_new {
                                ConversationStatus::Pending
                            } else {
                                ConversationStatus::Open
                            },
                            assignee_id: assignee_if_new.clone(),
                            last_seq: 0,
                            created_at: now_text.clone(),
                            updated_at: now_text.clone(),
                            visitor: None,
                            unread: None,
                            last_message: None,
                        };
                        if let Some((sender, body)) = welcome {
                            c.last_seq += 1;
                            let m = Message {
                                id: new_id(),
                                conversation_id: c.id.clone(),
                                seq: c.last_seq,
                                sender: sender.clone(),
                                body: body.clone(),
                                private: false,
                                client_msg_id: None,
                                created_at: now_text.clone(),
                                quick_replies: Vec::new(),
                                meta: None,
                            };
                            prelude.insert(i, vec![m.clone()]);
                            rows.push((usize::MAX, m));
                        }
                        current.insert(visitor_id.clone(), c.id.clone());
                        opened.push(c.id.clone());
                        let id = c.id.clone();
                        convs.insert(id.clone(), c);
                        id
                    }
                },
            };
            let c = convs.get_mut(&conv_id).expect("resolved above");
            c.last_seq += 1;
            c.updated_at = now_text.clone();
            let message = Message {
                id: new_id(),
                conversation_id: conv_id,
                seq: c.last_seq,
                sender: r.sender.clone(),
                body: r.body.clone(),
                private: r.private,
                client_msg_id: r.client_msg_id.clone(),
                created_at: now_text.clone(),
                quick_replies: r.quick_replies.clone(),
                meta: r.meta.clone(),
            };
            // A retry inside this very batch gets the message its first copy created.
            if let Some(cmid) = &r.client_msg_id {
                retries.insert((&r.sender.id, cmid), Retry::InBatch(rows.len()));
            }
            rows.push((i, message));
        }

        // 3. New conversations, new messages, new last_seq; commit. The messages (the bulk of
        //    the batch, with their bodies) are a parameter of their own, so that only the
        //    statement that inserts them parses them.
        let new_convs: Vec<_> = opened
            .iter()
            .map(|id| {
                let c = &convs[id];
                (
                    &c.id,
                    &c.site_id,
                    &c.visitor_id,
                    &c.assignee_id,
                    c.status.as_str(),
                )
            })
            .collect();
        let new_msgs: Vec<_> = rows
            .iter()
            .map(|(i, m)| {
                (
                    &m.id,
                    &m.conversation_id,
                    m.seq,
                    m.sender.kind.as_str(),
                    &m.sender.id,
                    &m.sender.name,
                    &m.body,
                    m.private as i64,
                    &m.client_msg_id,
                    (!m.quick_replies.is_empty()).then(|| json(&m.quick_replies)),
                    m.meta.as_ref().map(json),
                    // A welcome (`usize::MAX`) has no client_msg_id.
                    hashes.get(*i).copied().flatten(),
                )
            })
            .collect();
        // Each conversation the new messages went to, with its new last seq and how many of
        // them the visitor sent (its unread count, see the migration `unread_counts`).
        let mut touched: HashMap<&str, u64> = HashMap::new();
        for (_, m) in &rows {
            *touched.entry(m.conversation_id.as_str()).or_default() +=
                u64::from(m.sender.kind == SenderKind::Visitor);
        }
        let last_seqs: Vec<_> = touched
            .iter()
            .map(|(id, visitor)| (id, convs[*id].last_seq, visitor))
            .collect();
        #[derive(serde::Serialize)]
        struct Writes<C, L> {
            now: i64,
            conversations: C,
            last_seq: L,
        }
        let writes = json(&Writes {
            now,
            conversations: new_convs,
            last_seq: last_seqs,
        });
        sqlx::query(
            "INSERT INTO conversations (id, site_id, visitor_id, status, assignee_id, last_seq, created_at, updated_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 4, value ->> 3, 0, ?1 ->> '$.now', ?1 ->> '$.now' \
             FROM json_each(?1, '$.conversations'); \
             WITH r AS MATERIALIZED (SELECT jsonb(value) AS v FROM json_each(?2)) \
             INSERT INTO messages (id, conversation_id, seq, sender_kind, sender_id, sender_name, body, private, client_msg_id, created_at, quick_replies, meta, key_hash) \
             SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, v ->> 5, v ->> 6, v ->> 7, v ->> 8, ?1 ->> '$.now', v ->> 9, v ->> 10, v ->> 11 \
             FROM r; \
             UPDATE conversations SET last_seq = j.value ->> 1, updated_at = ?1 ->> '$.now', \
             visitor_msgs = visitor_msgs + (j.value ->> 2) \
             FROM json_each(?1, '$.last_seq') AS j WHERE conversations.id = j.value ->> 0; \
             COMMIT",
        )
        .bind(writes)
        .bind(json(&new_msgs))
        .execute(&mut *conn)
        .await?;

        let opened: HashSet<String> = opened.into_iter().collect();
        let mut first_of: HashSet<String> = HashSet::new();
        for (i, message) in rows {
            if i == usize::MAX {
                continue; // a welcome: it travels in its append's prelude
            }
            let mut conversation = convs[&message.conversation_id].clone();
            // Each outcome shows its conversation as of that message.
            conversation.last_seq = message.seq;
            let is_new =
                opened.contains(&conversation.id) && first_of.insert(conversation.id.clone());
            out[i] = Some(Ok(AppendOutcome {
                prelude: prelude.remove(&i).unwrap_or_default(),
                message,
                conversation,
                duplicate: false,
                opened: is_new,
            }));
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every request has an outcome"))
            .collect())
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>> {
        Ok(stored_secret(&self.write, name, fresh).await?)
    }

    async fn create_site(&self, name: &str, allowed_origins: &[String]) -> Result<Site> {
        let site = Site {
            id: new_id(),
            site_key: format!("site_{}", random_token(12)),
            secret: random_token(32),
            name: name.to_owned(),
            allowed_origins: allowed_origins.to_vec(),
            bot: "{}".into(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO sites (id, site_key, secret, name, allowed_origins, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&site.id)
            .bind(&site.site_key)
            .bind(&site.secret)
            .bind(&site.name)
            .bind(serde_json::to_string(&site.allowed_origins).unwrap_or_else(|_| "[]".into()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(site)
    }

    async fn add_agent_to_site(&self, site_id: &str, agent_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO site_agents (site_id, agent_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(site_id)
        .bind(agent_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn site(&self, id: &str) -> Result<Option<Site>> {
        let row = sqlx::query(&format!("SELECT {SITE_COLS} FROM sites WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(site_from_row))
    }

    async fn site_by_key(&self, site_key: &str) -> Result<Option<Site>> {
        let row = sqlx::query(&format!("SELECT {SITE_COLS} FROM sites WHERE site_key = ?"))
            .bind(site_key)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(site_from_row))
    }

    async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query(&format!(
            "SELECT {SITE_COLS} FROM sites ORDER BY created_at"
        ))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(site_from_row).collect())
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<Agent> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query("INSERT INTO agents (id, email, name, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&agent.email)
            .bind(&agent.name)
            .bind(&agent.password_hash)
            .bind(agent.role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StorageError::Conflict(format!(
                    "an agent with email {} already exists",
                    agent.email
                )));
            }
            other => {
                other?;
            }
        }
        sqlx::query("INSERT INTO site_agents (site_id, agent_id) SELECT id, ? FROM sites")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Agent {
            id,
            email: agent.email,
            name: agent.name,
            password_hash: agent.password_hash,
            role: agent.role,
        })
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>> {
        let row = sqlx::query(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(agent_from_row))
    }

    async fn agent_by_email(&self, email: &str) -> Result<Option<Agent>> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLS} FROM agents WHERE email = ? COLLATE NOCASE"
        ))
        .bind(email)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(agent_from_row))
    }

    async fn agent_count(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM agents")
            .fetch_one(&self.read)
            .await?;
        Ok(row.get::<i64, _>("n") as u64)
    }

    async fn agent_site_ids(&self, agent: &Agent) -> Result<Vec<String>> {
        let rows = if agent.role == Role::Admin {
            sqlx::query("SELECT id AS site_id FROM sites")
                .fetch_all(&self.read)
                .await?
        } else {
            sqlx::query("SELECT site_id FROM site_agents WHERE agent_id = ?")
                .bind(&agent.id)
                .fetch_all(&self.read)
                .await?
        };
        Ok(rows.iter().map(|r| r.get("site_id")).collect())
    }

    async fn create_api_token(&self, agent_id: &str, token_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (token_hash, agent_id, created_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(agent_id)
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn agent_by_token_hash(&self, token_hash: &str) -> Result<Option<Agent>> {
        let row = sqlx::query(
            "SELECT a.id, a.email, a.name, a.password_hash, a.role FROM api_tokens t JOIN agents a ON a.id = t.agent_id WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(agent_from_row))
    }

    async fn upsert_visitor(&self, v: VisitorUpsert) -> Result<VisitorRecord> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // A verified user of the host site is the same visitor on every device.
        let mut id = v.id.clone();
        if let Some(ext) = &v.external_id {
            let row = sqlx::query("SELECT id FROM visitors WHERE site_id = ? AND external_id = ?")
                .bind(&v.site_id)
                .bind(ext)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                id = Some(row.get("id"));
            }
        }
        let existing = match &id {
            Some(id) => sqlx::query("SELECT id FROM visitors WHERE id = ? AND site_id = ?")
                .bind(id)
                .bind(&v.site_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get::<String, _>("id")),
            None => None,
        };
        let id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE visitors SET external_id = COALESCE(?, external_id), name = COALESCE(?, name), email = COALESCE(?, email), page_url = COALESCE(?, page_url), referrer = COALESCE(?, referrer), user_agent = COALESCE(?, user_agent), ip = COALESCE(?, ip), locale = COALESCE(?, locale), timezone = COALESCE(?, timezone), utc_offset_minutes = COALESCE(?, utc_offset_minutes), last_seen_at = ? WHERE id = ?",
                )
                .bind(&v.external_id)
                .bind(&v.name)
                .bind(&v.email)
                .bind(&v.page_url)
                .bind(&v.referrer)
                .bind(&v.user_agent)
                .bind(&v.ip)
                .bind(&v.locale)
                .bind(&v.timezone)
                .bind(v.utc_offset_minutes)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO visitors (id, site_id, external_id, name, email, page_url, referrer, user_agent, ip, locale, timezone, utc_offset_minutes, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(&v.site_id)
                .bind(&v.external_id)
                .bind(&v.name)
                .bind(&v.email)
                .bind(&v.page_url)
                .bind(&v.referrer)
                .bind(&v.user_agent)
                .bind(&v.ip)
                .bind(&v.locale)
                .bind(&v.timezone)
                .bind(v.utc_offset_minutes)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let row = sqlx::query(&format!("SELECT {VISITOR_COLS} FROM visitors WHERE id = ?"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(visitor_from_row(&row))
    }

    async fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>> {
        let row = sqlx::query(&format!("SELECT {VISITOR_COLS} FROM visitors WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(visitor_from_row))
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let mut conn = self.read.acquire().await?;
        Ok(Self::conversation_in(&mut conn, id).await?)
    }

    async fn current_conversation(&self, visitor_id: &str) -> Result<Option<Conversation>> {
        let row = sqlx::query(&format!(
            "SELECT {CONV_COLS} FROM conversations WHERE visitor_id = ? AND status <> 'resolved' ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(visitor_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(conversation_from_row))
    }

    async fn list_conversations(&self, filter: ConversationFilter) -> Result<Vec<Conversation>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT c.id, c.site_id, c.visitor_id, c.status, c.assignee_id, c.last_seq, c.created_at, c.updated_at, \
             c.visitor_msgs - c.agent_read_visitor_msgs AS unread FROM conversations c WHERE 1 = 1",
        );
        if let Some(sites) = &filter.site_ids {
            if sites.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND c.site_id IN (");
            let mut sep = q.separated(", ");
            for s in sites {
                sep.push_bind(s);
            }
            q.push(")");
        }
        if !filter.statuses.is_empty() {
            q.push(" AND c.status IN (");
            let mut sep = q.separated(", ");
            for s in &filter.statuses {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ");
        q.push_bind(filter.limit.clamp(1, 1000) as i64);
        let rows = q.build().fetch_all(&self.read).await?;
        let mut out: Vec<Conversation> = rows
            .iter()
            .map(|row| {
                let mut c = conversation_from_row(row);
                c.unread = Some(row.get::<i64, _>("unread").max(0) as u64);
                c
            })
            .collect();
        // The visitors and last messages of the whole page: two queries, not two per row.
        let visitor_ids: Vec<&str> = out.iter().map(|c| c.visitor_id.as_str()).collect();
        let last: Vec<(&str, u64)> = out
            .iter()
            .filter(|c| c.last_seq > 0)
            .map(|c| (c.id.as_str(), c.last_seq))
            .collect();
        let visitors: HashMap<String, VisitorInfo> = sqlx::query(&format!(
            "SELECT {VISITOR_COLS} FROM visitors WHERE id IN (SELECT value FROM json_each(?))"
        ))
        .bind(json(&visitor_ids))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            let v = visitor_from_row(r).info;
            (v.id.clone(), v)
        })
        .collect();
        let mut messages: HashMap<String, Message> = sqlx::query(&format!(
            "SELECT {MSG_COLS_M} FROM json_each(?) AS j JOIN messages m \
             ON m.conversation_id = j.value ->> 0 AND m.seq = j.value ->> 1"
        ))
        .bind(json(&last))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            let m = message_from_row(r);
            (m.conversation_id.clone(), m)
        })
        .collect();
        for c in &mut out {
            c.visitor = visitors.get(&c.visitor_id).cloned();
            c.last_message = messages.remove(&c.id).map(Box::new);
        }
        Ok(out)
    }

    async fn set_status(
        &self,
        id: &str,
        status: ConversationStatus,
    ) -> Result<Option<Conversation>> {
        self.update_conversation(
            "UPDATE conversations SET status = ?, updated_at = ? WHERE id = ?",
            Some(status.as_str()),
            id,
        )
        .await
    }

    async fn claim(&self, id: &str, agent_id: &str) -> Result<Option<Conversation>> {
        self.update_conversation(
            "UPDATE conversations SET assignee_id = ?, updated_at = ? WHERE id = ? AND assignee_id IS NULL",
            Some(agent_id),
            id,
        )
        .await
    }

    async fn hand_over(&self, id: &str, assignee: Option<&str>) -> Result<Option<Conversation>> {
        self.update_conversation(
            // Only the bot's (`pending`) conversation: a second hand-over changes nothing.
            "UPDATE conversations SET status = 'open', assignee_id = COALESCE(assignee_id, ?), updated_at = ? WHERE id = ? AND status = 'pending'",
            assignee,
            id,
        )
        .await
    }

    async fn set_site_bot(&self, site_id: &str, bot_json: &str) -> Result<()> {
        let done = sqlx::query("UPDATE sites SET bot = ? WHERE id = ?")
            .bind(bot_json)
            .bind(site_id)
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn qa_list(&self, site_id: &str) -> Result<Vec<SiteQa>> {
        let rows = sqlx::query(
            "SELECT id, lang, questions, answer, quick_replies, handoff, decline, entities FROM qa_pairs WHERE site_id = ? ORDER BY updated_at DESC",
        )
        .bind(site_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SiteQa {
                id: r.get("id"),
                lang: r.get("lang"),
                questions: serde_json::from_str(&r.get::<String, _>("questions"))
                    .unwrap_or_default(),
                answer: r.get("answer"),
                quick_replies: serde_json::from_str(&r.get::<String, _>("quick_replies"))
                    .unwrap_or_default(),
                handoff: r.get::<i64, _>("handoff") != 0,
                decline: r.get::<i64, _>("decline") != 0,
                entities: serde_json::from_str(&r.get::<String, _>("entities")).unwrap_or_default(),
            })
            .collect())
    }

    async fn qa_save(&self, site_id: &str, qa: SiteQa) -> Result<SiteQa> {
        let mut conn = self.write.acquire().await?;
        Self::qa_write(&mut conn, site_id, qa, now_ms()).await
    }

    async fn qa_save_all(&self, site_id: &str, pairs: Vec<SiteQa>) -> Result<Vec<SiteQa>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut saved = Vec::with_capacity(pairs.len());
        for qa in pairs {
            // On an error the transaction is dropped, which rolls it back.
            saved.push(Self::qa_write(&mut tx, site_id, qa, now).await?);
        }
        tx.commit().await?;
        Ok(saved)
    }

    async fn qa_delete(&self, site_id: &str, id: &str) -> Result<bool> {
        self.delete_of_site("qa_pairs", site_id, id).await
    }

    async fn unanswered_add(
        &self,
        site_id: &str,
        conversation_id: Option<&str>,
        question: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO bot_unanswered (id, site_id, conversation_id, question, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(new_id())
            .bind(site_id)
            .bind(conversation_id)
            .bind(question)
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn unanswered_list(&self, site_id: &str, limit: u32) -> Result<Vec<Unanswered>> {
        let rows = sqlx::query("SELECT id, question, conversation_id, created_at FROM bot_unanswered WHERE site_id = ? ORDER BY created_at DESC LIMIT ?")
            .bind(site_id)
            .bind(limit.clamp(1, 1000) as i64)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Unanswered {
                id: r.get("id"),
                question: r.get("question"),
                conversation_id: r.get("conversation_id"),
                created_at: rfc3339(r.get("created_at")),
            })
            .collect())
    }

    async fn unanswered_delete(&self, site_id: &str, id: &str) -> Result<bool> {
        self.delete_of_site("bot_unanswered", site_id, id).await
    }

    async fn set_visitor_contact(&self, visitor_id: &str, c: VisitorContact) -> Result<()> {
        // A second message left is added under the first (the newest 8,000 characters kept),
        // not written over it: both are for the next agent.
        sqlx::query("UPDATE visitors SET name = COALESCE(?1, name), email = COALESCE(?2, email), phone = COALESCE(?3, phone), note = CASE WHEN ?4 IS NULL THEN note WHEN note IS NULL OR note = '' THEN ?4 ELSE substr(note || char(10) || ?4, -8000) END WHERE id = ?5")
            .bind(c.name)
            .bind(c.email)
            .bind(c.phone)
            .bind(c.note)
            .bind(visitor_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn mark_read(&self, id: &str, reader: SenderKind, seq: u64) -> Result<()> {
        // An agent's read also counts the visitor's messages it passes (the SET expressions
        // all see the row as it was).
        let sql = match reader {
            SenderKind::Visitor => {
                "UPDATE conversations SET visitor_read_seq = MAX(visitor_read_seq, MIN(?1, last_seq)) \
                 WHERE id = ?2"
            }
            _ => {
                "UPDATE conversations SET agent_read_seq = MAX(agent_read_seq, MIN(?1, last_seq)), \
                 agent_read_visitor_msgs = agent_read_visitor_msgs + (SELECT COUNT(*) FROM messages m \
                 WHERE m.conversation_id = conversations.id AND m.seq > conversations.agent_read_seq \
                 AND m.seq <= MIN(?1, conversations.last_seq) AND m.sender_kind = 'visitor') \
                 WHERE id = ?2"
            }
        };
        sqlx::query(sql)
            .bind(seq as i64)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn append_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Result<AppendOutcome>>> {
        let mut conn = OpenTransaction(Some(self.write.acquire().await?));
        let out = match Self::append_all(conn.get(), self.message_key, batch).await {
            Ok(out) => out,
            Err(e) => {
                // The transaction may be open (a statement after BEGIN failed) or not; if it
                // cannot be rolled back here, closing the connection does it.
                let settled = match sqlx::query("ROLLBACK").execute(conn.get()).await {
                    Ok(_) => true,
                    Err(e) if e.to_string().contains("no transaction is active") => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "rolling back a failed batch failed; closing the writer's connection (a new one opens)");
                        false
                    }
                };
                if settled {
                    conn.0 = None;
                }
                return Err(e.into());
            }
        };
        conn.0 = None;
        Ok(out)
    }

    /// Restarts the write-ahead log when the checkpointer asked for it (see [`checkpoints`]):
    /// after the batch that found the request has been answered, not before.
    async fn between_batches(&self) {
        if !self.restart_log.swap(false, Ordering::Relaxed) {
            return;
        }
        // (busy, pages in the log, pages copied): busy when a reader held it back.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&self.write)
            .await
        {
            Ok((0, _, _)) => {}
            // The checkpointer asks again on its next pass if the log is still long.
            Ok((_, frames, copied)) => {
                tracing::debug!(
                    frames,
                    copied,
                    "a reader held the write-ahead log's restart back"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "restarting the write-ahead log failed; retrying later");
            }
        }
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
        include_private: bool,
    ) -> Result<Vec<Message>> {
        let sql = if include_private {
            format!(
                "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            )
        } else {
            format!(
                "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ? AND seq > ? AND private = 0 ORDER BY seq LIMIT ?"
            )
        };
        let rows = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(after_seq.min(i64::MAX as u64) as i64)
            .bind(limit.clamp(1, 1000) as i64)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }
}
