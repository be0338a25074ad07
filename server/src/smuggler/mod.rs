//! Import and export ("the smuggler"): a portable, streamed `.rookerydump`
//! to move documents between servers and versions. The format is in
//! `README.md` beside this file.
//!
//! Both directions stream in constant memory: export reads a snapshot and
//! writes compressed lines as it goes; import reads a line at a time and
//! writes in batches of [`IMPORT_BATCH`] documents.

pub mod dump;
pub mod job;

pub use dump::{
    export, import, DumpHeader, DumpMetadata, DumpTrailer, ImportSummary, SmugglerError, DUMP_FORMAT_VERSION, IMPORT_BATCH,
    IMPORT_BATCH_BYTES,
};
pub use job::ImportHandle;
