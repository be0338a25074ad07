//! Jobs: the answer that starts one, and the status document it keeps.

use serde::{Deserialize, Serialize};

/// Answer (202) of every long-running job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct JobAccepted {
    pub status_document: String,
}

/// Severity of a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Information,
    Warning,
    Error,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct StatusMessage {
    pub timestamp: String,
    pub message: String,
    pub severity: Severity,
}

/// Counters of a running job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct JobProgress {
    pub documents_done: u64,
    pub documents_total: u64,
    pub bytes_written: u64,
    pub percent: f64,
}

impl JobProgress {
    /// Recomputes `Percent` from the counters (100 when there is nothing to do).
    pub fn update_percent(&mut self) {
        self.percent = if self.documents_total == 0 {
            100.0
        } else {
            let p = self.documents_done as f64 * 100.0 / self.documents_total as f64;
            (p.min(100.0) * 10.0).round() / 10.0
        };
    }
}

/// The status document of a backup, restore or import/export job
/// (`Raven/Backup/Status`, `Raven/Restore/Status`, `Raven/Smuggler/Status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStatus {
    pub is_running: bool,
    pub started: Option<String>,
    pub completed: Option<String>,
    pub success: bool,
    pub backup_location: Option<String>,
    /// Backups: whether the set is incremental.
    pub incremental: bool,
    /// Backups: the set being written; restores: the newest set applied.
    pub set_id: Option<String>,
    /// Restores: the database being restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    pub progress: JobProgress,
    pub messages: Vec<StatusMessage>,
    pub error: Option<String>,
    /// The stable code of `Error` (for example `ChecksumMismatch`).
    pub error_code: Option<String>,
    /// Selective restores: documents written, left as they were (`Skip`),
    /// and not in the backup at the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found: Option<u64>,
    /// Copies: the location copied from (`BackupLocation` is the destination),
    /// the sets copied so far, and those the destination already held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets_copied: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets_present: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_with_pascal_case() {
        let status = JobStatus { is_running: true, ..Default::default() };
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["IsRunning"], true);
        assert!(json.get("Progress").is_some());
        let back: JobStatus = serde_json::from_value(json).expect("parses");
        assert_eq!(back, status);
    }

    #[test]
    fn percent() {
        let mut p = JobProgress { documents_done: 1, documents_total: 3, ..Default::default() };
        p.update_percent();
        assert_eq!(p.percent, 33.3);
        p.documents_total = 0;
        p.update_percent();
        assert_eq!(p.percent, 100.0);
    }
}
