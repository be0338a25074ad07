//! The Backup page's notifications: the server's webhooks (where events go,
//! which ones, whether a secret signs them, how the last delivery went), a
//! form to add or replace one, and Send test and Delete on each.

use leptos::prelude::*;

use super::common::ConfirmDelete;
use crate::client::{encode_path, get_json, send_json, ApiFailure, Method};
use rookery_types::{NotificationEvent, NotificationInfo, PutNotificationRequest, TestDelivery};

/// `/admin/notifications/{name}`.
fn path(name: &str) -> String {
    format!("/admin/notifications/{}", encode_path(name))
}

/// The server's webhooks, and a form to add one.
#[component]
pub fn NotificationsSection() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let hooks = Resource::new(move || refresh.get(), |_| get_json::<Vec<NotificationInfo>>("/admin/notifications"));
    let (error, set_error) = signal(None::<String>);
    let (notice, set_notice) = signal(None::<String>);
    view! {
        <section class="card" aria-labelledby="notifications-title">
            <div class="card-head">
                <h2 id="notifications-title">"Notifications"</h2>
                <span class="muted small">"Webhooks called when a backup fails, recovers or goes stale, a drill fails, or a restore ends."</span>
            </div>
            <Show when=move || error.get().is_some()>
                <p class="error-text" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || notice.get().is_some()>
                <p class="banner banner-ok" role="status">{move || notice.get().unwrap_or_default()}</p>
            </Show>
            <NotificationsTable hooks refresh set_error set_notice/>
            <NotificationForm refresh set_error set_notice/>
        </section>
    }
}

