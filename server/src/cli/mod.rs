//! What the command-line tools share: an HTTP client for the REST API
//! ([`client`]), following a job with a progress bar ([`progress`]), and the
//! server's own restore modes (`--restore-*`, [`restore`]).

pub mod browse;
pub mod client;
pub mod progress;
pub mod restore;

pub use progress::{cancel_on_ctrl_c, counting_bar, follow_with_progress, human_bytes, wait_for_key};
