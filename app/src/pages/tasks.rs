//! The Backup page's "Backup tasks" section: a database's scheduled backups
//! with their last and next runs, run now, delete (asked first), and a form
//! that says in words what each schedule means and when it fires next.

use leptos::prelude::*;

use super::common::ConfirmDelete;

use crate::client::{encode_path, encode_query, get_json, send_json, ApiFailure, Method};
use rookery_types::{
    database_base, BackupTask, BackupTaskInfo, BackupType, ContinuousBackup, DestinationStatus, DrillOptions, JobAccepted, RetentionPolicy,
    ScheduleInfo, TaskDestination, TaskStatus,
};

fn tasks_path(db: &str) -> String {
    format!("{}/admin/backup/tasks", database_base(db))
}

/// What a schedule means, or why it is not one (empty: nothing to say).
async fn explain(cron: String, zone: String) -> Result<Option<ScheduleInfo>, ApiFailure> {
    if cron.trim().is_empty() {
        return Ok(None);
    }
    let mut path = format!("/admin/backup/schedule?cron={}", encode_query(cron.trim()));
    if !zone.trim().is_empty() {
        path.push_str(&format!("&timeZone={}", encode_query(zone.trim())));
    }
    get_json::<ScheduleInfo>(&path).await.map(Some)
}

