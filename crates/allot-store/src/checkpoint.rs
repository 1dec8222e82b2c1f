//! WAL checkpoints off the write path (SQLite).
//!
//! In WAL mode a commit appends pages to the log; a *checkpoint* copies them back into the
//! database file and syncs it. SQLite's default runs the checkpoint inside the commit that
//! takes the log past 1,000 pages — on the one write connection, so every order waiting
//! for the group writer also waited for that copy and its sync (a placement profile put
//! the checkpoint and its sync at about a tenth of the write connection's busy time).
//!
//! Here the write connection does not checkpoint on its own (`wal_autocheckpoint=0`); a
//! connection of its own does, in the background: [`PASSIVE`](https://sqlite.org/c3ref/wal_checkpoint_v2.html)
//! checkpoints, which never block the writer or readers, at most every
//! [`CHECKPOINT_EVERY`] after a commit pokes it and at least every [`CHECKPOINT_IDLE`].
//! Durability is unchanged: a commit is durable once its log pages are synced
//! (`synchronous=FULL`); the checkpoint only moves them.
//!
//! The log starts over from its beginning at the first commit after a checkpoint that
//! copied all of it — which a background checkpoint rarely achieves under a steady load,
//! as a commit usually lands while it copies. So once the log passes [`WAL_PAGES_FINISH`]
//! pages, the checkpointer asks the group writer to *finish*: after its next commit (and
//! after answering that group) the writer runs one passive checkpoint itself, which only
//! has the pages since the last background one left to copy, and no commit can land in
//! between, so the next commit starts the log over. The file is then cut back to
//! [`WAL_BYTES_KEPT`]. Without the group writer (`ALLOT_SQLITE_GROUP_COMMIT=off`), a
//! `RESTART` checkpoint past [`WAL_PAGES_RESTART`] pages bounds the log instead (it waits
//! for the writer and for readers, so it is the last resort; its connection waits at most
//! 10 ms for a lock, so a reader left open cannot make it hold the write lock for long).
//!
//! [`Store::close`](crate::Store::close) stops the checkpointer before closing the write
//! connection, so that the last close folds the log into the database file and removes it.
//! The checkpointer runs on the runtime that opened the store: a store that outlived that
//! runtime would have no checkpoints until it is closed (the server and the tools open
//! and close the store on one runtime).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::Notify;

/// Least time between two checkpoints while commits keep coming.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Longest time between two checkpoints (writes that did not poke, e.g. outside the group
/// writer).
pub const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
/// Log size (pages) past which the group writer is asked to finish a checkpoint.
pub const WAL_PAGES_FINISH: i64 = 4_096;
/// Log size (pages) past which a checkpoint waits for the writer and readers to copy it all.
pub const WAL_PAGES_RESTART: i64 = 65_536;
/// The log file is cut back to this size (bytes) when it restarts (`journal_size_limit`).
pub const WAL_BYTES_KEPT: i64 = 64 << 20;

/// Pokes the background checkpointer after a commit.
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    poke: Notify,
    /// The log has grown past [`WAL_PAGES_FINISH`]: the writer should finish a checkpoint.
    finish: AtomicBool,
    /// [`Checkpointer::stop`] was called.
    stop: AtomicBool,
    /// The task, for [`Checkpointer::stop`] to wait on.
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How long the checkpointer's connection waits for a lock. A `RESTART` checkpoint holds
/// the write lock while it waits for readers, so with the store's busy timeout (5 s) a
/// reader left open would stall every write that long; this gives up at once and tries
/// again at the next checkpoint. Passive checkpoints never wait.
const CHECKPOINTER_BUSY_TIMEOUT: Duration = Duration::from_millis(10);

/// The checkpointer's connection: the store's, with [`CHECKPOINTER_BUSY_TIMEOUT`].
fn checkpointer_options(options: &SqliteConnectOptions) -> SqliteConnectOptions {
    options.clone().busy_timeout(CHECKPOINTER_BUSY_TIMEOUT)
}

