//! The Backup page: start a full or incremental backup of a database, watch
//! its status document while it runs, and see the sets in the location.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

use super::common::{query_param, DatabaseSelect, ErrorBanner};
use super::notifications::NotificationsSection;
use super::sets::{check_backup_location, fetch_listing, BackupSetsTable, ListingResult};
use super::status::{fetch_status, poll_while_running, JobKind, JobStatusPanel, StartJobActions, StatusResult};
use super::tasks::BackupTasksSection;
use crate::client::{encode_query, send_json, Method};
use rookery_types::{
    database_base, BackupRequest, BackupType, CompactRequest, JobAccepted, BACKUP_STATUS_ID, COMPACT_STATUS_ID, SYSTEM_DATABASE,
};

fn backup_href(db: &str, location: &str) -> String {
    let mut href = format!("/studio/backup?db={}", encode_query(db));
    if !location.is_empty() {
        href.push_str("&location=");
        href.push_str(&encode_query(location));
    }
    href
}

/// Shows `db` and `location` in the address, in place of the current entry.
fn show_location(navigate: &impl Fn(&str, NavigateOptions), db: &str, location: &str) {
    navigate(&backup_href(db, location), NavigateOptions { replace: true, scroll: false, ..Default::default() });
}

fn status_path(db: &str) -> String {
    format!("{}/docs/{BACKUP_STATUS_ID}", database_base(db))
}

/// The sets in `location`, or, without one, in the location of the database's last backup.
async fn history(db: String, location: Option<String>) -> ListingResult {
    let location = match location {
        Some(l) => Some(l),
        None => fetch_status(status_path(&db)).await.ok().flatten().and_then(|s| s.backup_location),
    };
    match location {
        Some(l) => fetch_listing(l).await.map(Some),
        None => Ok(None),
    }
}

/// Asks for the backup `body` (`busy` while the request is out), and calls
/// `on_started` once the server took it.
fn send_backup(
    path: String,
    body: BackupRequest,
    set_error: WriteSignal<Option<String>>,
    set_busy: WriteSignal<bool>,
    on_started: impl FnOnce() + 'static,
) {
    set_busy.set(true);
    leptos::task::spawn_local(async move {
        let result = send_json::<JobAccepted, _>(Method::Post, &path, Some(&body)).await;
        match result {
            Ok(_) => {
                set_error.set(None);
                on_started();
            }
            Err(e) => set_error.set(Some(format!("The backup was refused: {e}"))),
        }
        set_busy.set(false);
    });
}

/// `/studio/backup?db=&location=`.
#[component]
pub fn BackupPage() -> impl IntoView {
    let db_param = query_param("db");
    let location_param = query_param("location");
    let db = Memo::new(move |_| db_param.get().filter(|d| !d.is_empty()).unwrap_or_else(|| SYSTEM_DATABASE.to_string()));
    let chosen_location = Memo::new(move |_| location_param.get().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));

    let (error, set_error) = signal(None::<String>);
    let (location, set_location) = signal(chosen_location.get_untracked().unwrap_or_default());
    let (passphrase, set_passphrase) = signal(String::new());
    let status_refresh = RwSignal::new(0u32);
    let history_refresh = RwSignal::new(0u32);

    let status = Resource::new(move || (db.get(), status_refresh.get()), |(db, _)| fetch_status(status_path(&db)));
    let sets = Resource::new(move || (db.get(), chosen_location.get(), history_refresh.get()), |(db, location, _)| history(db, location));

    // A finished backup adds a set: list the location again.
    poll_while_running(status, status_refresh, move |_| history_refresh.update(|v| *v = v.wrapping_add(1)));

    // In the browser, until the user types a location (or gives one in the URL),
    // offer the location of the chosen database's last backup.
    let typed = StoredValue::new(chosen_location.get_untracked().is_some());
    Effect::new(move |_| {
        if let Some(Ok(last)) = status.get() {
            if !typed.get_value() {
                set_location.set(last.and_then(|s| s.backup_location).unwrap_or_default());
            }
        }
    });

    view! {
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Backup"</h1>
                    <p class="muted">"Write a full, snapshot or incremental backup set of a database to a folder on the server or to object storage. The database keeps serving while it runs."</p>
                </div>
            </header>
            <ErrorBanner error set_error/>
            <div class="job-layout">
                <BackupForm db chosen_location location set_location typed passphrase set_passphrase status status_refresh set_error/>
                <LastBackupCard db status/>
            </div>
            <BackupTasksSection db default_location=Signal::derive(move || location.get().trim().to_string())/>
            <BackupHistoryCard sets history_refresh chosen_location location passphrase set_error/>
            <NotificationsSection/>
        </section>
    }
}

