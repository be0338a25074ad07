//! The Documents page: pick a database, page through its documents, open
//! one, create, edit as JSON, delete.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use super::common::{query_param, DatabaseSelect, ErrorBanner};
use crate::client::{encode_path, encode_query, get_json, send_json, send_text_with, ApiFailure, Method};
use rookery_types::{database_base, DocumentPage, PutResult, SYSTEM_DATABASE};

const PAGE_SIZE: u64 = 25;

fn page_href(db: &str, start: u64) -> String {
    format!("/studio/documents?db={}&start={start}", encode_query(db))
}

fn doc_href(db: &str, id: &str) -> String {
    format!("/studio/documents?db={}&id={}", encode_query(db), encode_query(id))
}

/// An opened document: id, JSON text, etag.
type Opened = (String, String, u64);

/// The document `id` of `db` with its etag (a listing by the id as prefix:
/// the id itself sorts first), so that saving can send If-Match.
async fn open_document(db: String, id: Option<String>) -> Result<Option<Opened>, ApiFailure> {
    match id {
        Some(id) if !id.is_empty() => {
            let path = format!("{}/docs?startsWith={}&pageSize=1", database_base(&db), encode_query(&id));
            let page = get_json::<DocumentPage>(&path).await?;
            match page.results.into_iter().next().filter(|d| d.id == id) {
                Some(d) => Ok(Some((id, serde_json::to_string_pretty(&d.document).unwrap_or_default(), d.etag))),
                None => Err(ApiFailure {
                    status: 404,
                    error: "NotFound".into(),
                    message: format!("Document '{id}' does not exist (it may have been deleted)."),
                }),
            }
        }
        _ => Ok(None),
    }
}

/// Why a document cannot be saved as typed, in a sentence for the user.
fn check_document(id: &str, text: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("A document needs an id, for example users/1.".into());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => Ok(()),
        Ok(_) => Err("A document must be a JSON object ({...}).".into()),
        Err(e) => Err(format!("The document is not valid JSON: {e}")),
    }
}

/// Puts a document: with `If-Match` when it was opened at `etag`, with
/// `If-None-Match: *` when it is new.
async fn put_document(db: &str, id: &str, text: String, etag: Option<u64>) -> Result<PutResult, ApiFailure> {
    let path = format!("{}/docs/{}", database_base(db), encode_path(id));
    let condition = match etag {
        Some(etag) => ("If-Match", format!("\"{etag}\"")),
        None => ("If-None-Match", "*".to_string()),
    };
    send_text_with::<PutResult>(Method::Put, &path, text, vec![condition]).await
}

/// What a refused save (`ConcurrencyConflict`, the `error`) means for document `id`.
fn conflict_message(id: &str, is_new: bool, error: &str) -> String {
    if is_new {
        format!("A document '{id}' already exists: open it to change it, or choose another id. ({error})")
    } else {
        format!("'{id}' was changed by someone else since you opened it; your edit was not saved. Reload the document to see the change. ({error})")
    }
}