impl Checkpointer {
    /// Starts the checkpointer on the current runtime, over a connection of its own made
    /// with `options` (the store's, writable). It stops with [`Checkpointer::stop`] or,
    /// within [`CHECKPOINT_IDLE`], when the last handle is dropped.
    pub(crate) fn start(options: &SqliteConnectOptions) -> Checkpointer {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(checkpointer_options(options), Arc::downgrade(&shared)));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Checkpointer { shared }
    }

    /// A handle with no task, for a store that never writes ([`crate::Store::open_reader`]).
    pub(crate) fn none() -> Checkpointer {
        Checkpointer { shared: Arc::new(Shared::default()) }
    }

    /// The group writer committed on `pool` (its write connection, now idle): pokes the
    /// background checkpoints and, once the log has grown past [`WAL_PAGES_FINISH`],
    /// finishes one here, between two commits, so the next commit starts the log over.
    pub(crate) async fn committed(&self, pool: &sqlx::SqlitePool) {
        self.shared.poke.notify_one();
        if self.shared.finish.swap(false, Ordering::Relaxed)
            && let Err(e) = sqlx::query(PASSIVE).execute(pool).await
        {
            tracing::warn!(error = %e, "finishing a WAL checkpoint failed");
        }
    }

    /// Stops the checkpointer and waits until its connection is closed, so that closing
    /// the store's own connections afterwards checkpoints the log and removes it (SQLite
    /// does that when the last connection to a database closes).
    pub(crate) async fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.poke.notify_one();
        let task = self.shared.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The checkpointer's shared state while its handles live and it was not stopped.
fn live(shared: &Weak<Shared>) -> Option<Arc<Shared>> {
    shared.upgrade().filter(|s| !s.stop.load(Ordering::Relaxed))
}

