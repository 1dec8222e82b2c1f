//! The store's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid database configuration: {0}")]
    BadConfig(String),
    /// A row that does not parse into a valid domain value: the database was written by
    /// something other than Allot, or by a different version.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// A grouped write's transaction failed to commit (or never began).
    #[error("{0}")]
    GroupCommit(String),
}

impl StoreError {
    pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { table, detail: detail.to_string() }
    }

    /// Whether a unique constraint refused the write (e.g. an order's external id taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// Whether the error is a transient conflict between concurrent transactions
    /// (PostgreSQL serialization failure or deadlock, SQLite busy) worth one retry.
    pub fn is_retryable_conflict(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01" | "5" | "517"))
            }
            _ => false,
        }
    }
}
