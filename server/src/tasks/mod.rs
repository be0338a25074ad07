//! Backup tasks: scheduled full and incremental backups of a database, with
//! retention, run now, and a status that says what ran and what runs next.
//!
//! A task lives in its database's internal keyspace (`tasks/<name>`), with
//! its state (what ran, when the schedules were last looked at). Its secrets
//! (a backup passphrase or key) are sealed with the server's master key and
//! never returned. The tasks of the system database travel with its backups.
//!
//! The scheduler ([`scheduler`]) looks at every task a few times a second:
//! a schedule with an occurrence since it last looked makes its run due (one
//! run however many occurrences passed while the server was stopped; a full
//! wins over an incremental due at the same time); a due run waits for a
//! running backup and then runs (at most one pending per task). Each run is
//! an ordinary backup into the task's location (full when the location holds
//! no chain of the database), followed by the task's retention.

pub mod destination_state;
pub mod destinations;
pub mod drill;
pub mod error;
pub mod manage;
pub mod record;
pub mod retention;
pub mod runtime;
pub mod schedule;
pub mod scheduler;

pub use error::TaskError;
pub use manage::TaskRun;
pub use record::{StoredTask, TaskState, TASK_PREFIX};
pub use schedule::{describe_schedule, Schedules};
