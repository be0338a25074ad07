//! The document store: one fjall database per Rookery database, and the
//! catalog that holds them. See [`store`] for the keyspaces and their invariants.

pub mod catalog;
pub mod digest;
pub mod drop_behind;
pub mod error;
pub mod files;
pub mod internal;
pub mod journal;
pub mod json;
pub mod record;
pub mod store;
pub(crate) mod tally;

pub use catalog::{Catalog, DatabaseHandle, JobHold, RestoreReservation};
pub use digest::{ContentDigest, DigestKind};
pub use error::StorageError;
pub use record::Record;
pub use store::{DocumentStore, Durability, Foreground, PutOutcome, ReadBack, StoreSnapshot};