/// The "New backup" form: database, location, type, incremental,
/// passphrase, and Start Backup.
#[component]
fn BackupForm(
    db: Memo<String>,
    chosen_location: Memo<Option<String>>,
    location: ReadSignal<String>,
    set_location: WriteSignal<String>,
    typed: StoredValue<bool>,
    passphrase: ReadSignal<String>,
    set_passphrase: WriteSignal<String>,
    status: Resource<StatusResult>,
    status_refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (incremental, set_incremental) = signal(false);
    let (backup_type, set_backup_type) = signal(BackupType::Backup);
    let (busy, set_busy) = signal(false);
    let navigate = use_navigate();

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let target = location.get_untracked().trim().to_string();
        if let Err(message) = check_backup_location(&target) {
            set_error.set(Some(message));
            return;
        }
        let db_now = db.get_untracked();
        let path = format!("{}/admin/backup?incremental={}", database_base(&db_now), incremental.get_untracked());
        let body = BackupRequest {
            backup_location: target.clone(),
            backup_passphrase: Some(passphrase.get_untracked()).filter(|p| !p.is_empty()),
            backup_type: backup_type.get_untracked(),
            ..Default::default()
        };
        let navigate = navigate.clone();
        send_backup(path, body, set_error, set_busy, move || {
            if chosen_location.get_untracked().as_deref() != Some(target.as_str()) {
                show_location(&navigate, &db_now, &target);
            }
            // The status document already shows the new job: read it now.
            status_refresh.update(|v| *v = v.wrapping_add(1));
        });
    };

    view! {
        <form class="card form-stack" on:submit=start novalidate>
            <h2>"New backup"</h2>
            <BackupDatabaseField db location typed/>
            <BackupLocationField db chosen_location location set_location typed/>
            <BackupTypeField backup_type set_backup_type/>
            <IncrementalField incremental set_incremental/>
            <BackupPassphraseField passphrase set_passphrase/>
            <StartJobActions status busy text="Start Backup" running_hint="A backup is running."/>
        </form>
    }
}

/// The database to back up; choosing one keeps the location only if the user typed it.
#[component]
fn BackupDatabaseField(db: Memo<String>, location: ReadSignal<String>, typed: StoredValue<bool>) -> impl IntoView {
    let navigate = use_navigate();
    let choose_db = move |chosen: String| {
        let location = if typed.get_value() { location.get_untracked().trim().to_string() } else { String::new() };
        show_location(&navigate, &chosen, &location);
    };
    view! {
        <div class="field">
            <label for="backup-database">"Database"</label>
            <DatabaseSelect id="backup-database" current=db on_choose=choose_db/>
        </div>
    }
}

/// The backup location; a new valid one, once entered, shows its sets in the history.
#[component]
fn BackupLocationField(
    db: Memo<String>,
    chosen_location: Memo<Option<String>>,
    location: ReadSignal<String>,
    set_location: WriteSignal<String>,
    typed: StoredValue<bool>,
) -> impl IntoView {
    let navigate = use_navigate();
    let choose_location = move |_| {
        let entered = location.get_untracked().trim().to_string();
        if check_backup_location(&entered).is_ok() && chosen_location.get_untracked().as_deref() != Some(entered.as_str()) {
            show_location(&navigate, &db.get_untracked(), &entered);
        }
    };
    view! {
        <div class="field">
            <label for="backup-location">"Backup location"</label>
            <input
                id="backup-location"
                type="text"
                placeholder="/var/backups/northwind"
                autocomplete="off"
                spellcheck="false"
                prop:value=location
                on:input=move |ev| {
                    typed.set_value(true);
                    set_location.set(event_target_value(&ev));
                }
                on:change=choose_location
            />
            <span class="hint">"An absolute folder on the server, or s3://bucket/prefix in object storage. Nothing in it is ever overwritten: each backup adds a set."</span>
        </div>
    }
}

/// "Backup type": a logical backup or a snapshot of the database's files.
#[component]
fn BackupTypeField(backup_type: ReadSignal<BackupType>, set_backup_type: WriteSignal<BackupType>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="backup-type">"Backup type"</label>
            <select
                id="backup-type"
                on:change=move |ev| {
                    set_backup_type.set(if event_target_value(&ev) == "Snapshot" { BackupType::Snapshot } else { BackupType::Backup });
                }
            >
                <option value="Backup" selected=move || backup_type.get() == BackupType::Backup>"Backup"</option>
                <option value="Snapshot" selected=move || backup_type.get() == BackupType::Snapshot>"Snapshot"</option>
            </select>
            <span class="hint">"Backup: the documents, compressed and portable. Snapshot: the database's own files, copied at the speed of the disk (hard links on the same filesystem); restores fastest."</span>
        </div>
    }
}

/// The Incremental checkbox.
#[component]
fn IncrementalField(incremental: ReadSignal<bool>, set_incremental: WriteSignal<bool>) -> impl IntoView {
    view! {
        <div class="field">
            <label class="checkbox" for="backup-incremental">
                <input
                    id="backup-incremental"
                    type="checkbox"
                    prop:checked=incremental
                    on:change=move |ev| set_incremental.set(event_target_checked(&ev))
                />
                "Incremental"
            </label>
            <span class="hint">"Only what changed since the newest set of this database in that location; a full set when there is none."</span>
        </div>
    }
}

