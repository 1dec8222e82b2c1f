//! Group commit: many write commands in one transaction and one durable commit.
//!
//! On SQLite every commit syncs the WAL to disk (`synchronous=FULL`), and only one writer
//! runs at a time, so committing each order on its own caps throughput at the disk's sync
//! rate. [`Store::write`] instead queues the command for a single writer task, which takes
//! whatever has queued while the previous group committed, runs each command inside its
//! own `SAVEPOINT` (a command that fails or asks to roll back undoes only its own writes;
//! a kept savepoint is released by the statement that opens the next one, and that
//! statement travels with the command's first statement — for placement, in the same call
//! to the connection's thread, see [`crate::SqliteTx`]),
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

/// A command's savepoint. Names alternate between consecutive kept commands, so a
/// `ROLLBACK TO` of a savepoint whose opening statement did not run fails (and the group
/// rolls back) rather than undoing the kept command before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    A,
    B,
}

impl Savepoint {
    /// The next command's savepoint and the statement that opens it, releasing the one
    /// left open (if any) in the same statement.
    fn next(open: Option<Savepoint>) -> (Savepoint, Opening) {
        match open {
            None => (Savepoint::A, Opening::A),
            Some(Savepoint::A) => (Savepoint::B, Opening::BAfterA),
            Some(Savepoint::B) => (Savepoint::A, Opening::AAfterB),
        }
    }

    fn undo(self) -> &'static str {
        match self {
            Savepoint::A => "ROLLBACK TO command_a; RELEASE command_a",
            Savepoint::B => "ROLLBACK TO command_b; RELEASE command_b",
        }
    }
}

/// The statement that opens a command's savepoint: one of three fixed texts, so a
/// statement that carries it in front ([`crate::Carried`]) has three prefixed texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// The group's first savepoint.
    A,
    /// After a kept command in `command_a`.
    BAfterA,
    /// After a kept command in `command_b`.
    AAfterB,
}

impl Opening {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Opening::A => "SAVEPOINT command_a",
            Opening::BAfterA => "RELEASE command_a; SAVEPOINT command_b",
            Opening::AAfterB => "RELEASE command_b; SAVEPOINT command_a",
        }
    }
}

/// How a queued command left the group's transaction.
struct Ran {
    deliver: Deliver,
    /// It could not undo its writes: the transaction is unusable and the group rolls back.
    poisoned: bool,
    /// The savepoint still open (a command kept its writes): the next command releases it
    /// as it opens its own, in the same statement, and the commit releases the last one.
    /// That saves a round trip to the connection's thread per command.
    open: Option<Savepoint>,
}
/// A queued command: runs in the group's transaction (told which savepoint is open) and
/// answers how it left it.
type Job = Box<dyn for<'t> FnOnce(&'t mut Tx, Option<Savepoint>) -> BoxFuture<'t, Ran> + Send>;

/// The SQLite group writer's queue.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::UnboundedSender<Job>,
}

impl GroupWriter {
    /// Starts the writer task over `store` (which must be the SQLite store it belongs to).
    pub(crate) fn start(pool: sqlx::SqlitePool, checkpointer: crate::checkpoint::Checkpointer) -> GroupWriter {
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
            runtime.block_on(writer_loop(pool, rx, checkpointer));
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the group writer thread; writes will fail");
        }
        GroupWriter { queue }
    }
}

