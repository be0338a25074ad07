//! The bench's steps: each runs its phases `--runs` times in processes of
//! their own and turns the medians into rows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::phase::Outcome;
use crate::report::{Report, Row, Sample};
use crate::s3::S3Target;
use crate::system::{drop_caches, du, human, Machine};
use crate::{Args, Group};

pub struct Bench {
    pub args: Args,
    root: PathBuf,
    s3: Option<S3Target>,
    /// Samples that later steps divide by (full backup, restore, writes, ...).
    samples: BTreeMap<&'static str, Sample>,
    baselines: BTreeMap<&'static str, Sample>,
}

/// The samples of one figure of a phase's outcomes.
fn sample(outcomes: &[Outcome], figure: impl Fn(&Outcome) -> f64) -> Sample {
    Sample::of(outcomes.iter().map(figure).collect())
}

fn seconds(outcomes: &[Outcome]) -> Sample {
    sample(outcomes, |o| o.seconds)
}

fn rss_mb(outcomes: &[Outcome]) -> Sample {
    sample(outcomes, |o| o.peak_rss_bytes as f64 / 1e6)
}

/// Measurements of the baselines before a disagreement between them is
/// reported rather than measured again.
const BASELINE_ATTEMPTS: u32 = 3;

/// The widest spread (slowest run less fastest, over the median) a
/// baseline may have. In the last twenty whole runs here, `cp -r` spread
/// 3% to 38%, or 55% to 471% when one of its runs (nearly always the
/// first, right after the load) took 1.5 to 6 times the fastest; and
/// `cp -r` + `sync` spread 1% to 29%. (Two disturbed runs of three can
/// still spread less: the check catches one.)
const MAX_BASELINE_SPREAD_PERCENT: f64 = 50.0;

/// Whether the baselines look like a disk that does nothing else: `cp -r`
/// took no longer than `cp -r` + `sync` (it does part of the same work),
/// and neither's runs spread past [`MAX_BASELINE_SPREAD_PERCENT`] (a median
/// of three with one run disturbed is still the middle of a disturbed lot).
fn baselines_steady(cp: &Sample, cp_sync: &Sample) -> bool {
    cp.median() <= cp_sync.median()
        && cp.spread_percent() <= MAX_BASELINE_SPREAD_PERCENT
        && cp_sync.spread_percent() <= MAX_BASELINE_SPREAD_PERCENT
}

impl Bench {
    pub fn new(args: Args, root: PathBuf) -> Self {
        Self { args, root, s3: None, samples: BTreeMap::new(), baselines: BTreeMap::new() }
    }

    pub fn measure_all(&mut self) -> Vec<Row> {
        let mut rows = Vec::new();
        self.load();
        self.baselines();
        self.backups(&mut rows);
        self.restores(&mut rows);
        if self.wanted(Group::Snapshots) {
            self.snapshots(&mut rows);
        }
        self.object_storage(&mut rows);
        // After every row that divides by the baselines or by the folder
        // backup: the writers rewrite documents for a minute and a half and
        // leave the storage larger than the data directory `cp -r` copied.
        if self.wanted(Group::Writes) {
            self.writes(&mut rows);
        }
        if self.wanted(Group::Smuggler) {
            self.smuggler(&mut rows);
        }
        if self.wanted(Group::Rest) {
            self.rest_and_continuous(&mut rows);
        }
        if self.wanted(Group::Compaction) {
            self.compaction(&mut rows);
        }
        rows
    }

