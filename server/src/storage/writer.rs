//! The group-commit writer: the one path every message takes into storage.
//!
//! Appends queue up while the previous transaction commits; the next transaction takes all of
//! them (up to `max_batch`), so under load one commit (one fsync) carries many messages, and
//! when idle a message commits alone at once. After a commit the writer hands each new message
//! to `on_commit` in commit order, *then* answers the senders: everything a conversation's
//! subscribers receive is in `seq` order, and an ack never precedes the commit.
//! Upkeep the storage needs between two transactions (SQLite's log restart) runs after a
//! successful batch has been answered (and pending flushes too), so that batch does not wait
//! for it; the next one does.
//!
//! Each commit has a fixed cost (the statements' round trips to SQLite's thread, the log write
//! and its fsync) that the batch shares, so when more than one message is already waiting the
//! writer first waits `commit_delay` for others to join (PostgreSQL's `commit_delay` idea):
//! under load, fewer and larger commits; a message arriving alone is not delayed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{AppendOutcome, AppendRequest, Result, Storage, StorageError};

/// Called once per newly committed message, in commit order, with the id of the connection that
/// sent it (so that it gets an `ack`, not a `message`).
pub type OnCommit = Arc<dyn Fn(&AppendOutcome, u64) + Send + Sync>;

enum Job {
    Append {
        req: Box<AppendRequest>,
        origin: u64,
        reply: oneshot::Sender<Result<AppendOutcome>>,
    },
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn spawn(
        storage: Arc<dyn Storage>,
        max_batch: usize,
        commit_delay: Duration,
        on_commit: OnCommit,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 8);
        let batching = Batching {
            max: max_batch.max(1),
            delay: commit_delay,
        };
        tokio::spawn(run(storage, rx, batching, on_commit));
        Self { tx }
    }

    /// Appends one message; returns once it is committed (or was already).
    pub async fn append(&self, req: AppendRequest, origin: u64) -> Result<AppendOutcome> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Append {
                req: Box::new(req),
                origin,
                reply,
            })
            .await
            .map_err(|_| StorageError::Unavailable("the server is shutting down".into()))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("the writer stopped".into()))?
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Batching {
    max: usize,
    delay: Duration,
}

async fn run(
    storage: Arc<dyn Storage>,
    mut rx: mpsc::Receiver<Job>,
    batching: Batching,
    on_commit: OnCommit,
) {
    let max_batch = batching.max;
    let mut jobs = Vec::with_capacity(max_batch);
    let mut reqs = Vec::with_capacity(max_batch);
    let mut waiting = Vec::with_capacity(max_batch);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        if jobs.len() > 1 && jobs.len() < max_batch && !batching.delay.is_zero() {
            tokio::time::sleep(batching.delay).await;
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        for job in jobs.drain(..) {
            match job {
                Job::Append { req, origin, reply } => {
                    reqs.push(*req);
                    waiting.push((origin, reply));
                }
                Job::Flush(done) => flushes.push(done),
            }
        }
        let mut committed = false;
        if !reqs.is_empty() {
            let span = tracing::debug_span!("group_commit", batch = reqs.len());
            match storage.append_batch(&reqs).instrument(span).await {
                Ok(results) => {
                    committed = true;
                    for ((origin, reply), result) in waiting.drain(..).zip(results) {
                        if let Ok(outcome) = &result
                            && !outcome.duplicate
                        {
                            on_commit(outcome, origin);
                        }
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, batch = reqs.len(), "group commit failed; nothing of the batch was stored");
                    for (_, reply) in waiting.drain(..) {
                        let _ = reply.send(Err(StorageError::Unavailable(e.to_string())));
                    }
                }
            }
            reqs.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        if committed {
            storage.between_batches().await;
        }
    }
}
