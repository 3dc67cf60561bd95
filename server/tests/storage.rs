//! The storage contract, on a real SQLite file: group commit keeps per-conversation order,
//! opens a visitor's conversation once, and recognises retries inside and across batches.

use kefu::model::{Sender, SenderKind};
use kefu_server::storage::{AppendRequest, AppendTarget, StorageError};

fn visitor_msg(visitor: &str, site: &str, cmid: &str, body: &str) -> AppendRequest {
    AppendRequest {
        target: AppendTarget::VisitorCurrent {
            visitor_id: visitor.into(),
            site_id: site.into(),
            assignee_if_new: None,
            pending_if_new: false,
            welcome: None,
        },
        sender: Sender {
            kind: SenderKind::Visitor,
            id: visitor.into(),
            name: None,
        },
        body: body.into(),
        private: false,
        client_msg_id: Some(cmid.into()),
        quick_replies: Vec::new(),
        meta: None,
    }
}

/// A new database in a temporary folder (kept while the first value lives), with one site.
async fn fresh() -> (
    tempfile::TempDir,
    std::sync::Arc<dyn kefu_server::storage::Storage>,
    kefu_server::storage::Site,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = kefu_server::config::Settings::default();
    settings.storage.url = format!("sqlite://{}", dir.path().join("k.db").display());
    let storage = kefu_server::open_storage(&settings).await.unwrap();
    let site = storage.create_site("S", &[]).await.unwrap();
    (dir, storage, site)
}

