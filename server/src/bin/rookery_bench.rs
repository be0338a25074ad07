//! `rookery-bench`: the backup and restore benchmark. Every figure is printed
//! as a ratio against a baseline measured in the same run.
//!
//! `cargo run --release -p server --bin rookery-bench -- --documents 1000000`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use rookery::backup::BackupOptions;
use rookery::config::Config;
use rookery::storage::Durability;
use rookery::Rookery;
use rookery_types::{BackupType, RestoreRequest};

#[derive(Debug, Parser)]
#[command(name = "rookery-bench", about = "Backup and restore benchmark; prints ratios against baselines measured in the same run.")]
struct Args {
    /// Documents of about 1 KB in the database.
    #[arg(long, default_value_t = 1_000_000)]
    documents: u64,
    /// Seconds of each write-load window.
    #[arg(long, default_value_t = 3)]
    load_seconds: u64,
    /// Writer threads during the load windows.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Work folder (default: a temp folder, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// An S3 endpoint for the object storage rows (credentials from `AWS_*`);
    /// default: a moto server started on a free loopback port (moto from
    /// `.tools/venv`, which `make bench` installs, or `ROOKERY_PYTHON`'s).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The bucket at --s3-endpoint (created on the moto server).
    #[arg(long, default_value = "rookery-bench")]
    s3_bucket: String,
    /// Leave out the object storage rows.
    #[arg(long)]
    no_s3: bool,
}

fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().expect("a temp folder");
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let data = root.join("data");
    let mut rows: Vec<Row> = Vec::new();
    println!("rookery-bench: {} documents of ~1 KB in {}", args.documents, root.display());

    // 1. Load through the storage layer's normal write path (acknowledged to the OS).
    let load_time = {
        let rookery = Rookery::open(config(&data, Durability::Os)).expect("opens");
        let db = rookery.catalog().create("Bench").expect("creates");
        let started = Instant::now();
        for i in 0..args.documents {
            db.store().put(&doc_id(i), &doc_body(i, 0), None).expect("put");
        }
        db.store().persist().expect("persist");
        let t = started.elapsed();
        println!(
            "load: {:.1} s ({:.0} docs/s through DocumentStore::put, durability=os)",
            t.as_secs_f64(),
            args.documents as f64 / t.as_secs_f64()
        );
        t
    };

    // 2. The baseline: cp -r of the data directory, cold caches where we can.
    let data_bytes = du(&data);
    drop_caches();
    let cp_target = root.join("cp-copy");
    let started = Instant::now();
    let status = Command::new("cp").arg("-r").arg(&data).arg(&cp_target).status().expect("cp");
    assert!(status.success());
    let cp_time = started.elapsed();
    let _ = std::fs::remove_dir_all(&cp_target);
    println!("cp -r of the data directory ({}): {:.2} s", human(data_bytes), cp_time.as_secs_f64());
    // The same, paying for durability as a backup does: cp -r, then sync.
    drop_caches();
    let started = Instant::now();
    let status = Command::new("cp").arg("-r").arg(&data).arg(&cp_target).status().expect("cp");
    assert!(status.success());
    let status = Command::new("sync").status().expect("sync");
    assert!(status.success());
    let cp_sync_time = started.elapsed();
    let _ = std::fs::remove_dir_all(&cp_target);
    println!("cp -r + sync of the data directory: {:.2} s", cp_sync_time.as_secs_f64());

    let mut server_config = config(&data, Durability::Fsync);
    server_config.backup_roots = vec![root.clone(), PathBuf::from(format!("s3://{}", args.s3_bucket))];
    let rookery = Arc::new(Rookery::open(server_config).expect("reopens"));
    let location = root.join("backups");
    let location_str = location.display().to_string();

    // 3. Full backup: time, size, peak RSS.
    drop_caches();
    reset_peak_rss();
    let rss_before = current_rss();
    let started = Instant::now();
    let full = rookery
        .start_backup("Bench", BackupOptions { location: location_str.clone(), incremental: false, ..Default::default() })
        .expect("starts")
        .wait()
        .expect("backup");
    let full_time = started.elapsed();
    let backup_rss = peak_rss();
    let backup_bytes = du(full.set_dir.as_deref().expect("a folder set"));
    println!(
        "full backup: {:.2} s, {} ({} documents), peak RSS {} (before {})",
        full_time.as_secs_f64(),
        human(backup_bytes),
        full.documents,
        human(backup_rss),
        human(rss_before)
    );
    rows.push(Row::ratio("full backup time / cp -r + sync", full_time.as_secs_f64(), cp_sync_time.as_secs_f64(), "<= 1.5"));
    rows.push(Row::ratio("backup size / data directory", backup_bytes as f64, data_bytes as f64, "<= 0.5"));

    // 3b. The same full backup as an encrypted set (chunks sealed with XChaCha20-Poly1305).
    drop_caches();
    let started = Instant::now();
    rookery
        .start_backup(
            "Bench",
            BackupOptions {
                location: root.join("backups-sealed").display().to_string(),
                set_secret: Some(rookery::backup::sealed::SetSecret::Key(rookery::crypto::Key::random().to_base64())),
                ..Default::default()
            },
        )
        .expect("starts")
        .wait()
        .expect("sealed backup");
    let sealed_time = started.elapsed();
    println!("full backup as an encrypted set: {:.2} s", sealed_time.as_secs_f64());
    rows.push(Row::ratio("encrypted set / plain full backup time", sealed_time.as_secs_f64(), full_time.as_secs_f64(), "<= 1.3"));

    // 4. Incremental after 1% of the documents changed.
    let db = rookery.catalog().get("Bench").expect("db");
    let changed = (args.documents / 100).max(1);
    for k in 0..changed {
        let i = (k * 97) % args.documents;
        db.store().put(&doc_id(i), &doc_body(i, 1), None).expect("put");
    }
    let started = Instant::now();
    let inc = rookery
        .start_backup("Bench", BackupOptions { location: location_str.clone(), incremental: true, ..Default::default() })
        .expect("starts")
        .wait()
        .expect("incremental");
    let inc_time = started.elapsed();
    println!(
        "incremental ({} changed): {:.3} s, {}",
        inc.documents,
        inc_time.as_secs_f64(),
        human(du(inc.set_dir.as_deref().expect("a folder set")))
    );
    rows.push(Row::ratio("incremental (1% changed) / full backup time", inc_time.as_secs_f64(), full_time.as_secs_f64(), "<= 0.05"));

    // 5. Writes without and during a backup.
    let window = Duration::from_secs(args.load_seconds);
    let quiet = write_load(&rookery, args.writers, args.documents, window, None);
    println!("writes without a backup: {:.0}/s, p99 {:.2} ms", quiet.throughput, quiet.p99_ms);
    let busy_location = root.join("backups-under-load").display().to_string();
    let during = write_load(&rookery, args.writers, args.documents, window, Some((&busy_location, BackupType::Backup)));
    println!("writes during a backup:  {:.0}/s, p99 {:.2} ms ({} backup(s) ran)", during.throughput, during.p99_ms, during.backups);
    rows.push(Row::ratio("write throughput during / without backup", during.throughput, quiet.throughput, ">= 0.9"));
    rows.push(Row::ratio("p99 write latency during / without backup", during.p99_ms, quiet.p99_ms, "<= 2.0"));
    rows.push(Row::absolute("peak RSS during the full backup (MB)", backup_rss as f64 / 1e6, "< 256"));

    // 6. Restore of the full set: time and peak RSS.
    drop_caches();
    reset_peak_rss();
    let started = Instant::now();
    let request = RestoreRequest {
        backup_location: location_str.clone(),
        database_name: Some("Restored".into()),
        restore_up_to: Some(full.set_id.clone()),
        ..Default::default()
    };
    let restored = rookery.start_restore(&request, false).expect("starts").wait().expect("restore");
    let restore_time = started.elapsed();
    let restore_rss = peak_rss();
    assert_eq!(restored.documents, args.documents, "every document restored");
    println!(
        "restore of the full set: {:.2} s ({} documents), peak RSS {}",
        restore_time.as_secs_f64(),
        restored.documents,
        human(restore_rss)
    );
    rows.push(Row::ratio("restore time / cp -r", restore_time.as_secs_f64(), cp_time.as_secs_f64(), "<= 2.0"));
    rows.push(Row::ratio(
        "restore time / load through the write path",
        restore_time.as_secs_f64(),
        load_time.as_secs_f64(),
        "(lower is better)",
    ));
    rows.push(Row::absolute("peak RSS during the restore (MB)", restore_rss as f64 / 1e6, "< 256"));

    // 6a. Snapshot sets: copied, hard-linked, hard-linked again; restored.
    let snapshot = |dest: &str, copy_files: bool| {
        let options = BackupOptions { location: dest.to_string(), backup_type: BackupType::Snapshot, copy_files, ..Default::default() };
        let started = Instant::now();
        let summary = rookery.start_backup("Bench", options).expect("starts").wait().expect("snapshot");
        (started.elapsed(), summary)
    };
    drop_caches();
    reset_peak_rss();
    rookery::backup::snapshot::forget_hashes();
    let copied_dest = root.join("snapshots-copied").display().to_string();
    let (copy_time, copied) = snapshot(&copied_dest, true);
    let snapshot_rss = peak_rss();
    drop_caches();
    // A first linked snapshot hashes every table (none kept from the copy above).
    rookery::backup::snapshot::forget_hashes();
    let linked_dest = root.join("snapshots-linked").display().to_string();
    let (link_time, _) = snapshot(&linked_dest, false);
    let (relink_time, _) = snapshot(&linked_dest, false);
    println!(
        "snapshot: copied {:.2} s ({}), hard-linked {:.2} s, hard-linked again {:.3} s, peak RSS {}",
        copy_time.as_secs_f64(),
        human(copied.bytes_written),
        link_time.as_secs_f64(),
        relink_time.as_secs_f64(),
        human(snapshot_rss)
    );
    rows.push(Row::ratio("snapshot (copied) / cp -r + sync", copy_time.as_secs_f64(), cp_sync_time.as_secs_f64(), "<= 1.0"));
    rows.push(Row::ratio("snapshot (hard links) / cp -r + sync", link_time.as_secs_f64(), cp_sync_time.as_secs_f64(), "<= 0.5"));
    rows.push(Row::ratio("second linked snapshot / cp -r + sync", relink_time.as_secs_f64(), cp_sync_time.as_secs_f64(), "<= 0.05"));
    rows.push(Row::absolute("peak RSS during a snapshot (MB)", snapshot_rss as f64 / 1e6, "< 256"));
    drop_caches();
    reset_peak_rss();
    let started = Instant::now();
    let request =
        RestoreRequest { backup_location: copied_dest.clone(), database_name: Some("RestoredSnapshot".into()), ..Default::default() };
    let restored_snapshot = rookery.start_restore(&request, false).expect("starts").wait().expect("snapshot restore");
    let snapshot_restore_time = started.elapsed();
    assert_eq!(restored_snapshot.documents, args.documents, "every document restored");
    println!("restore of the snapshot set: {:.2} s, peak RSS {}", snapshot_restore_time.as_secs_f64(), human(peak_rss()));
    rows.push(Row::ratio("snapshot restore time / cp -r", snapshot_restore_time.as_secs_f64(), cp_time.as_secs_f64(), "<= 1.2"));
    let snap_busy = root.join("snapshots-under-load").display().to_string();
    let during_snapshot = write_load(&rookery, args.writers, args.documents, window, Some((&snap_busy, BackupType::Snapshot)));
    println!(
        "writes during snapshots: {:.0}/s, p99 {:.2} ms ({} snapshot(s) ran)",
        during_snapshot.throughput, during_snapshot.p99_ms, during_snapshot.backups
    );
    rows.push(Row::ratio("write throughput during a snapshot / without", during_snapshot.throughput, quiet.throughput, ">= 0.9"));
    rows.push(Row::ratio("p99 write latency during a snapshot / without", during_snapshot.p99_ms, quiet.p99_ms, "<= 2.0"));

    // 6b. Object storage: the same full backup to S3, and the same restore from it.
    let s3_target = (!args.no_s3).then(|| S3Target::start(&args)).flatten();
    match &s3_target {
        Some(s3) => {
            let url = format!("s3://{}/bench-{}", args.s3_bucket, std::process::id());
            drop_caches();
            reset_peak_rss();
            let started = Instant::now();
            let to_s3 = rookery
                .start_backup("Bench", BackupOptions { location: url.clone(), s3: Some(s3.settings.clone()), ..Default::default() })
                .expect("starts")
                .wait()
                .expect("backup to S3");
            let s3_backup_time = started.elapsed();
            let s3_backup_rss = peak_rss();
            println!("full backup to S3 ({}): {:.2} s, peak RSS {}", s3.describe, s3_backup_time.as_secs_f64(), human(s3_backup_rss));
            drop_caches();
            reset_peak_rss();
            let started = Instant::now();
            let request = RestoreRequest {
                backup_location: url,
                s3: Some(s3.settings.clone()),
                database_name: Some("RestoredFromS3".into()),
                restore_up_to: Some(to_s3.set_id.clone()),
                ..Default::default()
            };
            let restored = rookery.start_restore(&request, false).expect("starts").wait().expect("restore from S3");
            let s3_restore_time = started.elapsed();
            let s3_restore_rss = peak_rss();
            assert_eq!(restored.documents, args.documents, "every document restored from S3");
            println!("restore from S3: {:.2} s, peak RSS {}", s3_restore_time.as_secs_f64(), human(s3_restore_rss));
            rows.push(Row::ratio("backup to S3 / backup to a folder", s3_backup_time.as_secs_f64(), full_time.as_secs_f64(), "<= 1.25"));
            rows.push(Row::ratio(
                "restore from S3 / restore from a folder",
                s3_restore_time.as_secs_f64(),
                restore_time.as_secs_f64(),
                "<= 1.25",
            ));
            rows.push(Row::absolute("peak RSS during the backup to S3 (MB)", s3_backup_rss as f64 / 1e6, "< 256"));
            rows.push(Row::absolute("peak RSS during the restore from S3 (MB)", s3_restore_rss as f64 / 1e6, "< 256"));
            let _ = rookery.catalog().delete("RestoredFromS3");
        }
        None => println!("object storage rows: skipped"),
    }

    // 7. Export and import (the smuggler) through files, streamed.
    let dump = root.join("bench.rookerydump");
    reset_peak_rss();
    let started = Instant::now();
    let exported = {
        let file = std::io::BufWriter::new(std::fs::File::create(&dump).expect("creates"));
        rookery::smuggler::export(&db.store().snapshot(), "Bench", "", file, &mut |_| {}).expect("exports")
    };
    let export_time = started.elapsed();
    let export_rss = peak_rss();
    let target = rookery.catalog().create("Imported").expect("creates");
    reset_peak_rss();
    let started = Instant::now();
    let imported =
        rookery::smuggler::import(target.store(), std::fs::File::open(&dump).expect("opens"), false, &Default::default(), &mut |_, _| {})
            .expect("imports");
    let import_time = started.elapsed();
    let import_rss = peak_rss();
    assert_eq!(imported.written, exported);
    println!(
        "export: {:.0} docs/s ({} in {:.2} s, {}, peak RSS {}); import: {:.0} docs/s ({:.2} s, peak RSS {})",
        exported as f64 / export_time.as_secs_f64(),
        exported,
        export_time.as_secs_f64(),
        human(std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0)),
        human(export_rss),
        imported.written as f64 / import_time.as_secs_f64(),
        import_time.as_secs_f64(),
        human(import_rss)
    );
    rows.push(Row::absolute("peak RSS during export (MB)", export_rss as f64 / 1e6, "< 256"));
    rows.push(Row::absolute("peak RSS during import (MB)", import_rss as f64 / 1e6, "< 256"));
    rows.push(Row::ratio("export time / full backup time", export_time.as_secs_f64(), full_time.as_secs_f64(), "(information)"));
    rows.push(Row::ratio("import time / restore time", import_time.as_secs_f64(), restore_time.as_secs_f64(), "(information)"));

    // 7b. Continuous backup to S3 under the write load: lag, write throughput,
    // storage requests per minute idle and under load.
    if let Some(s3) = &s3_target {
        continuous_rows(&rookery, s3, &args, quiet.throughput, &mut rows);
    }

    // 8. Document writes of 1 KB: storage layer and REST, fsync durability.
    let storage = write_load(&rookery, args.writers, args.documents, window, None);
    let rest = rest_load(rookery.clone(), args.writers, args.documents, window);
    println!(
        "1 KB writes, durability=fsync, {} writers: storage {:.0} docs/s, REST {:.0} docs/s (p99 {:.2} ms)",
        args.writers, storage.throughput, rest.throughput, rest.p99_ms
    );
    rows.push(Row::ratio("REST / storage write throughput", rest.throughput, storage.throughput, "(information)"));

    // 9. Compaction (last: its temporary index leaves the allocator larger for what would follow): a full plus 24 incrementals of 1% each, folded, against a fresh full backup.
    {
        let chain_location = root.join("backups-chain").display().to_string();
        let backup = |incremental: bool| {
            rookery
                .start_backup("Bench", BackupOptions { location: chain_location.clone(), incremental, ..Default::default() })
                .expect("starts")
                .wait()
                .expect("backup")
        };
        backup(false);
        for round in 0..24u64 {
            for k in 0..changed {
                let i = (k * 101 + round * 7919) % args.documents;
                db.store().put(&doc_id(i), &doc_body(i, round + 2), None).expect("put");
            }
            backup(true);
        }
        drop_caches();
        let started = Instant::now();
        rookery
            .start_backup("Bench", BackupOptions { location: root.join("backups-fresh").display().to_string(), ..Default::default() })
            .expect("starts")
            .wait()
            .expect("fresh full");
        let fresh_time = started.elapsed();
        drop_caches();
        reset_peak_rss();
        let compact_rss_before = current_rss();
        let started = Instant::now();
        let options = rookery::backup::compact::CompactOptions::default();
        let compacted = rookery.start_compaction(&chain_location, None, &options).expect("starts").wait().expect("compaction");
        let compact_time = started.elapsed();
        let compact_rss = peak_rss();
        assert_eq!(compacted.documents, args.documents, "every document in the compacted set");
        println!(
            "compaction of a full + 24 incrementals of 1%: {:.2} s (a fresh full backup: {:.2} s), peak RSS {}",
            compact_time.as_secs_f64(),
            fresh_time.as_secs_f64(),
            human(compact_rss)
        );
        rows.push(Row::ratio(
            "compaction (full + 24 x 1%) / fresh full backup",
            compact_time.as_secs_f64(),
            fresh_time.as_secs_f64(),
            "<= 1.0",
        ));
        rows.push(Row::absolute("peak RSS during compaction (MB)", compact_rss as f64 / 1e6, "< 256"));
        rows.push(Row::absolute(
            "  of which the compaction added (MB)",
            compact_rss.saturating_sub(compact_rss_before) as f64 / 1e6,
            "(information)",
        ));
    }

    println!();
    println!("{:<48} {:>10} {:>12}  met", "measure", "value", "target");
    for row in &rows {
        println!("{:<48} {:>10.3} {:>12}  {}", row.name, row.value, row.target, row.met());
    }
    drop(rookery);
}

