//! The engine embedded in a program, without HTTP: back a database up,
//! restore it under another name, and restore the system database offline.
//! Builds with the engine alone: `cargo run -p server --no-default-features --example embedded`.

use rookery::backup::location::Location;
use rookery::backup::BackupOptions;
use rookery::config::Config;
use rookery::restore::{restore_system_database, SystemRestore};
use rookery::Rookery;
use rookery_types::RestoreRequest;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let rookery = Rookery::open(Config::for_tests(&dir.path().join("data")))?;
    let db = rookery.catalog().create("Northwind")?;
    db.store().put("orders/1", br#"{"Total": 42}"#, None)?;

    // A full backup; `wait` blocks until the set is complete.
    let location = dir.path().join("backups").display().to_string();
    let backup = rookery.start_backup("Northwind", BackupOptions { location: location.clone(), ..Default::default() })?;
    let summary = backup.wait()?;
    assert_eq!(summary.documents, 1);
    println!("backed up {} document(s) into {}", summary.documents, summary.set_id);

    // Restore it under another name, verified before it becomes visible.
    let request = RestoreRequest { backup_location: location, database_name: Some("Northwind-copy".into()), ..Default::default() };
    let restored = rookery.start_restore(&request, false)?.wait()?;
    assert_eq!(restored.documents, 1);
    let copy = rookery.catalog().get("Northwind-copy").ok_or("the restored database is there")?;
    assert!(copy.store().get("orders/1")?.is_some());
    println!("restored {} document(s) as Northwind-copy", restored.documents);

    // The system database restores offline, into a data directory no server uses.
    let system_backup = dir.path().join("system-backup");
    let options = BackupOptions { location: system_backup.display().to_string(), ..Default::default() };
    rookery.start_backup("System", options)?.wait()?;
    let new_data = dir.path().join("new-data");
    restore_system_database(&Location::Folder(system_backup), &new_data, &SystemRestore::default(), &mut |_, _| {})?;
    assert!(new_data.join("System").is_dir());
    println!("restored the system database into {}", new_data.display());
    Ok(())
}
