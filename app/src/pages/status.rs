//! The status panel of a long-running job (backup, restore), the polling
//! that keeps it fresh while the job runs, and small formatting helpers.

use std::time::Duration;

use leptos::prelude::*;

use crate::client::{format_bytes, get_json, send_json, ApiFailure, Method};
use rookery_types::{JobAccepted, JobProgress, JobStatus, StatusMessage};

/// A job's status document; `None` when no such job ever ran (404).
pub type StatusResult = Result<Option<JobStatus>, ApiFailure>;

/// How often a running job's status document is read again.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Reads a status document (`{base}/docs/Raven/Backup/Status`, ...).
///
/// # Errors
/// The request failed with anything but 404.
pub async fn fetch_status(path: String) -> StatusResult {
    match get_json::<JobStatus>(&path).await {
        Ok(status) => Ok(Some(status)),
        Err(e) if e.status == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a fetched status shows a running job.
pub fn is_running(result: &StatusResult) -> bool {
    matches!(result, Ok(Some(s)) if s.is_running)
}

/// While the job in `status` runs, reads it again every [`POLL_INTERVAL`] by
/// bumping `refresh` (a source of the resource), and calls `on_finished` when
/// a job has ended since the last read: one seen running, or a new one that
/// ended before it was ever read (small jobs end within milliseconds).
///
/// Works in the browser only: effects do not run during server-side rendering,
/// which shows the last known status.
pub fn poll_while_running(status: Resource<StatusResult>, refresh: RwSignal<u32>, on_finished: impl Fn(&JobStatus) + 'static) {
    let scheduled = StoredValue::new(false);
    // The effect's state: the last job read, as (Started, IsRunning).
    Effect::new(move |last: Option<Option<(Option<String>, bool)>>| {
        let last = last.flatten();
        let was_running = last.as_ref().is_some_and(|(_, running)| *running);
        // Tracking `refresh` keeps the polling going even if an answer equals the last one.
        refresh.track();
        let seen = match status.get() {
            Some(Ok(Some(s))) => {
                let is_new_job = last.as_ref().is_some_and(|(started, _)| *started != s.started);
                if !s.is_running && (was_running || is_new_job) {
                    on_finished(&s);
                }
                Some((s.started.clone(), s.is_running))
            }
            Some(Ok(None)) => Some((None, false)),
            // A failed read (server restarting, network) while a job ran: keep trying.
            Some(Err(_)) | None => last,
        };
        let running = seen.as_ref().is_some_and(|(_, running)| *running);
        if running && !scheduled.get_value() {
            scheduled.set_value(true);
            set_timeout(
                move || {
                    scheduled.try_set_value(false);
                    refresh.try_update(|v| *v = v.wrapping_add(1));
                },
                POLL_INTERVAL,
            );
        }
        seen
    });
}

/// A job form's submit button, disabled while a job runs or is being
/// started (`busy`), with a hint (`running_hint`) while one runs.
#[component]
pub fn StartJobActions(
    status: Resource<StatusResult>,
    busy: ReadSignal<bool>,
    text: &'static str,
    running_hint: &'static str,
) -> impl IntoView {
    view! {
        <div class="form-actions">
            <Transition fallback=move || view! { <button type="submit" class="primary" disabled=true>{text}</button> }>
                {move || Suspend::new(async move {
                    let running = is_running(&status.await);
                    view! {
                        <button type="submit" class="primary" disabled=move || running || busy.get()>{text}</button>
                        {running.then(|| view! { <span class="hint">{running_hint}</span> })}
                    }
                })}
            </Transition>
        </div>
    }
}

/// Which job a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Backup,
    Restore,
    Import,
    Compact,
    RestoreDocuments,
}

impl JobKind {
    fn noun(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Import => "import",
            Self::Compact => "compaction",
            Self::RestoreDocuments => "restore of documents",
        }
    }
}

/// A job's state as the badge shows it.
fn badge(status: Option<&JobStatus>) -> (&'static str, &'static str) {
    match status {
        None => ("idle", "No job yet"),
        Some(s) if s.is_running => ("running", "Running"),
        Some(s) if s.success => ("success", "Succeeded"),
        Some(_) => ("failed", "Failed"),
    }
}

fn title(kind: JobKind, status: &JobStatus) -> String {
    match kind {
        JobKind::Backup if status.incremental => "Incremental backup".to_string(),
        JobKind::Backup => "Full backup".to_string(),
        JobKind::Import => "Import".to_string(),
        JobKind::Compact => "Compaction".to_string(),
        JobKind::RestoreDocuments => "Restore of selected documents".to_string(),
        JobKind::Restore => match &status.database_name {
            Some(name) => format!("Restore of {name}"),
            None => "Restore".to_string(),
        },
    }
}

