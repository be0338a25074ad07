//! The whole HTTP server: the REST API, the studio (server-rendered, then
//! hydrated) and its static files.

use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};
use app::client::SsrApi;

/// The REST API, the studio under `/studio`, and `/` redirecting to it.
pub fn app_router(state: AppState) -> Router {
    let api = api::router(state.clone());
    let config = state.config();
    let options = LeptosOptions::builder()
        .output_name("rookery")
        .site_root(config.site_root().display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.bind)
        .build();
    let routes = generate_route_list(app::App);
    let api_for_ssr = api.clone();
    let studio = Router::new()
        .leptos_routes_with_context(&options, routes, move || provide_context(SsrApi(api_for_ssr.clone())), {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback({
            let studio_files = leptos_axum::file_and_error_handler(app::shell);
            move |uri: axum::http::Uri, state: axum::extract::State<LeptosOptions>, request: axum::extract::Request| {
                let studio_files = studio_files.clone();
                async move {
                    if api::is_api_path(uri.path()) {
                        return api::unknown_path(&uri).into_response();
                    }
                    studio_files(uri, state, request).await
                }
            }
        })
        .with_state(options);
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/studio") }))
        .merge(api)
        .merge(studio)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
}
