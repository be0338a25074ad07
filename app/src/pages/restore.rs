//! The Restore page: find the sets in a backup location, pick a point in
//! time, restore it as a new database, and watch the restore run.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

use super::common::{query_param, ErrorBanner};
use super::sets::{check_absolute, check_backup_location, fetch_listing, newest_first, set_label, BackupSetsTable, ListingResult};
use super::status::{fetch_status, poll_while_running, JobKind, JobStatusPanel, StartJobActions, StatusResult};
use crate::client::{encode_query, send_json, Method};
use rookery_types::{is_valid_database_name, JobAccepted, RestoreRequest, RESTORE_STATUS_ID};

fn restore_href(location: &str) -> String {
    if location.is_empty() {
        "/studio/restore".to_string()
    } else {
        format!("/studio/restore?location={}", encode_query(location))
    }
}

fn non_empty(text: String) -> Option<String> {
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The sets in `location`, when one is chosen.
async fn listing(location: Option<String>) -> ListingResult {
    match location {
        Some(l) => fetch_listing(l).await.map(Some),
        None => Ok(None),
    }
}

/// Why a restore cannot be asked for as it is, in a sentence for the user.
fn check_request(request: &RestoreRequest) -> Result<(), String> {
    check_backup_location(&request.backup_location)?;
    if let Some(t) = &request.database_location {
        check_absolute(t, "database location")?;
    }
    if request.database_name.as_deref().is_some_and(|n| !is_valid_database_name(n)) {
        return Err("A database name is 1 to 64 of A-Z a-z 0-9 _ . - and does not start with '.'".to_string());
    }
    Ok(())
}

/// Asks for the restore; `busy` while the request is out.
fn send_restore(
    request: RestoreRequest,
    defrag: bool,
    set_error: WriteSignal<Option<String>>,
    set_busy: WriteSignal<bool>,
    status_refresh: RwSignal<u32>,
) {
    set_busy.set(true);
    leptos::task::spawn_local(async move {
        let result = send_json::<JobAccepted, _>(Method::Post, &format!("/admin/restore?defrag={defrag}"), Some(&request)).await;
        match result {
            Ok(_) => {
                set_error.set(None);
                // The status document already shows the new job: read it now.
                status_refresh.update(|v| *v = v.wrapping_add(1));
            }
            Err(e) => set_error.set(Some(format!("The restore was refused: {e}"))),
        }
        set_busy.set(false);
    });
}

/// `/studio/restore?location=`.
#[component]
pub fn RestorePage() -> impl IntoView {
    let location_param = query_param("location");
    let chosen_location = Memo::new(move |_| location_param.get().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));

    let (error, set_error) = signal(None::<String>);
    let (location, set_location) = signal(chosen_location.get_untracked().unwrap_or_default());
    let (up_to, set_up_to) = signal(String::new());
    let status_refresh = RwSignal::new(0u32);
    let sets_refresh = RwSignal::new(0u32);

    let status = Resource::new(move || status_refresh.get(), |_| fetch_status(format!("/docs/{RESTORE_STATUS_ID}")));
    let sets = Resource::new(move || (chosen_location.get(), sets_refresh.get()), |(location, _)| listing(location));
    poll_while_running(status, status_refresh, |_| {});

    // In the browser, offer the last restore's backup location when none is given.
    let prefilled = StoredValue::new(false);
    Effect::new(move |_| {
        if let Some(Ok(Some(s))) = status.get() {
            if !prefilled.get_value() && location.get_untracked().trim().is_empty() {
                if let Some(l) = s.backup_location {
                    prefilled.set_value(true);
                    set_location.set(l);
                }
            }
        }
    });

    view! {
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Restore"</h1>
                    <p class="muted">"Restore a backup location, up to its newest set or an earlier point in time, as a new database."</p>
                </div>
            </header>
            <ErrorBanner error set_error/>
            <div class="job-layout">
                <RestoreForm location set_location chosen_location up_to set_up_to sets sets_refresh status status_refresh set_error/>
                <LastRestoreCard status/>
            </div>
            <RestoreSetsCard sets/>
        </section>
    }
}

