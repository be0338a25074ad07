//! What the command-line tools share: following a job with a progress bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::client::{follow_status, Client, ClientError};
use rookery_types::{JobStatus, Severity};

/// A bar for a job this process runs itself (offline modes): `[====] 12/40 {unit}`.
#[must_use]
pub fn counting_bar(unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!("[{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Follows a job's status document with a progress bar (hidden when stderr
/// is not a terminal), printing each new status message once.
///
/// # Errors
/// Transport errors or a timeout.
pub fn follow_with_progress(client: &Client, base: &str, doc_id: &str, limit: Duration) -> Result<JobStatus, ClientError> {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {pos}/{len} docs {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut printed = 0usize;
    let result = follow_status(client, base, doc_id, limit, &mut |status| {
        let p = &status.progress;
        bar.set_length(p.documents_total.max(p.documents_done));
        bar.set_position(p.documents_done);
        bar.set_message(format!("{} written", human_bytes(p.bytes_written)));
        for m in status.messages.iter().skip(printed) {
            let tag = match m.severity {
                Severity::Information => "info",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            bar.println(format!("[{tag}] {}", m.message));
        }
        printed = status.messages.len();
    });
    bar.finish_and_clear();
    result
}

/// `12.3 MB`.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    rookery_types::format_bytes(bytes)
}

/// Waits for a key press when stdin is a terminal (`--readkey`).
pub fn wait_for_key() {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprintln!("Press Enter to exit.");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// On the first Ctrl-C, asks the server to cancel the job this tool started
/// (`POST cancel_url`) and keeps following it, so the tool exits with the
/// job's end (`Canceled`); a second Ctrl-C exits at once.
pub fn cancel_on_ctrl_c(client: &Client, cancel_url: String) {
    let client = client.clone();
    let asked = std::sync::atomic::AtomicBool::new(false);
    let installed = ctrlc::set_handler(move || {
        if asked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCanceling the job (Ctrl-C again to leave it running and quit)…");
        if let Err(e) = client.post_json::<serde_json::Value>(&cancel_url, &serde_json::json!({})) {
            eprintln!("cannot cancel: {e}");
        }
    });
    if let Err(e) = installed {
        tracing::debug!(error = %e, "no Ctrl-C handler");
    }
}
