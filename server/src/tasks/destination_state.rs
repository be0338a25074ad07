//! What a task keeps of its other destinations, and what one copy into one
//! did: plain data, shared by the task's record, its runtime and the copies
//! (see [`super::destinations`]).

use serde::{Deserialize, Serialize};

/// What the task's record keeps of one destination, by location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationState {
    pub last_set_id: Option<String>,
    /// `Created` of that set.
    pub last_created: Option<String>,
    pub last_error: Option<String>,
    pub missing_sets: u64,
}

/// What one copy into a destination did.
pub struct CopyOutcome {
    pub state: DestinationState,
    /// What its retention deleted.
    pub deleted: Vec<String>,
}
