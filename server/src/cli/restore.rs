//! The restore modes of `rookery-server`'s command line.

use std::process::ExitCode;
use std::time::Duration;

use super::client::Client;
use super::progress::follow_with_progress;
use crate::config::Config;
use rookery_types::{JobAccepted, RestoreRequest, RESTORE_STATUS_ID};

/// `--restore-system-database`: offline, synchronous.
#[must_use]
pub fn restore_system_offline(config: &Config) -> ExitCode {
    let args = &config.restore;
    let (Some(source), Some(destination)) = (&args.restore_source, &args.restore_destination) else {
        eprintln!("rookery-server: --restore-system-database needs --restore-source=PATH and --restore-destination=DIR");
        return ExitCode::from(2);
    };
    let bar = super::progress::counting_bar("records");
    let mut progress = |done: u64, _bytes: u64| {
        bar.set_length(bar.length().unwrap_or(0).max(done));
        bar.set_position(done);
    };
    let secret =
        match crate::backup::sealed::SetSecret::from_request(args.restore_backup_key.as_ref(), args.restore_backup_passphrase.as_ref()) {
            Ok(secret) => secret,
            Err(message) => {
                eprintln!("rookery-server: {message}");
                return ExitCode::from(2);
            }
        };
    let source = match crate::backup::location::location_from_cli(source) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("rookery-server: --restore-source: {e}");
            return ExitCode::from(2);
        }
    };
    let options = crate::restore::SystemRestore { up_to: args.restore_up_to.clone(), set_secret: secret, defrag: args.restore_defrag };
    let result = crate::restore::restore_system_database(&source, destination, &options, &mut progress);
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            println!(
                "Restored the system database ({}, up to {}) into {}",
                rookery_types::counted(summary.documents, "document"),
                summary.last_set_id,
                summary.location.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rookery-server: restore failed: {} ({})", e, e.code());
            ExitCode::FAILURE
        }
    }
}

/// `--restore-database=URL`: a client of a running server.
#[must_use]
pub fn restore_online(config: &Config) -> ExitCode {
    let args = &config.restore;
    let (Some(url), Some(source)) = (&args.restore_database, &args.restore_source) else {
        eprintln!("rookery-server: --restore-database=URL needs --restore-source=PATH");
        return ExitCode::from(2);
    };
    let client = Client::new(
        url,
        Some(rookery_types::SYSTEM_DATABASE),
        Some(Duration::from_secs(args.restore_start_timeout + 600)),
        &config.credentials,
    );
    let request = RestoreRequest {
        backup_location: source.clone(),
        s3: None,
        database_location: args.restore_destination.as_ref().map(|p| p.display().to_string()),
        database_name: args.restore_database_name.clone(),
        restore_start_timeout: Some(args.restore_start_timeout),
        restore_up_to: args.restore_up_to.clone(),
        source_database_name: args.restore_source_database_name.clone(),
        encryption_key: args.restore_encryption_key.clone(),
        backup_encryption_key: args.restore_backup_key.clone(),
        backup_passphrase: args.restore_backup_passphrase.clone(),
    };
    let defrag = if args.restore_defrag { "true" } else { "false" };
    let root = client.root().to_string();
    if let Err(e) = client.post_json::<JobAccepted>(&format!("{root}/admin/restore?defrag={defrag}"), &request) {
        eprintln!("rookery-server: restore refused: {e}");
        return ExitCode::FAILURE;
    }
    if args.restore_no_wait {
        println!("Restore started; follow {root}/docs/{RESTORE_STATUS_ID}");
        return ExitCode::SUCCESS;
    }
    super::progress::cancel_on_ctrl_c(&client, format!("{root}/admin/restore/cancel"));
    match follow_with_progress(&client, &root, RESTORE_STATUS_ID, Duration::from_secs(7 * 24 * 3600)) {
        Ok(status) if status.success => {
            println!("Restore completed: database '{}'", status.database_name.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!(
                "rookery-server: restore failed: {} ({})",
                status.error.unwrap_or_else(|| "unknown error".into()),
                status.error_code.unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rookery-server: {e}");
            ExitCode::FAILURE
        }
    }
}
