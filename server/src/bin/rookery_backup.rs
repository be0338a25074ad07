//! `rookery-backup`: start a backup through the REST API and follow it, or
//! list and verify a backup location offline.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use rookery::backup::compact::{self, CompactOptions};
use rookery::backup::location::{listing, location_from_cli, Depth};
use rookery::cli::client::Client;
use rookery::cli::{follow_with_progress, human_bytes, wait_for_key};
use rookery::config::Credentials;
use rookery::jobs::{CancelToken, StatusReporter};
use rookery_types::{BackupListing, BackupRequest, JobAccepted, BACKUP_STATUS_ID};

/// `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SetType {
    Backup,
    Snapshot,
}

/// Back up a Rookery database, or list and verify a backup location.
#[derive(Debug, Parser)]
#[command(name = "rookery-backup", version)]
struct Args {
    /// The server root URL, or a database URL (`http://host:port/databases/Name`).
    #[arg(long)]
    url: Option<String>,
    /// The backup location: a folder on the server (or, with --list/--verify, here).
    #[arg(long, required_unless_present = "copy")]
    dest: Option<String>,
    /// The database to back up (default: the one in --url, else the system database).
    #[arg(long)]
    database: Option<String>,
    /// Return as soon as the server accepted the backup.
    #[arg(long)]
    nowait: bool,
    /// An incremental set on the newest set of this database in --dest.
    #[arg(long)]
    incremental: bool,
    /// What a full set copies: `backup` (the documents: portable, compressed)
    /// or `snapshot` (the database's storage files: at disk speed, hard links
    /// on the data directory's filesystem).
    #[arg(long = "type", value_enum, default_value_t = SetType::Backup)]
    set_type: SetType,
    /// Cap the backup's writing at this many bytes a second.
    #[arg(long)]
    max_bytes_per_second: Option<u64>,
    /// HTTP request timeout in milliseconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Wait for a key press before exiting (when stdin is a terminal).
    #[arg(long)]
    readkey: bool,
    /// Encrypt the set with this key (base64 of 32 bytes).
    #[arg(long, env = "ROOKERY_BACKUP_KEY", hide_env_values = true)]
    backup_encryption_key: Option<String>,
    /// Encrypt the set with a key derived from this passphrase (argon2id).
    #[arg(long, env = "ROOKERY_BACKUP_PASSPHRASE", hide_env_values = true)]
    backup_passphrase: Option<String>,
    /// Encrypted databases: leave the database key out of the set.
    #[arg(long)]
    exclude_encryption_key: bool,
    /// Offline: list the chains and sets in --dest.
    #[arg(long, conflicts_with_all = ["verify", "url"])]
    list: bool,
    /// Offline: verify every checksum and link in --dest; non-zero exit on any problem.
    #[arg(long, conflicts_with = "url")]
    verify: bool,
    /// With --verify: also restore each chain's newest point into a temporary
    /// folder and compare the result with the ContentDigest its set recorded.
    #[arg(long, requires = "verify")]
    deep: bool,
    /// Offline: fold the newest chain in --dest (or the one ending at --up-to)
    /// into one new full set, without a server.
    #[arg(long, conflicts_with_all = ["url", "list", "verify", "incremental"])]
    compact: bool,
    /// Offline: list the documents in --dest at a point in time (--up-to,
    /// default the newest set), those whose id starts with PREFIX if given:
    /// id, etag, last modified and size, tab-separated.
    #[arg(long, value_name = "PREFIX", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["url", "list", "verify", "compact", "cat", "diff"])]
    ls: Option<String>,
    /// Offline: print one document of --dest as it was at --up-to (default the newest set).
    #[arg(long, value_name = "ID", conflicts_with_all = ["url", "list", "verify", "compact", "diff"])]
    cat: Option<String>,
    /// Offline: the ids created, changed and deleted between two points of
    /// one chain, `FROM..TO` (set ids or RFC 3339 times; TO empty: the newest set).
    #[arg(long, value_name = "FROM..TO", conflicts_with_all = ["url", "list", "verify", "compact", "up_to"])]
    diff: Option<String>,
    /// Copy the sets of --from missing in --to there (whole chains, bases
    /// first, each file checked against its hash), offline; run it again to
    /// resume a copy that stopped. --from is only read.
    #[arg(long, requires_all = ["from", "to"], conflicts_with_all = ["url", "list", "verify", "compact", "ls", "cat", "diff", "dest"])]
    copy: bool,
    /// With --copy: the location copied from.
    #[arg(long, requires = "copy")]
    from: Option<String>,
    /// With --copy: the location copied to.
    #[arg(long, requires = "copy")]
    to: Option<String>,
    /// With --compact: fold the chain up to this set; with --ls and --cat:
    /// the point to read (a set id or an RFC 3339 time).
    #[arg(long)]
    up_to: Option<String>,
    /// With --compact, --ls, --cat and --diff: the database whose chain to
    /// read, when --dest holds chains of several (the name in the sets).
    #[arg(long)]
    source_database_name: Option<String>,
    #[command(flatten)]
    credentials: Credentials,
}

