//! Persistence for Allot: one transaction-first interface with two implementations,
//! embedded SQLite (the default: one file, zero set-up) and PostgreSQL (scale-out: many
//! stateless servers share one database).
//!
//! What it owns: the schema and migrations of both backends, the SQL, and the mapping
//! between rows and core types. What it must never do: decide business rules. Use cases
//! (in `allot-app`) open a [`Tx`], read what they need, compute the change with the pure
//! core, and write it back, all in one transaction.
//!
//! Key invariant: the database repeats the core's invariants as `CHECK` constraints (no
//! negative counts, valid statuses), so a bug above this layer cannot corrupt stock.
//!
//! Dispatch over the backend happens here, once, through enums ([`Store`], [`Tx`]).
//! Statements whose SQL is the same on both backends are written once and expanded for
//! each by the `on_tx!` macro; statements that differ (row locking) are written per
//! backend, and those reading rows from a JSON array parameter (bulk input) are generated
//! for each from one column list per table (`json_rows`).

mod accuracy;
mod changes;
mod checkpoint;
mod documents;
mod error;
mod events;
mod group;
mod idempotency;
mod json_rows;
mod keys;
mod nodes;
mod orders;
mod policies;
mod positions;
mod reservations;
mod rows;
mod supply;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

pub use accuracy::{DeliveryObservation, LaneCount};
pub use changes::{CHANGE_PAYLOAD_MAX, ChangeFeed, FeedEvent};
pub use documents::{DocumentKind, StoredDocument};
pub use error::StoreError;
pub use events::{ContactRow, EventCursor, EventFilter, NewEvent, StoredEvent};
pub use group::{BoxFuture, GROUP_MAX, Step};
pub use idempotency::{Claim, IDEMPOTENCY_STALE_CLAIM_MS, IDEMPOTENCY_TTL_MS, StoredAnswer};
pub use keys::StoredKey;
pub use orders::{
    AllocationRow, AssignedWork, AtOnce, FirstPlacement, FulfillmentOrderEntry, FulfillmentOrderFilter,
    FulfillmentOrderRow, OrderFilter, OrderLineRow, OrderSummary, ShipmentRow, SourcingAttemptRow, StoredOrder,
};
pub use policies::StoredPolicy;
pub use positions::{StockMove, StoredPosition};
pub use reservations::{ReservationLineRow, StoredReservation};
pub use rows::{StoredItem, StoredNode};
pub use supply::{BackorderedLine, CommitmentRow, LineExpectation, SupplyFilter, SupplyRow};
pub use webhooks::{DeliveryCounts, DeliveryRow, StoredWebhook};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Connections kept open to PostgreSQL per server process.
pub const PG_MAX_CONNECTIONS: u32 = 16;
/// PostgreSQL connections for one-statement order placement (each is held for one round
/// trip, so a few carry thousands of orders a second).
pub const PG_PLACEMENT_CONNECTIONS: u32 = 8;
/// Read connections to the SQLite file (the write connection is separate and single).
pub const SQLITE_READ_CONNECTIONS: u32 = 4;
/// How long a SQLite statement waits for a lock held by another process before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database, and where.
#[derive(Debug, Clone)]
pub enum DbConfig {
    /// A SQLite file; created with its parent directory if missing.
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL URL. `schema`, when set, is created if missing and used as the
    /// `search_path` (tests use one schema each).
    Postgres { url: String, schema: Option<String> },
}

/// The database behind Allot.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// SQLite: one write connection (SQLite admits one writer at a time; queuing writers in
/// the pool instead of in SQLite's busy loop is fairer and never deadlocks) and a few
/// read connections that see committed data through WAL.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// `None` when group commit is switched off (`ALLOT_SQLITE_GROUP_COMMIT=off`, for
    /// comparisons in benchmarks): then every write is its own transaction.
    group: Option<group::GroupWriter>,
    /// Checkpoints the WAL in the background (see `checkpoint.rs`); the write connection
    /// never does on its own. Held here so that it runs as long as the store and stops on
    /// [`Store::close`] (the group writer holds it too, to poke it after each commit).
    checkpointer: checkpoint::Checkpointer,
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections for [`Store::place_order_at_once`] only: they plan with generic plans
    /// (`plan_cache_mode=force_generic_plan`; that statement looks rows up by key, and
    /// re-planning it per execution was a fifth of PostgreSQL's time), which other
    /// queries — listings with optional filters — should not be forced into.
    placement: PgPool,
}