/// The optional encryption passphrase.
#[component]
fn BackupPassphraseField(passphrase: ReadSignal<String>, set_passphrase: WriteSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="backup-passphrase">"Encryption passphrase"</label>
            <input
                id="backup-passphrase"
                type="password"
                autocomplete="new-password"
                prop:value=passphrase
                on:input=move |ev| set_passphrase.set(event_target_value(&ev))
            />
            <span class="hint">"Optional: encrypt the set's files (argon2id key); the same passphrase is needed to restore."</span>
        </div>
    }
}

/// The "Last backup" card: the chosen database's backup status document.
#[component]
fn LastBackupCard(db: Memo<String>, status: Resource<StatusResult>) -> impl IntoView {
    view! {
        <div class="card">
            <div class="card-head">
                <h2>"Last backup"</h2>
                <span class="muted">{move || db.get()}</span>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => {
                            let cancel = format!("{}/admin/backup/cancel", database_base(&db.get_untracked()));
                            view! { <JobStatusPanel kind=JobKind::Backup status=s idle_text="No backup has run on this database yet." success_link=None cancel/> }.into_any()
                        }
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the backup status: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// The "Backup history" card: the sets in the location, "Compact up to
/// here" on each incremental, and the compaction's status.
#[component]
fn BackupHistoryCard(
    sets: Resource<ListingResult>,
    history_refresh: RwSignal<u32>,
    chosen_location: Memo<Option<String>>,
    location: ReadSignal<String>,
    passphrase: ReadSignal<String>,
    set_error: WriteSignal<Option<String>>,
) -> impl IntoView {
    // Compaction: "Compact up to here" in the history; its status lives in the system database.
    let compact_refresh = RwSignal::new(0u32);
    let compact_status = Resource::new(move || compact_refresh.get(), |_| fetch_status(format!("/docs/{COMPACT_STATUS_ID}")));
    poll_while_running(compact_status, compact_refresh, move |_| history_refresh.update(|v| *v = v.wrapping_add(1)));
    let (compacting, set_compacting) = signal(false);
    let compact = Callback::new(move |up_to: String| {
        let Some(location) = chosen_location.get_untracked().or_else(|| {
            let typed = location.get_untracked().trim().to_string();
            (!typed.is_empty()).then_some(typed)
        }) else {
            return;
        };
        let passphrase = passphrase.get_untracked();
        let request = CompactRequest {
            backup_location: location,
            up_to: Some(up_to),
            backup_passphrase: (!passphrase.is_empty()).then_some(passphrase),
            ..Default::default()
        };
        set_compacting.set(true);
        leptos::task::spawn_local(async move {
            match send_json::<JobAccepted, _>(Method::Post, "/admin/backup/compact", Some(&request)).await {
                Ok(_) => {
                    set_error.set(None);
                    compact_refresh.update(|v| *v = v.wrapping_add(1));
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
            set_compacting.set(false);
        });
    });

    view! {
        <div class="card">
            <SetsHistory sets history_refresh compact/>
            <CompactionStatus status=compact_status/>
            {move || compacting.get().then(|| view! { <p class="hint">"Starting the compaction…"</p> })}
            <p class="hint">"Compacting folds a full set and its incrementals up to the chosen one into one new full set, built from the sets alone (the database is not read); restores and new incrementals then start from it."</p>
        </div>
    }
}

/// The history's head (where the sets are, Refresh) and its sets.
#[component]
fn SetsHistory(sets: Resource<ListingResult>, history_refresh: RwSignal<u32>, compact: Callback<String>) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <h2>"Backup history"</h2><p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let listing = sets.await;
                let shown = match &listing {
                    Ok(Some(l)) => Some(l.location.clone()),
                    _ => None,
                };
                view! {
                    <div class="card-head">
                        <h2>"Backup history"</h2>
                        {shown.map(|l| view! { <span class="muted">"Sets in " <span class="mono">{l}</span></span> })}
                        <button type="button" class="link push-right" on:click=move |_| history_refresh.update(|v| *v = v.wrapping_add(1))>"Refresh"</button>
                    </div>
                    {match listing {
                        Ok(Some(l)) => view! { <BackupSetsTable listing=l on_compact=compact browse=true/> }.into_any(),
                        Ok(None) => view! { <p class="muted empty">"Enter a backup location to see the sets it holds."</p> }.into_any(),
                        Err(e) => view! { <div class="banner banner-error">"Cannot list the sets: " {e.to_string()}</div> }.into_any(),
                    }}
                }
            })}
        </Transition>
    }
}

/// The compaction's status, once one has run.
#[component]
fn CompactionStatus(status: Resource<StatusResult>) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(Some(s)) => view! {
                        <JobStatusPanel kind=JobKind::Compact status=Some(s) idle_text="" success_link=None cancel="/admin/backup/compact/cancel".to_string()/>
                    }
                        .into_any(),
                    _ => ().into_any(),
                }
            })}
        </Transition>
    }
}
