//! A fresh database per test: a SQLite file in a temporary directory, or a PostgreSQL
//! schema of its own; both removed when the test ends, whether it passed or not.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use allot_store::{DbConfig, Store};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store, and a connection of the test's own to the same database for SQL the
/// interface does not offer (counting rows, provoking a `CHECK`). Derefs to the [`Store`].
#[derive(Debug, Clone)]
pub struct Db {
    pub store: Store,
    raw: Raw,
}

#[derive(Debug, Clone)]
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl std::ops::Deref for Db {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self.raw {
            Raw::Sqlite(_) => Backend::Sqlite,
            Raw::Postgres(_) => Backend::Postgres,
        }
    }

    /// The rows of `table`, counted.
    pub async fn rows(&self, table: &str) -> i64 {
        self.number(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// The one integer `sql` selects.
    pub async fn number(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `sql` outside the store (no transaction of the store's may be open on SQLite).
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        Ok(match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        })
    }

    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.raw {
            Raw::Sqlite(p) => Some(p),
            Raw::Postgres(_) => None,
        }
    }

    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.raw {
            Raw::Sqlite(_) => None,
            Raw::Postgres(p) => Some(p),
        }
    }
}

/// The PostgreSQL URL, or `None` (and a note) when the PostgreSQL runs are skipped.
/// Panics when `ALLOT_REQUIRE_SERVICES=1` and there is no URL: CI must not pass by
/// skipping half the suite.
pub fn postgres_url() -> Option<String> {
    match std::env::var("ALLOT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("ALLOT_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("ALLOT_REQUIRE_SERVICES=1 but ALLOT_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("skipped: ALLOT_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// Where one test's database lives, to remove it afterwards.
pub enum Place {
    Sqlite { dir: std::path::PathBuf },
    Postgres { url: String, schema: String },
}

/// A name no other test of any process running now uses: the process id, a counter, and
/// as much of the test's name as fits a PostgreSQL identifier (63 bytes).
fn unique_name(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut name = format!("conf_{}_{}_{test}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    name.truncate(63);
    name
}

/// A fresh, migrated database on `backend`; `None` when PostgreSQL is skipped.
pub async fn open(backend: Backend, test: &str) -> Option<(Db, Place)> {
    let name = unique_name(test);
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(name);
            let _ = std::fs::remove_dir_all(&dir);
            let path = dir.join("allot.db");
            let store = Store::open(&DbConfig::Sqlite { path: path.clone() }).await.unwrap();
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .foreign_keys(true)
                .busy_timeout(std::time::Duration::from_secs(5));
            let raw = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            Some((Db { store, raw: Raw::Sqlite(raw) }, Place::Sqlite { dir }))
        }
        Backend::Postgres => {
            let url = postgres_url()?;
            let store =
                Store::open(&DbConfig::Postgres { url: url.clone(), schema: Some(name.clone()) }).await.unwrap();
            let raw = postgres_pool(&url, &name).await;
            Some((Db { store, raw: Raw::Postgres(raw) }, Place::Postgres { url, schema: name }))
        }
    }
}

/// Connections to `url` whose `search_path` is `schema`.
pub async fn postgres_pool(url: &str, schema: &str) -> PgPool {
    let options: PgConnectOptions = url.parse().unwrap();
    PgPoolOptions::new().max_connections(2).connect_with(options.options([("search_path", schema)])).await.unwrap()
}

/// Removes a test's database.
pub async fn remove(place: Place) {
    match place {
        Place::Sqlite { dir } => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Place::Postgres { url, schema } => {
            let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// Runs one test body on a fresh database of `backend`, then closes and removes the
/// database — also when the body panics (the panic is passed on afterwards).
pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((db, place)) = open(backend, test).await else { return };
    let outcome = tokio::spawn(body(db.clone())).await;
    db.store.close().await;
    match &db.raw {
        Raw::Sqlite(p) => p.close().await,
        Raw::Postgres(p) => p.close().await,
    }
    remove(place).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("{test}: {e}"),
        }
    }
}
