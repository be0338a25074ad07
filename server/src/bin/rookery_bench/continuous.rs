//! A continuous task (MaxLagSeconds 1) into S3, idle and then under the
//! write load: its lag, the writers' throughput, storage requests a minute.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery::Rookery;

use crate::phase::Outcome;
use crate::workload::{write_load, DATABASE};
use crate::Args;

/// Requests moto has answered so far, from its log.
fn requests(args: &Args) -> Option<u64> {
    let text = std::fs::read_to_string(args.s3_log.as_ref()?).ok()?;
    Some(text.lines().filter(|l| l.contains(" HTTP/1.1\"")).count() as u64)
}

pub fn run(rookery: &Arc<Rookery>, args: &Args) -> Outcome {
    // Tasks connect with the process's AWS_* variables, as a server would.
    std::env::set_var("AWS_ENDPOINT_URL", args.s3_endpoint.as_deref().expect("an S3 endpoint"));
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    let _scheduler = rookery.start_scheduler().expect("the scheduler starts");
    let task = rookery_types::BackupTask {
        backup_location: format!("s3://{}/continuous-{}", args.s3_bucket, args.bench_id),
        full_backup_frequency: Some("0 2 * * 0".into()),
        continuous: Some(rookery_types::ContinuousBackup { max_lag_seconds: 1 }),
        ..Default::default()
    };
    rookery.put_task(DATABASE, "continuous", task).expect("the task is accepted");
    caught_up(rookery);
    let idle_window = Duration::from_secs(10);
    let before = requests(args);
    std::thread::sleep(idle_window);
    let idle = requests(args).zip(before).map(|(a, b)| a - b);
    let (load, worst_lag, busy, loaded_for) = under_load(rookery, args);
    let _ = rookery.delete_task(DATABASE, "continuous");
    let per_minute = |n: u64, over: Duration| n as f64 * 60.0 / over.as_secs_f64();
    let mut outcome = Outcome { seconds: loaded_for.as_secs_f64(), ..Default::default() };
    outcome.values.insert("throughput".into(), load);
    outcome.values.insert("worst_lag_seconds".into(), worst_lag);
    if let Some(n) = idle {
        outcome.values.insert("requests_per_minute_idle".into(), per_minute(n, idle_window));
    }
    if let Some(n) = busy {
        outcome.values.insert("requests_per_minute_loaded".into(), per_minute(n, loaded_for));
    }
    outcome
}

/// Waits for the first run (a full set of the whole database).
fn caught_up(rookery: &Rookery) {
    let status = || rookery.get_task(DATABASE, "continuous").expect("the task").status;
    let target = rookery.catalog().get(DATABASE).expect("db").store().last_etag();
    let deadline = Instant::now() + Duration::from_secs(600);
    while status().last_shipped_etag.unwrap_or(0) < target || status().is_running {
        assert!(Instant::now() < deadline, "the continuous task did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The writers for `--load-seconds` (10 at least), the lag sampled meanwhile.
fn under_load(rookery: &Arc<Rookery>, args: &Args) -> (f64, f64, Option<u64>, Duration) {
    let window = Duration::from_secs(args.load_seconds.max(10));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (rookery, stop) = (rookery.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut worst = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(task) = rookery.get_task(DATABASE, "continuous") {
                    worst = worst.max(task.status.lag_seconds.unwrap_or(0.0));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    let before = requests(args);
    let started = Instant::now();
    let load = write_load(rookery, args.writers, args.documents, window, None);
    let loaded_for = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let worst = sampler.join().unwrap_or(f64::NAN);
    (load.throughput, worst, requests(args).zip(before).map(|(a, b)| a - b), loaded_for)
}
