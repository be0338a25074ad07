//! What the server tells its operators: Prometheus metrics (`GET /metrics`),
//! the protection overview (is every database protected right now?), and the
//! outcomes that become notifications (see [`crate::notify`]).
//!
//! How each backup, drill and restore ended is reported to the [`Monitor`]
//! ([`outcomes`]), which keeps the records the metrics and the overview read
//! ([`records`]) and emits the events. The overview ([`protection`]) and the
//! scrape ([`scrape`]) read the records and the tasks at the moment they are
//! asked, so nothing they show can be out of date.

pub mod metrics;
pub mod outcomes;
pub mod protection;
pub mod records;
pub mod scrape;

pub use metrics::Metrics;
pub use outcomes::Monitor;
pub use records::{BackupOutcome, RunKind, SetWritten};