async fn run(options: SqliteConnectOptions, shared: Weak<Shared>) {
    let mut conn: Option<SqliteConnection> = None;
    loop {
        {
            let Some(live) = live(&shared) else { break };
            let _ = tokio::time::timeout(CHECKPOINT_IDLE, live.poke.notified()).await;
            if live.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let Some(live) = live(&shared) else { break };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match options.connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpointer cannot connect; retrying");
                    continue;
                }
            },
        };
        match checkpoint(c, WAL_PAGES_RESTART).await {
            Ok(log) => live.finish.store(log > WAL_PAGES_FINISH, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// One passive checkpoint; a restarting one when the log has grown past `restart_pages`
/// ([`WAL_PAGES_RESTART`]). Answers the log's size in pages.
pub(crate) async fn checkpoint(conn: &mut SqliteConnection, restart_pages: i64) -> sqlx::Result<i64> {
    // (busy, pages in the log, pages copied)
    let (_, log, _): (i64, i64, i64) = sqlx::query_as(PASSIVE).fetch_one(&mut *conn).await?;
    if log <= restart_pages {
        return Ok(log);
    }
    let (_, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await?;
    Ok(log)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use crate::{DbConfig, Step, Store, StoreError, Tx, on_tx};

    /// A store in a new temporary directory with a table `t (k, v)`.
    async fn temp_store(tag: &str) -> crate::Result<(PathBuf, Store)> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("allot-checkpoint-{tag}-{}-{nanos}", std::process::id()));
        let store = Store::open(&DbConfig::Sqlite { path: dir.join("allot.db") }).await?;
        let mut tx = store.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(conn).await?;
        });
        tx.commit().await?;
        Ok((dir, store))
    }

    /// Row `k` with `bytes` characters, through the group writer.
    async fn put(store: &Store, k: i64, bytes: usize) -> crate::Result<()> {
        store
            .write(move |tx: &mut Tx| {
                Box::pin(async move {
                    on_tx!(tx, |conn| {
                        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                            .bind(k)
                            .bind("x".repeat(bytes))
                            .execute(conn)
                            .await?;
                    });
                    Ok::<_, StoreError>(Step::Commit(()))
                })
            })
            .await
    }

    fn file_len(path: &std::path::Path) -> crate::Result<u64> {
        Ok(std::fs::metadata(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?.len())
    }

    /// Committed pages reach the database file while the store is open and nothing else
    /// checkpoints: the write connection does not (`wal_autocheckpoint=0`), and 2 MB is
    /// below SQLite's own threshold (1,000 pages) anyway.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_pages_are_checkpointed_in_the_background() -> crate::Result<()> {
        let (dir, store) = temp_store("background").await?;
        let path = dir.join("allot.db");
        // Let a checkpoint of the set-up pass, then measure the file.
        tokio::time::sleep(super::CHECKPOINT_IDLE + super::CHECKPOINT_EVERY * 3).await;
        let before = file_len(&path)?;
        for k in 0..512_i64 {
            put(&store, k, 4000).await?;
        }
        let mut grown = 0;
        for _ in 0..50 {
            grown = file_len(&path)?.saturating_sub(before);
            if grown >= 2_000_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(grown >= 2_000_000, "the database file grew by {grown} bytes only: nothing checkpointed the WAL");
        let mut tx = store.begin().await?;
        let rows: i64 = on_tx!(&mut tx, |conn| sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(conn).await?);
        // The write connection leaves checkpoints to the checkpointer.
        let auto: i64 = on_tx!(&mut tx, |conn| sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(conn).await?);
        tx.rollback().await?;
        assert_eq!(rows, 512);
        assert_eq!(auto, 0);
        // Closing stops the checkpointer first, so the last close folds the log in and
        // removes it.
        store.close().await;
        assert!(!dir.join("allot.db-wal").exists(), "the log outlived Store::close");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// A restarting checkpoint while a reader holds an old snapshot gives up quickly
    /// instead of holding the write lock for the store's busy timeout: writes go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_behind_an_open_reader_does_not_stall_writes() -> crate::Result<()> {
        use sqlx::{ConnectOptions, Connection};
        let (dir, store) = temp_store("restart").await?;
        put(&store, 0, 10).await?;
        // A reader in the middle of a read, on the snapshot before the writes below.
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("allot.db"));
        let mut reader = options.connect().await?;
        sqlx::query("BEGIN").execute(&mut reader).await?;
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut reader).await?;
        for k in 1..50 {
            put(&store, k, 10).await?;
        }
        let mut checkpointer = super::checkpointer_options(&options).connect().await?;
        let started = Instant::now();
        let (checkpointed, written) = tokio::join!(super::checkpoint(&mut checkpointer, 0), async {
            let mut slowest = Duration::ZERO;
            for k in 50..100 {
                let t = Instant::now();
                put(&store, k, 10).await?;
                slowest = slowest.max(t.elapsed());
            }
            Ok::<_, StoreError>(slowest)
        });
        checkpointed?;
        let slowest = written?;
        assert!(
            slowest < Duration::from_secs(2) && started.elapsed() < Duration::from_secs(4),
            "a write waited {slowest:?}, and all took {:?}, behind the restarting checkpoint (store busy \
             timeout: 5 s)",
            started.elapsed()
        );
        sqlx::query("COMMIT").execute(&mut reader).await?;
        reader.close().await?;
        checkpointer.close().await?;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Under a steady stream of group commits the log keeps starting over, so its file
    /// stays near [`super::WAL_PAGES_FINISH`] pages rather than growing with what is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_steady_writes() -> crate::Result<()> {
        let (dir, store) = temp_store("log").await?;
        // 8 writers, 48 MB in all: three times the log's finishing size.
        let (writers, rows_each) = (8_i64, 1_500_i64);
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..rows_each {
                    put(&store, w * rows_each + i, 4000).await?;
                }
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| StoreError::GroupCommit(e.to_string()))??;
        }
        let len = file_len(&dir.join("allot.db-wal"))?;
        let finish_bytes = u64::try_from(super::WAL_PAGES_FINISH * 4096).unwrap_or(u64::MAX);
        assert!(len < finish_bytes * 2, "the log file grew to {len} bytes for 48 MB of rows");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
