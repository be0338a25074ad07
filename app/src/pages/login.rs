//! Sign-in, and the guard that keeps pages from identities that may not use them.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use super::common::ErrorBanner;
use crate::client::{get_json, send_json, ApiFailure, Method};
use rookery_types::{LoginRequest, Me, Role};

/// Who is signed in, shared by every page; `refresh` re-reads it after a sign-in or out.
#[derive(Clone, Copy)]
pub struct AuthContext {
    pub me: Resource<Result<Me, ApiFailure>>,
    pub refresh: WriteSignal<u32>,
}

impl AuthContext {
    /// Creates the context (once, in the App).
    pub fn provide() -> Self {
        let (version, refresh) = signal(0u32);
        let me = Resource::new(move || version.get(), |_| get_json::<Me>("/auth/me"));
        let ctx = Self { me, refresh };
        provide_context(ctx);
        ctx
    }
}

/// Whether `me` may use a page that needs `role`.
pub fn allowed(me: &Me, role: Role) -> bool {
    me.development_mode || (me.authenticated && me.role.is_some_and(|r| r >= role))
}

/// Shows `children` only to an identity with at least `role`; otherwise a
/// sign-in prompt or a refusal.
#[component]
pub fn RequireRole(role: Role, children: ChildrenFn) -> impl IntoView {
    let Some(auth) = use_context::<AuthContext>() else {
        return view! { <p>"Missing authentication context"</p> }.into_any();
    };
    let children = StoredValue::new(children);
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.me.await {
                    Ok(me) if allowed(&me, role) => children.with_value(|c| c()).into_any(),
                    Ok(me) if me.authenticated => {
                        view! {
                            <section class="page">
                                <div class="card">
                                    <h1>"Forbidden"</h1>
                                    <p>{format!("This page needs the {role:?} role; you are signed in as {} ({:?}).", me.name.unwrap_or_default(), me.role.unwrap_or(Role::ReadOnly))}</p>
                                </div>
                            </section>
                        }
                            .into_any()
                    }
                    Ok(_) => {
                        view! {
                            <section class="page">
                                <div class="card">
                                    <h1>"Sign in"</h1>
                                    <p>"This server needs credentials. " <a href="/studio/login">"Sign in"</a></p>
                                </div>
                            </section>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <div class="banner banner-error">{e.to_string()}</div> }.into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

/// `/studio/login`.
#[component]
pub fn LoginPage() -> impl IntoView {
    let auth = use_context::<AuthContext>();
    let (username, set_username) = signal(String::new());
    let (password, set_password) = signal(String::new());
    let (error, set_error) = signal(None::<String>);
    let (busy, set_busy) = signal(false);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let request = LoginRequest { username: username.get_untracked(), password: password.get_untracked() };
        if request.username.trim().is_empty() || request.password.is_empty() {
            set_error.set(Some("Enter a user name and a password.".into()));
            return;
        }
        set_busy.set(true);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let result = send_json::<Me, _>(Method::Post, "/auth/login", Some(&request)).await;
            set_busy.set(false);
            match result {
                Ok(_) => {
                    if let Some(a) = auth {
                        a.refresh.update(|v| *v += 1);
                    }
                    navigate("/studio/databases", Default::default());
                }
                Err(e) => set_error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <section class="page login-page">
            <header class="page-header"><h1>"Sign in"</h1></header>
            <ErrorBanner error set_error/>
            <form class="card form-grid" on:submit=submit>
                <label for="login-username">"User name"</label>
                <input id="login-username" type="text" autocomplete="username" prop:value=username on:input=move |ev| set_username.set(event_target_value(&ev))/>
                <label for="login-password">"Password"</label>
                <input id="login-password" type="password" autocomplete="current-password" prop:value=password on:input=move |ev| set_password.set(event_target_value(&ev))/>
                <div class="form-actions">
                    <button type="submit" class="primary" disabled=busy>"Sign in"</button>
                </div>
            </form>
        </section>
    }
}

/// The identity line at the foot of the navigation: who, which role, sign out;
/// or the development-mode warning.
#[component]
pub fn IdentityBadge() -> impl IntoView {
    let Some(auth) = use_context::<AuthContext>() else {
        return ().into_any();
    };
    let navigate = use_navigate();
    let sign_out = move |_| {
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let _ = send_json::<(), ()>(Method::Post, "/auth/logout", None).await;
            auth.refresh.update(|v| *v += 1);
            navigate("/studio/login", Default::default());
        });
    };
    view! {
        <Transition fallback=|| ()>
            {
                let sign_out = sign_out.clone();
                move || {
                    let sign_out = sign_out.clone();
                    Suspend::new(async move {
                        match auth.me.await {
                            Ok(me) if me.development_mode => {
                                view! {
                                    <div class="dev-mode" role="note">
                                        "Development mode: no user exists, so anyone who can reach this server is an administrator."
                                    </div>
                                }
                                    .into_any()
                            }
                            Ok(me) if me.authenticated => {
                                view! {
                                    <div class="identity">
                                        <span>{me.name.unwrap_or_default()}</span>
                                        <span class="tag">{format!("{:?}", me.role.unwrap_or(Role::ReadOnly))}</span>
                                        <button class="link" on:click=sign_out>"Sign out"</button>
                                    </div>
                                }
                                    .into_any()
                            }
                            _ => view! { <a href="/studio/login">"Sign in"</a> }.into_any(),
                        }
                    })
                }
            }
        </Transition>
    }
    .into_any()
}
