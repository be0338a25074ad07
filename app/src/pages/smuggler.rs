//! The Import/Export page: download a `.rookerydump` of a database, upload
//! one into a database, and watch `Raven/Smuggler/Status`.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

use super::common::{query_param, DatabaseSelect, ErrorBanner};
use super::status::{fetch_status, poll_while_running, JobKind, JobStatusPanel, StatusResult};
use crate::client::{encode_query, upload_file};
use rookery_types::{database_base, JobStatus, SMUGGLER_STATUS_ID, SYSTEM_DATABASE};

/// `/studio/smuggler?db=`.
#[component]
pub fn SmugglerPage() -> impl IntoView {
    let db_param = query_param("db");
    let db = Memo::new(move |_| db_param.get().filter(|d| !d.is_empty()).unwrap_or_else(|| SYSTEM_DATABASE.to_string()));
    let (error, set_error) = signal(None::<String>);
    let status_refresh = RwSignal::new(0u32);
    let status = Resource::new(
        move || (db.get(), status_refresh.get()),
        |(db, _)| fetch_status(format!("{}/docs/{SMUGGLER_STATUS_ID}", database_base(&db))),
    );
    poll_while_running(status, status_refresh, |_| {});

    let navigate = use_navigate();
    let choose_db = move |chosen: String| {
        navigate(
            &format!("/studio/smuggler?db={}", encode_query(&chosen)),
            NavigateOptions { replace: true, scroll: false, ..Default::default() },
        );
    };

    view! {
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Import / Export"</h1>
                    <p class="muted">"Move documents between servers and versions as a portable .rookerydump (zstd-compressed NDJSON: zstd -dc file | jq .)."</p>
                </div>
                <div class="toolbar">
                    <label for="smuggler-database">"Database"</label>
                    <DatabaseSelect id="smuggler-database" current=db on_choose=choose_db.clone()/>
                </div>
            </header>
            <ErrorBanner error set_error/>
            <div class="job-layout">
                <ExportCard db/>
                <ImportForm db set_error status_refresh/>
            </div>
            <ImportStatusCard db status/>
        </section>
    }
}

/// The Export card: a download link for the database's documents, all or
/// those whose id starts with a prefix.
#[component]
fn ExportCard(db: Memo<String>) -> impl IntoView {
    let (prefix, set_prefix) = signal(String::new());
    let export_href = move || {
        let p = prefix.get();
        let mut href = format!("{}/smuggler/export", database_base(&db.get()));
        if !p.trim().is_empty() {
            href.push_str("?startsWith=");
            href.push_str(&encode_query(p.trim()));
        }
        href
    };
    view! {
        <div class="card form-stack">
            <h2>"Export"</h2>
            <div class="field">
                <label for="export-prefix">"Only ids starting with"</label>
                <input id="export-prefix" type="text" placeholder="(all documents)" prop:value=prefix on:input=move |ev| set_prefix.set(event_target_value(&ev))/>
            </div>
            <div class="form-actions">
                <a class="button primary" href=export_href download="">"Download export"</a>
            </div>
        </div>
    }
}

/// The Import form: a dump file uploaded into the database, overwriting
/// existing documents or not.
#[component]
fn ImportForm(db: Memo<String>, set_error: WriteSignal<Option<String>>, status_refresh: RwSignal<u32>) -> impl IntoView {
    let (overwrite, set_overwrite) = signal(false);
    let (busy, set_busy) = signal(false);
    let import = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let path = format!("{}/smuggler/import?overwrite={}", database_base(&db.get_untracked()), overwrite.get_untracked());
        set_busy.set(true);
        set_error.set(None);
        // The status document shows the import as it runs: look at it soon.
        set_timeout(move || status_refresh.update(|v| *v = v.wrapping_add(1)), std::time::Duration::from_millis(300));
        leptos::task::spawn_local(async move {
            let result = upload_file::<JobStatus>(&path, "import-file").await;
            set_busy.set(false);
            if let Err(e) = result {
                set_error.set(Some(format!("The import failed: {e}")));
            }
            status_refresh.update(|v| *v = v.wrapping_add(1));
        });
    };
    view! {
        <form class="card form-stack" on:submit=import>
            <h2>"Import"</h2>
            <div class="field">
                <label for="import-file">"Dump file"</label>
                <input id="import-file" type="file" accept=".rookerydump,.zst,.gz,.ndjson,.json"/>
            </div>
            <div class="field">
                <label class="checkbox" for="import-overwrite">
                    <input id="import-overwrite" type="checkbox" prop:checked=overwrite on:change=move |ev| set_overwrite.set(event_target_checked(&ev))/>
                    "Overwrite existing documents"
                </label>
                <span class="hint">"Without it, documents whose id exists are kept and counted as skipped."</span>
            </div>
            <div class="form-actions">
                <button type="submit" class="primary" disabled=busy>"Import"</button>
            </div>
        </form>
    }
}

/// The database's import status document.
#[component]
fn ImportStatusCard(db: Memo<String>, status: Resource<StatusResult>) -> impl IntoView {
    view! {
        <div class="card">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => {
                            let cancel = format!("{}/smuggler/import/cancel", database_base(&db.get_untracked()));
                            view! { <JobStatusPanel kind=JobKind::Import status=s idle_text="No import has run on this database yet." success_link=None cancel/> }.into_any()
                        }
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the import status: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}