/// The "New restore" form: where the backup is, up to when, the new
/// database's name, place and keys, and Start Restore.
#[component]
fn RestoreForm(
    location: ReadSignal<String>,
    set_location: WriteSignal<String>,
    chosen_location: Memo<Option<String>>,
    up_to: ReadSignal<String>,
    set_up_to: WriteSignal<String>,
    sets: Resource<ListingResult>,
    sets_refresh: RwSignal<u32>,
    status: Resource<StatusResult>,
    status_refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (database_location, set_database_location) = signal(String::new());
    let (database_name, set_database_name) = signal(String::new());
    let (defrag, set_defrag) = signal(false);
    let (passphrase, set_passphrase) = signal(String::new());
    let (database_key, set_database_key) = signal(String::new());
    let (up_to_time, set_up_to_time) = signal(String::new());
    let (source_database, set_source_database) = signal(String::new());
    let (busy, set_busy) = signal(false);

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let request = RestoreRequest {
            backup_location: location.get_untracked().trim().to_string(),
            database_location: non_empty(database_location.get_untracked()),
            database_name: non_empty(database_name.get_untracked()),
            // A time, when one is given, wins over the chosen set.
            restore_up_to: non_empty(up_to_time.get_untracked()).or_else(|| non_empty(up_to.get_untracked())),
            source_database_name: non_empty(source_database.get_untracked()),
            backup_passphrase: non_empty(passphrase.get_untracked()),
            encryption_key: non_empty(database_key.get_untracked()),
            ..Default::default()
        };
        if let Err(message) = check_request(&request) {
            set_error.set(Some(message));
            return;
        }
        send_restore(request, defrag.get_untracked(), set_error, set_busy, status_refresh);
    };

    view! {
        <form class="card form-stack" on:submit=start novalidate>
            <h2>"New restore"</h2>
            <BackupLocationField location set_location chosen_location set_up_to sets_refresh set_error/>
            <UpToField sets up_to set_up_to/>
            <SourceDatabaseField sets set_source_database/>
            <UpToTimeField up_to_time set_up_to_time/>
            <BrowsePointLink location up_to up_to_time source_database/>
            <NewDatabaseFields database_name set_database_name database_location set_database_location/>
            <KeyFields passphrase set_passphrase database_key set_database_key/>
            <DefragField defrag set_defrag/>
            <StartJobActions status busy text="Start Restore" running_hint="A restore is running."/>
        </form>
    }
}

/// The backup location, with "Find sets" to list the sets it holds.
#[component]
fn BackupLocationField(
    location: ReadSignal<String>,
    set_location: WriteSignal<String>,
    chosen_location: Memo<Option<String>>,
    set_up_to: WriteSignal<String>,
    sets_refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
) -> impl IntoView {
    let navigate = use_navigate();
    // Lists the sets of the typed location (on change, or with "Find sets").
    let find_sets = move || {
        let typed = location.get_untracked().trim().to_string();
        if let Err(message) = check_backup_location(&typed) {
            set_error.set(Some(message));
            return;
        }
        set_error.set(None);
        if chosen_location.get_untracked().as_deref() == Some(typed.as_str()) {
            sets_refresh.update(|v| *v = v.wrapping_add(1));
        } else {
            set_up_to.set(String::new());
            navigate(&restore_href(&typed), NavigateOptions { replace: true, scroll: false, ..Default::default() });
        }
    };
    let find_on_change = {
        let find_sets = find_sets.clone();
        move |_| {
            if !location.get_untracked().trim().is_empty() {
                find_sets();
            }
        }
    };

    view! {
        <div class="field">
            <label for="restore-backup-location">"Backup location"</label>
            <div class="field-row">
                <input
                    id="restore-backup-location"
                    type="text"
                    placeholder="/var/backups/northwind"
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=location
                    on:input=move |ev| set_location.set(event_target_value(&ev))
                    on:change=find_on_change
                />
                <button type="button" on:click=move |_| find_sets()>"Find sets"</button>
            </div>
            <span class="hint">"The folder on the server, or the s3://bucket/prefix, that the backups were written to."</span>
        </div>
    }
}