/// `/studio/documents?db=&start=&id=&new=`.
#[component]
pub fn DocumentsPage() -> impl IntoView {
    let db_param = query_param("db");
    let start_param = query_param("start");
    let id_param = query_param("id");
    let new_param = query_param("new");
    let db = Memo::new(move |_| db_param.get().filter(|d| !d.is_empty()).unwrap_or_else(|| SYSTEM_DATABASE.to_string()));
    let start = Memo::new(move |_| start_param.get().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0));
    let (version, set_version) = signal(0u32);
    let (error, set_error) = signal(None::<String>);
    // Outside the editor: a save reloads the editor, the notice stays.
    let (saved, set_saved) = signal(None::<String>);

    let page = Resource::new(
        move || (db.get(), start.get(), version.get()),
        |(db, start, _)| async move {
            get_json::<DocumentPage>(&format!("{}/docs?start={start}&pageSize={PAGE_SIZE}", database_base(&db))).await
        },
    );
    let opened =
        Resource::new(move || (db.get(), id_param.get(), new_param.get().is_some(), version.get()), |(db, id, _, _)| open_document(db, id));

    let navigate = use_navigate();
    let choose_db = move |chosen: String| navigate(&page_href(&chosen, 0), Default::default());

    view! {
        <section class="page">
            <header class="page-header">
                <h1>"Documents"</h1>
                <div class="toolbar">
                    <label for="documents-database">"Database"</label>
                    <DatabaseSelect id="documents-database" current=db on_choose=choose_db.clone()/>
                    <a class="button primary" href=move || format!("/studio/documents?db={}&new=1", encode_query(&db.get()))>"New document"</a>
                </div>
            </header>
            <ErrorBanner error set_error/>
            <p class="muted save-notice" role="status">{move || saved.get().unwrap_or_default()}</p>
            <div class="split">
                <DocumentListPane page db start/>
                <EditorPane opened db new_param set_version set_error set_saved/>
            </div>
        </section>
    }
}