/// The webhooks as a table (`aria-label="Notifications"`).
#[component]
fn NotificationsTable(
    hooks: Resource<Result<Vec<NotificationInfo>, ApiFailure>>,
    refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let (confirming, set_confirming) = signal(None::<String>);
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match hooks.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No notification yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" aria-label="Notifications">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"URL"</th>
                                    <th scope="col">"Events"</th>
                                    <th scope="col">"Last delivery"</th>
                                    <th scope="col" class="actions"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|hook| view! { <NotificationRow hook refresh confirming set_confirming set_error set_notice/> }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                    Err(e) => view! { <p class="error-text" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// What the last delivery to a webhook says, in words.
fn last_delivery(hook: &NotificationInfo) -> String {
    let last = &hook.last_delivery;
    let pending = if hook.pending_deliveries > 0 { format!(" ({} waiting)", hook.pending_deliveries) } else { String::new() };
    match (&last.last_attempt, &last.last_error) {
        (None, _) => format!("Never{pending}"),
        (Some(at), None) => format!("Delivered {}{pending}", at.replace('T', " ").trim_end_matches('Z')),
        (Some(_), Some(e)) => format!("Failed: {e}{pending}"),
    }
}

/// One webhook: Send test and Delete.
#[component]
fn NotificationRow(
    hook: NotificationInfo,
    refresh: RwSignal<u32>,
    confirming: ReadSignal<Option<String>>,
    set_confirming: WriteSignal<Option<String>>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let name = hook.name.clone();
    let test = move |_| {
        let name = name.clone();
        leptos::task::spawn_local(async move {
            match send_json::<TestDelivery, ()>(Method::Post, &format!("{}/test", path(&name)), None).await {
                Ok(t) if t.delivered => {
                    set_notice.set(Some(format!("Test sent to '{name}': the receiver answered {}.", t.status_code.unwrap_or(0))))
                }
                Ok(t) => set_error.set(Some(format!("Test to '{name}' not delivered: {}", t.error.unwrap_or_default()))),
                Err(e) => set_error.set(Some(e.to_string())),
            }
            refresh.update(|v| *v = v.wrapping_add(1));
        });
    };
    let delete = move |name: String| {
        leptos::task::spawn_local(async move {
            let result = send_json::<(), ()>(Method::Delete, &path(&name), None).await;
            set_confirming.set(None);
            match result {
                Ok(()) => set_notice.set(Some(format!("Notification '{name}' deleted."))),
                Err(e) => set_error.set(Some(e.to_string())),
            }
            refresh.update(|v| *v = v.wrapping_add(1));
        });
    };
    let events = hook.events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ");
    let secret = if hook.has_secret { "signed" } else { "unsigned" };
    view! {
        <tr>
            <th scope="row">{hook.name.clone()} {hook.disabled.then(|| view! { <span class="tag">"off"</span> })}</th>
            <td class="mono small">{hook.url.clone()} <span class="muted">" (" {secret} ")"</span></td>
            <td class="small">{events}</td>
            <td class="small">{last_delivery(&hook)}</td>
            <td class="actions nowrap">
                <button type="button" aria-label=format!("Send test to {}", hook.name) on:click=test>"Send test"</button>
                <ConfirmDelete what="notification" name=hook.name.clone() confirming set_confirming on_confirm=delete/>
            </td>
        </tr>
    }
}

/// The form that adds (or replaces) a webhook.
#[component]
fn NotificationForm(
    refresh: RwSignal<u32>,
    set_error: WriteSignal<Option<String>>,
    set_notice: WriteSignal<Option<String>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let chosen = RwSignal::new(vec![NotificationEvent::BackupFailed, NotificationEvent::BackupRecovered, NotificationEvent::BackupStale]);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let hook = name.get_untracked().trim().to_string();
        let request = PutNotificationRequest {
            url: url.get_untracked().trim().to_string(),
            events: chosen.get_untracked(),
            secret: Some(secret.get_untracked()).filter(|s| !s.is_empty()),
            disabled: None,
        };
        leptos::task::spawn_local(async move {
            match send_json::<(), _>(Method::Put, &path(&hook), Some(&request)).await {
                Ok(()) => {
                    set_error.set(None);
                    set_notice.set(Some(format!("Notification '{hook}' saved.")));
                    name.set(String::new());
                    secret.set(String::new());
                    refresh.update(|v| *v = v.wrapping_add(1));
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <form class="form-grid" on:submit=save aria-label="Add a notification">
            <div class="field">
                <label for="notification-name">"Name"</label>
                <input id="notification-name" type="text" autocomplete="off" placeholder="ops" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            </div>
            <div class="field">
                <label for="notification-url">"Webhook URL"</label>
                <input id="notification-url" type="text" autocomplete="off" placeholder="https://hooks.example.com/rookery" prop:value=url on:input=move |ev| url.set(event_target_value(&ev))/>
            </div>
            <div class="field">
                <label for="notification-secret">"Secret (signs each body; 16 characters or more)"</label>
                <input id="notification-secret" type="password" autocomplete="new-password" prop:value=secret on:input=move |ev| secret.set(event_target_value(&ev))/>
            </div>
            <EventChoices chosen/>
            <div class="form-actions full">
                <button type="submit" class="primary">"Save notification"</button>
            </div>
        </form>
    }
}

/// A checkbox per event a webhook can ask for.
#[component]
fn EventChoices(chosen: RwSignal<Vec<NotificationEvent>>) -> impl IntoView {
    let boxes = NotificationEvent::SUBSCRIBABLE
        .into_iter()
        .map(|event| {
            let id = format!("notification-event-{event:?}");
            let toggle = move |ev: leptos::ev::Event| {
                let on = event_target_checked(&ev);
                chosen.update(|list| {
                    list.retain(|e| *e != event);
                    if on {
                        list.push(event);
                    }
                });
            };
            let for_id = id.clone();
            view! {
                <label class="checkbox" for=for_id>
                    <input id=id type="checkbox" prop:checked=move || chosen.get().contains(&event) on:change=toggle/>
                    {format!("{event:?}")}
                </label>
            }
        })
        .collect_view();
    view! {
        <fieldset class="full">
            <legend>"Events"</legend>
            {boxes}
        </fieldset>
    }
}
