//! `rookery-server`: serves the REST API and the studio, or restores (see `--help`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rookery::cli::restore as restore_cli;
use rookery::config::Config;
use rookery::Rookery;

fn main() -> ExitCode {
    rookery::process::without_transparent_huge_pages();
    let config = match Config::from_args() {
        Ok(c) => c,
        Err(rookery::config::ConfigError::Usage(e)) => e.exit(),
        Err(e) => {
            eprintln!("rookery-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);

    if let Some(name) = config.create_admin.clone() {
        return create_admin(&config, &name);
    }
    if config.restore.restore_system_database {
        return restore_cli::restore_system_offline(&config);
    }
    if config.restore.restore_database.is_some() {
        return restore_cli::restore_online(&config);
    }
    serve(config)
}

/// Logs to standard error: text with colours only on a terminal (a file, a
/// pipe or journald gets plain text), or JSON lines.
fn init_logging(format: rookery::config::LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        rookery::config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        rookery::config::LogFormat::Json => builder.json().init(),
    }
}

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rookery-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let bind = config.bind;
        let data_dir = config.data_dir.clone();
        let rookery = match tokio::task::spawn_blocking(move || Rookery::open(config)).await {
            Ok(Ok(r)) => Arc::new(r),
            Ok(Err(e)) => {
                eprintln!("rookery-server: cannot open the data directory '{}': {e}", data_dir.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("rookery-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        if rookery.auth().is_open() {
            if !bind.ip().is_loopback() {
                eprintln!(
                    "rookery-server: refusing to serve on {bind} with no administrator: anyone could read and change every database.\n\
                     Create one first: ROOKERY_PASSWORD=... rookery-server --data-dir {} --create-admin=admin",
                    data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            tracing::warn!("DEVELOPMENT MODE: no user or API key exists, so every request acts as an administrator. Create an admin with --create-admin before exposing this server.");
        }
        let listener = match tokio::net::TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rookery-server: cannot listen on {bind}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(address = %local, data_dir = %data_dir.display(), "Rookery is serving; studio at http://{local}/studio");
        // One machine-readable line: tests and scripts read the port from it.
        println!("Rookery listening on http://{local}");
        if let Some(address) = rookery.config().metrics_bind {
            match tokio::net::TcpListener::bind(address).await {
                Ok(metrics) => {
                    let local = metrics.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    println!("Rookery metrics on http://{local}/metrics");
                    let app = rookery::api::router::metrics_router(rookery.clone());
                    tokio::spawn(async move { axum::serve(metrics, app).with_graceful_shutdown(shutdown_signal()).await });
                }
                Err(e) => {
                    eprintln!("rookery-server: cannot listen on {address} (--metrics-bind): {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // Scheduled backup tasks run while the server serves, and notifications go out.
        if let Err(e) = rookery.start_scheduler().and_then(|_| rookery.start_notifier()) {
            eprintln!("rookery-server: cannot start the task scheduler: {e}");
            return ExitCode::FAILURE;
        }
        let app = rookery::web::app_router(rookery.clone());
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await;
        tracing::info!("shutting down: flushing every database");
        let r = rookery.clone();
        let _ = tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || r.persist_all())).await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rookery-server: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// `--create-admin=NAME`: stores an administrator and exits.
fn create_admin(config: &Config, name: &str) -> ExitCode {
    let password = match std::env::var("ROOKERY_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            use std::io::{BufRead, IsTerminal, Write};
            if !std::io::stdin().is_terminal() {
                eprintln!("rookery-server: set ROOKERY_PASSWORD to the new administrator's password");
                return ExitCode::from(2);
            }
            eprint!("Password for '{name}' (shown as you type): ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                return ExitCode::FAILURE;
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let rookery = match Rookery::open(config.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rookery-server: cannot open '{}': {e}", config.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    match rookery.auth().put_user(name, &password, rookery::auth::Role::Admin) {
        Ok(created) => {
            println!("{} administrator '{name}' in {}", if created { "Created" } else { "Reset" }, config.data_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rookery-server: {e}");
            ExitCode::FAILURE
        }
    }
}
