//! The Backup page's "Backup tasks" section: a database's scheduled backups
//! with their last and next runs, run now, delete (asked first), and a form
//! that says in words what each schedule means and when it fires next.

use leptos::prelude::*;

use super::common::ConfirmDelete;

use crate::client::{encode_path, encode_query, get_json, send_json, ApiFailure, Method};
use rookery_types::{
    database_base, BackupTask, BackupTaskInfo, BackupType, ContinuousBackup, DrillOptions, JobAccepted, RetentionPolicy, ScheduleInfo,
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

#[component]
fn SchedulePreview(cron: ReadSignal<String>, zone: ReadSignal<String>, id: &'static str) -> impl IntoView {
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

/// The tasks of `db`, and a form to add one.
#[component]
pub fn BackupTasksSection(db: Memo<String>, #[prop(into)] default_location: Signal<String>) -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let tasks =
        Resource::new(move || (db.get(), refresh.get()), |(db, _)| async move { get_json::<Vec<BackupTaskInfo>>(&tasks_path(&db)).await });
    let (error, set_error) = signal(None::<String>);
    let (notice, set_notice) = signal(None::<String>);
    let (name, set_name) = signal(String::new());
    let (location, set_location) = signal(String::new());
    let (full, set_full) = signal(String::new());
    let (incremental, set_incremental) = signal(String::new());
    let (zone, set_zone) = signal(String::new());
    let (keep_last, set_keep_last) = signal(String::new());
    let (keep_daily, set_keep_daily) = signal(String::new());
    let (keep_weekly, set_keep_weekly) = signal(String::new());
    let (keep_monthly, set_keep_monthly) = signal(String::new());
    let (minimum_age, set_minimum_age) = signal(String::new());
    let (passphrase, set_passphrase) = signal(String::new());
    let (compact, set_compact) = signal(false);
    let (task_type, set_task_type) = signal(BackupType::Backup);
    let (max_lag, set_max_lag) = signal(String::new());
    let (drill, set_drill) = signal(String::new());
    let (confirming, set_confirming) = signal(None::<String>);

    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let count = |text: String, what: &str| -> Result<Option<u32>, String> {
            let t = text.trim().to_string();
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<u32>().map(Some).map_err(|_| format!("{what} must be a whole number."))
        };
        let non_empty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let counts = (
            count(keep_last.get_untracked(), "Keep last"),
            count(keep_daily.get_untracked(), "Keep daily"),
            count(keep_weekly.get_untracked(), "Keep weekly"),
            count(keep_monthly.get_untracked(), "Keep monthly"),
        );
        let policy = match counts {
            (Ok(keep_last), Ok(keep_daily), Ok(keep_weekly), Ok(keep_monthly)) => {
                RetentionPolicy { keep_last, keep_daily, keep_weekly, keep_monthly, minimum_age: non_empty(minimum_age.get_untracked()) }
            }
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
                set_error.set(Some(e));
                return;
            }
        };
        let retention = (policy != RetentionPolicy::default()).then_some(policy);
        let continuous = match count(max_lag.get_untracked(), "Continuous: most seconds a change waits") {
            Ok(lag) => lag.map(|max_lag_seconds| ContinuousBackup { max_lag_seconds }),
            Err(e) => {
                set_error.set(Some(e));
                return;
            }
        };
        let loc = non_empty(location.get_untracked()).unwrap_or_else(|| default_location.get_untracked());
        let task = BackupTask {
            backup_location: loc,
            full_backup_frequency: non_empty(full.get_untracked()),
            incremental_backup_frequency: non_empty(incremental.get_untracked()),
            time_zone: non_empty(zone.get_untracked()),
            retention,
            backup_passphrase: non_empty(passphrase.get_untracked()),
            compact: compact.get_untracked(),
            backup_type: task_type.get_untracked(),
            continuous,
            drill: non_empty(drill.get_untracked()).map(|frequency| DrillOptions { frequency }),
            ..Default::default()
        };
        let task_name = name.get_untracked().trim().to_string();
        let db_now = db.get_untracked();
        leptos::task::spawn_local(async move {
            let path = format!("{}/{}", tasks_path(&db_now), encode_path(&task_name));
            match send_json::<(), _>(Method::Put, &path, Some(&task)).await {
                Ok(()) => {
                    set_error.set(None);
                    set_notice.set(Some(format!("Task '{task_name}' saved.")));
                    set_passphrase.set(String::new());
                    refresh.update(|v| *v = v.wrapping_add(1));
                }
                Err(e) => set_error.set(Some(format!("The task was refused: {e}"))),
            }
        });
    };

    let run_now = move |task: String| {
        let db_now = db.get_untracked();
        leptos::task::spawn_local(async move {
            let path = format!("{}/{}/run", tasks_path(&db_now), encode_path(&task));
            match send_json::<JobAccepted, ()>(Method::Post, &path, None).await {
                Ok(_) => set_notice.set(Some(format!("Task '{task}' started a backup; its status is in Last backup above."))),
                Err(e) => set_error.set(Some(format!("The run was refused: {e}"))),
            }
            refresh.update(|v| *v = v.wrapping_add(1));
        });
    };
    let delete = move |task: String| {
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
    };

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
                                    {list.into_iter().map(|t| {
                                        let name = t.name.clone();
                                        let for_run = name.clone();
                                        let schedules = [
                                            t.full_backup_frequency.as_ref().map(|f| if t.compact { format!("compact {f}") } else if t.backup_type == BackupType::Snapshot { format!("snapshot {f}") } else { format!("full {f}") }),
                                            t.incremental_backup_frequency.as_ref().map(|i| format!("incremental {i}")),
                                            t.continuous.as_ref().map(|c| format!("continuous (at most {} s behind)", c.max_lag_seconds)),
                                        ].into_iter().flatten().collect::<Vec<_>>().join(" · ");
                                        let lag = t.status.lag_seconds.map(|lag| format!("lag {lag:.1} s, shipped up to etag {}", t.status.last_shipped_etag.unwrap_or(0)));
                                        let proven = t.status.last_drill.clone().map(|d| {
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
                                        let last = match (&t.status.last_error, &t.status.last_set_id) {
                                            (Some(e), _) => view! { <span class="error-text">{format!("Failed: {e}")}</span> }.into_any(),
                                            (None, Some(id)) => view! { <span class="mono">{id.clone()}</span> }.into_any(),
                                            (None, None) => view! { <span class="muted">"never"</span> }.into_any(),
                                        };
                                        let next = match (&t.status.next_backup, t.status.next_backup_kind) {
                                            (Some(at), Some(kind)) => format!("{at} ({kind:?})"),
                                            _ if t.disabled => "disabled".to_string(),
                                            _ => "—".to_string(),
                                        };
                                        view! {
                                            <tr>
                                                <td>
                                                    <strong>{name.clone()}</strong>
                                                    <div class="hint mono">{t.backup_location.clone()}</div>
                                                    {t.status.is_running.then(|| view! { <span class="tag">"running"</span> })}
                                                </td>
                                                <td>{schedules} <span class="hint">" (" {t.time_zone.clone()} ")"</span></td>
                                                <td>{last}{lag.map(|l| view! { <div class="hint">{l}</div> })}{proven}</td>
                                                <td>{next}</td>
                                                <td class="actions">
                                                    <button type="button" aria-label=format!("Run now: {name}") on:click=move |_| run_now(for_run.clone())>"Run now"</button>
                                                    <ConfirmDelete what="task" name=name.clone() confirming set_confirming on_confirm=delete/>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <div class="banner banner-error">"Cannot list the tasks: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
            <form class="form-stack task-form" on:submit=save novalidate>
                <h3>"New or changed task"</h3>
                <div class="field">
                    <label for="task-name">"Task name"</label>
                    <input id="task-name" type="text" autocomplete="off" placeholder="nightly" prop:value=name on:input=move |ev| set_name.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-location">"Task destination"</label>
                    <input id="task-location" type="text" autocomplete="off" spellcheck="false" prop:placeholder=move || default_location.get() prop:value=location on:input=move |ev| set_location.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-full">"Full backup schedule"</label>
                    <input id="task-full" type="text" autocomplete="off" spellcheck="false" placeholder="0 2 * * 0" aria-describedby="task-full-meaning" prop:value=full on:input=move |ev| set_full.set(event_target_value(&ev))/>
                    <SchedulePreview cron=full zone id="task-full-meaning"/>
                </div>
                <div class="field">
                    <label for="task-incremental">"Incremental backup schedule"</label>
                    <input id="task-incremental" type="text" autocomplete="off" spellcheck="false" placeholder="0 * * * *" aria-describedby="task-incremental-meaning" prop:value=incremental on:input=move |ev| set_incremental.set(event_target_value(&ev))/>
                    <SchedulePreview cron=incremental zone id="task-incremental-meaning"/>
                </div>
                <div class="field">
                    <label for="task-zone">"Time zone"</label>
                    <input id="task-zone" type="text" autocomplete="off" placeholder="UTC" prop:value=zone on:input=move |ev| set_zone.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-keep-last">"Keep last (sets)"</label>
                    <input id="task-keep-last" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_last on:input=move |ev| set_keep_last.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-keep-daily">"Keep daily (days)"</label>
                    <input id="task-keep-daily" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_daily on:input=move |ev| set_keep_daily.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-keep-weekly">"Keep weekly (weeks)"</label>
                    <input id="task-keep-weekly" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_weekly on:input=move |ev| set_keep_weekly.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-keep-monthly">"Keep monthly (months)"</label>
                    <input id="task-keep-monthly" type="text" inputmode="numeric" autocomplete="off" prop:value=keep_monthly on:input=move |ev| set_keep_monthly.set(event_target_value(&ev))/>
                </div>
                <div class="field">
                    <label for="task-minimum-age">"Minimum age"</label>
                    <input id="task-minimum-age" type="text" autocomplete="off" placeholder="7d" prop:value=minimum_age on:input=move |ev| set_minimum_age.set(event_target_value(&ev))/>
                    <span class="hint">"Retention never deletes the newest chain, nor a set that a kept set stands on; leave all empty to keep every set."</span>
                </div>
                <div class="field">
                    <label for="task-continuous">"Continuous: most seconds a change waits"</label>
                    <input id="task-continuous" type="text" inputmode="numeric" autocomplete="off" placeholder="1" prop:value=max_lag on:input=move |ev| set_max_lag.set(event_target_value(&ev))/>
                    <span class="hint">"Optional: ship every change as a small incremental within this many seconds; nothing is sent while the database is idle."</span>
                </div>
                <div class="field">
                    <label for="task-drill">"Restore drill schedule"</label>
                    <input id="task-drill" type="text" autocomplete="off" spellcheck="false" placeholder="0 4 * * *" aria-describedby="task-drill-meaning" prop:value=drill on:input=move |ev| set_drill.set(event_target_value(&ev))/>
                    <SchedulePreview cron=drill zone id="task-drill-meaning"/>
                    <span class="hint">"Optional: on this schedule the newest chain is restored where no client sees it, checked against what the backup recorded, and removed."</span>
                </div>
                <div class="field">
                    <label for="task-type">"Full backups as"</label>
                    <select
                        id="task-type"
                        on:change=move |ev| set_task_type.set(if event_target_value(&ev) == "Snapshot" { BackupType::Snapshot } else { BackupType::Backup })
                    >
                        <option value="Backup" selected=move || task_type.get() == BackupType::Backup>"Backup"</option>
                        <option value="Snapshot" selected=move || task_type.get() == BackupType::Snapshot>"Snapshot"</option>
                    </select>
                    <span class="hint">"Snapshot: the database's own files at disk speed; incrementals stay logical. A snapshot task cannot compact."</span>
                </div>
                <div class="field">
                    <label class="checkbox" for="task-compact">
                        <input id="task-compact" type="checkbox" prop:checked=compact on:change=move |ev| set_compact.set(event_target_checked(&ev))/>
                        "Compact instead of full backups"
                    </label>
                    <span class="hint">"Forever-incremental: a due full is folded from the sets already taken; the database is read in full only once."</span>
                </div>
                <div class="field">
                    <label for="task-passphrase">"Task passphrase"</label>
                    <input id="task-passphrase" type="password" autocomplete="new-password" prop:value=passphrase on:input=move |ev| set_passphrase.set(event_target_value(&ev))/>
                    <span class="hint">"Optional; stored sealed, never shown again."</span>
                </div>
                <div class="form-actions">
                    <button type="submit" class="primary">"Save task"</button>
                </div>
            </form>
        </div>
    }
}
