//! Restore: a backup chain into a new database, verified before anything
//! becomes visible.
//!
//! The order of operations, and why nothing half-made is ever served:
//! 1. [`plan`](fn@plan) reads the location, picks the newest complete chain (or the one
//!    ending at `RestoreUpTo`) and verifies every link and every file's SHA-256.
//! 2. The catalog reserves the name and the location (a registry entry in the
//!    `Restoring` state): the name is taken, but no database is served.
//! 3. [`build`](fn@build) creates the database at the destination when the restore
//!    makes that folder, else (an empty folder given by the operator) in a
//!    staging folder beside it: bulk ingestion of the full set (sorted
//!    streams; the two halves of its documents files side by side), merged
//!    with the incrementals' states as it streams (`chain`), or each
//!    incremental replayed in order, deletions first (sets before format 4).
//!    Every file is hashed again while it streams, so a file changed since
//!    step 1 fails the restore.
//! 4. The folder is fsynced (and a staging folder renamed to the destination).
//! 5. The catalog marks the entry `Ready` and serves the database (the store
//!    the build left open, or opened again after a move): only now is it visible.
//!
//! A failure at any step removes the staging folder, the destination if the
//! restore made it, and the reservation. A crash does the same at the next
//! start, since the registry entry is still `Restoring`.

pub mod build;
mod chain;
pub mod error;
pub mod job;
pub mod plan;
pub mod prove;
pub(crate) mod read;
mod stream;
pub mod system;
mod write_behind;

pub use build::{build, build_open, move_into_place, settle_in_place, Progress, RestoreSummary};
pub use error::RestoreError;
pub use job::RestoreHandle;
pub use plan::{check_free_space, choose_chain, plan, ChainChoice, RestorePlan};
pub use prove::prove_chain;
pub use system::{restore_system_database, SystemRestore};
