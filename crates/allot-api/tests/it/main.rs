//! The API's integration tests, one binary: each module starts the real server on port 0
//! with a fresh database per test, on SQLite always and on PostgreSQL when
//! `ALLOT_TEST_DATABASE_URL` is set (see `common`). One binary instead of one per file:
//! each would link the whole server, which was most of CI's build time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

mod api;
mod demo;
mod events;
mod fulfillment;
mod holds;
mod interleavings;
mod nats;
mod orders;
mod promising;
mod replicas;
mod reservations;
mod supply;
mod webhooks;