struct Row {
    name: &'static str,
    value: f64,
    target: &'static str,
}

impl Row {
    fn ratio(name: &'static str, a: f64, b: f64, target: &'static str) -> Self {
        Self { name, value: if b > 0.0 { a / b } else { f64::NAN }, target }
    }

    fn absolute(name: &'static str, value: f64, target: &'static str) -> Self {
        Self { name, value, target }
    }

    fn met(&self) -> &'static str {
        let t = self.target;
        let parse = |s: &str| s.trim().parse::<f64>().ok();
        let ok = if let Some(v) = t.strip_prefix("<=").and_then(parse) {
            self.value <= v
        } else if let Some(v) = t.strip_prefix(">=").and_then(parse) {
            self.value >= v
        } else if let Some(v) = t.strip_prefix('<').and_then(parse) {
            self.value < v
        } else {
            return "-";
        };
        if ok {
            "yes"
        } else {
            "NO"
        }
    }
}

/// Where the object storage rows go: a given endpoint, or a moto server of our own.
struct S3Target {
    settings: rookery_types::S3Settings,
    describe: String,
    moto: Option<std::process::Child>,
    /// moto's request log (one line per request), to count storage requests.
    log: Option<PathBuf>,
}

impl S3Target {
    /// Requests the storage has answered so far (moto only).
    fn requests(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.log.as_ref()?).ok()?;
        Some(text.lines().filter(|l| l.contains(" HTTP/1.1\"")).count() as u64)
    }
}