fn main() -> ExitCode {
    rookery::process::without_transparent_huge_pages();
    let args = Args::parse();
    let code = if args.ls.is_some() || args.cat.is_some() || args.diff.is_some() {
        browse_offline(&args)
    } else if args.copy {
        copy_offline(&args)
    } else if args.up_to.is_some() && !args.compact {
        eprintln!("rookery-backup: --up-to goes with --compact, --copy, --ls or --cat");
        ExitCode::from(2)
    } else if args.compact {
        compact_offline(&args)
    } else if args.list || args.verify {
        offline(&args)
    } else {
        online(&args)
    };
    if args.readkey {
        wait_for_key();
    }
    code
}

fn offline(args: &Args) -> ExitCode {
    let depth = if args.verify { Depth::Checksums } else { Depth::Structure };
    let result = match location_from_cli(args.dest()).and_then(|location| listing(&location, depth)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rookery-backup: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_listing(&result);
    let mut problems: usize = result.problems.len() + result.chains.iter().flat_map(|c| &c.sets).map(|s| s.problems.len()).sum::<usize>();
    if args.deep {
        problems += deep_verify(args, &result);
    }
    if args.verify {
        if problems == 0 && !result.chains.is_empty() {
            println!("OK: every checksum and link verified.");
            ExitCode::SUCCESS
        } else {
            if result.chains.is_empty() {
                eprintln!("rookery-backup: no backup set in {}", args.dest());
            }
            for p in &result.problems {
                eprintln!("problem: {p}");
            }
            for s in result.chains.iter().flat_map(|c| &c.sets) {
                for p in &s.problems {
                    eprintln!("problem: {p}");
                }
            }
            ExitCode::FAILURE
        }
    } else {
        ExitCode::SUCCESS
    }
}

/// The key or passphrase of the sets, from `--backup-encryption-key` or `--backup-passphrase`.
fn set_secret(args: &Args) -> Result<Option<rookery::backup::sealed::SetSecret>, String> {
    rookery::backup::sealed::SetSecret::from_request(args.backup_encryption_key.as_ref(), args.backup_passphrase.as_ref())
}

fn browse_offline(args: &Args) -> ExitCode {
    use rookery::cli::browse::{cat, diff, ls, Point};
    let secret = match set_secret(args) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("rookery-backup: {message}");
            return ExitCode::from(2);
        }
    };
    let point =
        Point { dest: args.dest(), up_to: args.up_to.as_deref(), database: args.source_database_name.as_deref(), secret: secret.as_ref() };
    let mut out = std::io::stdout().lock();
    // What goes to stderr: where a document came from, or how many lines.
    let result = if let Some(id) = &args.cat {
        cat(&point, id, &mut out).map(|found| found.map(|set_id| format!("({id} from {set_id})")))
    } else if let Some(range) = &args.diff {
        diff(&point, range, &mut out).map(|n| Ok(format!("{} changed", rookery_types::counted(n, "id"))))
    } else {
        ls(&point, args.ls.as_deref().unwrap_or_default(), &mut out).map(|n| Ok(rookery_types::counted(n, "document")))
    };
    match result {
        Ok(Ok(said)) => {
            eprintln!("{said}");
            ExitCode::SUCCESS
        }
        Ok(Err(not_found)) => {
            eprintln!("rookery-backup: {not_found}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rookery-backup: {e} ({})", e.code());
            ExitCode::FAILURE
        }
    }
}

impl Args {
    /// `--dest` (present in every mode but --copy, which clap checks).
    fn dest(&self) -> &str {
        self.dest.as_deref().unwrap_or_default()
    }
}

