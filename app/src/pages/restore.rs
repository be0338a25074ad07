//! The Restore page.

use leptos::prelude::*;

/// `/studio/restore`.
#[component]
pub fn RestorePage() -> impl IntoView {
    view! {
        <section class="page">
            <header class="page-header"><h1>"Restore"</h1></header>
            <div class="card"><p class="muted">"Coming soon."</p></div>
        </section>
    }
}
