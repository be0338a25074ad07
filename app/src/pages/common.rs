//! Pieces the pages share.

use leptos::prelude::*;

use crate::client::{get_json, ApiFailure};
use rookery_types::{DatabaseInfo, SYSTEM_DATABASE};

/// A dismissable error banner; shows nothing when `error` is `None`.
#[component]
pub fn ErrorBanner(error: ReadSignal<Option<String>>, set_error: WriteSignal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <div class="banner banner-error" role="alert">
                <span class="banner-text">{move || error.get().unwrap_or_default()}</span>
                <button class="link" on:click=move |_| set_error.set(None)>"Dismiss"</button>
            </div>
        </Show>
    }
}

/// A row's Delete button that asks first: "Delete" turns into "Confirm
/// delete" and "Cancel" while `confirming` names this row; the buttons say
/// which row (`Delete {what} {name}`) to a screen reader.
#[component]
pub fn ConfirmDelete<F>(
    what: &'static str,
    name: String,
    confirming: ReadSignal<Option<String>>,
    set_confirming: WriteSignal<Option<String>>,
    on_confirm: F,
) -> impl IntoView
where
    F: Fn(String) + Clone + Send + Sync + 'static,
{
    let mine = name.clone();
    let asked = move || confirming.get().as_deref() == Some(mine.as_str());
    let ask = name.clone();
    view! {
        <Show
            when=asked
            fallback=move || {
                let ask = ask.clone();
                view! {
                    <button type="button" class="danger-outline" aria-label=format!("Delete {what} {ask}") on:click=move |_| set_confirming.set(Some(ask.clone()))>
                        "Delete"
                    </button>
                }
            }
        >
            {
                let (target, on_confirm) = (name.clone(), on_confirm.clone());
                view! {
                    <button type="button" class="danger" aria-label=format!("Confirm delete of {what} {target}") on:click=move |_| on_confirm(target.clone())>
                        "Confirm delete"
                    </button>
                    <button type="button" class="link" on:click=move |_| set_confirming.set(None)>"Cancel"</button>
                }
            }
        </Show>
    }
}

/// A `<select id=id>` of every database (the system database first) with
/// `current` selected; `on_choose` gets the name picked.
#[component]
pub fn DatabaseSelect<F>(id: &'static str, current: Memo<String>, on_choose: F) -> impl IntoView
where
    F: Fn(String) + Clone + Send + Sync + 'static,
{
    let names = Resource::new(|| (), |_| database_names());
    view! {
        <Transition fallback=move || view! { <select id=id disabled=true></select> }>
            {move || Suspend::new({
                let on_choose = on_choose.clone();
                async move {
                    let list = names.await.unwrap_or_else(|_| vec![SYSTEM_DATABASE.to_string()]);
                    let selected_now = current.get_untracked();
                    view! {
                        <select id=id on:change=move |ev| on_choose(event_target_value(&ev))>
                            {list
                                .into_iter()
                                .map(|n| {
                                    let selected = n == selected_now;
                                    view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
                                })
                                .collect_view()}
                        </select>
                    }
                }
            })}
        </Transition>
    }
}

/// The names of every database, the system database first.
pub async fn database_names() -> Result<Vec<String>, ApiFailure> {
    let named: Vec<DatabaseInfo> = get_json("/databases").await?;
    Ok(std::iter::once(SYSTEM_DATABASE.to_string()).chain(named.into_iter().map(|d| d.name)).collect())
}

/// The current page's query parameter `name`, read on the server and in the browser.
pub fn query_param(name: &'static str) -> Memo<Option<String>> {
    let query = leptos_router::hooks::use_query_map();
    Memo::new(move |_| query.with(|q| q.get(name)))
}
