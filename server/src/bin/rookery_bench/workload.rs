//! The documents the bench writes and the write loads it measures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery::backup::BackupOptions;
use rookery::Rookery;
use rookery_types::BackupType;

pub const DATABASE: &str = "Bench";

pub fn doc_id(i: u64) -> String {
    format!("orders/{i:010}")
}

/// About 1 KB of JSON that compresses like real documents (repeated keys, varied values).
pub fn doc_body(i: u64, version: u64) -> Vec<u8> {
    let lines: Vec<String> = (0..6)
        .map(|l| {
            format!(
                r#"{{"Product":"products/{}","Name":"Product number {} of the catalogue","Quantity":{},"PricePerUnit":{}.{:02},"Discount":0.{}}}"#,
                (i * 7 + l) % 5000,
                (i * 13 + l) % 5000,
                (i + l) % 40 + 1,
                (i * 31 + l) % 300,
                (i + l) % 100,
                l
            )
        })
        .collect();
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

/// Rewrites 1% of the documents (which ones depends on `round`).
pub fn change_one_percent(rookery: &Rookery, documents: u64, round: u64) {
    let db = rookery.catalog().get(DATABASE).expect("the bench database");
    for k in 0..(documents / 100).max(1) {
        let i = (k * 101 + round * 7919) % documents;
        db.store().put(&doc_id(i), &doc_body(i, round + 2), None).expect("put");
    }
}

/// Rewrites 1% of the documents in 10 runs of consecutive ids (a batch job
/// touching ranges of orders); where the runs start depends on `round`.
pub fn change_one_percent_in_runs(rookery: &Rookery, documents: u64, round: u64) {
    let db = rookery.catalog().get(DATABASE).expect("the bench database");
    let run = (documents / 1000).max(1);
    let mut x = 0x2545_F491_4F6C_DD1Du64 ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let start = x % documents.saturating_sub(run).max(1);
        for i in start..(start + run).min(documents) {
            db.store().put(&doc_id(i), &doc_body(i, round + 2), None).expect("put");
        }
    }
}

/// Throughput and p99 latency of a write load.
pub struct Load {
    pub throughput: f64,
    pub p99_ms: f64,
    pub backups: usize,
}

impl Load {
    fn of(mut latencies: Vec<Duration>, elapsed: Duration, backups: usize) -> Self {
        latencies.sort();
        let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
        Self { throughput: latencies.len() as f64 / elapsed.as_secs_f64(), p99_ms: p99.as_secs_f64() * 1000.0, backups }
    }
}

/// How long the writers run before their latencies count: a fresh process
/// opens the database and its first seconds carry the storage's start-up
/// work (journal recovery, a flush or compaction it resumes) and the
/// previous phase's writeback, which a 3-second window of p99 mostly
/// measured (a quiet window's p99 came out above a window with a backup).
pub const WARM_UP: Duration = Duration::from_secs(2);

/// Writers update random documents: for [`WARM_UP`] uncounted, then for
/// `window`; with `backup`, backups of that type run back to back into that
/// location from the window's start until it has passed, and the window
/// lasts until the last backup ends (every counted write ran beside a backup).
pub fn write_load(rookery: &Arc<Rookery>, writers: usize, n: u64, window: Duration, backup: Option<(&str, BackupType)>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let db = rookery.catalog().get(DATABASE).expect("the bench database");
    let counted_from = Instant::now() + WARM_UP;
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
                    if t >= counted_from {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(counted_from.saturating_duration_since(Instant::now()));
    let started = Instant::now();
    let mut backups = 0;
    if let Some((location, backup_type)) = backup {
        while started.elapsed() < window || backups == 0 {
            let options = BackupOptions { location: location.to_string(), backup_type, ..Default::default() };
            rookery.start_backup(DATABASE, options).expect("starts").wait().expect("backup under load");
            backups += 1;
        }
    } else {
        std::thread::sleep(window);
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    Load::of(handles.into_iter().flat_map(|h| h.join().expect("writer")).collect(), elapsed, backups)
}

/// Writers PUT 1 KB documents through the REST API of an in-process server.
pub fn rest_load(rookery: Arc<Rookery>, writers: usize, n: u64, window: Duration) -> Load {
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
                    let url = format!("http://{addr}/databases/{DATABASE}/docs/{}", doc_id(i % n));
                    let r = agent.put(&url).send(doc_body(i, 3)).expect("put");
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
    let load = Load::of(handles.into_iter().flat_map(|h| h.join().expect("writer")).collect(), elapsed, 0);
    runtime.shutdown_timeout(Duration::from_secs(1));
    load
}