async fn writer_loop(
    pool: sqlx::SqlitePool,
    mut rx: mpsc::UnboundedReceiver<Job>,
    checkpointer: crate::checkpoint::Checkpointer,
) {
    while let Some(first) = rx.recv().await {
        let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(t) => Tx::Sqlite(crate::SqliteTx::new(t)),
            Err(e) => {
                // No transaction: the command cannot run. Fail it (and only it).
                fail_unrun(first, e.to_string());
                continue;
            }
        };
        let ran = first(&mut tx, None).await;
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
        checkpointer.committed(&pool).await;
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
            sqlx::query(sql).execute(t.conn().await?).await?;
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
        let job: Job = Box::new(move |tx: &mut Tx, previous: Option<Savepoint>| {
            Box::pin(async move {
                // The command's first statement opens its savepoint (see [`crate::SqliteTx`]).
                let (savepoint, open) = Savepoint::next(previous);
                if let Tx::Sqlite(t) = tx {
                    t.defer(open);
                }
                let (keep, result) = match command(tx).await {
                    Ok(Step::Commit(v)) => (true, Ok(v)),
                    Ok(Step::Rollback(v)) => (false, Ok(v)),
                    Err(e) => (false, Err(e)),
                };
                let (opened, unsure) = match tx {
                    Tx::Sqlite(t) => t.settle(),
                    Tx::Postgres(_) => (true, false),
                };
                let (end, open) = match (opened, keep) {
                    // It ran no statement: nothing to keep or undo, and the previous
                    // command's savepoint is still the open one.
                    (false, _) => (Ok(()), previous),
                    // It kept writes after the statement that opens its savepoint failed:
                    // whether they are inside a savepoint is unknown.
                    (true, true) if unsure => {
                        (Err(StoreError::GroupCommit("a command's savepoint could not be opened".to_owned())), None)
                    }
                    // Kept writes leave the savepoint open (see [`Ran::open`]).
                    (true, true) => (Ok(()), Some(savepoint)),
                    (true, false) => (raw(tx, savepoint.undo()).await, None),
                };
                let poisoned = end.is_err();
                let deliver: Deliver = Box::new(move |committed| {
                    let r = match (end, committed) {
                        (Err(e), _) => Err(E::from(e)),
                        (Ok(()), Err(reason)) if keep => Err(E::from(StoreError::GroupCommit(reason))),
                        (Ok(()), _) => result,
                    };
                    let _ = answer.send(r);
                });
                Ran { deliver, poisoned, open }
            })
        });
        writer.queue.send(job).map_err(|_| E::from(StoreError::GroupCommit("the writer has stopped".to_owned())))?;
        receive.await.unwrap_or_else(|_| {
            Err(E::from(StoreError::GroupCommit("the writer could not begin a transaction".to_owned())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Carried, DbConfig, on_tx};

    /// What a test command does in the group's transaction.
    #[derive(Debug, Clone, Copy)]
    enum Does {
        /// Inserts its key and keeps it.
        Keep,
        /// Inserts its key through the placement path (savepoint in the same call), keeps it.
        KeepCarried,
        /// Inserts its key, then asks to roll back.
        RollBack,
        /// Inserts its key, then fails.
        FailAfterWrite,
        /// Inserts a key that exists (the statement fails), through the placement path.
        FailCarried,
        /// Runs no statement and keeps.
        Nothing,
    }

    const ALL: [Does; 6] =
        [Does::Keep, Does::KeepCarried, Does::RollBack, Does::FailAfterWrite, Does::FailCarried, Does::Nothing];

    async fn insert(tx: &mut Tx, key: &str, carried: bool) -> Result<()> {
        const SQL: &str = "INSERT INTO group_test (k) VALUES ($1)";
        static CARRIED: Carried = Carried::new(|| SQL.to_owned());
        match tx {
            Tx::Sqlite(t) if carried => {
                let (sql, conn) = t.prefixed(&CARRIED);
                let done = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).execute(conn).await;
                done.inspect_err(|_| t.failed())?;
            }
            _ => on_tx!(tx, |conn| {
                sqlx::query(SQL).bind(key).execute(conn).await?;
            }),
        }
        Ok(())
    }

    /// Commands of every kind, interleaved in groups: exactly the kept ones' writes are in
    /// the database afterwards, and each command's caller gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_command_keeps_or_undoes_only_its_own_writes() -> Result<()> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("allot-group-{}-{nanos}", std::process::id()));
        let store = Store::open(&DbConfig::Sqlite { path: dir.join("allot.db") }).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        on_tx!(&mut tx, |conn| {
            sqlx::query("CREATE TABLE group_test (k TEXT PRIMARY KEY)").execute(&mut *conn).await.unwrap();
            sqlx::query("INSERT INTO group_test (k) VALUES ('taken')").execute(conn).await.unwrap();
        });
        tx.commit().await.unwrap();

        let mut tasks = Vec::new();
        for i in 0..600usize {
            // A varying order, so every kind follows every other in some group.
            let does = ALL[(i * 7 + i / 6) % ALL.len()];
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("k{i}");
                let answer = store
                    .write(move |tx| {
                        Box::pin(async move {
                            match does {
                                Does::Keep => insert(tx, &key, false).await.map(|()| Step::Commit(true)),
                                Does::KeepCarried => insert(tx, &key, true).await.map(|()| Step::Commit(true)),
                                Does::RollBack => insert(tx, &key, false).await.map(|()| Step::Rollback(false)),
                                Does::FailAfterWrite => {
                                    insert(tx, &key, false).await?;
                                    Err(StoreError::BadConfig("the command failed".to_owned()))
                                }
                                Does::FailCarried => insert(tx, "taken", true).await.map(|()| Step::Commit(true)),
                                Does::Nothing => Ok(Step::Commit(false)),
                            }
                        })
                    })
                    .await;
                (i, does, answer)
            }));
        }
        let mut expected = vec!["taken".to_owned()];
        for task in tasks {
            let (i, does, answer) = task.await.unwrap();
            match does {
                Does::Keep | Does::KeepCarried => {
                    assert!(matches!(answer, Ok(true)), "{i} {does:?}: {answer:?}");
                    expected.push(format!("k{i}"));
                }
                Does::RollBack => assert!(matches!(answer, Ok(false)), "{i} {does:?}: {answer:?}"),
                Does::Nothing => assert!(matches!(answer, Ok(false)), "{i} {does:?}: {answer:?}"),
                Does::FailAfterWrite | Does::FailCarried => assert!(answer.is_err(), "{i} {does:?}: {answer:?}"),
            }
        }
        expected.sort();
        let mut tx = store.begin().await.unwrap();
        let stored: Vec<String> = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar("SELECT k FROM group_test ORDER BY k").fetch_all(conn).await.unwrap()
        });
        drop(tx);
        assert_eq!(stored, expected);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    /// A statement's texts are made once, each by content: the text alone, and after each
    /// savepoint statement in the same call.
    #[test]
    fn a_carried_statement_has_one_text_per_pending_savepoint() {
        static FIRST: Carried = Carried::new(|| "SELECT 1".to_owned());
        static SECOND: Carried = Carried::new(|| "SELECT 2".to_owned());
        let cases = [
            (None, "SELECT 1"),
            (Some(Opening::A), "SAVEPOINT command_a; SELECT 1"),
            (Some(Opening::BAfterA), "RELEASE command_a; SAVEPOINT command_b; SELECT 1"),
            (Some(Opening::AAfterB), "RELEASE command_b; SAVEPOINT command_a; SELECT 1"),
        ];
        for (pending, text) in cases {
            assert_eq!(FIRST.text(pending), text);
            assert!(std::ptr::eq(FIRST.text(pending), FIRST.text(pending)), "built once, not per call");
            assert_eq!(SECOND.text(pending), text.replace("SELECT 1", "SELECT 2"));
        }
    }
}