/// A continuous task (MaxLagSeconds 1) into S3 while the database is idle, then under the write load.
fn continuous_rows(rookery: &Arc<Rookery>, s3: &S3Target, args: &Args, quiet_throughput: f64, rows: &mut Vec<Row>) {
    // Tasks connect with the process's AWS_* variables, as a server would.
    if let Some(endpoint) = &s3.settings.endpoint {
        std::env::set_var("AWS_ENDPOINT_URL", endpoint);
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_REGION", s3.settings.region.clone().unwrap_or_else(|| "us-east-1".into()));
        if let (Some(id), Some(secret)) = (&s3.settings.access_key_id, &s3.settings.secret_access_key) {
            std::env::set_var("AWS_ACCESS_KEY_ID", id);
            std::env::set_var("AWS_SECRET_ACCESS_KEY", secret);
        }
    }
    let _scheduler = rookery.start_scheduler().expect("the scheduler starts");
    let task = rookery_types::BackupTask {
        backup_location: format!("s3://{}/continuous-{}", args.s3_bucket, std::process::id()),
        full_backup_frequency: Some("0 2 * * 0".into()),
        continuous: Some(rookery_types::ContinuousBackup { max_lag_seconds: 1 }),
        ..Default::default()
    };
    rookery.put_task("Bench", "continuous", task).expect("the task is accepted");
    let status = || rookery.get_task("Bench", "continuous").expect("the task").status;
    let db = rookery.catalog().get("Bench").expect("db");
    // The first run is a full set of the whole database: wait for it.
    let target = db.store().last_etag();
    let deadline = Instant::now() + Duration::from_secs(600);
    while status().last_shipped_etag.unwrap_or(0) < target || status().is_running {
        assert!(Instant::now() < deadline, "the continuous task did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Idle.
    let idle_window = Duration::from_secs(10);
    let before = s3.requests();
    std::thread::sleep(idle_window);
    let idle_requests = s3.requests().zip(before).map(|(a, b)| a - b);
    // Under load, sampling the lag.
    let window = Duration::from_secs(args.load_seconds.max(10));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (rookery, stop) = (rookery.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut worst = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(task) = rookery.get_task("Bench", "continuous") {
                    worst = worst.max(task.status.lag_seconds.unwrap_or(0.0));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    let before = s3.requests();
    let started = Instant::now();
    let load = write_load(rookery, args.writers, args.documents, window, None);
    let loaded_for = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let worst_lag = sampler.join().unwrap_or(f64::NAN);
    let busy_requests = s3.requests().zip(before).map(|(a, b)| a - b);
    let per_minute = |n: u64, over: Duration| n as f64 * 60.0 / over.as_secs_f64();
    println!(
        "continuous task (MaxLagSeconds 1) into S3: writes {:.0}/s (without a task {:.0}/s), worst lag {:.1} s; storage requests: idle {}, under load {}",
        load.throughput,
        quiet_throughput,
        worst_lag,
        idle_requests.map_or("n/a".into(), |n| format!("{:.0}/min", per_minute(n, idle_window))),
        busy_requests.map_or("n/a".into(), |n| format!("{:.0}/min", per_minute(n, loaded_for))),
    );
    rows.push(Row::ratio("writes with a continuous task / without", load.throughput, quiet_throughput, ">= 0.9"));
    rows.push(Row::absolute("worst continuous lag under load (s)", worst_lag, "<= 2.0"));
    if let Some(n) = idle_requests {
        rows.push(Row::absolute("storage requests per minute, idle", per_minute(n, idle_window), "<= 0"));
    }
    if let Some(n) = busy_requests {
        rows.push(Row::absolute("storage requests per minute, under load", per_minute(n, loaded_for), "(information)"));
    }
    let _ = rookery.delete_task("Bench", "continuous");
}

impl S3Target {
    fn start(args: &Args) -> Option<Self> {
        if let Some(endpoint) = &args.s3_endpoint {
            let settings =
                rookery_types::S3Settings { endpoint: Some(endpoint.clone()), force_path_style: Some(true), ..Default::default() };
            return Some(Self { settings, describe: endpoint.clone(), moto: None, log: None });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let log = std::env::temp_dir().join(format!("rookery-bench-moto-{}.log", std::process::id()));
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/venv/bin/python3");
        let python =
            std::env::var("ROOKERY_PYTHON").unwrap_or_else(|_| if Path::new(venv).exists() { venv.into() } else { "python3".into() });
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).ok()?)
            .spawn()
            .ok()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(&format!("{endpoint}/moto-api/")).call().is_err() {
            if Instant::now() > deadline {
                eprintln!("(moto's S3 server did not start: `bash scripts/install-tools.sh --python` installs it)");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        agent.put(&format!("{endpoint}/{}", args.s3_bucket)).send_empty().ok()?;
        let settings = rookery_types::S3Settings {
            endpoint: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("bench".into()),
            secret_access_key: Some("bench".into()),
            force_path_style: Some(true),
            ..Default::default()
        };
        Some(Self { settings, describe: format!("moto at {endpoint}"), moto: Some(child), log: Some(log) })
    }
}

impl Drop for S3Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.moto {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(data: &Path, durability: Durability) -> Config {
    let mut c = Config::for_tests(data);
    c.durability = durability;
    c
}

fn doc_id(i: u64) -> String {
    format!("orders/{i:010}")
}

/// About 1 KB of JSON that compresses like real documents (repeated keys, varied values).
fn doc_body(i: u64, version: u64) -> Vec<u8> {
    let mut lines = Vec::new();
    for l in 0..6 {
        lines.push(format!(
            r#"{{"Product":"products/{}","Name":"Product number {} of the catalogue","Quantity":{},"PricePerUnit":{}.{:02},"Discount":0.{}}}"#,
            (i * 7 + l) % 5000,
            (i * 13 + l) % 5000,
            (i + l) % 40 + 1,
            (i * 31 + l) % 300,
            (i + l) % 100,
            l
        ));
    }
    format!(
        r#"{{"Company":"companies/{}","Employee":"employees/{}","OrderedAt":"2026-{:02}-{:02}T10:{:02}:00Z","ShipTo":{{"City":"City {}","Country":"Country {}","Line1":"{} Main Street"}},"Version":{},"Lines":[{}]}}"#,
        i % 10_000,
        i % 300,
        i % 12 + 1,
        i % 28 + 1,
        i % 60,
        i % 1000,
        i % 90,
        i % 9999,
        version,
        lines.join(",")
    )
    .into_bytes()
}

struct Load {
    throughput: f64,
    p99_ms: f64,
    backups: usize,
}

/// Writers update random documents for `window`; with `backup_location`,
/// full backups run back to back meanwhile.
fn write_load(rookery: &Arc<Rookery>, writers: usize, n: u64, window: Duration, backup_location: Option<(&str, BackupType)>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let db = rookery.catalog().get("Bench").expect("db");
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % n;
                    let t = Instant::now();
                    db.store().put(&doc_id(i), &doc_body(i, 2), None).expect("put");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut backups = 0;
    if let Some((location, backup_type)) = backup_location {
        while started.elapsed() < window || backups == 0 {
            rookery
                .start_backup("Bench", BackupOptions { location: location.to_string(), backup_type, ..Default::default() })
                .expect("starts")
                .wait()
                .expect("backup under load");
            backups += 1;
        }
    } else {
        std::thread::sleep(window);
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    let mut all: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("writer")).collect();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    Load { throughput: all.len() as f64 / elapsed.as_secs_f64(), p99_ms: p99.as_secs_f64() * 1000.0, backups }
}

/// Writers PUT 1 KB documents through the REST API of an in-process server.
fn rest_load(rookery: Arc<Rookery>, writers: usize, n: u64, window: Duration) -> Load {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("binds");
    let addr = listener.local_addr().expect("addr");
    let app = rookery::api::router(rookery);
    runtime.spawn(async move { axum::serve(listener, app).await });
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut latencies = Vec::new();
                let mut i = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = agent.put(&format!("http://{addr}/databases/Bench/docs/{}", doc_id(i % n))).send(doc_body(i, 3)).expect("put");
                    assert!(r.status().as_u16() < 300);
                    latencies.push(t.elapsed());
                    i += writers as u64;
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(window);
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    let mut all: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("writer")).collect();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    runtime.shutdown_timeout(Duration::from_secs(1));
    Load { throughput: all.len() as f64 / elapsed.as_secs_f64(), p99_ms: p99.as_secs_f64() * 1000.0, backups: 0 }
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += du(&p);
            } else {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_err() {
        eprintln!("(cannot drop the page cache: timings are with warm caches)");
    }
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

fn current_rss() -> u64 {
    status_field("VmRSS:")
}

fn peak_rss() -> u64 {
    status_field("VmHWM:")
}

/// Resets the kernel's peak-RSS mark of this process (Linux `clear_refs` 5).
fn reset_peak_rss() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("(cannot reset the peak RSS mark: the figure includes earlier phases)");
    }
}

fn human(bytes: u64) -> String {
    rookery_types::format_bytes(bytes)
}
