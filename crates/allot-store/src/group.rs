//! Group commit: many write commands in one transaction and one durable commit.
//!
//! On SQLite every commit syncs the WAL to disk (`synchronous=FULL`), and only one writer
//! runs at a time, so committing each order on its own caps throughput at the disk's sync
//! rate. [`Store::write`] instead queues the command for a single writer task, which takes
//! whatever has queued while the previous group committed, runs each command inside its
//! own `SAVEPOINT` (a command that fails or asks to roll back undoes only its own writes;
//! a kept savepoint is released by the statement that opens the next one),
//! commits once, and only then answers every command of the group. So an answer still
//! means "durable", and a command never sees its result before the commit that makes it
//! true. A failed commit fails every command of its group.
//!
//! On PostgreSQL [`Store::write`] is simply one transaction per command: many connections
//! write in parallel and the server groups their WAL flushes itself. The same holds on
//! SQLite with `ALLOT_SQLITE_GROUP_COMMIT=off` (for benchmark comparisons).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use crate::{Result, Store, StoreError, Tx};

/// Most commands in one group (bounds the time one group holds the write lock).
pub const GROUP_MAX: usize = 128;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a command asks for its writes.
#[derive(Debug)]
pub enum Step<T> {
    /// Keep them (committed with the group).
    Commit(T),
    /// Undo them; the command still answers `T` (e.g. "retry with a new plan").
    Rollback(T),
}

/// Called after the group's commit with its outcome; answers the command's caller.
type Deliver = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
/// How a queued command left the group's transaction.
struct Ran {
    deliver: Deliver,
    /// It could not undo its writes: the transaction is unusable and the group rolls back.
    poisoned: bool,
    /// Its savepoint is still open (it kept its writes): the next command releases it as it
    /// opens its own, in the same statement, and the commit releases the last one. That
    /// saves a round trip to the connection's thread per command.
    open: bool,
}
/// A queued command: runs in the group's transaction (told whether the previous command's
/// savepoint is open) and answers how it left it.
type Job = Box<dyn for<'t> FnOnce(&'t mut Tx, bool) -> BoxFuture<'t, Ran> + Send>;

/// The SQLite group writer's queue.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::UnboundedSender<Job>,
}

impl GroupWriter {
    /// Starts the writer task over `store` (which must be the SQLite store it belongs to).
    pub(crate) fn start(pool: sqlx::SqlitePool) -> GroupWriter {
        let (queue, rx) = mpsc::unbounded_channel::<Job>();
        // The writer gets an OS thread and a runtime of its own: on the shared runtime every
        // statement's completion would queue behind request handling, and the one writer
        // everything waits for would be the task that waits longest.
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the group writer's runtime; writes will fail");
                return GroupWriter { queue };
            }
        };
        let spawned = std::thread::Builder::new().name("allot-writer".to_owned()).spawn(move || {
            runtime.block_on(writer_loop(pool, rx));
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the group writer thread; writes will fail");
        }
        GroupWriter { queue }
    }
}

async fn writer_loop(pool: sqlx::SqlitePool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(t) => Tx::Sqlite(t),
            Err(e) => {
                // No transaction: the command cannot run. Fail it (and only it).
                fail_unrun(first, e.to_string());
                continue;
            }
        };
        let ran = first(&mut tx, false).await;
        let (mut poisoned, mut open) = (ran.poisoned, ran.open);
        let mut delivers = vec![ran.deliver];
        while delivers.len() < GROUP_MAX && !poisoned {
            match rx.try_recv() {
                Ok(job) => {
                    let ran = job(&mut tx, open).await;
                    delivers.push(ran.deliver);
                    (poisoned, open) = (ran.poisoned, ran.open);
                }
                Err(_) => break,
            }
        }
        // COMMIT also commits a savepoint left open (SQLite: "COMMIT commits all outstanding
        // savepoints").
        let outcome = if poisoned {
            let _ = tx.rollback().await;
            Err("a command could not undo its writes; its group was rolled back".to_owned())
        } else {
            tx.commit().await.map_err(|e| format!("group commit failed: {e}"))
        };
        for deliver in delivers {
            deliver(outcome.clone());
        }
    }
}

/// A job that never got a transaction: it is dropped unrun, so its caller's answer
/// channel closes and [`Store::write`] reports "could not begin a transaction".
fn fail_unrun(job: Job, reason: String) {
    tracing::error!(%reason, "group writer could not begin a transaction");
    drop(job);
}

async fn raw(tx: &mut Tx, sql: &'static str) -> Result<()> {
    match tx {
        Tx::Sqlite(t) => {
            sqlx::query(sql).execute(&mut **t).await?;
        }
        Tx::Postgres(t) => {
            sqlx::query(sql).execute(&mut **t).await?;
        }
    }
    Ok(())
}

impl Store {
    /// Runs `command` in a write transaction and answers after its writes are durable
    /// (see the module docs). `command` returns [`Step::Commit`] to keep its writes or
    /// [`Step::Rollback`] to undo them; an `Err` undoes them too.
    pub async fn write<T, E, F>(&self, command: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, std::result::Result<Step<T>, E>> + Send + 'static,
    {
        let writer = match self {
            Store::Sqlite(crate::SqliteStore { group: Some(g), .. }) => g,
            _ => {
                let mut tx = self.begin().await?;
                return match command(&mut tx).await {
                    Ok(Step::Commit(v)) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Ok(Step::Rollback(v)) => {
                        tx.rollback().await?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                };
            }
        };
        let (answer, receive) = oneshot::channel::<std::result::Result<T, E>>();
        let job: Job = Box::new(move |tx: &mut Tx, previous_open: bool| {
            Box::pin(async move {
                let open = if previous_open { "RELEASE command; SAVEPOINT command" } else { "SAVEPOINT command" };
                if let Err(e) = raw(tx, open).await {
                    let deliver: Deliver = Box::new(move |_| {
                        let _ = answer.send(Err(E::from(e)));
                    });
                    // Neither savepoint is known to be open or released: end the group.
                    return Ran { deliver, poisoned: previous_open, open: false };
                }
                let (keep, result) = match command(tx).await {
                    Ok(Step::Commit(v)) => (true, Ok(v)),
                    Ok(Step::Rollback(v)) => (false, Ok(v)),
                    Err(e) => (false, Err(e)),
                };
                // Kept writes leave the savepoint open (see [`Ran::open`]).
                let end = if keep { Ok(()) } else { raw(tx, "ROLLBACK TO command; RELEASE command").await };
                let poisoned = end.is_err();
                let deliver: Deliver = Box::new(move |committed| {
                    let r = match (end, committed) {
                        (Err(e), _) => Err(E::from(e)),
                        (Ok(()), Err(reason)) if keep => Err(E::from(StoreError::GroupCommit(reason))),
                        (Ok(()), _) => result,
                    };
                    let _ = answer.send(r);
                });
                Ran { deliver, poisoned, open: keep }
            })
        });
        writer.queue.send(job).map_err(|_| E::from(StoreError::GroupCommit("the writer has stopped".to_owned())))?;
        receive.await.unwrap_or_else(|_| {
            Err(E::from(StoreError::GroupCommit("the writer could not begin a transaction".to_owned())))
        })
    }
}
