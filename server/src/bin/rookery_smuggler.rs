//! `rookery-smuggler`: export a database to a `.rookerydump`, import one, or
//! stream one server's database into another's without a file.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use rookery::cli::client::{Client, ClientError};
use rookery::config::Credentials;
use rookery_types::JobStatus;

/// Move documents between Rookery servers and versions.
#[derive(Debug, Parser)]
#[command(name = "rookery-smuggler", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export a database to a file.
    Out(Out),
    /// Import a file into a database.
    In(In),
    /// Stream a database from one server into another, without a file.
    Between(Between),
}

#[derive(Debug, ClapArgs)]
struct Out {
    /// Server root URL or database URL.
    #[arg(long)]
    url: String,
    /// The file to write (`-` for stdout).
    #[arg(long)]
    file: String,
    #[arg(long)]
    database: Option<String>,
    /// Only ids with this prefix.
    #[arg(long)]
    starts_with: Option<String>,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Debug, ClapArgs)]
struct In {
    #[arg(long)]
    url: String,
    /// The file to read (`-` for stdin).
    #[arg(long)]
    file: String,
    #[arg(long)]
    database: Option<String>,
    /// Replace documents whose id exists (default: keep them).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Debug, ClapArgs)]
struct Between {
    /// Source server root URL or database URL.
    #[arg(long)]
    from: String,
    /// Target server root URL or database URL.
    #[arg(long)]
    to: String,
    /// The database on both sides (default: from each URL).
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    credentials: Credentials,
}

fn main() -> ExitCode {
    rookery::process::without_transparent_huge_pages();
    let result = match Cli::parse().command {
        Command::Out(a) => out(&a),
        Command::In(a) => into(&a),
        Command::Between(a) => between(&a),
    };
    match result {
        Ok(message) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rookery-smuggler: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bytes_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Opens the export stream of a database.
fn open_export(url: &str, database: Option<&str>, starts_with: Option<&str>, credentials: &Credentials) -> Result<impl Read, ClientError> {
    let client = Client::new(url, database, None, credentials);
    let mut endpoint = format!("{}/smuggler/export", client.base());
    if let Some(p) = starts_with {
        endpoint.push_str(&format!("?startsWith={}", rookery::cli::client::percent_encode(p).replace('/', "%2F")));
    }
    client.get_stream(&endpoint)
}

/// Posts a dump stream into a database; returns the import's final status.
fn post_import(
    url: &str,
    database: Option<&str>,
    overwrite: bool,
    body: &mut dyn Read,
    credentials: &Credentials,
) -> Result<JobStatus, ClientError> {
    let client = Client::new(url, database, None, credentials);
    let endpoint = format!("{}/smuggler/import?overwrite={overwrite}", client.base());
    // Ctrl-C cancels the import this tool started (the documents imported so far stay).
    rookery::cli::cancel_on_ctrl_c(&client, format!("{}/smuggler/import/cancel", client.base()));
    client.post_stream(&endpoint, "application/octet-stream", body)
}

fn out(a: &Out) -> Result<String, ClientError> {
    let mut reader = open_export(&a.url, a.database.as_deref(), a.starts_with.as_deref(), &a.credentials)?;
    let bar = bytes_bar();
    bar.set_message("exported");
    let local = |e: std::io::Error| ClientError { status: None, code: "IoError".into(), message: format!("{}: {e}", a.file) };
    let written = if a.file == "-" {
        std::io::copy(&mut bar.wrap_read(&mut reader), &mut std::io::stdout().lock()).map_err(local)?
    } else {
        // Write to a temporary name and rename, so a failed export leaves no file that looks whole.
        let temp = format!("{}.partial", a.file);
        let mut file = std::fs::File::create(&temp).map_err(local)?;
        let n = std::io::copy(&mut bar.wrap_read(&mut reader), &mut file).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            local(e)
        })?;
        file.flush().and_then(|()| file.sync_all()).map_err(local)?;
        std::fs::rename(&temp, &a.file).map_err(local)?;
        n
    };
    bar.finish_and_clear();
    Ok(format!("Exported {} to {}", rookery::cli::human_bytes(written), a.file))
}

fn into(a: &In) -> Result<String, ClientError> {
    let local = |e: std::io::Error| ClientError { status: None, code: "IoError".into(), message: format!("{}: {e}", a.file) };
    let mut input: Box<dyn Read> =
        if a.file == "-" { Box::new(std::io::stdin()) } else { Box::new(std::fs::File::open(&a.file).map_err(local)?) };
    let bar = bytes_bar();
    bar.set_message("sent");
    let mut wrapped = bar.wrap_read(&mut input);
    let status = post_import(&a.url, a.database.as_deref(), a.overwrite, &mut wrapped, &a.credentials)?;
    bar.finish_and_clear();
    Ok(summary(&status))
}

fn between(a: &Between) -> Result<String, ClientError> {
    let mut source = open_export(&a.from, a.database.as_deref(), None, &a.credentials)?;
    let bar = bytes_bar();
    bar.set_message("streamed");
    let mut wrapped = bar.wrap_read(&mut source);
    let status = post_import(&a.to, a.database.as_deref(), a.overwrite, &mut wrapped, &a.credentials)?;
    bar.finish_and_clear();
    Ok(summary(&status))
}

fn summary(status: &JobStatus) -> String {
    status.messages.last().map(|m| m.message.clone()).unwrap_or_else(|| "Import completed".into())
}
