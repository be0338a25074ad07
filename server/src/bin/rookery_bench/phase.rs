//! One phase of the bench, run in a process of its own (`--phase NAME`), so
//! that its peak RSS is its own and no phase inherits another's heap. It
//! prints one `RESULT {json}` line: seconds, peak RSS, and its figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery::backup::BackupOptions;
use rookery::config::Config;
use rookery::storage::Durability;
use rookery::Rookery;
use rookery_types::{BackupType, RestoreRequest};
use serde::{Deserialize, Serialize};

use crate::system::{drop_caches, du, peak_rss, sync};
use crate::workload::{change_one_percent, change_one_percent_in_runs, doc_body, doc_id, rest_load, write_load, DATABASE};
use crate::Args;

/// What a phase reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// The timed part (opening the database and checks are not in it).
    pub seconds: f64,
    pub peak_rss_bytes: u64,
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

impl Outcome {
    fn timed(started: Instant) -> Self {
        Self { seconds: started.elapsed().as_secs_f64(), ..Default::default() }
    }

    fn with(mut self, name: &str, value: f64) -> Self {
        self.values.insert(name.to_string(), value);
        self
    }

    pub fn value(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// What every phase works with.
struct Phase<'a> {
    args: &'a Args,
    root: PathBuf,
    rookery: Arc<Rookery>,
    run: u32,
}

/// Runs `name` in this process and prints its outcome.
pub fn run(name: &str, args: &Args, root: &Path) {
    let durability = if name == "load" { Durability::Os } else { Durability::Fsync };
    let mut config = Config::for_tests(&root.join("data"));
    config.durability = durability;
    config.backup_roots = vec![root.to_path_buf(), PathBuf::from(format!("s3://{}", args.s3_bucket))];
    let rookery = Arc::new(Rookery::open(config).expect("the bench's data directory opens"));
    let phase = Phase { args, root: root.to_path_buf(), rookery, run: args.run };
    let mut outcome = phase.dispatch(name);
    outcome.peak_rss_bytes = peak_rss();
    println!("RESULT {}", serde_json::to_string(&outcome).expect("serialises"));
}

impl Phase<'_> {
    fn dispatch(&self, name: &str) -> Outcome {
        match name {
            "load" => self.load(),
            "full" => self.backup("backups", BackupOptions::default()),
            "sealed" => self.sealed(),
            "incremental" => self.incremental(),
            "restore" => self.restore(&self.folder("backups", 1), None),
            "snapshot-copied" => self.cold_snapshot("snapshots-copied", true),
            "snapshot-linked" => self.linked_snapshots(),
            // Every run reads the copied set's tables as a server that never
            // read them would (its kept hashes forgotten): the row is the
            // restore of a set that must be read, not linked on trust.
            "snapshot-restore" => {
                rookery::backup::snapshot::forget_hashes();
                self.restore(&self.folder("snapshots-copied", 1), None)
            }
            "linked-snapshot-restore" => self.restore(&self.folder("snapshots-linked", 1), None),
            "writes-quiet" => self.writes(None),
            "writes-backup" => self.writes(Some(BackupType::Backup)),
            "writes-snapshot" => self.writes(Some(BackupType::Snapshot)),
            "s3-backup" => self.s3_backup(),
            "s3-restore" => self.restore(&self.s3_location(1), self.args.s3_endpoint.as_deref()),
            "s3-snapshots" => self.s3_snapshots(),
            "export" => self.export(),
            "import" => self.import(),
            "continuous" => crate::continuous::run(&self.rookery, self.args),
            "rest-writes" => self.rest_writes(),
            "chain" => self.chain(),
            "chain-in-runs" => self.chain_in_runs(),
            "fresh-full" => self.backup("backups-fresh", BackupOptions::default()),
            "compaction" => self.compaction("backups-chain", "backups-chain-copies"),
            "compaction-in-runs" => self.compaction("backups-chain-runs", "backups-chain-runs-copies"),
            "chain-restore" => self.restore(&self.chain_folder(), None),
            "chain-reads" => self.chain_reads(&self.chain_folder(), None),
            "s3-chain-restore" => self.restore(&self.s3_chain(), self.args.s3_endpoint.as_deref()),
            "s3-chain-reads" => self.chain_reads(&self.s3_chain(), self.args.s3_endpoint.as_deref()),
            other => panic!("no phase named {other}"),
        }
    }