    /// How each operation's time grows with the data: the operations at
    /// `small` documents (in `root/small`) and at `--documents`, taking
    /// turns run by run, so that the disk's drift from one hour to the next
    /// falls on both sizes alike; each row is the ratio of the two medians,
    /// its target 1.1 times the ratio of the sizes (5.5 for 5M against 1M).
    /// `cp -r` + `sync` of each data directory, taken in turn the same way,
    /// shows how the disk alone grows (for information).
    pub fn measure_scale(&mut self, small: u64) -> Vec<Row> {
        let large = self.args.documents;
        let small = Bench::new(Args { documents: small, ..self.args.clone() }, self.root.join("small"));
        std::fs::create_dir_all(&small.root).expect("the small work folder");
        let sizes = [&small, &*self];
        for bench in sizes {
            bench.load();
            let chain = bench.phase("chain-in-runs", 1);
            println!(
                "  {} documents, a full set and 24 incrementals of 1% in 10 runs of ids: {:.1} s",
                bench.args.documents, chain.seconds
            );
        }
        let phases = [
            ("full", "full backup", Some("backups")),
            ("restore", "restore of the full set", None),
            ("export", "export", None),
            ("import", "import", None),
            ("compaction-in-runs", "compaction (full + 24 x 1% in runs)", Some("backups-chain-runs-copies")),
        ];
        let mut outcomes: Vec<[Vec<Outcome>; 2]> = phases.iter().map(|_| Default::default()).collect();
        let mut copies: [Vec<f64>; 2] = Default::default();
        for run in 1..=self.args.runs {
            for (size, bench) in sizes.iter().enumerate() {
                let seconds = bench.copy_seconds(true);
                println!("  cp -r + sync, {} documents, run {run}: {seconds:.3} s", bench.args.documents);
                copies[size].push(seconds);
            }
            for ((name, label, output), outcome) in phases.iter().zip(&mut outcomes) {
                for (size, bench) in sizes.iter().enumerate() {
                    let label = format!("{label}, {} documents", bench.args.documents);
                    outcome[size].push(bench.run_once(name, &label, *output, run));
                }
            }
        }
        let growth = format!("{large} / {} documents", small.args.documents);
        let target = format!("<= {:.1}", 1.1 * large as f64 / small.args.documents as f64);
        let [small_copies, large_copies] = copies.map(Sample::of);
        let mut rows = vec![Row::ratio(&format!("cp -r + sync, {growth}"), &large_copies, &small_copies, "(information)")];
        for ((_, label, _), [small_runs, large_runs]) in phases.iter().zip(&outcomes) {
            rows.push(Row::ratio(&format!("{label}, {growth}"), &seconds(large_runs), &seconds(small_runs), &target));
            rows.push(Row::absolute(&format!("peak RSS, {label}, {large} documents (MB)"), &rss_mb(large_runs), "< 256"));
        }
        rows
    }

    fn wanted(&self, group: Group) -> bool {
        !self.args.skip.contains(&group)
    }

    /// A sample an earlier step measured (empty when its group was skipped).
    fn measured(&self, name: &str) -> Sample {
        self.samples.get(name).cloned().unwrap_or_default()
    }