/// `--copy`: the sets of `--from` missing in `--to`, copied with a bar of bytes.
fn copy_offline(args: &Args) -> ExitCode {
    use rookery::backup::copy_sets::{self, CopyChoice, CopyProgress};
    use rookery::backup::location::StoredSet;
    let (from, to) = (args.from.as_deref().unwrap_or_default(), args.to.as_deref().unwrap_or_default());
    let choice = CopyChoice { up_to: args.up_to.clone(), database_id: None };
    let planned = location_from_cli(from)
        .and_then(|from| Ok((from, location_from_cli(to)?)))
        .and_then(|(from, to)| copy_sets::plan(from, to, &choice));
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("rookery-backup: copy refused: {e} ({})", e.code());
            return ExitCode::FAILURE;
        }
    };
    for why in &plan.left_out {
        eprintln!("rookery-backup: left out {why}");
    }
    println!(
        "Copying {} ({}) from {} to {}; {} already there",
        rookery_types::counted(plan.missing.len() as u64, "set"),
        human_bytes(plan.bytes()),
        plan.from,
        plan.to,
        plan.present.len()
    );
    struct Bar(indicatif::ProgressBar);
    impl CopyProgress for Bar {
        fn set_started(&mut self, set: &StoredSet, index: usize, of: usize) -> Result<(), rookery::backup::BackupError> {
            self.0.set_message(format!("{} ({} of {of})", set.manifest.set_id, index + 1));
            Ok(())
        }
        fn bytes(&mut self, bytes: u64) {
            self.0.inc(bytes);
        }
        fn set_ended(&mut self, set: &StoredSet, copied: bool) {
            if copied {
                self.0.println(format!("copied {}", set.manifest.set_id));
            }
        }
    }
    let bar = rookery::cli::counting_bar("bytes");
    bar.set_length(plan.bytes());
    let cancel = CancelToken::default();
    let stop = cancel.clone();
    let _ = ctrlc::set_handler(move || stop.cancel());
    let result = copy_sets::run(&plan, &mut Bar(bar.clone()), &cancel);
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            println!(
                "Copy completed: {} copied ({}), {} already there",
                rookery_types::counted(summary.copied.len() as u64, "set"),
                human_bytes(summary.bytes),
                summary.present
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rookery-backup: copy failed: {e} ({}); the sets copied before stay, run it again to resume", e.code());
            ExitCode::FAILURE
        }
    }
}

fn compact_offline(args: &Args) -> ExitCode {
    let secret = match set_secret(args) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("rookery-backup: {message}");
            return ExitCode::from(2);
        }
    };
    let options = CompactOptions {
        up_to: args.up_to.clone(),
        set_secret: secret,
        source_database: args.source_database_name.clone(),
        task: None,
        object_lock: None,
    };
    let prepared = match location_from_cli(args.dest()).and_then(|location| compact::prepare(location, &options)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rookery-backup: compaction refused: {e} ({})", e.code());
            return ExitCode::FAILURE;
        }
    };
    println!("Compacting {} sets ({}) into {}", prepared.chain.len(), prepared.set_ids().join(", "), prepared.set_id);
    let bar = rookery::cli::counting_bar("documents");
    let shown = bar.clone();
    let mut reporter = StatusReporter::detached(
        rookery_types::COMPACT_STATUS_ID,
        compact::initial_status(&prepared),
        Box::new(move |status| {
            shown.set_length(status.progress.documents_total.max(status.progress.documents_done));
            shown.set_position(status.progress.documents_done);
        }),
    );
    let cancel = CancelToken::default();
    let stop = cancel.clone();
    let _ = ctrlc::set_handler(move || stop.cancel());
    let result = compact::run(&prepared, &mut reporter, &cancel);
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            reporter.succeed("done");
            println!(
                "Compaction completed: {} ({}, up to etag {}, {}) in {}",
                summary.set_id,
                rookery_types::counted(summary.documents, "document"),
                summary.to_etag,
                human_bytes(summary.bytes_written),
                args.dest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            reporter.fail(e.code(), &e.to_string());
            eprintln!("rookery-backup: compaction failed: {e} ({})", e.code());
            ExitCode::FAILURE
        }
    }
}

