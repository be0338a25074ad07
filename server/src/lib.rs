#![recursion_limit = "512"]
//! Rookery: a document database server with online backup and verified restore.
//!
//! [`Rookery`] is the engine: storage, backup, restore, import and export,
//! jobs, tasks and users. It builds without the web (`--no-default-features`):
//! the REST API ([`api::router`](fn@api::router), feature `http`) and the studio (`web`,
//! feature `ssr`) are thin layers over it, and the binaries thinner still.
//! A Rust program embeds the engine directly; `examples/embedded.rs` backs a
//! database up, restores it under another name and restores the system
//! database offline, all without HTTP.

#[cfg(feature = "http")]
pub mod api;
pub mod auth;
pub mod backup;
pub mod browse;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod durable;
pub mod engine;
pub mod failpoint;
pub mod jobs;
pub mod monitor;
pub mod notify;
pub mod paths;
pub mod process;
mod recovery;
pub mod restore;
pub mod smuggler;
pub mod storage;
pub mod tasks;
#[cfg(feature = "ssr")]
pub mod web;

pub use backup::BackupHandle;
pub use engine::{Rookery, MAX_CONCURRENT_EXPORTS};
pub use restore::RestoreHandle;
