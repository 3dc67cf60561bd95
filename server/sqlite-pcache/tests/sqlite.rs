//! The page cache under a real SQLite: random index keys that split pages in most commits, a
//! rollback of a transaction that grew the database, and a VACUUM that shrinks it. The data
//! must read back exactly, and SQLite's own integrity check must pass.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};

async fn open(path: &std::path::Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Small, so that pages are recycled and fetched again as well.
            .pragma("cache_size", "200"),
    )
    .await
    .unwrap()
}

/// What the rows add up to: how many, their keys, their blobs' lengths.
#[derive(Debug, Default, PartialEq)]
struct Sums(i64, i64, i64);

impl Sums {
    fn add(&mut self, other: Sums) {
        self.0 += other.0;
        self.1 += other.1;
        self.2 += other.2;
    }
}

async fn summary(conn: &mut SqliteConnection) -> Sums {
    let row =
        sqlx::query("SELECT count(*), coalesce(sum(k), 0), coalesce(sum(length(v)), 0) FROM t")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    Sums(row.get(0), row.get(1), row.get(2))
}

/// Inserts `rows` rows with the next keys in one transaction, committed or rolled back; what
/// they add up to.
async fn insert(conn: &mut SqliteConnection, k: &mut i64, rows: i64, keep: bool) -> Sums {
    let mut tx = conn.begin().await.unwrap();
    let mut added = Sums::default();
    for _ in 0..rows {
        *k += 1;
        let len = 20 + (*k * 7919) % 300;
        sqlx::query("INSERT INTO t (k, h, v) VALUES (?, random(), randomblob(?))")
            .bind(*k)
            .bind(len)
            .execute(&mut *tx)
            .await
            .unwrap();
        added.add(Sums(1, *k, len));
    }
    if keep {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    added
}

async fn page_count(conn: &mut SqliteConnection) -> i64 {
    sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn integrity(conn: &mut SqliteConnection) -> String {
    sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn data_reads_back_after_splits_rollbacks_and_a_vacuum() {
    sqlite_pcache::install().expect("installed before SQLite is used");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut conn = open(&path).await;
    sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, h INTEGER NOT NULL, v BLOB NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX t_h ON t (h)")
        .execute(&mut conn)
        .await
        .unwrap();

    // Random keys in the index, 50 rows a commit: its pages split in most commits.
    let before = sqlite_pcache::truncates_skipped();
    let mut k = 0;
    let mut expected = Sums::default();
    for _ in 0..200 {
        expected.add(insert(&mut conn, &mut k, 50, true).await);
    }
    assert!(
        sqlite_pcache::truncates_skipped() > before,
        "no truncate was skipped: the default page cache is in place"
    );
    assert_eq!(summary(&mut conn).await, expected);

    // A transaction that grows the database and is rolled back: its pages past the old end
    // must go, and the rows written next must read back.
    insert(&mut conn, &mut k, 3_000, false).await;
    for _ in 0..20 {
        expected.add(insert(&mut conn, &mut k, 50, true).await);
    }
    assert_eq!(summary(&mut conn).await, expected);

    // Most rows deleted and the file shrunk; then it grows again over the same page numbers.
    sqlx::query("DELETE FROM t WHERE k % 10 <> 0")
        .execute(&mut conn)
        .await
        .unwrap();
    let grown = page_count(&mut conn).await;
    sqlx::query("VACUUM").execute(&mut conn).await.unwrap();
    assert!(
        page_count(&mut conn).await < grown / 2,
        "VACUUM shrank the file"
    );
    let mut expected = summary(&mut conn).await;
    for _ in 0..100 {
        expected.add(insert(&mut conn, &mut k, 50, true).await);
    }
    assert_eq!(summary(&mut conn).await, expected);
    assert_eq!(integrity(&mut conn).await, "ok");

    // And from a fresh connection, which reads the file rather than the cache.
    conn.close().await.unwrap();
    let mut again = open(&path).await;
    assert_eq!(summary(&mut again).await, expected);
    assert_eq!(integrity(&mut again).await, "ok");
}
