//! `rookery-load`: mixed reads and writes from several connections against a
//! running server, first alone, then while full and incremental backups run
//! back to back; reports throughput and p50/p99 latency of both, the errors
//! (there must be none), and at the end restores the last backup and checks
//! it against the database.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

use rookery::cli::client::{follow_status, percent_encode, Client};
use rookery::config::Credentials;
use rookery_types::{BackupRequest, JobAccepted, RestoreRequest, BACKUP_STATUS_ID, RESTORE_STATUS_ID};

#[derive(Debug, Parser)]
#[command(name = "rookery-load", version, about = "Mixed load with and without backups, then a verified restore.")]
struct Args {
    /// The server root URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The database to load (created if missing).
    #[arg(long, default_value = "Load")]
    database: String,
    /// A backup location on the server (absolute, inside its backup roots).
    #[arg(long)]
    backup_dest: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds of each phase (without, then with backups).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Documents seeded before the load (about 1 KB each).
    #[arg(long, default_value_t = 10_000)]
    documents: u64,
    /// Percent of operations that are writes.
    #[arg(long, default_value_t = 20)]
    write_percent: u64,
    #[command(flatten)]
    credentials: Credentials,
}

struct Phase {
    ops: usize,
    errors: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() -> ExitCode {
    rookery::process::without_transparent_huge_pages();
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rookery-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn body(i: u64, version: u64) -> String {
    json!({"Customer": format!("customers/{}", i % 1000), "Version": version, "Notes": "load test ".repeat(90)}).to_string()
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let client = Client::new(&args.url, Some(&args.database), Some(Duration::from_secs(60)), &args.credentials);
    let root = client.root().to_string();
    let base = client.base();
    match client.put_json::<Value>(&format!("{root}/admin/databases/{}", percent_encode(&args.database)), &json!({})) {
        Ok(_) => {}
        Err(e) if e.code == "DatabaseExists" => {}
        Err(e) => return Err(e.into()),
    }
    eprintln!("seeding {} documents…", args.documents);
    for i in 0..args.documents {
        client.put_raw(&format!("{base}/docs/load/{i}"), "application/json", body(i, 0))?;
    }

    let quiet = phase(args, &client, None)?;
    print_phase("without backups", &quiet);
    let backups = Arc::new(AtomicU64::new(0));
    let busy = phase(args, &client, Some(backups.clone()))?;
    print_phase("during backups", &busy);
    println!("backups completed during the load: {}", backups.load(Ordering::SeqCst));
    println!(
        "throughput during / without: {:.3}; p99 during / without: {:.3}",
        busy.ops as f64 / busy.seconds / (quiet.ops as f64 / quiet.seconds),
        busy.p99_ms / quiet.p99_ms
    );

    // Quiet now: a last incremental is the database as it is; restore it and compare.
    run_backup(&client, &base, &args.backup_dest, true)?;
    let verify_name = format!("{}-verify-{}", args.database, std::process::id());
    let request =
        RestoreRequest { backup_location: args.backup_dest.clone(), database_name: Some(verify_name.clone()), ..Default::default() };
    client.post_json::<JobAccepted>(&format!("{root}/admin/restore"), &request)?;
    let status = follow_status(&client, &root, RESTORE_STATUS_ID, Duration::from_secs(3600), &mut |_| {})?;
    if !status.success {
        return Err(format!("the restore failed: {}", status.error.unwrap_or_default()).into());
    }
    let live = all_docs(&client, &base)?;
    let restored = all_docs(&client, &format!("{root}/databases/{}", percent_encode(&verify_name)))?;
    let same = live == restored;
    println!(
        "restore of the last backup: {} documents, {}",
        restored.len(),
        if same { "identical to the database" } else { "DIFFERENT from the database" }
    );
    let _ = client.delete(&format!("{root}/admin/databases/{}", percent_encode(&verify_name)));
    let errors = quiet.errors + busy.errors;
    println!("errors: {errors}");
    Ok(same && errors == 0)
}

fn run_backup(client: &Client, base: &str, dest: &str, incremental: bool) -> Result<(), Box<dyn std::error::Error>> {
    let request = BackupRequest { backup_location: dest.to_string(), ..Default::default() };
    client.post_json::<JobAccepted>(&format!("{base}/admin/backup?incremental={incremental}"), &request)?;
    let status = follow_status(client, base, BACKUP_STATUS_ID, Duration::from_secs(3600), &mut |_| {})?;
    if status.success {
        Ok(())
    } else {
        Err(format!("a backup failed: {}", status.error.unwrap_or_default()).into())
    }
}

fn phase(args: &Args, client: &Client, backups: Option<Arc<AtomicU64>>) -> Result<Phase, Box<dyn std::error::Error>> {
    let base = client.base();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..args.connections)
        .map(|c| {
            let (stop, errors, client, base) = (stop.clone(), errors.clone(), client.clone(), base.clone());
            let (n, write_percent) = (args.documents.max(1), args.write_percent);
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut x = 0x2545_F491_4F6C_DD1Du64 ^ (c as u64 + 7);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % n;
                    let url = format!("{base}/docs/load/{i}");
                    let t = Instant::now();
                    let ok = if x % 100 < write_percent {
                        client.put_raw(&url, "application/json", body(i, x)).is_ok()
                    } else {
                        client.get_ok(&url).is_ok()
                    };
                    latencies.push(t.elapsed());
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let mut backup_error = None;
    match backups {
        Some(count) => {
            let mut incremental = false;
            while started.elapsed() < window {
                if let Err(e) = run_backup(client, &base, &args.backup_dest, incremental) {
                    backup_error = Some(e.to_string());
                    break;
                }
                count.fetch_add(1, Ordering::SeqCst);
                incremental = true;
            }
        }
        None => std::thread::sleep(window),
    }
    stop.store(true, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let mut all: Vec<Duration> = workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    if let Some(e) = backup_error {
        return Err(e.into());
    }
    all.sort();
    let pick = |q: usize| all.get(all.len() * q / 100).copied().unwrap_or_default().as_secs_f64() * 1000.0;
    Ok(Phase { ops: all.len(), errors: errors.load(Ordering::SeqCst), seconds, p50_ms: pick(50), p99_ms: pick(99) })
}

fn print_phase(name: &str, p: &Phase) {
    println!(
        "{name:<16} {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
        p.ops as f64 / p.seconds,
        p.p50_ms,
        p.p99_ms,
        p.errors
    );
}

fn all_docs(client: &Client, base: &str) -> Result<BTreeMap<String, Value>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    let mut start = 0;
    loop {
        let page: rookery_types::DocumentPage = client.get_json(&format!("{base}/docs?start={start}&pageSize=1024"))?;
        if page.results.is_empty() {
            return Ok(out);
        }
        start += page.results.len();
        for entry in page.results {
            if !entry.id.starts_with("Raven/") {
                out.insert(entry.id, entry.document);
            }
        }
    }
}
