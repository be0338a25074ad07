//! The Browse page (`/studio/browse?location=&upTo=&db=`): a backup at a
//! point in time, read from its sets without restoring it. Search by id
//! prefix, view a document beside the live one (the lines that differ
//! marked), restore the selected documents into a live or new database, and
//! compare the point with another set of its chain.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

use super::common::{query_param, DatabaseSelect, ErrorBanner};
use super::sets::{fetch_listing, newest_first, set_label};
use super::status::{fetch_status, format_count, format_time, poll_while_running, JobKind, JobStatusPanel, StatusResult};
use crate::client::{encode_path, encode_query, format_bytes, get_json, send_json, ApiFailure, Method};
use rookery_types::{
    database_base, BackupDocumentPage, DiffPage, DocumentChange, JobAccepted, RestoreDocumentsMode, RestoreDocumentsRequest,
    RESTORE_DOCUMENTS_STATUS_ID, SYSTEM_DATABASE,
};

/// Documents per page of the listing.
const PAGE_SIZE: usize = 25;

/// `location=…&upTo=…` for the read endpoints.
fn point_query(location: &str, up_to: Option<&str>) -> String {
    let mut query = format!("location={}", encode_query(location));
    if let Some(up_to) = up_to.filter(|u| !u.is_empty()) {
        query.push_str("&upTo=");
        query.push_str(&encode_query(up_to));
    }
    query
}

/// The href of this page for a point (`db`: the live database to compare with and restore into).
#[must_use]
pub fn browse_href(location: &str, up_to: &str, db: &str) -> String {
    format!("/studio/browse?location={}&upTo={}&db={}", encode_query(location), encode_query(up_to), encode_query(db))
}

/// What the page reads: the location and the point.
#[derive(Clone, Copy)]
struct Point {
    location: Memo<Option<String>>,
    up_to: Memo<Option<String>>,
    db: Memo<String>,
}

/// `/studio/browse`.
#[component]
pub fn BrowsePage() -> impl IntoView {
    let location = query_param("location");
    let up_to = query_param("upTo");
    let db_param = query_param("db");
    let db = Memo::new(move |_| db_param.get().filter(|d| !d.is_empty()).unwrap_or_else(|| SYSTEM_DATABASE.to_string()));
    let point = Point { location, up_to, db };
    let (error, set_error) = signal(None::<String>);
    let selected = RwSignal::new(BTreeSet::<String>::new());
    let (viewing, set_viewing) = signal(None::<String>);
    let shown_point = move || up_to.get().filter(|u| !u.is_empty()).unwrap_or_else(|| "the newest set".to_string());
    view! {
        <section class="page">
            <header class="page-header">
                <div>
                    <h1>"Browse backup"</h1>
                    <p class="muted">
                        "The documents of " <span class="mono">{move || location.get().unwrap_or_default()}</span>
                        " as they were at " <span class="mono">{shown_point}</span>
                        ", read from the sets without restoring them."
                    </p>
                </div>
            </header>
            <ErrorBanner error set_error/>
            <DocumentList point selected set_viewing/>
            {move || viewing.get().map(|id| view! { <DocumentCompare point id/> })}
            <RestoreSelected point selected set_error/>
            <CompareSets point/>
        </section>
    }
}

