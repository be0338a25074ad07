//! Rookery's vocabulary: the REST API's request, answer and status types,
//! the error codes and the one HTTP status each is answered with, shared by
//! the engine, the HTTP server, the command-line tools and the studio.
//!
//! No UI, no HTTP framework and no runtime here: serde, and `utoipa`
//! schemas behind the `openapi` feature. Field names are PascalCase on the
//! wire (see `docs/reference.md`). Keep every type that crosses HTTP here,
//! so that the server and its clients cannot drift.

mod auth;
mod backup;
mod browse;
mod documents;
mod errors;
mod jobs;
mod monitor;
mod names;
mod restore;
mod tasks;
mod text;

pub use auth::*;
pub use backup::*;
pub use browse::*;
pub use documents::*;
pub use errors::*;
pub use jobs::*;
pub use monitor::*;
pub use names::*;
pub use restore::*;
pub use tasks::*;
pub use text::*;
