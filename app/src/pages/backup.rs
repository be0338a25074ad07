//! The Backup page.

use leptos::prelude::*;

/// `/studio/backup`.
#[component]
pub fn BackupPage() -> impl IntoView {
    view! {
        <section class="page">
            <header class="page-header"><h1>"Backup"</h1></header>
            <div class="card"><p class="muted">"Coming soon."</p></div>
        </section>
    }
}
