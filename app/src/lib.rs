#![recursion_limit = "256"]
//! Rookery's studio (Leptos, rendered on the server and hydrated in the
//! browser). It speaks the REST API's types (`rookery-types`) over HTTP
//! only, like any other client.

pub mod client;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

use pages::backup::BackupPage;
use pages::databases::DatabasesPage;
use pages::documents::DocumentsPage;
use pages::login::{allowed, AuthContext, IdentityBadge, RequireRole};
use pages::overview::OverviewPage;
use pages::restore::RestorePage;
use pages::smuggler::SmugglerPage;
use rookery_types::Role;

/// The HTML document around the studio.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The studio.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let auth = pages::login::AuthContext::provide();
    view! {
        <Stylesheet id="leptos" href="/pkg/rookery.css"/>
        <Title text="Rookery Studio"/>
        <Router>
            <div class="layout">
                <Sidebar auth/>
                <main class="content">
                    <Routes fallback=|| view! { <NotFound/> }>
                        <Route path=path!("/studio") view=FrontPage/>
                        <Route path=path!("/studio/protection") view=|| view! { <RequireRole role=Role::Admin><OverviewPage/></RequireRole> }/>
                        <Route path=path!("/studio/databases") view=|| view! { <RequireRole role=Role::ReadOnly><DatabasesPage/></RequireRole> }/>
                        <Route path=path!("/studio/documents") view=|| view! { <RequireRole role=Role::ReadOnly><DocumentsPage/></RequireRole> }/>
                        <Route path=path!("/studio/backup") view=|| view! { <RequireRole role=Role::Admin><BackupPage/></RequireRole> }/>
                        <Route path=path!("/studio/browse") view=|| view! { <RequireRole role=Role::Admin><pages::browse::BrowsePage/></RequireRole> }/>
                        <Route path=path!("/studio/restore") view=|| view! { <RequireRole role=Role::Admin><RestorePage/></RequireRole> }/>
                        <Route path=path!("/studio/smuggler") view=|| view! { <RequireRole role=Role::Admin><SmugglerPage/></RequireRole> }/>
                        <Route path=path!("/studio/login") view=pages::login::LoginPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

#[component]
fn Sidebar(auth: pages::login::AuthContext) -> impl IntoView {
    // Pages an identity may not use are not offered.
    let admin = move || auth.me.get().and_then(Result::ok).is_some_and(|me| pages::login::allowed(&me, Role::Admin));
    view! {
        <nav class="sidebar" aria-label="Studio">
            <a class="brand" href="/studio">
                <span class="brand-mark">"◆"</span>
                <span>"Rookery"</span>
                <span class="brand-sub">"Studio"</span>
            </a>
            <ul>
                <li><A href="/studio/databases">"Databases"</A></li>
                <li><A href="/studio/documents">"Documents"</A></li>
                <Transition fallback=|| ()>
                    <Show when=admin>
                        <li><A href="/studio/protection">"Protection"</A></li>
                        <li><A href="/studio/backup">"Backup"</A></li>
                        <li><A href="/studio/restore">"Restore"</A></li>
                        <li><A href="/studio/smuggler">"Import/Export"</A></li>
                    </Show>
                </Transition>
            </ul>
            <div class="sidebar-foot">
                <IdentityBadge/>
                <a href="/openapi.json">"REST API (OpenAPI)"</a>
            </div>
        </nav>
    }
}

/// The studio's front page: the protection overview for an administrator,
/// the databases for anyone else.
#[component]
fn FrontPage() -> impl IntoView {
    let Some(auth) = use_context::<AuthContext>() else {
        return view! { <p>"Missing authentication context"</p> }.into_any();
    };
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.me.await {
                    Ok(me) if allowed(&me, Role::Admin) => view! { <OverviewPage/> }.into_any(),
                    _ => view! { <RequireRole role=Role::ReadOnly><DatabasesPage/></RequireRole> }.into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section class="page">
            <h1>"Not found"</h1>
            <p>"There is no such page. " <a href="/studio">"Back to the databases"</a></p>
        </section>
    }
}

/// Entry point of the WASM bundle: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Tests wait for this before they click: clicks before hydration do nothing.
    let _ = leptos::web_sys::js_sys::Reflect::set(&leptos::prelude::window(), &"__rookeryHydrated".into(), &true.into());
}