    /// `root/<what>/run-<run>`.
    fn folder(&self, what: &str, run: u32) -> String {
        self.root.join(what).join(format!("run-{run}")).display().to_string()
    }

    fn chain_folder(&self) -> String {
        self.root.join("backups-chain").display().to_string()
    }

    /// The chain's copy in object storage (written by `chain` when the bench has S3).
    fn s3_chain(&self) -> String {
        format!("s3://{}/bench-{}-chain", self.args.s3_bucket, self.args.bench_id)
    }

    fn s3_location(&self, run: u32) -> String {
        format!("s3://{}/bench-{}-run-{run}", self.args.s3_bucket, self.args.bench_id)
    }

    fn load(&self) -> Outcome {
        let db = self.rookery.catalog().create(DATABASE).expect("creates the bench database");
        let started = Instant::now();
        for i in 0..self.args.documents {
            db.store().put(&doc_id(i), &doc_body(i, 0), None).expect("put");
        }
        db.store().persist().expect("persist");
        let outcome = Outcome::timed(started);
        // At rest, as a database is once its writers have stopped a while
        // (not timed): what the load left in memtables is flushed, and
        // fjall's own compactions catch up, so the next process does not
        // replay 200 MB of journal and compact them while the first backup
        // is timed (that made the first of three backups the slowest in
        // every run). No more compaction than fjall would do by itself.
        db.store().settle().expect("settles");
        outcome
    }

    /// A backup into `root/<what>/run-<run>`: time, set size, documents.
    fn backup(&self, what: &str, options: BackupOptions) -> Outcome {
        let options = BackupOptions { location: self.folder(what, self.run), ..options };
        self.timed_backup(options)
    }

    fn timed_backup(&self, options: BackupOptions) -> Outcome {
        drop_caches();
        let started = Instant::now();
        let summary = self.rookery.start_backup(DATABASE, options).expect("starts").wait().expect("the backup");
        let outcome = Outcome::timed(started);
        let bytes = summary.set_dir.as_deref().map_or(summary.bytes_written, du);
        outcome.with("bytes", bytes as f64).with("documents", summary.documents as f64)
    }

    fn sealed(&self) -> Outcome {
        let key = rookery::crypto::Key::random().to_base64();
        let secret = Some(rookery::backup::sealed::SetSecret::Key(key));
        self.backup("backups-sealed", BackupOptions { set_secret: secret, ..Default::default() })
    }

    /// 1% of the documents changed (not timed), then an incremental set on
    /// this run's chain. Every run's full set was taken before any run
    /// changed a document, so a later run first catches its chain up with
    /// an incremental of the earlier runs' changes (not timed): the timed
    /// incremental of run 3 then holds 1% of the documents, not 3%. The
    /// database is left at rest after it (not timed), as after the load:
    /// otherwise every later process replayed the runs' changes from the
    /// journal, and the first copied snapshot flushed them before it copied
    /// anything (its process peaked at 46 to 52 MB against 17 to 26 MB for
    /// the others).
    fn incremental(&self) -> Outcome {
        let options = || BackupOptions { location: self.folder("backups", self.run), incremental: true, ..Default::default() };
        if self.run > 1 {
            self.rookery.start_backup(DATABASE, options()).expect("starts").wait().expect("the catch-up incremental");
        }
        change_one_percent(&self.rookery, self.args.documents, 100 + u64::from(self.run));
        let outcome = self.timed_backup(options());
        self.settle();
        outcome
    }