/// The left pane: one page of the database's documents, with Previous and Next.
#[component]
fn DocumentListPane(page: Resource<Result<DocumentPage, ApiFailure>>, db: Memo<String>, start: Memo<u64>) -> impl IntoView {
    view! {
        <div class="card list-pane">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(p) => {
                            let db_now = db.get_untracked();
                            let start_now = start.get_untracked();
                            let total = p.total_results;
                            let shown = p.results.len() as u64;
                            let prev = (start_now > 0).then(|| page_href(&db_now, start_now.saturating_sub(PAGE_SIZE)));
                            let next = (start_now + shown < total).then(|| page_href(&db_now, start_now + PAGE_SIZE));
                            let rows = p
                                .results
                                .into_iter()
                                .map(|d| {
                                    let href = doc_href(&db_now, &d.id);
                                    let preview: String = d.document.to_string().chars().take(80).collect();
                                    view! {
                                        <li>
                                            <a class="doc-link" href=href>
                                                <span class="doc-id">{d.id.clone()}</span>
                                                <span class="doc-etag">"etag " {d.etag}</span>
                                                <span class="doc-preview">{preview}</span>
                                            </a>
                                        </li>
                                    }
                                })
                                .collect_view();
                            view! {
                                <p class="muted list-summary">
                                    {if total == 0 {
                                        "No documents.".to_string()
                                    } else {
                                        format!("{}–{} of {total}", start_now + 1, start_now + shown)
                                    }}
                                </p>
                                <ul class="doc-list" aria-label="Documents">{rows}</ul>
                                <div class="pager">
                                    {prev.map(|h| view! { <a class="button" href=h>"← Previous"</a> })}
                                    {next.map(|h| view! { <a class="button" href=h>"Next →"</a> })}
                                </div>
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

/// The right pane: the opened document's editor, a new one's, or a hint.
#[component]
fn EditorPane(
    opened: Resource<Result<Option<Opened>, ApiFailure>>,
    db: Memo<String>,
    new_param: Memo<Option<String>>,
    set_version: WriteSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_saved: WriteSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="card editor-pane">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let creating = new_param.get().is_some();
                    match opened.await {
                        Ok(Some((id, text, etag))) => {
                            view! { <DocumentEditor db=db.get_untracked() id=id text=text etag=Some(etag) set_version set_error set_saved/> }.into_any()
                        }
                        Ok(None) if creating => {
                            view! {
                                <DocumentEditor db=db.get_untracked() id=String::new() text="{\n  \n}".to_string() etag=None set_version set_error set_saved/>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            view! { <p class="muted empty">"Pick a document on the left, or create a new one."</p> }.into_any()
                        }
                        Err(e) => view! { <div class="banner banner-error">{e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Edits one document as JSON. An opened document (`etag` given) is saved
/// with `If-Match`, so a change made meanwhile shows as a conflict instead of
/// being overwritten; a new one with `If-None-Match: *`, so an existing id is
/// refused instead of replaced.
#[component]
fn DocumentEditor(
    db: String,
    id: String,
    text: String,
    etag: Option<u64>,
    set_version: WriteSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_saved: WriteSignal<Option<String>>,
) -> impl IntoView {
    let is_new = etag.is_none();
    let (doc_id, set_doc_id) = signal(id);
    let (body, set_body) = signal(text);
    let (busy, set_busy) = signal(false);
    let navigate = use_navigate();
    let db_for_save = db.clone();

    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let id = doc_id.get_untracked().trim().to_string();
        let text = body.get_untracked();
        if let Err(message) = check_document(&id, &text) {
            set_error.set(Some(message));
            return;
        }
        let db = db_for_save.clone();
        let navigate = navigate.clone();
        set_saved.set(None);
        set_busy.set(true);
        leptos::task::spawn_local(async move {
            let result = put_document(&db, &id, text, etag).await;
            set_busy.set(false);
            match result {
                Err(e) if e.error == "ConcurrencyConflict" => set_error.set(Some(conflict_message(&id, is_new, &e.error))),
                Ok(r) => {
                    set_error.set(None);
                    set_saved.set(Some(format!("Saved '{}' at etag {}.", r.id, r.etag)));
                    if is_new {
                        navigate(&doc_href(&db, &r.id), Default::default());
                    }
                    set_version.update(|v| *v += 1);
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    };

    view! {
        <form class="editor" on:submit=save>
            <h2>{if is_new { "New document" } else { "Edit document" }}</h2>
            <DocumentFields doc_id set_doc_id body set_body is_new/>
            <div class="editor-actions">
                <button type="submit" class="primary" disabled=busy>"Save"</button>
                {(!is_new).then(|| view! { <DeleteDocument db doc_id set_version set_error/> })}
            </div>
        </form>
    }
}

/// The editor's Id (read-only once saved) and JSON fields.
#[component]
fn DocumentFields(
    doc_id: ReadSignal<String>,
    set_doc_id: WriteSignal<String>,
    body: ReadSignal<String>,
    set_body: WriteSignal<String>,
    is_new: bool,
) -> impl IntoView {
    view! {
        <label for="document-id">"Id"</label>
        <input
            id="document-id"
            type="text"
            placeholder="users/1"
            prop:value=doc_id
            readonly=!is_new
            on:input=move |ev| set_doc_id.set(event_target_value(&ev))
        />
        <label for="document-body">"JSON"</label>
        <textarea
            id="document-body"
            rows="18"
            spellcheck="false"
            prop:value=body
            on:input=move |ev| set_body.set(event_target_value(&ev))
        ></textarea>
    }
}

/// The editor's Delete button, which asks first; deleting goes back to the
/// database's first page.
#[component]
fn DeleteDocument(
    db: String,
    doc_id: ReadSignal<String>,
    set_version: WriteSignal<u32>,
    set_error: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (confirming, set_confirming) = signal(false);
    let navigate = use_navigate();
    let delete = move |_| {
        set_confirming.set(false);
        let id = doc_id.get_untracked();
        let db = db.clone();
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let path = format!("{}/docs/{}", database_base(&db), encode_path(&id));
            match send_json::<(), ()>(Method::Delete, &path, None).await {
                Ok(()) => {
                    navigate(&page_href(&db, 0), Default::default());
                    set_version.update(|v| *v += 1);
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    };

    view! {
        <Show
            when=move || confirming.get()
            fallback=move || view! { <button type="button" class="danger-outline" on:click=move |_| set_confirming.set(true)>"Delete"</button> }
        >
            <span class="confirm" role="group" aria-label="Confirm delete">
                {move || format!("Delete '{}'?", doc_id.get())}
                <button type="button" class="danger" on:click=delete.clone()>"Yes, delete"</button>
                <button type="button" on:click=move |_| set_confirming.set(false)>"Cancel"</button>
            </span>
        </Show>
    }
}