    pub fn report<'a>(&self, rows: &'a [Row]) -> Report<'a> {
        Report {
            commit: crate::system::commit(),
            measured_at: jiff::Timestamp::now().to_string(),
            documents: self.args.documents,
            runs: self.args.runs as usize,
            machine: Machine::read(&self.root),
            baselines: self.baselines.clone(),
            rows,
        }
    }

    /// Runs `name` once in a process of its own.
    fn phase(&self, name: &str, run: u32) -> Outcome {
        let exe = std::env::current_exe().expect("the bench's own path");
        let mut command = Command::new(exe);
        command.args(["--phase", name, "--run", &run.to_string(), "--bench-id", &self.args.bench_id.to_string()]);
        command.args(["--documents", &self.args.documents.to_string(), "--writers", &self.args.writers.to_string()]);
        command.args(["--load-seconds", &self.args.load_seconds.to_string(), "--s3-bucket", &self.args.s3_bucket]);
        command.arg("--dir").arg(&self.root);
        if let Some(s3) = &self.s3 {
            command.args(["--s3-endpoint", &s3.endpoint]);
        }
        if let Some(log) = self.s3.as_ref().and_then(S3Target::log) {
            command.arg("--s3-log").arg(log);
        }
        let output = command.stderr(Stdio::inherit()).output().expect("the phase starts");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
        match line {
            Some(json) if output.status.success() => serde_json::from_str(json).expect("a phase's outcome"),
            _ => panic!("the phase {name} (run {run}) failed: {}\n{stdout}", output.status),
        }
    }

    /// Runs `name` `--runs` times; what runs after the first wrote into
    /// `root/<output>/run-K` is removed (the first run's sets are read later).
    fn runs(&self, name: &str, label: &str, output: Option<&str>) -> Vec<Outcome> {
        (1..=self.args.runs).map(|run| self.run_once(name, label, output, run)).collect()
    }

    /// Runs each of `phases` (`(name, label, output)`) `--runs` times, taking
    /// turns (run 1 of each, then run 2 of each...): what drifts on the
    /// machine meanwhile falls on every phase alike, not on the first one.
    fn runs_in_turn(&self, phases: &[(&str, &str, Option<&str>)]) -> Vec<Vec<Outcome>> {
        let mut outcomes: Vec<Vec<Outcome>> = phases.iter().map(|_| Vec::new()).collect();
        for run in 1..=self.args.runs {
            for ((name, label, output), runs) in phases.iter().zip(&mut outcomes) {
                runs.push(self.run_once(name, label, *output, run));
            }
        }
        outcomes
    }

    fn run_once(&self, name: &str, label: &str, output: Option<&str>, run: u32) -> Outcome {
        let outcome = self.phase(name, run);
        let parts: Vec<String> =
            outcome.values.iter().filter(|(k, _)| k.ends_with("_seconds")).map(|(k, v)| format!(", {k} {v:.3}")).collect();
        println!(
            "  {label}, run {run}/{}: {:.3} s{}, peak RSS {}",
            self.args.runs,
            outcome.seconds,
            parts.concat(),
            human(outcome.peak_rss_bytes)
        );
        if let (Some(output), true) = (output, run > 1) {
            let _ = std::fs::remove_dir_all(self.root.join(output).join(format!("run-{run}")));
        }
        outcome
    }

    fn load(&self) {
        let outcome = self.phase("load", 1);
        let docs_per_second = self.args.documents as f64 / outcome.seconds;
        println!(
            "load of {} documents: {:.1} s ({docs_per_second:.0} docs/s through DocumentStore::put, durability=os)",
            self.args.documents, outcome.seconds
        );
    }

    /// `cp -r` of the data directory, and `cp -r` + `sync`, cold caches,
    /// their runs taking turns so that both see the machine alike. Baselines
    /// that are not [steady](baselines_steady) say the disk was busy with
    /// something else meanwhile (here, the host still writing what the load
    /// wrote), which would flatter every row divided by them, so both are
    /// measured again, up to [`BASELINE_ATTEMPTS`] times, and a last
    /// unsteady pair is printed as a warning.
    fn baselines(&mut self) {
        let data = du(&self.root.join("data"));
        let mut attempt = 1;
        let (cp, cp_sync) = loop {
            let (mut cp, mut cp_sync) = (Vec::new(), Vec::new());
            for _ in 0..self.args.runs {
                cp.push(self.copy_seconds(false));
                cp_sync.push(self.copy_seconds(true));
            }
            let (cp, cp_sync) = (Sample::of(cp), Sample::of(cp_sync));
            if baselines_steady(&cp, &cp_sync) || attempt == BASELINE_ATTEMPTS {
                break (cp, cp_sync);
            }
            println!("baselines disturbed: cp -r {}, cp -r + sync {}; measuring both again", cp.describe("s"), cp_sync.describe("s"));
            attempt += 1;
        };
        println!("data directory: {}; cp -r {}; cp -r + sync {}", human(data), cp.describe("s"), cp_sync.describe("s"));
        if !baselines_steady(&cp, &cp_sync) {
            println!(
                "WARNING: the baselines were disturbed {attempt} times (cp -r longer than cp -r + sync, or runs spread past {MAX_BASELINE_SPREAD_PERCENT}%): the rows divided by them are not to be trusted"
            );
        }
        self.baselines.insert("cp -r (s)", cp);
        self.baselines.insert("cp -r + sync (s)", cp_sync);
    }

    /// One `cp -r` of the data directory (and `sync`), cold caches.
    fn copy_seconds(&self, sync: bool) -> f64 {
        let (data, copy) = (self.root.join("data"), self.root.join("cp-copy"));
        drop_caches();
        let started = Instant::now();
        assert!(Command::new("cp").arg("-r").arg(&data).arg(&copy).status().expect("cp").success());
        if sync {
            assert!(Command::new("sync").status().expect("sync").success());
        }
        let seconds = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&copy);
        seconds
    }

    fn baseline(&self, name: &str) -> &Sample {
        &self.baselines[name]
    }

    fn backups(&mut self, rows: &mut Vec<Row>) {
        let full = self.runs("full", "full backup", None);
        let sealed = self.runs("sealed", "full backup, encrypted set", Some("backups-sealed"));
        let incremental = self.runs("incremental", "incremental (1% changed)", None);
        let full_time = seconds(&full);
        let data = Sample::of(vec![du(&self.root.join("data")) as f64]);
        rows.push(Row::ratio("full backup / cp -r + sync", &full_time, self.baseline("cp -r + sync (s)"), "<= 1.5"));
        rows.push(Row::ratio("backup size / data directory", &sample(&full, |o| o.value("bytes")), &data, "<= 0.5"));
        rows.push(Row::ratio("encrypted set / plain full backup", &seconds(&sealed), &full_time, "<= 1.3"));
        rows.push(Row::ratio("incremental (1% changed) / full backup", &seconds(&incremental), &full_time, "<= 0.05"));
        rows.push(Row::absolute("peak RSS, full backup (MB)", &rss_mb(&full), "< 256"));
        self.samples.insert("full", full_time);
    }

    fn writes(&mut self, rows: &mut Vec<Row>) {
        let mut turns = self
            .runs_in_turn(&[
                ("writes-quiet", "writes without a backup", None),
                ("writes-backup", "writes during back-to-back backups", Some("backups-under-load")),
                ("writes-snapshot", "writes during back-to-back snapshots", Some("backups-under-load")),
            ])
            .into_iter();
        let (quiet, backup, snapshot) =
            (turns.next().unwrap_or_default(), turns.next().unwrap_or_default(), turns.next().unwrap_or_default());
        let (throughput, p99) = (|o: &Outcome| o.value("throughput"), |o: &Outcome| o.value("p99_ms"));
        let (quiet_rate, quiet_p99) = (sample(&quiet, throughput), sample(&quiet, p99));
        rows.push(Row::ratio("write throughput during backups / without", &sample(&backup, throughput), &quiet_rate, ">= 0.9"));
        rows.push(Row::ratio("p99 write latency during backups / without", &sample(&backup, p99), &quiet_p99, "<= 2.0"));
        rows.push(Row::ratio("write throughput during snapshots / without", &sample(&snapshot, throughput), &quiet_rate, ">= 0.9"));
        rows.push(Row::ratio("p99 write latency during snapshots / without", &sample(&snapshot, p99), &quiet_p99, "<= 2.0"));
        self.samples.insert("quiet writes", quiet_rate);
    }

    fn restores(&mut self, rows: &mut Vec<Row>) {
        let restore = self.runs("restore", "restore of the full set", None);
        let restore_time = seconds(&restore);
        rows.push(Row::ratio("restore / cp -r", &restore_time, self.baseline("cp -r (s)"), "<= 2.0"));
        rows.push(Row::absolute("peak RSS, restore (MB)", &rss_mb(&restore), "< 256"));
        self.samples.insert("restore", restore_time);
    }

    fn snapshots(&mut self, rows: &mut Vec<Row>) {
        let copied = self.runs("snapshot-copied", "snapshot, copied", Some("snapshots-copied"));
        let linked = self.runs("snapshot-linked", "snapshot, hard-linked (then again)", Some("snapshots-linked"));
        // The linked set first, with the hashes its snapshot kept (a server
        // restoring a set it made); the copied set's restore forgets them.
        let relinked = self.runs("linked-snapshot-restore", "restore of the linked snapshot set", None);
        let restored = self.runs("snapshot-restore", "restore of the copied snapshot set", None);
        let cp_sync = self.baseline("cp -r + sync (s)");
        rows.push(Row::ratio("snapshot (copied) / cp -r + sync", &seconds(&copied), cp_sync, "<= 1.0"));
        rows.push(Row::ratio("snapshot (hard links) / cp -r + sync", &seconds(&linked), cp_sync, "<= 0.5"));
        rows.push(Row::ratio("second linked snapshot / cp -r + sync", &sample(&linked, |o| o.value("again")), cp_sync, "<= 0.05"));
        rows.push(Row::ratio("snapshot restore (copied set) / cp -r", &seconds(&restored), self.baseline("cp -r (s)"), "<= 1.2"));
        rows.push(Row::ratio("snapshot restore (linked set) / cp -r", &seconds(&relinked), self.baseline("cp -r (s)"), "<= 0.05"));
        rows.push(Row::absolute("peak RSS, snapshot (MB)", &rss_mb(&copied), "< 256"));
    }

    fn object_storage(&mut self, rows: &mut Vec<Row>) {
        self.s3 = (!self.args.no_s3)
            .then(|| S3Target::start(self.args.s3_endpoint.as_deref(), self.args.s3_server_pid, &self.args.s3_bucket))
            .flatten();
        let Some(s3) = &self.s3 else {
            println!("object storage rows: skipped");
            return;
        };
        println!("object storage: {}", s3.describe);
        let cpu_before = s3.cpu_seconds();
        let backup = self.runs("s3-backup", "full backup to S3", None);
        let cpu_between = self.s3.as_ref().and_then(S3Target::cpu_seconds);
        let restore = self.runs("s3-restore", "restore from S3", None);
        let cpu_after = self.s3.as_ref().and_then(S3Target::cpu_seconds);
        rows.push(Row::ratio("backup to S3 / to a folder", &seconds(&backup), &self.measured("full"), "<= 1.25"));
        rows.push(Row::ratio("restore from S3 / from a folder", &seconds(&restore), &self.measured("restore"), "<= 1.25"));
        let snapshots = self.runs("s3-snapshots", "snapshot to S3, 1% changed, snapshot again", None);
        rows.push(Row::ratio(
            "second snapshot to S3 / first, bytes sent (1% changed)",
            &sample(&snapshots, |o| o.value("again_bytes")),
            &sample(&snapshots, |o| o.value("bytes")),
            "<= 0.1",
        ));
        rows.push(Row::absolute("peak RSS, backup to S3 (MB)", &rss_mb(&backup), "< 256"));
        rows.push(Row::absolute("peak RSS, restore from S3 (MB)", &rss_mb(&restore), "< 256"));
        let per_run =
            |a: Option<f64>, b: Option<f64>| Sample::of(vec![(b.unwrap_or(f64::NAN) - a.unwrap_or(f64::NAN)) / f64::from(self.args.runs)]);
        let server = self.s3.as_ref().map_or("moto", |s3| s3.server);
        let (backup_cpu, restore_cpu) = (format!("{server} CPU / backup to S3 time"), format!("{server} CPU / restore from S3 time"));
        rows.push(Row::ratio(&backup_cpu, &per_run(cpu_before, cpu_between), &seconds(&backup), "(information)"));
        rows.push(Row::ratio(&restore_cpu, &per_run(cpu_between, cpu_after), &seconds(&restore), "(information)"));
    }

    fn smuggler(&mut self, rows: &mut Vec<Row>) {
        let export = self.runs("export", "export", None);
        let import = self.runs("import", "import", None);
        rows.push(Row::absolute("peak RSS, export (MB)", &rss_mb(&export), "< 256"));
        rows.push(Row::absolute("peak RSS, import (MB)", &rss_mb(&import), "< 256"));
        rows.push(Row::ratio("export / full backup", &seconds(&export), &self.measured("full"), "(information)"));
        rows.push(Row::ratio("import / restore", &seconds(&import), &self.measured("restore"), "(information)"));
    }

    fn rest_and_continuous(&mut self, rows: &mut Vec<Row>) {
        let rest = self.runs("rest-writes", "1 KB writes, storage then REST", None);
        rows.push(Row::ratio(
            "REST / storage write throughput",
            &sample(&rest, |o| o.value("rest")),
            &sample(&rest, |o| o.value("storage")),
            "(information)",
        ));
        if self.s3.is_none() {
            return;
        }
        // Writes without a task and with one, taking turns: each continuous run
        // against the quiet writes measured just before it, on the database
        // as it is then (the quiet writes of the write group were measured
        // minutes earlier, and one run of writes swings by half on this disk).
        let turns = self.runs_in_turn(&[
            ("writes-quiet", "1 KB writes, no task (beside the continuous task)", None),
            ("continuous", "1 KB writes with a continuous task into S3", None),
        ]);
        let (quiet, continuous) = (&turns[0], &turns[1]);
        let value = |name: &'static str| move |o: &Outcome| o.value(name);
        rows.push(Row::ratio(
            "writes with a continuous task / without",
            &sample(continuous, value("throughput")),
            &sample(quiet, value("throughput")),
            ">= 0.9",
        ));
        rows.push(Row::absolute("worst continuous lag under load (s)", &sample(continuous, value("worst_lag_seconds")), "<= 2.0"));
        // Not one request while idle in any run: the most of the runs.
        let idle = sample(continuous, value("requests_per_minute_idle")).runs.into_iter().fold(0.0, f64::max);
        rows.push(Row::absolute("storage requests per minute, idle", &Sample::of(vec![idle]), "<= 0"));
        rows.push(Row::absolute(
            "storage requests per minute, under load",
            &sample(continuous, value("requests_per_minute_loaded")),
            "(information)",
        ));
    }

    /// A full set and 24 incrementals of 1%, folded, against a fresh full backup.
    fn compaction(&mut self, rows: &mut Vec<Row>) {
        let chain = self.phase("chain", 1);
        println!("  a full set and 24 incrementals of 1%: {:.1} s", chain.seconds);
        let fresh = self.runs("fresh-full", "fresh full backup", Some("backups-fresh"));
        let compaction = self.runs("compaction", "compaction of the chain (changes scattered)", Some("backups-chain-copies"));
        let in_runs = self.phase("chain-in-runs", 1);
        println!("  a full set and 24 incrementals of 1% in 10 runs of ids: {:.1} s", in_runs.seconds);
        let in_runs = self.runs("compaction-in-runs", "compaction of the chain (changes in runs)", Some("backups-chain-runs-copies"));
        rows.push(Row::ratio(
            "compaction (full + 24 x 1%, each in 10 runs of ids) / fresh full backup",
            &seconds(&in_runs),
            &seconds(&fresh),
            "<= 0.6",
        ));
        rows.push(Row::ratio(
            "compaction (full + 24 x 1% scattered: every frame changed) / fresh full backup",
            &seconds(&compaction),
            &seconds(&fresh),
            "(information)",
        ));
        rows.push(Row::absolute("peak RSS, compaction (MB)", &rss_mb(&compaction), "< 256"));
        rows.push(Row::absolute("peak RSS, compaction of changes in runs (MB)", &rss_mb(&in_runs), "< 256"));
        let restore = self.runs("chain-restore", "restore of the chain", None);
        rows.push(Row::ratio("restore of the chain (full + 24 x 1%) / cp -r", &seconds(&restore), self.baseline("cp -r (s)"), "<= 2.0"));
        rows.push(Row::absolute("peak RSS, restore of the chain (MB)", &rss_mb(&restore), "< 256"));
        let reads = self.runs("chain-reads", "100 random documents read from the chain", None);
        rows.push(Row::ratio("100 documents read from the chain / its restore", &seconds(&reads), &seconds(&restore), "<= 0.01"));
        if self.s3.is_some() {
            let restore = self.runs("s3-chain-restore", "restore of the chain from S3", None);
            let reads = self.runs("s3-chain-reads", "100 random documents read from the chain in S3", None);
            rows.push(Row::ratio("100 documents read from the chain in S3 / its restore", &seconds(&reads), &seconds(&restore), "<= 0.01"));
            let floor = sample(&reads, |o| o.value("floor_seconds"));
            rows.push(Row::ratio("the S3 server's floor: 100 bare ranged GETs / the restore", &floor, &seconds(&restore), "(information)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_where_the_copy_alone_took_longer_disagree() {
        // Run V's baselines: `cp -r` measured while the disk was busy.
        assert!(!baselines_steady(&Sample::of(vec![1.617, 1.45, 1.8]), &Sample::of(vec![1.030, 0.95, 1.1])));
        assert!(baselines_steady(&Sample::of(vec![0.594, 0.6, 0.58]), &Sample::of(vec![1.151, 1.2, 1.1])));
    }

    #[test]
    fn baselines_with_a_disturbed_run_are_measured_again() {
        // Run Z's baselines: the first `cp -r` took 3.2 s, and the median
        // (1.08 s) was still well above run X's (0.61 s).
        let (cp, cp_sync) = (Sample::of(vec![3.215, 1.078, 0.613]), Sample::of(vec![1.340, 1.124, 1.312]));
        assert!(cp.median() <= cp_sync.median(), "the medians alone agree");
        assert!(!baselines_steady(&cp, &cp_sync));
        // Run W's, the widest spread of the three runs charted (30%).
        assert!(baselines_steady(&Sample::of(vec![0.85, 0.63, 0.71]), &Sample::of(vec![1.34, 1.36, 1.39])));
        // A disturbed `cp -r` + `sync` alone counts too.
        assert!(!baselines_steady(&Sample::of(vec![0.6, 0.61, 0.62]), &Sample::of(vec![1.1, 2.9, 1.2])));
    }
}