    /// Restores the newest set of `location` into a new database, checks
    /// its documents, and deletes it (neither timed).
    fn restore(&self, location: &str, s3_endpoint: Option<&str>) -> Outcome {
        let name = format!("Restored{}", self.run);
        let request = RestoreRequest {
            backup_location: location.to_string(),
            s3: s3_endpoint.map(crate::s3::settings),
            database_name: Some(name.clone()),
            ..Default::default()
        };
        drop_caches();
        let started = Instant::now();
        let restored = self.rookery.start_restore(&request, false).expect("starts").wait().expect("the restore");
        let outcome = Outcome::timed(started);
        assert!(restored.documents >= self.args.documents, "every document restored");
        self.rookery.catalog().delete(&name).expect("the restored database is deleted");
        outcome.with("documents", restored.documents as f64)
    }

    /// A snapshot with no table hash kept from before (every table read).
    fn cold_snapshot(&self, what: &str, copy_files: bool) -> Outcome {
        rookery::backup::snapshot::forget_hashes();
        self.backup(what, snapshot(copy_files))
    }

    /// A first hard-linked snapshot (every table hashed), then another with
    /// the hashes kept: `seconds` is the first, `again` the second.
    fn linked_snapshots(&self) -> Outcome {
        let first = self.cold_snapshot("snapshots-linked", false);
        let again = self.backup("snapshots-linked", snapshot(false));
        first.with("again", again.seconds)
    }

    /// Two writers for `--load-seconds`, with backups of `kind` back to
    /// back; what earlier phases left in the page cache is written out first.
    fn writes(&self, kind: Option<BackupType>) -> Outcome {
        sync();
        let location = self.folder("backups-under-load", self.run);
        let window = Duration::from_secs(self.args.load_seconds);
        let started = Instant::now();
        let load = write_load(&self.rookery, self.args.writers, self.args.documents, window, kind.map(|k| (location.as_str(), k)));
        let outcome = Outcome::timed(started);
        outcome.with("throughput", load.throughput).with("p99_ms", load.p99_ms).with("backups", load.backups as f64)
    }

    fn s3_backup(&self) -> Outcome {
        let endpoint = self.args.s3_endpoint.as_deref().expect("an S3 endpoint");
        let options = BackupOptions { location: self.s3_location(self.run), s3: Some(crate::s3::settings(endpoint)), ..Default::default() };
        self.timed_backup(options)
    }

    /// A snapshot into object storage (tables stored once for the location),
    /// 1% of the documents changed, then another: `bytes` and `again_bytes`
    /// are what each sent.
    fn s3_snapshots(&self) -> Outcome {
        let endpoint = self.args.s3_endpoint.as_deref().expect("an S3 endpoint");
        let location = format!("s3://{}/bench-{}-snapshots-run-{}", self.args.s3_bucket, self.args.bench_id, self.run);
        let options = || BackupOptions {
            location: location.clone(),
            s3: Some(crate::s3::settings(endpoint)),
            backup_type: BackupType::Snapshot,
            ..Default::default()
        };
        rookery::backup::snapshot::forget_hashes();
        let first = self.timed_backup(options());
        change_one_percent(&self.rookery, self.args.documents, 200 + u64::from(self.run));
        let again = self.timed_backup(options());
        first.with("again_bytes", again.value("bytes")).with("again", again.seconds)
    }

    fn export(&self) -> Outcome {
        let dump = self.root.join(format!("export-{}.rookerydump", self.run));
        let db = self.rookery.catalog().get(DATABASE).expect("the bench database");
        drop_caches();
        let started = Instant::now();
        let file = std::io::BufWriter::new(std::fs::File::create(&dump).expect("creates the dump"));
        let exported = rookery::smuggler::export(&db.store().snapshot(), DATABASE, "", file, &mut |_| {}).expect("exports");
        let outcome = Outcome::timed(started);
        let bytes = std::fs::metadata(&dump).map_or(0, |m| m.len());
        outcome.with("documents", exported as f64).with("bytes", bytes as f64)
    }

    fn import(&self) -> Outcome {
        let dump = self.root.join("export-1.rookerydump");
        let name = format!("Imported{}", self.run);
        let target = self.rookery.catalog().create(&name).expect("creates");
        drop_caches();
        let started = Instant::now();
        let file = std::fs::File::open(&dump).expect("opens the dump");
        let imported = rookery::smuggler::import(target.store(), file, false, &Default::default(), &mut |_, _| {}).expect("imports");
        let outcome = Outcome::timed(started);
        drop(target);
        self.rookery.catalog().delete(&name).expect("the imported database is deleted");
        outcome.with("documents", imported.written as f64)
    }

