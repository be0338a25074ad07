//! Authentication and authorization: users (argon2id password hashes) and
//! API keys (`name/secret`, SHA-256 of a 256-bit random secret), each with a
//! role; studio sessions; which role each route needs.
//!
//! Credentials live in the system database's `internal` keyspace (never in
//! documents, so no listing or backup of documents exposes them).
//!
//! A server with no user and no API key runs **open** (development mode):
//! every request acts as an administrator. It refuses to start that way on a
//! non-loopback address (see `main.rs`).

pub mod access;
pub mod identity;
pub mod sessions;
pub mod users;

pub use access::{required_access, Access};
pub use identity::Identity;
pub use rookery_types::Role;
pub use users::{AuthError, Authenticator, MAX_CONCURRENT_HASHES};