/// An open write transaction. Dropping it without [`Tx::commit`] rolls it back.
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A SQLite write transaction. The group writer may leave the statement that opens a
/// command's savepoint pending ([`group`]): the command's first statement runs it, either
/// in front of its own SQL in one call ([`SqliteTx::prefixed`], placement does) or as a
/// call of its own ([`SqliteTx::conn`], everything else). Each call is a round trip to the
/// connection's thread, the cost that bounds SQLite's write rate.
pub struct SqliteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    /// The savepoint statement still to run before anything else.
    pending: Option<group::Opening>,
    /// The last [`SqliteTx::prefixed`] statement carried the pending savepoint.
    carried: bool,
    /// A statement carrying the pending savepoint failed: whether the savepoint is open is
    /// unknown, so the command may not keep its writes (the group writer checks).
    unsure: bool,
}

impl SqliteTx {
    fn new(tx: sqlx::Transaction<'static, Sqlite>) -> SqliteTx {
        SqliteTx { tx, pending: None, carried: false, unsure: false }
    }

    /// The connection, with a pending savepoint statement run first.
    pub(crate) async fn conn(&mut self) -> Result<&mut sqlx::SqliteConnection> {
        self.carried = false;
        if let Some(opening) = self.pending.take()
            && let Err(e) = sqlx::query(opening.sql()).execute(&mut *self.tx).await
        {
            self.unsure = true;
            return Err(e.into());
        }
        Ok(&mut *self.tx)
    }

    /// `sql` with the pending savepoint statement in front (taken: the caller must run the
    /// answer as its next statement, and report a failure with [`SqliteTx::failed`]), and the
    /// connection.
    pub(crate) fn prefixed(&mut self, sql: &'static Carried) -> (&'static str, &mut sqlx::SqliteConnection) {
        let pending = self.pending.take();
        self.carried = pending.is_some();
        (sql.text(pending), &mut *self.tx)
    }

    /// A statement from [`SqliteTx::prefixed`] failed.
    pub(crate) fn failed(&mut self) {
        self.unsure |= self.carried;
    }

    /// Leaves the statement opening a savepoint to run before the next statement.
    pub(crate) fn defer(&mut self, opening: group::Opening) {
        (self.pending, self.carried, self.unsure) = (Some(opening), false, false);
    }

    /// After a command: whether the deferred statement ran (or was sent and failed), and
    /// whether that is unknown. Clears what is left pending.
    pub(crate) fn settle(&mut self) -> (bool, bool) {
        let ran = self.pending.take().is_none();
        (ran, self.unsure)
    }
}

/// A statement that may carry a pending savepoint statement in front of it
/// ([`SqliteTx::prefixed`]): its text alone and after each of the three savepoint
/// statements ([`group::Opening`]), made once. Declared as a `static` per statement, so each
/// text is built once and sqlx reuses its prepared statement.
pub(crate) struct Carried {
    build: fn() -> String,
    texts: std::sync::OnceLock<(String, [String; 3])>,
}

impl Carried {
    pub(crate) const fn new(build: fn() -> String) -> Carried {
        Carried { build, texts: std::sync::OnceLock::new() }
    }

    /// The text, after `pending` when one is given.
    pub(crate) fn text(&self, pending: Option<group::Opening>) -> &str {
        use group::Opening;
        let (alone, [a, b_after_a, a_after_b]) = self.texts.get_or_init(|| {
            let sql = (self.build)();
            let after = |opening: Opening| format!("{}; {sql}", opening.sql());
            let carried = [after(Opening::A), after(Opening::BAfterA), after(Opening::AAfterB)];
            (sql, carried)
        });
        match pending {
            None => alone,
            Some(Opening::A) => a,
            Some(Opening::BAfterA) => b_after_a,
            Some(Opening::AAfterB) => a_after_b,
        }
    }
}

/// Runs the same statement code against whichever backend a [`Tx`] or [`Store`] holds.
/// The body is compiled once per backend, so the SQL must be valid on both (positional
/// `$N` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING` are).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = t.conn().await?;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

macro_rules! on_read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::Store::Sqlite(s) => {
                let $pool = &s.read;
                $body
            }
            $crate::Store::Postgres(s) => {
                let $pool = &s.pool;
                $body
            }
        }
    };
}
pub(crate) use on_read;