    /// Storage-layer and REST writes of 1 KB, fsync durability.
    fn rest_writes(&self) -> Outcome {
        let window = Duration::from_secs(self.args.load_seconds);
        let storage = write_load(&self.rookery, self.args.writers, self.args.documents, window, None);
        let rest = rest_load(self.rookery.clone(), self.args.writers, self.args.documents, window);
        let outcome = Outcome { seconds: 2.0 * window.as_secs_f64(), ..Default::default() };
        outcome.with("storage", storage.throughput).with("rest", rest.throughput).with("rest_p99_ms", rest.p99_ms)
    }

    /// A full set and 24 incrementals of 1% each in `root/backups-chain`
    /// (and the same chain in object storage, when the bench has S3).
    fn chain(&self) -> Outcome {
        let s3 = self.args.s3_endpoint.as_deref().map(|e| (self.s3_chain(), crate::s3::settings(e)));
        let started = Instant::now();
        for round in 0..25u64 {
            if round > 0 {
                change_one_percent(&self.rookery, self.args.documents, round);
            }
            let folder = BackupOptions { location: self.chain_folder(), incremental: round > 0, ..Default::default() };
            let objects = s3.as_ref().map(|(location, settings)| BackupOptions {
                location: location.clone(),
                s3: Some(settings.clone()),
                ..folder.clone()
            });
            for options in std::iter::once(folder).chain(objects) {
                self.rookery.start_backup(DATABASE, options).expect("starts").wait().expect("a set of the chain");
            }
        }
        let outcome = Outcome::timed(started);
        self.settle();
        outcome
    }

    /// The database at rest after a chain's writes (not timed): the next
    /// phases (a fresh full backup, the compactions and restores of the
    /// chain, each in a process that opens the database) do not share the
    /// cores with fjall flushing and compacting the 24 rounds of changes
    /// (at 5M documents the compaction in runs took 4.44 s in a full run
    /// without this, 3.74 to 3.92 s on a database at rest).
    fn settle(&self) {
        let db = self.rookery.catalog().get(DATABASE).expect("the bench database");
        db.store().settle().expect("settles");
    }

    /// A full set and 24 incrementals of 1% each, every one changing 10 runs
    /// of consecutive ids, in `root/backups-chain-runs` (a folder only).
    fn chain_in_runs(&self) -> Outcome {
        let location = self.root.join("backups-chain-runs").display().to_string();
        let started = Instant::now();
        for round in 0..25u64 {
            if round > 0 {
                change_one_percent_in_runs(&self.rookery, self.args.documents, round);
            }
            let options = BackupOptions { location: location.clone(), incremental: round > 0, ..Default::default() };
            self.rookery.start_backup(DATABASE, options).expect("starts").wait().expect("a set of the chain");
        }
        let outcome = Outcome::timed(started);
        self.settle();
        outcome
    }