/// Two new visitors of the site; their ids.
async fn two_visitors(
    storage: &dyn kefu_server::storage::Storage,
    site: &kefu_server::storage::Site,
) -> (String, String) {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = storage
            .upsert_visitor(kefu_server::storage::VisitorUpsert {
                site_id: site.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(v.info.id);
    }
    (ids.remove(0), ids.remove(0))
}

/// The console's list of every status: of `site` (all sites with `None`), at most `limit`.
async fn listed(
    storage: &dyn kefu_server::storage::Storage,
    site: Option<&str>,
    limit: u32,
) -> Vec<kefu::model::Conversation> {
    storage
        .list_conversations(kefu_server::storage::ConversationFilter {
            site_ids: site.map(|s| vec![s.to_owned()]),
            statuses: Vec::new(),
            limit,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn one_batch_orders_opens_once_and_dedupes() {
    let (_dir, storage, site) = fresh().await;
    let (a, b) = &two_visitors(&*storage, &site).await;
    let batch = vec![
        visitor_msg(a, &site.id, "a1", "first"),
        visitor_msg(b, &site.id, "b1", "other visitor"),
        visitor_msg(a, &site.id, "a2", "second"),
        visitor_msg(a, &site.id, "a1", "first (retried in the same batch)"),
        AppendRequest {
            target: AppendTarget::Conversation("missing".into()),
            ..visitor_msg(a, &site.id, "a3", "to nowhere")
        },
    ];
    let out = storage.append_batch(&batch).await.unwrap();
    let ok: Vec<_> = out.iter().take(4).map(|r| r.as_ref().unwrap()).collect();
    assert_eq!((ok[0].message.seq, ok[2].message.seq), (1, 2));
    assert_eq!(ok[0].message.conversation_id, ok[2].message.conversation_id);
    assert!(
        ok[0].opened && !ok[2].opened,
        "opened once, by its first message"
    );
    assert!(ok[1].opened && ok[1].message.seq == 1);
    assert_ne!(ok[0].message.conversation_id, ok[1].message.conversation_id);
    assert!(ok[3].duplicate);
    assert_eq!(ok[3].message, ok[0].message);
    assert!(matches!(out[4], Err(StorageError::NotFound)));

    // The next batch continues the log and still knows the old ids.
    let out = storage
        .append_batch(&[
            visitor_msg(a, &site.id, "a2", "second"),
            visitor_msg(a, &site.id, "a4", "third"),
        ])
        .await
        .unwrap();
    assert!(out[0].as_ref().unwrap().duplicate);
    assert_eq!(out[1].as_ref().unwrap().message.seq, 3);
    let conv = storage
        .conversation(&ok[0].message.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conv.last_seq, 3);
    let bodies: Vec<String> = storage
        .messages_after(&conv.id, 0, 10, true)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, vec!["first", "second", "third"]);
}

#[tokio::test]
async fn a_failed_batch_stores_nothing_and_the_next_one_commits() {
    let (_dir, storage, site) = fresh().await;
    let v = storage
        .upsert_visitor(kefu_server::storage::VisitorUpsert {
            site_id: site.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .info
        .id;
    // A visitor the database does not know: opening their conversation breaks a foreign key,
    // after the transaction began and the first message was counted.
    let batch = [
        visitor_msg(&v, &site.id, "v1", "first"),
        visitor_msg("no-such-visitor", &site.id, "x1", "from nobody"),
    ];
    let failed = storage.append_batch(&batch).await;
    assert!(failed.is_err(), "{failed:?}");

    // Nothing of it was kept, and the writer's connection is not left inside a transaction.
    let out = storage
        .append_batch(&[visitor_msg(&v, &site.id, "v1", "first")])
        .await
        .unwrap();
    let first = out[0].as_ref().unwrap();
    assert!(!first.duplicate, "the failed batch stored the message");
    assert_eq!(first.message.seq, 1);
    assert!(first.opened);
    let again = storage
        .append_batch(&[visitor_msg(&v, &site.id, "v2", "second")])
        .await
        .unwrap();
    assert_eq!(again[0].as_ref().unwrap().message.seq, 2);
}

/// Opens the database at `path` as the server does (migrations and start-up work included).
async fn open_at(path: &std::path::Path) -> std::sync::Arc<dyn kefu_server::storage::Storage> {
    let mut settings = kefu_server::config::Settings::default();
    settings.storage.url = format!("sqlite://{}", path.display());
    kefu_server::open_storage(&settings).await.unwrap()
}

/// A new database at `db` with only the given migrations applied: the schema an older release
/// left, to store data under before the server upgrades it.
async fn database_as_of(db: &std::path::Path, migrations: &[&str]) -> sqlx::SqlitePool {
    let old = tempfile::tempdir().unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    for f in migrations {
        std::fs::copy(all.join(f), old.path().join(f)).unwrap();
    }
    // As the server does before SQLite's first connection (other tests run beside this one).
    sqlite_pcache::install().unwrap();
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

/// A database written before the idempotency index held hashed keys still recognises retries
/// of the messages it stored then, after the upgrade and after a further restart; the same
/// client_msg_id from another sender is a new message.
#[tokio::test]
async fn retries_of_messages_stored_before_the_hashed_keys_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    // The schema as the first two migrations left it, and a message stored under it.
    let pool = database_as_of(&db, &["20261127000001_init.sql", "20261127000002_bot.sql"]).await;
    sqlx::raw_sql(
        "INSERT INTO sites (id, site_key, secret, name, created_at) VALUES ('s', 'k', 'x', 'S', 0); \
         INSERT INTO visitors (id, site_id, created_at, last_seen_at) VALUES ('v', 's', 0, 0), ('w', 's', 0, 0); \
         INSERT INTO conversations (id, site_id, visitor_id, status, last_seq, created_at, updated_at) \
         VALUES ('c', 's', 'v', 'open', 1, 0, 0); \
         INSERT INTO messages (id, conversation_id, seq, sender_kind, sender_id, body, client_msg_id, created_at) \
         VALUES ('m1', 'c', 1, 'visitor', 'v', 'before', 'cm1', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let storage = open_at(&db).await;
    let out = storage
        .append_batch(&[
            visitor_msg("v", "s", "cm1", "before (retried)"),
            visitor_msg("v", "s", "cm2", "after"),
            visitor_msg("w", "s", "cm1", "another visitor's cm1"),
        ])
        .await
        .unwrap();
    let retried = out[0].as_ref().unwrap();
    assert!(retried.duplicate, "the retry of the old message is known");
    assert_eq!(
        (retried.message.id.as_str(), retried.message.body.as_str()),
        ("m1", "before")
    );
    let after = out[1].as_ref().unwrap();
    assert!(!after.duplicate);
    assert_eq!(
        (after.message.conversation_id.as_str(), after.message.seq),
        ("c", 2)
    );
    let other = out[2].as_ref().unwrap();
    assert!(!other.duplicate, "another sender's id is another key");
    assert_eq!(other.message.body, "another visitor's cm1");
    drop(storage);

    let storage = open_at(&db).await;
    let out = storage
        .append_batch(&[
            visitor_msg("v", "s", "cm1", "retried again"),
            visitor_msg("v", "s", "cm2", "after (retried)"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().message.id, "m1");
    assert_eq!(out[1].as_ref().unwrap().message.id, after.message.id);
    assert!(out.iter().all(|o| o.as_ref().unwrap().duplicate));
    let bodies: Vec<String> = storage
        .messages_after("c", 0, 10, true)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, vec!["before", "after"]);
}

/// A conversation shows its last message's seq and time, the console's list puts the most
/// recent activity first, a read marker never passes the last message, and all of it holds
/// after a restart.
#[tokio::test]
async fn conversations_show_their_last_message_newest_activity_first() {
    let (dir, storage, site) = fresh().await;
    let (a, b) = &two_visitors(&*storage, &site).await;
    let mut sent = Vec::new();
    for (v, cmid) in [(a, "a1"), (b, "b1"), (a, "a2")] {
        let out = storage
            .append_batch(&[visitor_msg(v, &site.id, cmid, cmid)])
            .await
            .unwrap();
        sent.push(out[0].as_ref().unwrap().message.clone());
    }
    let (conv_a, conv_b) = (&sent[0].conversation_id, &sent[1].conversation_id);
    let list = listed(&*storage, Some(&site.id), 10).await;
    let shown: Vec<_> = list
        .iter()
        .map(|c| (c.id.as_str(), c.last_seq, c.updated_at.as_str()))
        .collect();
    let (a_entry, b_entry) = (
        (conv_a.as_str(), 2, sent[2].created_at.as_str()),
        (conv_b.as_str(), 1, sent[1].created_at.as_str()),
    );
    // Equal times (the same millisecond) may come in either order.
    assert!(
        shown == [a_entry, b_entry] || (a_entry.2 == b_entry.2 && shown == [b_entry, a_entry]),
        "{shown:?}"
    );
    let last = list[0].last_message.as_ref().unwrap();
    assert!(last.body == "a2" || last.body == "b1");

    // Read "up to 99" means up to the last message, so the next one is unread.
    storage
        .mark_read(conv_a, SenderKind::Agent, 99)
        .await
        .unwrap();
    let out = storage
        .append_batch(&[visitor_msg(a, &site.id, "a3", "a3")])
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().message.seq, 3);
    let list = listed(&*storage, Some(&site.id), 10).await;
    let entry = list.iter().find(|c| &c.id == conv_a).unwrap();
    assert_eq!((entry.last_seq, entry.unread), (3, Some(1)));
    drop(storage);

    let storage = open_at(&dir.path().join("k.db")).await;
    let conv = storage.conversation(conv_a).await.unwrap().unwrap();
    assert_eq!(conv.last_seq, 3);
    let out = storage
        .append_batch(&[visitor_msg(a, &site.id, "a4", "a4")])
        .await
        .unwrap();
    let next = &out[0].as_ref().unwrap().message;
    assert_eq!(
        (next.conversation_id.as_str(), next.seq),
        (conv_a.as_str(), 4)
    );
    let conv = storage.conversation(conv_a).await.unwrap().unwrap();
    assert_eq!(
        (conv.last_seq, conv.updated_at.as_str()),
        (4, next.created_at.as_str())
    );
}

/// The console's list counts, for each conversation it shows, the visitor's messages after the
/// agents' read marker: not the agents' own replies, not what was read, and the same for a
/// conversation on a short page as on a long one.
#[tokio::test]
async fn the_console_list_counts_each_conversations_unread_visitor_messages() {
    let (_dir, storage, site) = fresh().await;
    let (a, b) = &two_visitors(&*storage, &site).await;
    let send = async |req: AppendRequest| {
        let out = storage.append_batch(&[req]).await.unwrap();
        out[0].as_ref().unwrap().message.clone()
    };
    for cmid in ["a1", "a2", "a3"] {
        send(visitor_msg(a, &site.id, cmid, cmid)).await;
    }
    let b1 = send(visitor_msg(b, &site.id, "b1", "b1")).await;
    let conv_b = b1.conversation_id.clone();
    storage
        .mark_read(&conv_b, SenderKind::Agent, b1.seq)
        .await
        .unwrap();
    let reply = AppendRequest {
        target: AppendTarget::Conversation(conv_b.clone()),
        sender: Sender {
            kind: SenderKind::Agent,
            id: "agent-1".into(),
            name: None,
        },
        ..visitor_msg(b, &site.id, "r1", "a reply")
    };
    send(reply).await;
    let list = |limit| listed(&*storage, Some(&site.id), limit);
    let unread = |list: &[kefu::model::Conversation]| {
        let mut u: Vec<_> = list
            .iter()
            .map(|c| (c.visitor_id.clone(), c.unread))
            .collect();
        u.sort();
        u
    };
    let mut want = vec![(a.clone(), Some(3)), (b.clone(), Some(0))];
    want.sort();
    assert_eq!(unread(&list(10).await), want);

    // The visitor writes again after the reply: one unread. A page of one shows the newest
    // (equal times are ordered by id, and ids grow with time).
    send(visitor_msg(b, &site.id, "b2", "b2")).await;
    let page = list(1).await;
    assert_eq!(
        page.iter()
            .map(|c| (c.id.as_str(), c.unread))
            .collect::<Vec<_>>(),
        [(conv_b.as_str(), Some(1))]
    );
    let mut want = vec![(a.clone(), Some(3)), (b.clone(), Some(1))];
    want.sort();
    assert_eq!(unread(&list(10).await), want);
}

/// Under steady writes the write-ahead log starts over instead of growing without bound: the
/// checkpointer copies it into the database and asks the group commit to restart it between
/// two batches. Here about three times the restart size (16 MiB) goes through the log.
#[tokio::test]
async fn the_write_ahead_log_stays_bounded_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = kefu_server::config::Settings::default();
    settings.storage.url = format!("sqlite://{}", dir.path().join("k.db").display());
    settings.storage.checkpoint_interval_ms = 10;
    let storage = kefu_server::open_storage(&settings).await.unwrap();
    let site = storage.create_site("S", &[]).await.unwrap();
    let (a, b) = two_visitors(&*storage, &site).await;
    let writer = kefu_server::storage::writer::Writer::spawn(
        storage.clone(),
        100,
        std::time::Duration::ZERO,
        std::sync::Arc::new(|_, _| {}),
    );
    let wal = dir.path().join("k.db-wal");
    let body = "x".repeat(3_000);
    let (mut written, mut largest) = (0u64, 0u64);
    let mut n = 0;
    while written < 48 << 20 {
        let batch = (0..100).map(|i| {
            n += 1;
            let v = if i % 2 == 0 { &a } else { &b };
            writer.append(visitor_msg(v, &site.id, &n.to_string(), &body), 0)
        });
        for out in futures_util::future::join_all(batch).await {
            out.unwrap();
        }
        written += 100 * body.len() as u64;
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
    }
    // About 18 MiB here: the restart size and what came in until the restart. (With no
    // restart it reaches about 117 MiB.)
    assert!(
        largest < 40 << 20,
        "the log reached {largest} bytes while {written} bytes of messages went through it \
         (a checkpointer starved of CPU restarts it late)"
    );
}

/// A database written before unread counts were kept on the conversation shows the same counts
/// after the upgrade, and they follow new messages and reads from there.
#[tokio::test]
async fn unread_counts_of_a_database_from_before_they_were_kept_carry_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let pool = database_as_of(
        &db,
        &[
            "20261127000001_init.sql",
            "20261127000002_bot.sql",
            "20261128000003_message_keys.sql",
        ],
    )
    .await;
    // c: visitor, agent, visitor, visitor; the agents read up to 2: two unread.
    // d: one visitor message, read: none unread.
    sqlx::raw_sql(
        "INSERT INTO sites (id, site_key, secret, name, created_at) VALUES ('s', 'k', 'x', 'S', 0); \
         INSERT INTO visitors (id, site_id, created_at, last_seen_at) VALUES ('v', 's', 0, 0), ('w', 's', 0, 0); \
         INSERT INTO conversations (id, site_id, visitor_id, status, last_seq, agent_read_seq, created_at, updated_at) \
         VALUES ('c', 's', 'v', 'open', 4, 2, 0, 2), ('d', 's', 'w', 'open', 1, 1, 0, 1); \
         INSERT INTO messages (id, conversation_id, seq, sender_kind, sender_id, body, created_at) VALUES \
         ('m1', 'c', 1, 'visitor', 'v', 'hi', 0), ('m2', 'c', 2, 'agent', 'a', 'hello', 0), \
         ('m3', 'c', 3, 'visitor', 'v', 'so', 0), ('m4', 'c', 4, 'visitor', 'v', 'well', 0), \
         ('m5', 'd', 1, 'visitor', 'w', 'hey', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let storage = open_at(&db).await;
    let unread = async || {
        let list = listed(&*storage, None, 10).await;
        let mut u: Vec<_> = list.into_iter().map(|c| (c.id, c.unread)).collect();
        u.sort();
        u
    };
    let counts = |c, d| vec![("c".to_owned(), Some(c)), ("d".to_owned(), Some(d))];
    assert_eq!(unread().await, counts(2, 0));
    storage
        .append_batch(&[visitor_msg("v", "s", "v5", "one more")])
        .await
        .unwrap();
    assert_eq!(unread().await, counts(3, 0));
    // Reading up to 3 passes one of them; reading back to 1 changes nothing.
    storage.mark_read("c", SenderKind::Agent, 3).await.unwrap();
    assert_eq!(unread().await, counts(2, 0));
    storage.mark_read("c", SenderKind::Agent, 1).await.unwrap();
    assert_eq!(unread().await, counts(2, 0));
    // The visitor's own read marker is not the agents'.
    storage
        .mark_read("c", SenderKind::Visitor, 5)
        .await
        .unwrap();
    assert_eq!(unread().await, counts(2, 0));
    storage.mark_read("c", SenderKind::Agent, 99).await.unwrap();
    assert_eq!(unread().await, counts(0, 0));
}