/// The status document of a job: badge, progress, facts, error and
/// messages, and a Cancel button while it runs (when `cancel` names the
/// route). The root is a region named after the job; only the badge is a
/// live `role="status"`, so a screen reader hears the job's state change
/// (running, succeeded, failed), not every progress tick.
#[component]
pub fn JobStatusPanel(
    kind: JobKind,
    status: Option<JobStatus>,
    /// Shown when no job ever ran.
    #[prop(into)]
    idle_text: String,
    /// A link shown when the job succeeded: `(href, text)`.
    success_link: Option<(String, String)>,
    /// The route that cancels the running job (`POST`).
    #[prop(optional)]
    cancel: Option<String>,
) -> impl IntoView {
    let label = match kind {
        JobKind::Backup => "Backup status",
        JobKind::Restore => "Restore status",
        JobKind::Import => "Import status",
        JobKind::Compact => "Compaction status",
        JobKind::RestoreDocuments => "Restore of documents status",
    };
    let (badge_class, badge_text) = badge(status.as_ref());
    let Some(s) = status else {
        return view! {
            <section class="status-panel" aria-label=label>
                <div class="status-head">
                    <span class=format!("status-badge {badge_class}") role="status">{badge_text}</span>
                    <span class="muted">{idle_text}</span>
                </div>
            </section>
        }
        .into_any();
    };

    let link = success_link.filter(|_| s.success && !s.is_running);
    let error = s.error.clone().map(|e| (s.error_code.clone(), e));
    let messages = s.messages.clone();
    let cancel = cancel.filter(|_| s.is_running);
    let (cancel_note, set_cancel_note) = signal(None::<String>);

    view! {
        <section class="status-panel" aria-label=label>
            <div class="status-head">
                <span class=format!("status-badge {badge_class}") role="status">{badge_text}</span>
                <span class="status-title">{title(kind, &s)}</span>
                {s.set_id.clone().map(|id| view! { <span class="mono muted">{id}</span> })}
                {link.map(|(href, text)| view! { <a class="button primary status-link" href=href>{text}</a> })}
                {cancel.map(|path| view! { <CancelJob kind path set_cancel_note/> })}
            </div>
            {move || cancel_note.get().map(|n| view! { <p class="muted">{n}</p> })}
            <ProgressBar kind progress=s.progress.clone() success=s.success running=s.is_running badge_class/>
            {error.map(|(code, text)| view! { <JobError code text/> })}
            <StatusFacts kind status=s/>
            <MessageList messages/>
        </section>
    }
    .into_any()
}

/// The Cancel button of a running job; `set_cancel_note` gets what came of it.
#[component]
fn CancelJob(kind: JobKind, path: String, set_cancel_note: WriteSignal<Option<String>>) -> impl IntoView {
    let label = format!("Cancel the {}", kind.noun());
    view! {
        <button
            type="button"
            class="danger-outline status-cancel"
            aria-label=label
            on:click=move |_| {
                let path = path.clone();
                leptos::task::spawn_local(async move {
                    let note = match send_json::<JobAccepted, ()>(Method::Post, &path, None).await {
                        Ok(_) => "Cancel requested; the job stops at its next step.".to_string(),
                        Err(e) => e.to_string(),
                    };
                    set_cancel_note.set(Some(note));
                });
            }
        >
            "Cancel"
        </button>
    }
}

/// A job's progress bar, with the percent and the documents done under it.
#[component]
fn ProgressBar(kind: JobKind, progress: JobProgress, success: bool, running: bool, badge_class: &'static str) -> impl IntoView {
    let percent = if success { 100.0 } else { progress.percent.clamp(0.0, 100.0) };
    let bar_class = match badge_class {
        "success" => "progress success",
        "failed" => "progress failed",
        _ => "progress",
    };
    let counts = if progress.documents_total > 0 || progress.documents_done > 0 {
        format!("{} of {}", format_count(progress.documents_done), documents(progress.documents_total))
    } else if running {
        "counting documents…".to_string()
    } else {
        "no documents".to_string()
    };
    view! {
        <div>
            <div
                class=bar_class
                role="progressbar"
                aria-label=format!("{} progress", kind.noun())
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=format!("{percent:.0}")
            >
                <div style=format!("width: {percent:.1}%")></div>
            </div>
            <div class="progress-line">
                <span class="progress-percent">{format!("{percent:.1}%")}</span>
                <span>{counts}</span>
            </div>
        </div>
    }
}

/// A failed job's error, with its code when it has one.
#[component]
fn JobError(code: Option<String>, text: String) -> impl IntoView {
    view! {
        <div class="banner banner-error status-error">
            <span>
                {code.map(|c| view! { <strong>{c}</strong> ": " })}
                {text}
            </span>
        </div>
    }
}