/// What a schedule means and when it fires next, or why it is not one.
#[component]
fn SchedulePreview(cron: RwSignal<String>, zone: RwSignal<String>, id: &'static str) -> impl IntoView {
    let info = Resource::new(move || (cron.get(), zone.get()), |(c, z)| explain(c, z));
    view! {
        <div class="hint" id=id aria-live="polite">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(Some(i)) => view! { <span>{i.description} " · next: " {i.next.join(", ")}</span> }.into_any(),
                        Ok(None) => view! { <span>"Cron: 5 fields (minute hour day month weekday), or 6 with seconds first."</span> }.into_any(),
                        Err(e) => view! { <span class="error-text">{e.message}</span> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// A whole number typed in a field (`what` names it); `None` when empty.
fn count(text: String, what: &str) -> Result<Option<u32>, String> {
    let t = text.trim().to_string();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>().map(Some).map_err(|_| format!("{what} must be a whole number."))
}

fn non_empty(s: String) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The schedules of a task in words: `full 0 2 * * 0 · incremental 0 * * * *`.
fn schedules(t: &BackupTaskInfo) -> String {
    [
        t.full_backup_frequency.as_ref().map(|f| {
            if t.compact {
                format!("compact {f}")
            } else if t.backup_type == BackupType::Snapshot {
                format!("snapshot {f}")
            } else {
                format!("full {f}")
            }
        }),
        t.incremental_backup_frequency.as_ref().map(|i| format!("incremental {i}")),
        t.continuous.as_ref().map(|c| format!("continuous (at most {} s behind)", c.max_lag_seconds)),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

/// When a task runs next, and which kind of backup.
fn next_run(t: &BackupTaskInfo) -> String {
    match (&t.status.next_backup, t.status.next_backup_kind) {
        (Some(at), Some(kind)) => format!("{at} ({kind:?})"),
        _ if t.disabled => "disabled".to_string(),
        _ => "—".to_string(),
    }
}

/// The task's destinations: none for a task of one location; else the
/// first, where sets are written, then one copy per line of `copies`, each
/// keeping the task's retention.
fn destinations(first: &str, copies: &str, retention: Option<&RetentionPolicy>) -> Vec<TaskDestination> {
    let copies: Vec<&str> = copies.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if copies.is_empty() {
        return Vec::new();
    }
    std::iter::once(first)
        .chain(copies)
        .map(|location| TaskDestination { location: location.to_string(), s3: None, retention: retention.cloned(), object_lock: None })
        .collect()
}

/// What the task form holds, as typed.
#[derive(Clone, Copy)]
struct TaskFields {
    name: RwSignal<String>,
    location: RwSignal<String>,
    copies: RwSignal<String>,
    full: RwSignal<String>,
    incremental: RwSignal<String>,
    zone: RwSignal<String>,
    keep_last: RwSignal<String>,
    keep_daily: RwSignal<String>,
    keep_weekly: RwSignal<String>,
    keep_monthly: RwSignal<String>,
    minimum_age: RwSignal<String>,
    passphrase: RwSignal<String>,
    compact: RwSignal<bool>,
    task_type: RwSignal<BackupType>,
    max_lag: RwSignal<String>,
    drill: RwSignal<String>,
}

impl TaskFields {
    fn new() -> Self {
        let text = || RwSignal::new(String::new());
        Self {
            name: text(),
            location: text(),
            copies: text(),
            full: text(),
            incremental: text(),
            zone: text(),
            keep_last: text(),
            keep_daily: text(),
            keep_weekly: text(),
            keep_monthly: text(),
            minimum_age: text(),
            passphrase: text(),
            compact: RwSignal::new(false),
            task_type: RwSignal::new(BackupType::Backup),
            max_lag: text(),
            drill: text(),
        }
    }

    /// The retention policy of the Keep fields; `None` when all are empty (keep every set).
    fn retention(&self) -> Result<Option<RetentionPolicy>, String> {
        let counts = (
            count(self.keep_last.get_untracked(), "Keep last"),
            count(self.keep_daily.get_untracked(), "Keep daily"),
            count(self.keep_weekly.get_untracked(), "Keep weekly"),
            count(self.keep_monthly.get_untracked(), "Keep monthly"),
        );
        let policy = match counts {
            (Ok(keep_last), Ok(keep_daily), Ok(keep_weekly), Ok(keep_monthly)) => RetentionPolicy {
                keep_last,
                keep_daily,
                keep_weekly,
                keep_monthly,
                minimum_age: non_empty(self.minimum_age.get_untracked()),
            },
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => return Err(e),
        };
        Ok((policy != RetentionPolicy::default()).then_some(policy))
    }

    /// The task the form describes, written to `default_location` when no destination is typed.
    fn task(&self, default_location: Signal<String>) -> Result<BackupTask, String> {
        let retention = self.retention()?;
        let lag = count(self.max_lag.get_untracked(), "Continuous: most seconds a change waits")?;
        let continuous = lag.map(|max_lag_seconds| ContinuousBackup { max_lag_seconds });
        let backup_location = non_empty(self.location.get_untracked()).unwrap_or_else(|| default_location.get_untracked());
        let destinations = destinations(&backup_location, &self.copies.get_untracked(), retention.as_ref());
        Ok(BackupTask {
            backup_location,
            destinations,
            full_backup_frequency: non_empty(self.full.get_untracked()),
            incremental_backup_frequency: non_empty(self.incremental.get_untracked()),
            time_zone: non_empty(self.zone.get_untracked()),
            retention,
            backup_passphrase: non_empty(self.passphrase.get_untracked()),
            compact: self.compact.get_untracked(),
            backup_type: self.task_type.get_untracked(),
            continuous,
            drill: non_empty(self.drill.get_untracked()).map(|frequency| DrillOptions { frequency }),
            ..Default::default()
        })
    }
}

/// The tasks of `db`, and a form to add one.
#[component]
pub fn BackupTasksSection(db: Memo<String>, #[prop(into)] default_location: Signal<String>) -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let tasks =
        Resource::new(move || (db.get(), refresh.get()), |(db, _)| async move { get_json::<Vec<BackupTaskInfo>>(&tasks_path(&db)).await });
    let (error, set_error) = signal(None::<String>);
    let (notice, set_notice) = signal(None::<String>);

    view! {
        <div class="card">
            <div class="card-head">
                <h2>"Backup tasks"</h2>
                <span class="muted">{move || db.get()}</span>
                <button type="button" class="link push-right" on:click=move |_| refresh.update(|v| *v = v.wrapping_add(1))>"Refresh"</button>
            </div>
            <Show when=move || error.get().is_some()>
                <div class="banner banner-error" role="alert">{move || error.get().unwrap_or_default()}</div>
            </Show>
            <p class="muted" role="status">{move || notice.get().unwrap_or_default()}</p>
            <TasksTable db tasks refresh set_error set_notice/>
            <TaskForm db default_location refresh set_error set_notice/>
        </div>
    }
}

/// The tasks as a table (`aria-label="Backup tasks"`), each with Run now and Delete.
#[component]
fn TasksTable(
    db: Memo<String>,
    tasks: Resource<Result<Vec<BackupTaskInfo>, ApiFailure>>,
    refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (confirming, set_confirming) = signal(None::<String>);
    let run_now = Callback::new(move |task: String| {
        let db_now = db.get_untracked();
        leptos::task::spawn_local(async move {
            let path = format!("{}/{}/run", tasks_path(&db_now), encode_path(&task));
            match send_json::<JobAccepted, ()>(Method::Post, &path, None).await {
                Ok(_) => set_notice.set(Some(format!("Task '{task}' started a backup; its status is in Last backup above."))),
                Err(e) => set_error.set(Some(format!("The run was refused: {e}"))),
            }
            refresh.update(|v| *v = v.wrapping_add(1));
        });
    });
    let delete = Callback::new(move |task: String| {
        let db_now = db.get_untracked();
        leptos::task::spawn_local(async move {
            let path = format!("{}/{}", tasks_path(&db_now), encode_path(&task));
            set_confirming.set(None);
            match send_json::<(), ()>(Method::Delete, &path, None).await {
                Ok(()) => set_notice.set(Some(format!("Task '{task}' deleted."))),
                Err(e) => set_error.set(Some(e.to_string())),
            }
            refresh.update(|v| *v = v.wrapping_add(1));
        });
    });

    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match tasks.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted empty">"No task backs this database up on a schedule yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" aria-label="Backup tasks">
                            <thead>
                                <tr>
                                    <th scope="col">"Task"</th>
                                    <th scope="col">"Schedules"</th>
                                    <th scope="col">"Last run"</th>
                                    <th scope="col">"Next run"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|task| view! { <TaskRow task run_now delete confirming set_confirming/> }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <div class="banner banner-error">"Cannot list the tasks: " {e.to_string()}</div> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// One task's row: name and destination, schedules, last run, next run, actions.
#[component]
fn TaskRow(
    task: BackupTaskInfo,
    run_now: Callback<String>,
    delete: Callback<String>,
    confirming: ReadSignal<Option<String>>,
    set_confirming: WriteSignal<Option<String>>,
) -> impl IntoView {
    let name = task.name.clone();
    let for_run = name.clone();
    let schedules = schedules(&task);
    let next = next_run(&task);
    view! {
        <tr>
            <td>
                <strong>{name.clone()}</strong>
                <div class="hint mono">{task.backup_location.clone()}</div>
                {task.status.destinations.iter().skip(1).cloned().map(|d| view! { <CopyState d/> }).collect_view()}
                {task.status.is_running.then(|| view! { <span class="tag">"running"</span> })}
            </td>
            <td>{schedules} <span class="hint">" (" {task.time_zone.clone()} ")"</span></td>
            <td><LastRun status=task.status/></td>
            <td>{next}</td>
            <td class="actions">
                <button type="button" aria-label=format!("Run now: {name}") on:click=move |_| run_now.run(for_run.clone())>"Run now"</button>
                <ConfirmDelete what="task" name=name.clone() confirming set_confirming on_confirm=move |task| delete.run(task)/>
            </td>
        </tr>
    }
}

/// One other destination of a task: where, and whether it holds every set.
#[component]
fn CopyState(d: DestinationStatus) -> impl IntoView {
    let state = match (&d.last_error, d.is_copying, d.missing_sets) {
        (_, true, _) => view! { <span class="tag">"copying"</span> }.into_any(),
        (Some(e), ..) => view! {
            <span class="tag err">{format!("{} missing", d.missing_sets)}</span>
            <span class="error-text">{format!(" {e}")}</span>
        }
        .into_any(),
        (None, false, 0) if d.last_set_id.is_some() => view! { <span class="tag ok">"up to date"</span> }.into_any(),
        (None, false, 0) => view! { <span class="tag">"no copy yet"</span> }.into_any(),
        (None, false, n) => view! { <span class="tag">{format!("{n} missing")}</span> }.into_any(),
    };
    view! { <div class="hint"><span class="mono">{format!("copy: {}", d.location)}</span> " " {state}</div> }
}

/// A task's last run: the set it wrote or its error, the continuous lag,
/// and the last restore drill.
#[component]
fn LastRun(status: TaskStatus) -> impl IntoView {
    let lag = status.lag_seconds.map(|lag| format!("lag {lag:.1} s, shipped up to etag {}", status.last_shipped_etag.unwrap_or(0)));
    let proven = status.last_drill.clone().map(|d| {
        if d.success {
            view! { <div><span class="tag ok">{format!("restorable, proven at {}", d.at)}</span></div> }.into_any()
        } else {
            view! {
                <div>
                    <span class="tag err">"drill failed"</span>
                    <span class="error-text">{format!(" {} ({})", d.error.unwrap_or_default(), d.at)}</span>
                </div>
            }
            .into_any()
        }
    });
    let last = match (&status.last_error, &status.last_set_id) {
        (Some(e), _) => view! { <span class="error-text">{format!("Failed: {e}")}</span> }.into_any(),
        (None, Some(id)) => view! { <span class="mono">{id.clone()}</span> }.into_any(),
        (None, None) => view! { <span class="muted">"never"</span> }.into_any(),
    };
    view! { {last}{lag.map(|l| view! { <div class="hint">{l}</div> })}{proven} }
}

/// The "New or changed task" form; saving puts the task under its name.
#[component]
fn TaskForm(
    db: Memo<String>,
    default_location: Signal<String>,
    refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let fields = TaskFields::new();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let task = match fields.task(default_location) {
            Ok(task) => task,
            Err(e) => {
                set_error.set(Some(e));
                return;
            }
        };
        let task_name = fields.name.get_untracked().trim().to_string();
        let db_now = db.get_untracked();
        leptos::task::spawn_local(async move {
            let path = format!("{}/{}", tasks_path(&db_now), encode_path(&task_name));
            match send_json::<(), _>(Method::Put, &path, Some(&task)).await {
                Ok(()) => {
                    set_error.set(None);
                    set_notice.set(Some(format!("Task '{task_name}' saved.")));
                    fields.passphrase.set(String::new());
                    refresh.update(|v| *v = v.wrapping_add(1));
                }
                Err(e) => set_error.set(Some(format!("The task was refused: {e}"))),
            }
        });
    };

    view! {
        <form class="form-stack task-form" on:submit=save novalidate>
            <h3>"New or changed task"</h3>
            <TaskWhereFields fields default_location/>
            <RetentionFields fields/>
            <TaskModeFields fields/>
            <div class="form-actions">
                <button type="submit" class="primary">"Save task"</button>
            </div>
        </form>
    }
}

/// The task's name, destination, schedules and time zone.
#[component]
fn TaskWhereFields(fields: TaskFields, default_location: Signal<String>) -> impl IntoView {
    let TaskFields { name, location, copies, full, incremental, zone, .. } = fields;
    view! {
        <div class="field">
            <label for="task-name">"Task name"</label>
            <input id="task-name" type="text" autocomplete="off" placeholder="nightly" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-location">"Task destination"</label>
            <input id="task-location" type="text" autocomplete="off" spellcheck="false" prop:placeholder=move || default_location.get() prop:value=location on:input=move |ev| location.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-copies">"Copies to (one location per line)"</label>
            <textarea id="task-copies" rows="2" autocomplete="off" spellcheck="false" placeholder="s3://offsite/northwind" aria-describedby="task-copies-hint" prop:value=copies on:input=move |ev| copies.set(event_target_value(&ev))></textarea>
            <div class="hint" id="task-copies-hint">"After every run, the sets each copy lacks are copied there, verified; each keeps the same sets."</div>
        </div>
        <div class="field">
            <label for="task-full">"Full backup schedule"</label>
            <input id="task-full" type="text" autocomplete="off" spellcheck="false" placeholder="0 2 * * 0" aria-describedby="task-full-meaning" prop:value=full on:input=move |ev| full.set(event_target_value(&ev))/>
            <SchedulePreview cron=full zone id="task-full-meaning"/>
        </div>
        <div class="field">
            <label for="task-incremental">"Incremental backup schedule"</label>
            <input id="task-incremental" type="text" autocomplete="off" spellcheck="false" placeholder="0 * * * *" aria-describedby="task-incremental-meaning" prop:value=incremental on:input=move |ev| incremental.set(event_target_value(&ev))/>
            <SchedulePreview cron=incremental zone id="task-incremental-meaning"/>
        </div>
        <div class="field">
            <label for="task-zone">"Time zone"</label>
            <input id="task-zone" type="text" autocomplete="off" placeholder="UTC" prop:value=zone on:input=move |ev| zone.set(event_target_value(&ev))/>
        </div>
    }
}

/// How many sets the task keeps, and for how long at least.
#[component]
fn RetentionFields(fields: TaskFields) -> impl IntoView {
    let TaskFields { keep_last, keep_daily, keep_weekly, keep_monthly, minimum_age, .. } = fields;
    view! {
        <div class="field">
            <label for="task-keep-last">"Keep last (sets)"</label>
            <input id="task-keep-last" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_last on:input=move |ev| keep_last.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-keep-daily">"Keep daily (days)"</label>
            <input id="task-keep-daily" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_daily on:input=move |ev| keep_daily.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-keep-weekly">"Keep weekly (weeks)"</label>
            <input id="task-keep-weekly" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_weekly on:input=move |ev| keep_weekly.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-keep-monthly">"Keep monthly (months)"</label>
            <input id="task-keep-monthly" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_monthly on:input=move |ev| keep_monthly.set(event_target_value(&ev))/>
        </div>
        <div class="field">
            <label for="task-minimum-age">"Minimum age"</label>
            <input id="task-minimum-age" type="text" autocomplete="off" placeholder="7d" prop:value=minimum_age on:input=move |ev| minimum_age.set(event_target_value(&ev))/>
            <span class="hint">"Retention never deletes the newest chain, nor a set that a kept set stands on; leave all empty to keep every set."</span>
        </div>
    }
}

/// Continuous shipping, restore drills, snapshots, compaction and the passphrase.
#[component]
fn TaskModeFields(fields: TaskFields) -> impl IntoView {
    let TaskFields { max_lag, drill, zone, task_type, compact, passphrase, .. } = fields;
    view! {
        <div class="field">
            <label for="task-continuous">"Continuous: most seconds a change waits"</label>
            <input id="task-continuous" type="text" inputmode="numeric" autocomplete="off" placeholder="1" prop:value=max_lag on:input=move |ev| max_lag.set(event_target_value(&ev))/>
            <span class="hint">"Optional: ship every change as a small incremental within this many seconds; nothing is sent while the database is idle."</span>
        </div>
        <div class="field">
            <label for="task-drill">"Restore drill schedule"</label>
            <input id="task-drill" type="text" autocomplete="off" spellcheck="false" placeholder="0 4 * * *" aria-describedby="task-drill-meaning" prop:value=drill on:input=move |ev| drill.set(event_target_value(&ev))/>
            <SchedulePreview cron=drill zone id="task-drill-meaning"/>
            <span class="hint">"Optional: on this schedule the newest chain is restored where no client sees it, checked against what the backup recorded, and removed."</span>
        </div>
        <div class="field">
            <label for="task-type">"Full backups as"</label>
            <select
                id="task-type"
                on:change=move |ev| task_type.set(if event_target_value(&ev) == "Snapshot" { BackupType::Snapshot } else { BackupType::Backup })
            >
                <option value="Backup" selected=move || task_type.get() == BackupType::Backup>"Backup"</option>
                <option value="Snapshot" selected=move || task_type.get() == BackupType::Snapshot>"Snapshot"</option>
            </select>
            <span class="hint">"Snapshot: the database's own files at disk speed; incrementals stay logical. A snapshot task cannot compact."</span>
        </div>
        <div class="field">
            <label class="checkbox" for="task-compact">
                <input id="task-compact" type="checkbox" prop:checked=compact on:change=move |ev| compact.set(event_target_checked(&ev))/>
                "Compact instead of full backups"
            </label>
            <span class="hint">"Forever-incremental: a due full is folded from the sets already taken; the database is read in full only once."</span>
        </div>
        <div class="field">
            <label for="task-passphrase">"Task passphrase"</label>
            <input id="task-passphrase" type="password" autocomplete="new-password" prop:value=passphrase on:input=move |ev| passphrase.set(event_target_value(&ev))/>
            <span class="hint">"Optional; stored sealed, never shown again."</span>
        </div>
    }
}
