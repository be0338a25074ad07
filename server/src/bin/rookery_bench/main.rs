//! `rookery-bench`: the backup and restore benchmark. Every baseline and
//! measure is the median of three runs (`--runs`), each in a process of its
//! own, with the spread printed beside it; ratios are of medians measured in
//! the same run of the bench. `--json FILE` writes the rows with the commit
//! and the machine; `make bench-report` draws the last runs as one chart.
//!
//! `cargo run --release -p server --bin rookery-bench -- --documents 1000000`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod continuous;
mod measures;
mod phase;
mod report;
mod s3;
mod system;
mod workload;

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "rookery-bench",
    about = "Backup and restore benchmark; prints ratios of medians against baselines measured in the same run."
)]
pub struct Args {
    /// Documents of about 1 KB in the database.
    #[arg(long, default_value_t = 1_000_000)]
    documents: u64,
    /// Runs of each baseline and measure (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    runs: u32,
    /// Also write the rows as JSON, with the commit and the machine.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Seconds of each write-load window (after 2 s of writes not counted).
    #[arg(long, default_value_t = 10)]
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
    /// The process serving --s3-endpoint on this machine, whose CPU time is
    /// reported beside the object storage rows (as moto's is): it shares the
    /// cores with the bench.
    #[arg(long, value_name = "PID", requires = "s3_endpoint")]
    s3_server_pid: Option<u32>,
    /// Leave out the object storage rows.
    #[arg(long)]
    no_s3: bool,
    /// Measure how the cost grows instead: backup, restore, export, import
    /// and compaction at this many documents and at --documents, taking
    /// turns in this run, each row the ratio of the two medians.
    #[arg(long, value_name = "DOCUMENTS")]
    scale_from: Option<u64>,
    /// Leave out these groups of rows (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Group>,
    /// (internal) Run one phase in this process and print its outcome.
    #[arg(long, hide = true)]
    phase: Option<String>,
    /// (internal) Which run of the phase this is.
    #[arg(long, hide = true, default_value_t = 1)]
    run: u32,
    /// (internal) Names this bench's objects in a shared bucket.
    #[arg(long, hide = true, default_value_t = std::process::id())]
    bench_id: u32,
    /// (internal) moto's request log.
    #[arg(long, hide = true)]
    s3_log: Option<PathBuf>,
}

/// Groups of rows that `--skip` leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Writes without, during backups and during snapshots.
    Writes,
    /// Snapshot sets: copied, linked, linked again, restored.
    Snapshots,
    /// Export and import.
    Smuggler,
    /// REST against storage writes, and the continuous task.
    Rest,
    /// A full set and 24 incrementals, folded.
    Compaction,
}

fn main() {
    rookery::process::without_transparent_huge_pages();
    let args = Args::parse();
    if let Some(name) = &args.phase {
        let root = args.dir.clone().expect("a phase is given --dir");
        phase::run(name, &args, &root);
        return;
    }
    // The commit, read before the runs (see `system::commit`).
    let commit = system::commit();
    let temp = tempfile::tempdir().expect("a temp folder");
    let root = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("the work folder");
    println!(
        "rookery-bench at {commit}: {} documents of ~1 KB in {}, {} run(s) of each measure",
        args.documents,
        root.display(),
        args.runs
    );
    let mut bench = measures::Bench::new(args, root);
    let rows = match bench.args.scale_from {
        Some(small) => bench.measure_scale(small),
        None => bench.measure_all(),
    };
    report::print_table(&rows);
    if let Some(path) = &bench.args.json {
        let json = bench.report(&rows);
        std::fs::write(path, serde_json::to_vec_pretty(&json).expect("serialises")).expect("writes the JSON report");
        println!("rows written to {}", path.display());
    }
}
