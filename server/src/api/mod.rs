//! The REST API (see `docs/reference.md`): one router for every client,
//! the studio included.
//!
//! The server root is the system database's base; `/databases/{db}` is a
//! named database's. Per-database routes are declared once and mounted at both.

pub mod auth;
pub mod body;
pub mod browse;
pub mod databases;
pub mod documents;
pub mod error;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod monitor;
pub mod notifications;
pub mod openapi;
pub mod router;
pub mod routes;
pub mod smuggler;
pub mod tasks;

pub use error::ApiError;
pub use extract::{AppState, Db};
pub use router::{is_api_path, router, unknown_path, API_PREFIXES};