/// The point's documents: search by prefix, a page at a time, each with a
/// checkbox (for Restore selected) and a View button.
#[component]
fn DocumentList(point: Point, selected: RwSignal<BTreeSet<String>>, set_viewing: WriteSignal<Option<String>>) -> impl IntoView {
    let (typed, set_typed) = signal(String::new());
    let (prefix, set_prefix) = signal(String::new());
    let (start, set_start) = signal(0usize);
    let page = Resource::new(
        move || (point.location.get(), point.up_to.get(), prefix.get(), start.get()),
        |(location, up_to, prefix, start)| async move {
            let Some(location) = location.filter(|l| !l.is_empty()) else { return Ok(None) };
            let path = format!(
                "/admin/backup/documents?{}&startsWith={}&start={start}&pageSize={PAGE_SIZE}",
                point_query(&location, up_to.as_deref()),
                encode_query(&prefix)
            );
            get_json::<BackupDocumentPage>(&path).await.map(Some)
        },
    );
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        set_start.set(0);
        set_prefix.set(typed.get_untracked().trim().to_string());
    };
    view! {
        <div class="card">
            <form class="toolbar browse-search" on:submit=search>
                <label for="browse-prefix">"Id starts with"</label>
                <input id="browse-prefix" type="text" placeholder="(all documents)" prop:value=typed on:input=move |ev| set_typed.set(event_target_value(&ev))/>
                <button type="submit">"Search"</button>
                <span class="muted push-right">{move || format!("{} selected", format_count(selected.with(BTreeSet::len) as u64))}</span>
            </form>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(Some(p)) => view! { <DocumentTable page=p selected set_viewing start set_start/> }.into_any(),
                        Ok(None) => view! { <p class="muted empty">"Open a set from the backup history to browse it."</p> }.into_any(),
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the backup: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn DocumentTable(
    page: BackupDocumentPage,
    selected: RwSignal<BTreeSet<String>>,
    set_viewing: WriteSignal<Option<String>>,
    start: ReadSignal<usize>,
    set_start: WriteSignal<usize>,
) -> impl IntoView {
    let more = page.results.len() == PAGE_SIZE;
    let empty = page.results.is_empty();
    let rows = page
        .results
        .into_iter()
        .map(|d| {
            let (id, check, view_id) = (d.id.clone(), d.id.clone(), d.id.clone());
            let toggle = move |ev: leptos::ev::Event| {
                let on = event_target_checked(&ev);
                let id = check.clone();
                selected.update(|s| {
                    if on {
                        s.insert(id);
                    } else {
                        s.remove(&id);
                    }
                });
            };
            let is_selected = { let id = id.clone(); move || selected.with(|s| s.contains(&id)) };
            view! {
                <tr>
                    <td><input type="checkbox" aria-label=format!("Select {id}") prop:checked=is_selected on:change=toggle/></td>
                    <td class="mono">{id.clone()}</td>
                    <td class="num">{d.etag}</td>
                    <td class="nowrap">{format_time(&d.last_modified)}</td>
                    <td class="num">{format_bytes(d.size_bytes)}</td>
                    <td class="actions">
                        <button type="button" class="link" aria-label=format!("View {id}") on:click=move |_| set_viewing.set(Some(view_id.clone()))>"View"</button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        {(!empty).then(|| view! {
            <div class="table-wrap">
                <table class="table" aria-label="Backup documents">
                    <thead>
                        <tr>
                            <th><span class="visually-hidden">"Select"</span></th>
                            <th>"Id"</th>
                            <th class="num">"ETag"</th>
                            <th>"Last modified"</th>
                            <th class="num">"Size"</th>
                            <th><span class="visually-hidden">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        })}
        {empty.then(|| view! { <p class="muted empty">"No document at this point matches."</p> })}
        <div class="toolbar pager">
            <button type="button" disabled=move || start.get() == 0 on:click=move |_| set_start.update(|s| *s = s.saturating_sub(PAGE_SIZE))>"Previous"</button>
            <button type="button" disabled=!more on:click=move |_| set_start.update(|s| *s += PAGE_SIZE)>"Next"</button>
        </div>
    }
}

/// One document's backed-up version beside the live one, the lines that differ marked.
#[component]
fn DocumentCompare(point: Point, id: String) -> impl IntoView {
    let title = format!("{id} then and now");
    let versions = Resource::new(
        move || (point.location.get(), point.up_to.get(), point.db.get()),
        move |(location, up_to, db)| {
            let id = id.clone();
            async move {
                let location = location.unwrap_or_default();
                let old: serde_json::Value =
                    get_json(&format!("/admin/backup/documents/{}?{}", encode_path(&id), point_query(&location, up_to.as_deref()))).await?;
                let live = match get_json::<serde_json::Value>(&format!("{}/docs/{}", database_base(&db), encode_path(&id))).await {
                    Ok(v) => Some(v),
                    Err(e) if e.status == 404 => None,
                    Err(e) => return Err(e),
                };
                Ok::<_, ApiFailure>((old, live))
            }
        },
    );
    let label = title.clone();
    view! {
        <section class="card" aria-label=label>
            <h2>{title}</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match versions.await {
                        Ok((old, live)) => view! { <SideBySide old live db=point.db.get_untracked()/> }.into_any(),
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the document: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn SideBySide(old: serde_json::Value, live: Option<serde_json::Value>, db: String) -> impl IntoView {
    let old_lines = pretty_lines(&old);
    let live_lines = live.as_ref().map(pretty_lines).unwrap_or_default();
    let (old_marks, live_marks) = changed_lines(&old_lines, &live_lines);
    let column = |lines: Vec<String>, marks: Vec<bool>, label: String| {
        let body = lines
            .into_iter()
            .zip(marks)
            .map(|(line, changed)| view! { <span class=if changed { "diff-line changed" } else { "diff-line" }>{line}"\n"</span> })
            .collect_view();
        view! { <pre class="json-view" aria-label=label tabindex="0">{body}</pre> }
    };
    let live_view = match live {
        Some(_) => column(live_lines, live_marks, format!("Live in {db}")).into_any(),
        None => view! { <p class="muted">"Not in " {db.clone()} " now."</p> }.into_any(),
    };
    view! {
        <div class="side-by-side">
            <div><h3>"In the backup"</h3>{column(old_lines, old_marks, "Backed-up version".to_string())}</div>
            <div><h3>"Live in " {db}</h3>{live_view}</div>
        </div>
    }
}

fn pretty_lines(value: &serde_json::Value) -> Vec<String> {
    serde_json::to_string_pretty(value).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Which lines of `a` and of `b` are not in their longest common
/// subsequence (the lines that differ); positional for very long documents.
#[must_use]
pub fn changed_lines(a: &[String], b: &[String]) -> (Vec<bool>, Vec<bool>) {
    if a.len().saturating_mul(b.len()) > 400_000 {
        let differs = |i: usize, x: &[String], y: &[String]| x.get(i) != y.get(i);
        return ((0..a.len()).map(|i| differs(i, a, b)).collect(), (0..b.len()).map(|i| differs(i, b, a)).collect());
    }
    // lengths[i][j]: the LCS of a[i..] and b[j..].
    let mut lengths = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lengths[i][j] = if a[i] == b[j] { lengths[i + 1][j + 1] + 1 } else { lengths[i + 1][j].max(lengths[i][j + 1]) };
        }
    }
    let (mut in_a, mut in_b) = (vec![true; a.len()], vec![true; b.len()]);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            in_a[i] = false;
            in_b[j] = false;
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (in_a, in_b)
}

/// Restore the selected documents into the live database (or a new one), and the job's status.
#[component]
fn RestoreSelected(point: Point, selected: RwSignal<BTreeSet<String>>, set_error: WriteSignal<Option<String>>) -> impl IntoView {
    let (mode, set_mode) = signal(RestoreDocumentsMode::Skip);
    let (new_name, set_new_name) = signal(String::new());
    let (busy, set_busy) = signal(false);
    // Where the status document is: the database restored into.
    let (target, set_target) = signal(None::<String>);
    let refresh = RwSignal::new(0u32);
    let status = Resource::new(
        move || (target.get().unwrap_or_else(|| point.db.get()), refresh.get()),
        |(db, _)| fetch_status(format!("{}/docs/{RESTORE_DOCUMENTS_STATUS_ID}", database_base(&db))),
    );
    poll_while_running(status, refresh, |_| {});
    let navigate = use_navigate();
    let choose_db = move |chosen: String| {
        let (location, up_to) = (point.location.get_untracked().unwrap_or_default(), point.up_to.get_untracked().unwrap_or_default());
        set_target.set(None);
        navigate(&browse_href(&location, &up_to, &chosen), NavigateOptions { replace: true, scroll: false, ..Default::default() });
    };
    let restore = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let ids: Vec<String> = selected.get_untracked().into_iter().collect();
        if ids.is_empty() {
            set_error.set(Some("Select the documents to restore first (the boxes in the list).".into()));
            return;
        }
        let name = new_name.get_untracked().trim().to_string();
        let db = point.db.get_untracked();
        let request = RestoreDocumentsRequest {
            backup_location: point.location.get_untracked().unwrap_or_default(),
            restore_up_to: point.up_to.get_untracked().filter(|u| !u.is_empty()),
            ids: Some(ids),
            mode: mode.get_untracked(),
            database_name: (!name.is_empty()).then(|| name.clone()),
            ..Default::default()
        };
        set_busy.set(true);
        leptos::task::spawn_local(async move {
            let path = format!("{}/admin/restore/documents", database_base(&db));
            match send_json::<JobAccepted, _>(Method::Post, &path, Some(&request)).await {
                Ok(_) => {
                    set_error.set(None);
                    set_target.set(Some(if name.is_empty() { db } else { name }));
                    refresh.update(|v| *v = v.wrapping_add(1));
                }
                Err(e) => set_error.set(Some(format!("The restore was refused: {e}"))),
            }
            set_busy.set(false);
        });
    };
    view! {
        <form class="card form-stack" on:submit=restore aria-label="Restore selected documents">
            <h2>"Restore selected"</h2>
            <div class="field">
                <label for="restore-into">"Into the database"</label>
                <DatabaseSelect id="restore-into" current=point.db on_choose=choose_db/>
            </div>
            <div class="field">
                <label for="restore-new-name">"Or into a new database named"</label>
                <input id="restore-new-name" type="text" placeholder="(leave empty to restore into the database above)" prop:value=new_name on:input=move |ev| set_new_name.set(event_target_value(&ev))/>
            </div>
            <div class="field">
                <label for="restore-mode">"When the database holds the id"</label>
                <select id="restore-mode" on:change=move |ev| set_mode.set(if event_target_value(&ev) == "Overwrite" { RestoreDocumentsMode::Overwrite } else { RestoreDocumentsMode::Skip })>
                    <option value="Skip" selected=move || mode.get() == RestoreDocumentsMode::Skip>"Skip: keep the live document"</option>
                    <option value="Overwrite" selected=move || mode.get() == RestoreDocumentsMode::Overwrite>"Overwrite: write the backed-up version"</option>
                </select>
            </div>
            <div class="form-actions">
                <button type="submit" class="primary" disabled=busy>{move || format!("Restore {} selected", format_count(selected.with(BTreeSet::len) as u64))}</button>
            </div>
            <RestoreDocumentsStatus status target=Signal::derive(move || target.get().unwrap_or_else(|| point.db.get()))/>
        </form>
    }
}

#[component]
fn RestoreDocumentsStatus(status: Resource<StatusResult>, target: Signal<String>) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(s) => {
                        let cancel = format!("{}/admin/restore/documents/cancel", database_base(&target.get_untracked()));
                        view! { <JobStatusPanel kind=JobKind::RestoreDocuments status=s idle_text="No documents were restored into this database yet." success_link=None cancel/> }.into_any()
                    }
                    Err(e) => view! { <div class="banner banner-error" role="status">"Cannot read the status: " {e.to_string()}</div> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The ids created, changed and deleted between another set of the chain and this point.
#[component]
fn CompareSets(point: Point) -> impl IntoView {
    let (from, set_from) = signal(String::new());
    let sets = Resource::new(
        move || point.location.get(),
        |location| async move {
            match location.filter(|l| !l.is_empty()) {
                Some(l) => fetch_listing(l).await.map(|listing| newest_first(&listing)),
                None => Ok(Vec::new()),
            }
        },
    );
    let changes = Resource::new(
        move || (point.location.get(), point.up_to.get(), from.get()),
        |(location, up_to, from)| async move {
            if from.is_empty() {
                return Ok(None);
            }
            let mut path = format!(
                "/admin/backup/diff?location={}&from={}&pageSize=1024",
                encode_query(&location.unwrap_or_default()),
                encode_query(&from)
            );
            if let Some(to) = up_to.filter(|u| !u.is_empty()) {
                path.push_str("&to=");
                path.push_str(&encode_query(&to));
            }
            get_json::<DiffPage>(&path).await.map(Some)
        },
    );
    view! {
        <section class="card" aria-label="Compare">
            <h2>"Compare with an earlier point"</h2>
            <div class="field">
                <label for="compare-from">"Changes since"</label>
                <Transition fallback=|| view! { <select id="compare-from" disabled=true></select> }>
                    {move || Suspend::new(async move {
                        let options = sets.await.unwrap_or_default();
                        view! {
                            <select id="compare-from" on:change=move |ev| set_from.set(event_target_value(&ev))>
                                <option value="">"(choose a set)"</option>
                                {options.into_iter().map(|(_, set)| view! { <option value=set.set_id.clone()>{format!("{} · {}", set.set_id, set_label(&set))}</option> }).collect_view()}
                            </select>
                        }
                    })}
                </Transition>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match changes.await {
                        Ok(Some(diff)) => view! { <ChangesTable diff/> }.into_any(),
                        Ok(None) => view! { <p class="muted">"Choose an earlier set of the same chain to see what changed since."</p> }.into_any(),
                        Err(e) => view! { <div class="banner banner-error" role="status">"Cannot compare: " {e.to_string()}</div> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ChangesTable(diff: DiffPage) -> impl IntoView {
    let heading = format!("From {} to {}: {} changed", diff.from_set_id, diff.to_set_id, format_count(diff.results.len() as u64));
    let rows = diff
        .results
        .into_iter()
        .map(|e| {
            let (class, text) = match e.change {
                DocumentChange::Created => ("tag ok", "Created"),
                DocumentChange::Changed => ("tag kind-incremental", "Changed"),
                DocumentChange::Deleted => ("tag err", "Deleted"),
            };
            view! { <tr><td class="mono">{e.id}</td><td><span class=class>{text}</span></td></tr> }
        })
        .collect_view();
    view! {
        <p class="muted">{heading}</p>
        <div class="table-wrap">
            <table class="table" aria-label="Changes">
                <thead><tr><th>"Id"</th><th>"Change"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn only_the_lines_that_differ_are_marked() {
        let old = lines("{\n  \"A\": 1,\n  \"B\": 2,\n  \"C\": 3\n}");
        let new = lines("{\n  \"A\": 1,\n  \"B\": 20,\n  \"C\": 3,\n  \"D\": 4\n}");
        let (a, b) = changed_lines(&old, &new);
        assert_eq!(a, [false, false, true, true, false]);
        assert_eq!(b, [false, false, true, true, true, false]);
        assert_eq!(changed_lines(&old, &old), (vec![false; 5], vec![false; 5]));
    }
}