/// "Restore up to": the newest set, or one of the sets found, newest first.
#[component]
fn UpToField(sets: Resource<ListingResult>, up_to: ReadSignal<String>, set_up_to: WriteSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="restore-up-to">"Restore up to"</label>
            <Transition fallback=|| view! { <select id="restore-up-to" disabled=true><option value="">"Newest set"</option></select> }>
                {move || Suspend::new(async move {
                    let listing = sets.await.ok().flatten();
                    let chosen = up_to.get_untracked();
                    let options = listing
                        .as_ref()
                        .map(|l| {
                            newest_first(l)
                                .into_iter()
                                .map(|(database, set)| {
                                    let selected = set.set_id == chosen;
                                    let label = if l.chains.len() > 1 { format!("{database}: {}", set_label(&set)) } else { set_label(&set) };
                                    view! { <option value=set.set_id.clone() selected=selected>{label}</option> }
                                })
                                .collect_view()
                        });
                    let count = listing.as_ref().map_or(0, |l| l.chains.iter().map(|c| c.sets.len()).sum::<usize>());
                    view! {
                        <select id="restore-up-to" on:change=move |ev| set_up_to.set(event_target_value(&ev))>
                            <option value="" selected=chosen.is_empty()>"Newest set"</option>
                            {options}
                        </select>
                        <span class="hint">
                            {match (&listing, count) {
                                (None, _) => "Find the sets of a backup location to choose a point in time.".to_string(),
                                (Some(_), 0) => "No backup set found in that location.".to_string(),
                                (Some(_), 1) => "1 set found.".to_string(),
                                (Some(_), n) => format!("{n} sets found: an earlier set restores the database as it was then."),
                            }}
                        </span>
                    }
                })}
            </Transition>
        </div>
    }
}

/// "Database in the backup", shown only when the location holds backups of
/// several databases.
#[component]
fn SourceDatabaseField(sets: Resource<ListingResult>, set_source_database: WriteSignal<String>) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let listing = sets.await.ok().flatten();
                let mut names: Vec<String> = listing.iter().flat_map(|l| l.chains.iter().map(|c| c.database_name.clone())).collect();
                names.sort();
                names.dedup();
                (names.len() > 1).then(|| view! {
                    <div class="field">
                        <label for="restore-source-database">"Database in the backup"</label>
                        <select id="restore-source-database" on:change=move |ev| set_source_database.set(event_target_value(&ev))>
                            <option value="">"Choose one"</option>
                            {names.into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                        </select>
                        <span class="hint">"This location holds backups of several databases: say which to restore, or choose a set above."</span>
                    </div>
                })
            })}
        </Transition>
    }
}

/// "Browse this point": the chosen set or time opened on the Browse page
/// (its documents read without restoring anything).
#[component]
fn BrowsePointLink(
    location: ReadSignal<String>,
    up_to: ReadSignal<String>,
    up_to_time: ReadSignal<String>,
    source_database: ReadSignal<String>,
) -> impl IntoView {
    let href = move || {
        let point = non_empty(up_to_time.get()).or_else(|| non_empty(up_to.get())).unwrap_or_default();
        super::browse::browse_href(location.get().trim(), &point, &source_database.get())
    };
    view! {
        <Show when=move || !location.get().trim().is_empty()>
            <div class="field">
                <div class="toolbar"><a class="button" href=href>"Browse this point"</a></div>
                <span class="hint">"Its documents, read without restoring anything, and a restore of selected ones."</span>
            </div>
        </Show>
    }
}

/// "Or up to a time": a point in time instead of a set.
#[component]
fn UpToTimeField(up_to_time: ReadSignal<String>, set_up_to_time: WriteSignal<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="restore-up-to-time">"Or up to a time"</label>
            <input
                id="restore-up-to-time"
                type="text"
                autocomplete="off"
                spellcheck="false"
                placeholder="2026-11-26T14:03:27Z"
                prop:value=up_to_time
                on:input=move |ev| set_up_to_time.set(event_target_value(&ev))
            />
            <span class="hint">"Optional, RFC 3339: the newest set created at or before this time (with a continuous task, within its lag)."</span>
        </div>
    }
}