/// A job's facts: database, times, duration, bytes, backup location.
#[component]
fn StatusFacts(kind: JobKind, status: JobStatus) -> impl IntoView {
    let duration = match (&status.started, &status.completed) {
        (Some(a), Some(b)) => seconds_between(a, b).map(format_duration),
        _ => None,
    };
    let completed = match (&status.completed, status.is_running) {
        (_, true) => "still running".to_string(),
        (Some(c), false) => format_time(c),
        (None, false) => "—".to_string(),
    };
    let bytes_label = match kind {
        JobKind::Backup => "Bytes written",
        JobKind::Restore => "Data restored",
        JobKind::Import => "Bytes",
        JobKind::Compact => "Bytes written",
        JobKind::RestoreDocuments => "Bytes",
    };
    let counts = status.restored.map(|restored| (restored, status.skipped.unwrap_or(0), status.not_found.unwrap_or(0)));
    view! {
        <dl class="status-facts">
            {status.database_name.clone().map(|name| view! { <div><dt>"Database"</dt><dd>{name}</dd></div> })}
            <div><dt>"Started"</dt><dd>{status.started.as_deref().map(format_time).unwrap_or_else(|| "—".into())}</dd></div>
            <div><dt>"Completed"</dt><dd>{completed}</dd></div>
            {duration.map(|d| view! { <div><dt>"Duration"</dt><dd>{d}</dd></div> })}
            {match counts {
                Some((restored, skipped, not_found)) => view! {
                    <div><dt>"Restored"</dt><dd>{format_count(restored)}</dd></div>
                    <div><dt>"Skipped (held live)"</dt><dd>{format_count(skipped)}</dd></div>
                    <div><dt>"Not in the backup"</dt><dd>{format_count(not_found)}</dd></div>
                }.into_any(),
                None => view! { <div><dt>{bytes_label}</dt><dd>{format_bytes(status.progress.bytes_written)}</dd></div> }.into_any(),
            }}
            {status.backup_location.clone().map(|l| view! { <div class="wide"><dt>"Backup location"</dt><dd class="mono">{l}</dd></div> })}
        </dl>
    }
}

#[component]
fn MessageList(messages: Vec<StatusMessage>) -> impl IntoView {
    (!messages.is_empty()).then(|| {
        view! {
            <ol class="messages" aria-label="Messages">
                {messages
                    .into_iter()
                    .map(|m| {
                        let severity = format!("{:?}", m.severity);
                        view! {
                            <li>
                                <span class="time">{format_time(&m.timestamp)}</span>
                                <span class=format!("sev {severity}")>{severity.clone()}</span>
                                <span class="text">{m.message}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        }
    })
}

/// `1 document`, `1,200 documents`.
pub fn documents(n: u64) -> String {
    if n == 1 {
        "1 document".to_string()
    } else {
        format!("{} documents", format_count(n))
    }
}

/// `1234567` as `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An RFC 3339 UTC time (`2026-11-26T05:00:03.123Z`) as `2026-11-26 05:00:03 UTC`;
/// anything else as it is.
pub fn format_time(text: &str) -> String {
    match (parse_utc(text), text.split_once('T')) {
        (Some(_), Some((date, time))) => format!("{date} {} UTC", time.get(..8).unwrap_or(time)),
        _ => text.to_string(),
    }
}

/// Seconds from `a` to `b`, both RFC 3339 UTC times.
pub fn seconds_between(a: &str, b: &str) -> Option<f64> {
    Some(parse_utc(b)? - parse_utc(a)?).filter(|d| *d >= 0.0)
}

/// `3 ms`, `2.4 s`, `12 s`, `3 min 5 s`, `1 h 2 min`.
pub fn format_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else {
        let total = seconds.round() as u64;
        if total < 3600 {
            format!("{} min {} s", total / 60, total % 60)
        } else {
            format!("{} h {} min", total / 3600, (total % 3600) / 60)
        }
    }
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)`.
fn parse_utc(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once('T')?;
    let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00"))?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || !(0.0..61.0).contains(&second) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60) as f64 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_well() {
        assert_eq!(format_time("2026-11-26T05:00:03.123Z"), "2026-11-26 05:00:03 UTC");
        assert_eq!(format_time("yesterday"), "yesterday");
        assert_eq!(parse_utc("1970-01-02T00:00:00Z"), Some(86_400.0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        let d = seconds_between("2026-11-26T23:59:59.500Z", "2026-11-27T00:00:01.000Z").expect("a duration");
        assert!((d - 1.5).abs() < 1e-6);
        assert_eq!(seconds_between("2026-11-27T00:00:00Z", "2026-11-26T00:00:00Z"), None);
    }

    #[test]
    fn durations_and_counts_read_well() {
        assert_eq!(format_duration(0.002), "2 ms");
        assert_eq!(format_duration(2.42), "2.4 s");
        assert_eq!(format_duration(42.0), "42 s");
        assert_eq!(format_duration(185.0), "3 min 5 s");
        assert_eq!(format_duration(3720.0), "1 h 2 min");
        assert_eq!(documents(1), "1 document");
        assert_eq!(documents(2000), "2,000 documents");
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }
}