/// Proves the newest point of every chain restores, as a restore drill does
/// (restored into a temporary folder, every hash, count and ContentDigest
/// checked, then every document read back); the number of chains that failed.
fn deep_verify(args: &Args, listing: &BackupListing) -> usize {
    let secret = match set_secret(args) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("problem: {message}");
            return 1;
        }
    };
    let mut failed = 0;
    for chain in &listing.chains {
        let Some(tip) = chain.sets.last() else { continue };
        let outcome = (|| -> Result<u64, String> {
            let location = location_from_cli(args.dest()).map_err(|e| e.to_string())?;
            let plan = rookery::restore::plan(
                &location,
                rookery::restore::ChainChoice { up_to: Some(&tip.set_id), database: None },
                None,
                secret.as_ref(),
            )
            .map_err(|e| e.to_string())?;
            let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
            // Only to hold an encrypted database's key while the restore runs.
            let master = rookery::crypto::Key::random();
            let summary = rookery::restore::prove_chain(&plan, &scratch.path().join("db"), Some(&master), &CancelToken::default())
                .map_err(|e| e.to_string())?;
            Ok(summary.documents)
        })();
        match outcome {
            Ok(documents) => println!("deep: {} restored ({documents} documents), read back, and matched what it recorded", tip.set_id),
            Err(e) => {
                eprintln!("problem: deep: {}: {e}", tip.set_id);
                failed += 1;
            }
        }
    }
    failed
}

fn print_listing(listing: &BackupListing) {
    if listing.chains.is_empty() {
        println!("No backup chain in {}", listing.location);
    }
    for chain in &listing.chains {
        println!("Chain of database '{}' ({})", chain.database_name, chain.database_id);
        println!("  {:<34} {:<12} {:<25} {:>10} {:>10} {:>10}  STATUS", "SET", "KIND", "CREATED", "DOCUMENTS", "DELETIONS", "SIZE");
        for s in &chain.sets {
            let status = if s.verified { "ok" } else { "PROBLEM" };
            let lock = match (&s.locked_until, s.lock_mode) {
                (Some(until), Some(mode)) => format!("  locked until {until} ({mode:?})"),
                _ => String::new(),
            };
            println!(
                "  {:<34} {:<12} {:<25} {:>10} {:>10} {:>10}  {status}{lock}",
                s.set_id,
                s.kind,
                s.created,
                s.document_count,
                s.deletion_count,
                human_bytes(s.size_bytes),
            );
        }
    }
    for p in &listing.problems {
        println!("problem: {p}");
    }
    for u in &listing.unfinished {
        println!("note: {u}");
    }
}

fn online(args: &Args) -> ExitCode {
    let Some(url) = &args.url else {
        eprintln!("rookery-backup: --url is required (or --list / --verify for offline use)");
        return ExitCode::from(2);
    };
    let client = Client::new(url, args.database.as_deref(), args.timeout.map(Duration::from_millis), &args.credentials);
    let base = client.base();
    let request = BackupRequest {
        backup_location: args.dest().to_string(),
        s3: None,
        include_encryption_key: args.exclude_encryption_key.then_some(false),
        backup_encryption_key: args.backup_encryption_key.clone(),
        backup_passphrase: args.backup_passphrase.clone(),
        backup_type: match args.set_type {
            SetType::Backup => rookery_types::BackupType::Backup,
            SetType::Snapshot => rookery_types::BackupType::Snapshot,
        },
        max_bytes_per_second: args.max_bytes_per_second,
    };
    let endpoint = format!("{base}/admin/backup?incremental={}", args.incremental);
    if let Err(e) = client.post_json::<JobAccepted>(&endpoint, &request) {
        eprintln!("rookery-backup: backup refused: {e}");
        return ExitCode::FAILURE;
    }
    if args.nowait {
        println!("Backup started; follow {base}/docs/{BACKUP_STATUS_ID}");
        return ExitCode::SUCCESS;
    }
    rookery::cli::cancel_on_ctrl_c(&client, format!("{base}/admin/backup/cancel"));
    match follow_with_progress(&client, &base, BACKUP_STATUS_ID, Duration::from_secs(7 * 24 * 3600)) {
        Ok(status) if status.success => {
            println!(
                "Backup completed: {} ({}, {}) in {}",
                status.set_id.unwrap_or_default(),
                rookery_types::counted(status.progress.documents_done, "document"),
                human_bytes(status.progress.bytes_written),
                status.backup_location.unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!(
                "rookery-backup: backup failed: {} ({})",
                status.error.unwrap_or_else(|| "unknown error".into()),
                status.error_code.unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rookery-backup: {e}");
            ExitCode::FAILURE
        }
    }
}
