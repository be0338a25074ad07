//! The Databases page: list with counts and sizes, create, delete.

use leptos::prelude::*;

use super::common::{ConfirmDelete, ErrorBanner};
use crate::client::{encode_path, encode_query, format_bytes, get_json, send_json, ApiFailure, Method};
use rookery_types::{is_valid_database_name, DatabaseCreated, DatabaseInfo, SYSTEM_DATABASE};

/// `/studio` and `/studio/databases`.
#[component]
pub fn DatabasesPage() -> impl IntoView {
    let (version, set_version) = signal(0u32);
    let databases = Resource::new(move || version.get(), |_| get_json::<Vec<DatabaseInfo>>("/databases?includeSystem=true"));
    let (error, set_error) = signal(None::<String>);
    let (notice, set_notice) = signal(None::<String>);

    view! {
        <section class="page">
            <header class="page-header">
                <h1>"Databases"</h1>
                <p class="muted">"The system database and every named database on this server."</p>
            </header>
            <ErrorBanner error set_error/>
            <Show when=move || notice.get().is_some()>
                <div class="banner banner-ok" role="status">{move || notice.get().unwrap_or_default()}</div>
            </Show>
            <NewDatabaseForm set_version set_error set_notice/>
            <DatabasesCard databases set_version set_error set_notice/>
        </section>
    }
}

/// The "New database" form.
#[component]
fn NewDatabaseForm(
    set_version: WriteSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (name, set_name) = signal(String::new());
    let (busy, set_busy) = signal(false);

    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let new_name = name.get_untracked().trim().to_string();
        if !is_valid_database_name(&new_name) {
            set_error.set(Some("A database name is 1 to 64 of A-Z a-z 0-9 _ . - and does not start with '.'".to_string()));
            return;
        }
        set_busy.set(true);
        leptos::task::spawn_local(async move {
            let path = format!("/admin/databases/{}", encode_path(&new_name));
            let result = send_json::<DatabaseCreated, ()>(Method::Put, &path, None).await;
            set_busy.set(false);
            match result {
                Ok(created) => {
                    set_name.set(String::new());
                    set_error.set(None);
                    set_notice.set(Some(format!("Database '{}' created.", created.name)));
                    set_version.update(|v| *v += 1);
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    };

    view! {
        <form class="card form-inline" on:submit=create>
            <label for="new-database-name">"New database"</label>
            <input
                id="new-database-name"
                type="text"
                placeholder="Northwind"
                autocomplete="off"
                prop:value=name
                on:input=move |ev| set_name.set(event_target_value(&ev))
            />
            <button type="submit" class="primary" disabled=busy>"Create database"</button>
        </form>
    }
}

/// Every database as a table (`aria-label="Databases"`), each named one
/// with Delete.
#[component]
fn DatabasesCard(
    databases: Resource<Result<Vec<DatabaseInfo>, ApiFailure>>,
    set_version: WriteSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (confirming, set_confirming) = signal(None::<String>);
    let delete = Callback::new(move |db: String| {
        leptos::task::spawn_local(async move {
            let path = format!("/admin/databases/{}", encode_path(&db));
            let result = send_json::<(), ()>(Method::Delete, &path, None).await;
            set_confirming.set(None);
            match result {
                Ok(()) => {
                    set_notice.set(Some(format!("Database '{db}' deleted.")));
                    set_version.update(|v| *v += 1);
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    });

    view! {
        <div class="card">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match databases.await {
                        Ok(list) => {
                            let empty = list.iter().all(|db| db.name == SYSTEM_DATABASE);
                            view! {
                                <table class="table" aria-label="Databases">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Name"</th>
                                            <th scope="col" class="num">"Documents"</th>
                                            <th scope="col" class="num">"Data size"</th>
                                            <th scope="col" class="num">"On disk"</th>
                                            <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list.into_iter().map(|db| view! { <DatabaseRow db confirming set_confirming delete/> }).collect_view()}
                                    </tbody>
                                </table>
                                <Show when=move || empty>
                                    <p class="muted empty">"No named database yet: create one above."</p>
                                </Show>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <div class="banner banner-error">{e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// One database's row: name (a link to its documents), counts, sizes, Delete.
#[component]
fn DatabaseRow(
    db: DatabaseInfo,
    confirming: ReadSignal<Option<String>>,
    set_confirming: WriteSignal<Option<String>>,
    delete: Callback<String>,
) -> impl IntoView {
    let name = db.name.clone();
    let is_system = name == SYSTEM_DATABASE;
    view! {
        <tr>
            <td>
                <a href=format!("/studio/documents?db={}", encode_query(&name))>{name.clone()}</a>
                {is_system.then(|| view! { <span class="tag">"system"</span> })}
            </td>
            <td class="num">{db.document_count}</td>
            <td class="num">{format_bytes(db.data_size_bytes)}</td>
            <td class="num">{format_bytes(db.size_bytes)}</td>
            <td class="actions">
                {(!is_system).then(|| view! {
                    <ConfirmDelete what="database" name=name.clone() confirming set_confirming on_confirm=move |db| delete.run(db)/>
                })}
            </td>
        </tr>
    }
}