    /// 100 documents at random ids read from the chain at its newest point,
    /// without restoring it, as a selective restore reads them: the chain
    /// opened once (its manifests, then its index tops, deletions and small
    /// index files side by side), then for the 100 ids together one round of
    /// index blocks and one of frames. The same 100 ids are then read again,
    /// one `get` after another from a freshly opened chain, as one REST
    /// request per document does (reported, not the ratio).
    ///
    /// The data is cold and the code warm, as in a server that has answered
    /// a read before: 100 other ids are read first, untimed, then the page
    /// cache is dropped. Without that, the timed reads paged in the reader's
    /// own code from the bench's binary, which the drop had evicted (12
    /// major faults in the timed reads, `perf record -e major-faults`).
    fn chain_reads(&self, location: &str, s3_endpoint: Option<&str>) -> Outcome {
        let settings = s3_endpoint.map(crate::s3::settings);
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(self.run);
        let mut draw = |n: usize| -> Vec<String> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    doc_id(x % self.args.documents)
                })
                .collect()
        };
        let (warm_up, ids) = (draw(100), draw(100));
        let check = |wanted: &[&str], found: Vec<Result<rookery::browse::FoundDocument, String>>| {
            for (id, found) in wanted.iter().zip(found) {
                let found = found.unwrap_or_else(|m| panic!("{id}: {m}"));
                assert!(found.body.starts_with(b"{"), "{id} is a JSON document");
            }
        };
        {
            let location = self.rookery.open_backup_location(location, settings.as_ref()).expect("the chain's location");
            let mut reader = rookery::browse::open(&location, rookery::browse::PointChoice::default()).expect("the chain opens");
            let other: Vec<&str> = warm_up.iter().map(String::as_str).collect();
            check(&other, rookery::browse::get_many(&mut reader, &other).expect("reads"));
        }
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let check = |found| check(&wanted, found);
        drop_caches();
        let started = Instant::now();
        let location = self.rookery.open_backup_location(location, settings.as_ref()).expect("the chain's location");
        let mut reader = rookery::browse::open(&location, rookery::browse::PointChoice::default()).expect("the chain opens");
        let opened = started.elapsed().as_secs_f64();
        check(rookery::browse::get_many(&mut reader, &wanted).expect("reads"));
        let outcome = Outcome::timed(started).with("open_seconds", opened);
        drop_caches();
        let one_by_one = Instant::now();
        let mut reader = rookery::browse::open(&location, rookery::browse::PointChoice::default()).expect("the chain opens");
        check(wanted.iter().map(|id| rookery::browse::get(&mut reader, id).expect("reads")).collect());
        let outcome = outcome.with("one_by_one_seconds", one_by_one.elapsed().as_secs_f64());
        match s3_endpoint {
            Some(_) => outcome.with("floor_seconds", ranged_gets_floor(&reader, x)),
            None => outcome,
        }
    }

    /// Folds a copy of the chain in `root/<chain>` (the copy is not timed) into one set.
    fn compaction(&self, chain: &str, copies: &str) -> Outcome {
        let chain = self.root.join(chain);
        let copy = PathBuf::from(self.folder(copies, self.run));
        std::fs::create_dir_all(copy.parent().expect("a parent")).expect("creates");
        let status = std::process::Command::new("cp").arg("-r").arg(&chain).arg(&copy).status().expect("cp");
        assert!(status.success(), "the chain is copied");
        drop_caches();
        let options = rookery::backup::compact::CompactOptions::default();
        let started = Instant::now();
        let handle = self.rookery.start_compaction(&copy.display().to_string(), None, &options).expect("starts");
        let compacted = handle.wait().expect("the compaction");
        let outcome = Outcome::timed(started);
        assert_eq!(compacted.documents, self.args.documents, "every document in the compacted set");
        outcome.with("documents", compacted.documents as f64)
    }
}

fn snapshot(copy_files: bool) -> BackupOptions {
    BackupOptions { backup_type: BackupType::Snapshot, copy_files, ..Default::default() }
}

/// The storage server's own floor for what 100 documents need at least:
/// 100 ranged `GET`s of a frame's size (8 KiB) at random offsets of the
/// chain's largest documents file, 16 at a time as the reader sends them,
/// with no index read, no check and no decoding. In seconds.
fn ranged_gets_floor(reader: &rookery::browse::PointReader, mut x: u64) -> f64 {
    const LEN: u64 = 8 * 1024;
    let set = reader.chain().first().expect("a chain");
    let file = set.manifest.files.iter().max_by_key(|f| f.size).expect("a file");
    let offsets: Vec<u64> = (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % file.size.saturating_sub(LEN).max(1)
        })
        .collect();
    let started = Instant::now();
    let read = rookery::backup::concurrent::map(&offsets, rookery::backup::concurrent::OBJECT_WORKERS, |&o| {
        set.read_range(&file.name, o, LEN.min(file.size)).map(|b| b.len())
    });
    assert!(read.iter().all(Result::is_ok), "every ranged GET answers");
    started.elapsed().as_secs_f64()
}
