//! The `allot` binary's tests, one test binary: each module starts `allot` processes (the
//! CLI as an operator uses it; kill -9 in the middle of a load).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod crash;
