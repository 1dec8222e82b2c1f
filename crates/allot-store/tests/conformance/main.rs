//! The store's conformance suite: what `allot-store` promises its callers, checked on both
//! backends with one test body each.
//!
//! Every test is written once, as `async fn name(store: &Store)` — or `db: &Db` when it
//! reaches past the interface with SQL of its own, to count rows or to provoke a `CHECK` —
//! and [`conformance!`] runs it twice: against a fresh SQLite file in a temporary
//! directory, and against a fresh PostgreSQL schema (dropped afterwards) when
//! `ALLOT_TEST_DATABASE_URL` is set. Without it the PostgreSQL run prints
//! `skipped: ALLOT_TEST_DATABASE_URL is not set` and passes, unless
//! `ALLOT_REQUIRE_SERVICES=1` (CI) makes a missing URL a failure.
//!
//! Tests are deterministic: fixed times as integers, fixed ids, no sleeps. Where two
//! transactions must interleave (PostgreSQL row locks), a bounded `timeout` turns a
//! statement that blocks when it should not into a failure instead of a hang.
//!
//! `schema.rs` is the one test that needs both backends at once: the two migrated schemas
//! must describe the same tables, columns, nullability and status values.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod harness;

mod catalog;
mod events;
mod idempotency;
mod listings;
mod orders;
mod positions;
mod reservations;
mod schema;
mod supply;
mod webhooks;

/// Runs each named `async fn` (taking `&Store` or `&Db`) of the calling module as two
/// tests, `<name>::sqlite` and `<name>::postgres`. `postgres_only:` names tests whose
/// subject exists on PostgreSQL alone (concurrent write transactions, `SKIP LOCKED`): on
/// SQLite one write connection serialises every writer, so there is nothing to race.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::harness::run($crate::harness::Backend::Sqlite, stringify!($name), |db| async move {
                        super::$name(&db).await
                    })
                    .await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::harness::run($crate::harness::Backend::Postgres, stringify!($name), |db| async move {
                        super::$name(&db).await
                    })
                    .await;
                }
            }
        )+
    };
    (postgres_only: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn postgres() {
                    $crate::harness::run($crate::harness::Backend::Postgres, stringify!($name), |db| async move {
                        super::$name(&db).await
                    })
                    .await;
                }
            }
        )+
    };
}
pub(crate) use conformance;