impl Store {
    /// Connects (creating the SQLite file if needed) and runs pending migrations.
    pub async fn open(config: &DbConfig) -> Result<Store> {
        let store = match config {
            DbConfig::Sqlite { path } => Store::Sqlite(open_sqlite(path).await?),
            DbConfig::Postgres { url, schema } => Store::Postgres(open_postgres(url, schema.as_deref()).await?),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens an existing database to read only: no migrations, no background work, and
    /// every write refused by the database itself. For audits that count what a running
    /// server's database holds (tests, operator tools) without being able to change it.
    pub async fn open_reader(config: &DbConfig) -> Result<Store> {
        Ok(match config {
            DbConfig::Sqlite { path } => Store::Sqlite(open_sqlite_reader(path).await?),
            DbConfig::Postgres { url, schema } => Store::Postgres(open_postgres_reader(url, schema.as_deref()).await?),
        })
    }

    async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => sqlx::migrate!("./migrations/sqlite").run(&s.write).await?,
            Store::Postgres(s) => sqlx::migrate!("./migrations/postgres").run(&s.pool).await?,
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes cannot fail
    /// half-way on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(s) => Tx::Sqlite(SqliteTx::new(s.write.begin_with("BEGIN IMMEDIATE").await?)),
            Store::Postgres(s) => Tx::Postgres(s.pool.begin().await?),
        })
    }

    /// Whether the database answers (readiness probe).
    pub async fn ping(&self) -> Result<()> {
        on_read!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Whether [`Store::close`] has been called.
    pub fn is_closed(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.write.is_closed(),
            Store::Postgres(s) => s.pool.is_closed(),
        }
    }

    /// Closes every connection, waiting for those in use to be returned. On SQLite the
    /// checkpointer stops first, so that the last close (the write connection's)
    /// checkpoints the WAL into the main file and removes it.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => {
                s.checkpointer.stop().await;
                s.read.close().await;
                s.write.close().await;
            }
            Store::Postgres(s) => {
                s.placement.close().await;
                s.pool.close().await;
            }
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.tx.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.tx.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

async fn open_sqlite(path: &Path) -> Result<SqliteStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_owned(), source })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Acknowledged means durable: FULL syncs the WAL on every commit.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Sub-journals (one per savepoint, so per group-commit command) in memory: as files
        // they cost a pwrite per page a command first touches (a tenth of the SQLite
        // thread's time in a placement profile).
        .pragma("temp_store", "memory")
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    // The write connection leaves checkpoints to the checkpointer (`checkpoint.rs`).
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(
            options
                .clone()
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", checkpoint::WAL_BYTES_KEPT.to_string()),
        )
        .await?;
    let checkpointer = checkpoint::Checkpointer::start(&options);
    let read =
        SqlitePoolOptions::new().max_connections(SQLITE_READ_CONNECTIONS).connect_with(options.read_only(true)).await?;
    let off = std::env::var("ALLOT_SQLITE_GROUP_COMMIT").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false"));
    let group = (!off).then(|| group::GroupWriter::start(write.clone(), checkpointer.clone()));
    Ok(SqliteStore { write, read, group, checkpointer })
}

/// A SQLite store that only reads: the file must exist, every connection is read-only (a
/// write fails), and nothing runs in the background.
async fn open_sqlite_reader(path: &Path) -> Result<SqliteStore> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let read = SqlitePoolOptions::new().max_connections(SQLITE_READ_CONNECTIONS).connect_with(options).await?;
    Ok(SqliteStore { write, read, group: None, checkpointer: checkpoint::Checkpointer::none() })
}

/// A PostgreSQL store whose transactions are read-only (`default_transaction_read_only`);
/// the schema must exist already.
async fn open_postgres_reader(url: &str, schema: Option<&str>) -> Result<PgStore> {
    let mut options = PgConnectOptions::from_str(url)?.options([("default_transaction_read_only", "on")]);
    if let Some(schema) = schema {
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
            return Err(StoreError::BadConfig(format!("schema name {schema:?} must be [A-Za-z0-9_]+")));
        }
        options = options.options([("search_path", schema)]);
    }
    let placement = PgPoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(options.clone());
    let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await?;
    Ok(PgStore { pool, placement })
}

async fn open_postgres(url: &str, schema: Option<&str>) -> Result<PgStore> {
    let mut options = PgConnectOptions::from_str(url)?;
    if let Some(schema) = schema {
        // A schema name is an identifier we quote; refuse anything that needs escaping.
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
            return Err(StoreError::BadConfig(format!("schema name {schema:?} must be [A-Za-z0-9_]+")));
        }
        let admin = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))).execute(&admin).await?;
        admin.close().await;
        options = options.options([("search_path", schema)]);
    }
    let placement = PgPoolOptions::new()
        .max_connections(PG_PLACEMENT_CONNECTIONS)
        .min_connections(0)
        .connect_lazy_with(options.clone().options([("plan_cache_mode", "force_generic_plan")]));
    let pool = PgPoolOptions::new().max_connections(PG_MAX_CONNECTIONS).connect_with(options).await?;
    Ok(PgStore { pool, placement })
}
