//! The Protection page, the studio's front page for an administrator: is
//! every database protected right now? Each database with its newest
//! restorable point and its state against its tasks' schedules (a word and
//! a colour: Ok, Late, Stale, Failed, Unprotected), its tasks, the last
//! drill, and a chart of its last 30 sets (duration and size).

use std::time::Duration;

use leptos::prelude::*;

use crate::client::{encode_query, format_bytes, get_json};
use rookery_types::{BackupListing, BackupSetInfo, DatabaseProtection, ProtectionOverview, ProtectionState, TaskProtection};

/// How often the page reads the overview again.
const REFRESH: Duration = Duration::from_secs(15);
/// Sets the chart shows.
const CHART_SETS: usize = 30;

/// `/studio` (for an administrator) and `/studio/protection`.
#[component]
pub fn OverviewPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let overview = Resource::new(move || refresh.get(), |_| get_json::<ProtectionOverview>("/admin/protection"));
    // In the browser only: read again every few seconds.
    Effect::new(move |_| {
        refresh.track();
        set_timeout(move || refresh.try_update(|v| *v = v.wrapping_add(1)).unwrap_or(()), REFRESH);
    });
    view! {
        <section class="page">
            <header class="page-header">
                <h1>"Protection"</h1>
                <p class="muted">"Every database, its newest restorable point, and whether its backups keep to their schedules."</p>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(o) => view! { <ProtectionTable overview=o/> }.into_any(),
                        Err(e) => view! { <div class="banner banner-error" role="alert">{e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The word and the tag class of a state.
fn state_tag(state: ProtectionState) -> (&'static str, &'static str) {
    match state {
        ProtectionState::Ok => ("Ok", "tag state ok"),
        ProtectionState::Late => ("Late", "tag state warn"),
        ProtectionState::Stale => ("Stale", "tag state err"),
        ProtectionState::Failed => ("Failed", "tag state err"),
        ProtectionState::Unprotected => ("Unprotected", "tag state err"),
        ProtectionState::Disabled => ("Disabled", "tag state"),
    }
}

/// What a database's newest point says in words.
fn point_text(db: &DatabaseProtection) -> String {
    match (&db.recovery_point, db.recovery_point_age_seconds) {
        (Some(_), Some(_)) if db.up_to_date => "Up to date (no change since the newest set)".to_string(),
        (Some(at), Some(seconds)) => {
            format!("{} ({} ago)", at.replace('T', " ").trim_end_matches('Z'), rookery_types::format_seconds(seconds))
        }
        _ => "No backup yet".to_string(),
    }
}

/// Every database as a table (`aria-label="Protection"`), one row each.
#[component]
fn ProtectionTable(overview: ProtectionOverview) -> impl IntoView {
    let rows = overview.databases.into_iter().map(|db| view! { <DatabaseRow db/> }).collect_view();
    view! {
        <div class="card">
            <table class="table protection" aria-label="Protection">
                <thead>
                    <tr>
                        <th scope="col">"Database"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Newest restorable point"</th>
                        <th scope="col">"Tasks"</th>
                        <th scope="col">"Last 30 sets"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="muted small">"Ok: within the schedule. Late: older than the schedule's interval. Stale: older than the task's objective. Failed: the last run failed."</p>
        </div>
    }
}

/// One database: its state, its newest point, its tasks and its chart.
#[component]
fn DatabaseRow(db: DatabaseProtection) -> impl IntoView {
    let (word, class) = state_tag(db.state);
    let point = point_text(&db);
    let location = db.tasks.iter().find(|t| !t.disabled).map(|t| t.location.clone());
    let tasks = if db.tasks.is_empty() {
        view! { <span class="muted">"No backup task"</span> }.into_any()
    } else {
        let lines = db.tasks.iter().cloned().map(|task| view! { <TaskLine task/> }).collect_view();
        view! { <ul class="task-lines">{lines}</ul> }.into_any()
    };
    let name = db.database.clone();
    view! {
        <tr data-database=db.database.clone() data-state=word>
            <th scope="row">{db.database.clone()}</th>
            <td><span class=class>{word}</span></td>
            <td>{point}</td>
            <td>{tasks}</td>
            <td>{location.map(|l| view! { <SetsChart database=name.clone() location=l/> })}</td>
        </tr>
    }
}

/// One task of a database: its state, destination, error and last drill.
#[component]
fn TaskLine(task: TaskProtection) -> impl IntoView {
    let (word, class) = state_tag(task.state);
    let drill = match (&task.proven_restorable_at, &task.last_drill) {
        (Some(at), _) => Some(format!("proven restorable at {}", at.replace('T', " ").trim_end_matches('Z'))),
        (None, Some(d)) if !d.success => Some(format!("last drill failed: {}", d.error.clone().unwrap_or_default())),
        _ => None,
    };
    let next = task.next_backup.clone().map(|n| format!("next {}", n.replace('T', " ").trim_end_matches('Z')));
    view! {
        <li>
            <span class="mono">{task.name.clone()}</span>
            <span class=class>{word}</span>
            <span class="muted small">" → " {task.location.clone()}</span>
            {next.map(|n| view! { <span class="muted small">" · " {n}</span> })}
            {task.last_error.clone().map(|e| view! { <div class="error-text small">{e}</div> })}
            {drill.map(|d| view! { <div class="muted small">{d}</div> })}
        </li>
    }
}

/// A small chart of the last sets of a location: bars of set size, a line
/// of backup duration, so that a slow growth or a sudden jump is seen.
#[component]
fn SetsChart(database: String, location: String) -> impl IntoView {
    let path = format!("/admin/backup/sets?location={}&verify=false", encode_query(&location));
    // Read in the browser only, after hydration: the server renders the page
    // without listing every location, and the chart appears when it is read.
    let sets = RwSignal::new(None::<Vec<BackupSetInfo>>);
    let name = database.clone();
    Effect::new(move |_| {
        let (path, name) = (path.clone(), name.clone());
        leptos::task::spawn_local(async move {
            let listing = get_json::<BackupListing>(&path).await;
            sets.try_set(Some(listing.map(|l| chart_sets(&l, &name)).unwrap_or_default()));
        });
    });
    move || sets.get().map(|sets| chart(&database, &sets))
}

/// The newest sets of `database` in a listing, oldest first.
fn chart_sets(listing: &BackupListing, database: &str) -> Vec<BackupSetInfo> {
    let mut sets: Vec<BackupSetInfo> =
        listing.chains.iter().filter(|c| c.database_name.eq_ignore_ascii_case(database)).flat_map(|c| c.sets.clone()).collect();
    sets.sort_by(|a, b| a.set_id.cmp(&b.set_id));
    let skip = sets.len().saturating_sub(CHART_SETS);
    sets.split_off(skip)
}

/// The chart's SVG: one bar per set (its size), and a polyline of durations.
fn chart(database: &str, sets: &[BackupSetInfo]) -> impl IntoView + use<> {
    const W: f64 = 180.0;
    const H: f64 = 40.0;
    if sets.is_empty() {
        return view! { <span class="muted small">"No sets"</span> }.into_any();
    }
    let max_size = sets.iter().map(|s| s.size_bytes).max().unwrap_or(1).max(1) as f64;
    let max_ms = sets.iter().filter_map(|s| s.duration_ms).max().unwrap_or(1).max(1) as f64;
    let step = W / sets.len() as f64;
    let bars = sets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let h = (s.size_bytes as f64 / max_size * (H - 2.0)).max(1.0);
            view! { <rect class="bar" x=format!("{:.1}", i as f64 * step + 1.0) y=format!("{:.1}", H - h) width=format!("{:.1}", (step - 2.0).max(1.0)) height=format!("{h:.1}")/> }
        })
        .collect_view();
    let points: Vec<String> = sets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.duration_ms.map(|d| format!("{:.1},{:.1}", i as f64 * step + step / 2.0, H - d as f64 / max_ms * (H - 4.0) - 2.0))
        })
        .collect();
    let newest = sets.last().map(|s| s.size_bytes).unwrap_or(0);
    let label = format!(
        "{database}: {}, sizes up to {} (newest {}), durations up to {:.1} s",
        rookery_types::counted(sets.len() as u64, "set"),
        format_bytes(max_size as u64),
        format_bytes(newest),
        max_ms / 1000.0
    );
    let title = label.clone();
    view! {
        <svg class="sets-chart" role="img" aria-label=label viewBox=format!("0 0 {W} {H}") width=W height=H>
            <title>{title}</title>
            {bars}
            <polyline class="duration" points=points.join(" ")/>
        </svg>
    }
    .into_any()
}
