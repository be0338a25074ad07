//! Online backup: full and incremental sets of a database at one point in
//! time, written while the database keeps serving. The format is described
//! in `README.md` beside this file.

pub mod chain_memory;
pub mod compact;
pub mod concurrent;
pub mod copy;
pub mod copy_sets;
pub mod error;
pub mod filter;
pub mod format;
pub mod frames;
pub mod handle;
pub mod job;
pub mod kept_hashes;
pub mod location;
pub mod logical;
pub mod object;
pub mod object_lock;
pub mod object_requests;
pub mod prepare;
pub mod sealed;
pub mod shared_tables;
pub mod snapshot;
pub mod target;

pub use error::BackupError;
pub use format::SetKind;
pub use handle::BackupHandle;
pub use prepare::{prepare, BackupOptions, BackupSummary, BaseSet, Pace, PreparedBackup, YieldToWrites, Yielding};