/// The restored database's name and location, both optional.
#[component]
fn NewDatabaseFields(
    database_name: ReadSignal<String>,
    set_database_name: WriteSignal<String>,
    database_location: ReadSignal<String>,
    set_database_location: WriteSignal<String>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for="restore-database-name">"Database name"</label>
            <input
                id="restore-database-name"
                type="text"
                placeholder="as in the backup"
                autocomplete="off"
                prop:value=database_name
                on:input=move |ev| set_database_name.set(event_target_value(&ev))
            />
            <span class="hint">"Optional: a new name. It must not be taken."</span>
        </div>
        <div class="field">
            <label for="restore-database-location">"Database location"</label>
            <input
                id="restore-database-location"
                type="text"
                placeholder="in the server's data directory"
                autocomplete="off"
                spellcheck="false"
                prop:value=database_location
                on:input=move |ev| set_database_location.set(event_target_value(&ev))
            />
            <span class="hint">"Optional: an absolute, empty or missing folder for the database's files."</span>
        </div>
    }
}

/// The backup passphrase and the database key, for encrypted sets and databases.
#[component]
fn KeyFields(
    passphrase: ReadSignal<String>,
    set_passphrase: WriteSignal<String>,
    database_key: ReadSignal<String>,
    set_database_key: WriteSignal<String>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for="restore-passphrase">"Backup passphrase"</label>
            <input
                id="restore-passphrase"
                type="password"
                autocomplete="off"
                prop:value=passphrase
                on:input=move |ev| set_passphrase.set(event_target_value(&ev))
            />
            <span class="hint">"Only for a set encrypted with a passphrase."</span>
        </div>
        <div class="field">
            <label for="restore-database-key">"Database key"</label>
            <input
                id="restore-database-key"
                type="password"
                autocomplete="off"
                prop:value=database_key
                on:input=move |ev| set_database_key.set(event_target_value(&ev))
            />
            <span class="hint">"Only for an encrypted database backed up without its key (base64)."</span>
        </div>
    }
}

/// The Defrag checkbox.
#[component]
fn DefragField(defrag: ReadSignal<bool>, set_defrag: WriteSignal<bool>) -> impl IntoView {
    view! {
        <div class="field">
            <label class="checkbox" for="restore-defrag">
                <input
                    id="restore-defrag"
                    type="checkbox"
                    prop:checked=defrag
                    on:change=move |ev| set_defrag.set(event_target_checked(&ev))
                />
                "Defrag"
            </label>
            <span class="hint">"Compact the restored database fully before opening it."</span>
        </div>
    }
}

/// The "Last restore" card: the restore's status document, with a link to
/// the restored database once it succeeded.
#[component]
fn LastRestoreCard(status: Resource<StatusResult>) -> impl IntoView {
    view! {
        <div class="card">
            <div class="card-head"><h2>"Last restore"</h2></div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => {
                            let link = s
                                .as_ref()
                                .and_then(|s| s.database_name.clone())
                                .map(|name| (format!("/studio/documents?db={}", encode_query(&name)), format!("Open {name}")));
                            view! {
                                <JobStatusPanel kind=JobKind::Restore status=s idle_text="No restore has run on this server yet." success_link=link cancel="/admin/restore/cancel".to_string()/>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the restore status: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// The sets found in the chosen backup location, as a table.
#[component]
fn RestoreSetsCard(sets: Resource<ListingResult>) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match sets.await {
                    Ok(Some(listing)) => {
                        let location = listing.location.clone();
                        view! {
                            <div class="card">
                                <div class="card-head">
                                    <h2>"Sets in the backup location"</h2>
                                    <span class="muted mono">{location}</span>
                                </div>
                                <BackupSetsTable listing browse=true/>
                            </div>
                        }
                            .into_any()
                    }
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <div class="banner banner-error">"Cannot list the sets: " {e.to_string()}</div> }.into_any(),
                }
            })}
        </Transition>
    }
}
