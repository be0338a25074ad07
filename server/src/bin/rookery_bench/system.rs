//! What the bench reads of the machine and of its own processes: sizes,
//! the page cache, peak RSS, CPU time, and the facts a run is reported with.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Bytes of the files under `path`.
pub fn du(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                du(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Flushes every dirty page to disk.
pub fn sync() {
    let _ = Command::new("sync").status();
}

/// Flushes dirty pages and drops the page cache (as root; otherwise says so once).
pub fn drop_caches() {
    sync();
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_err() {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| eprintln!("(cannot drop the page cache: timings are with warm caches)"));
    }
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

/// The peak resident set of this process so far.
pub fn peak_rss() -> u64 {
    status_field("VmHWM:")
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (100 on every Linux this runs on, asked all the same).
fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|hz| *hz > 0.0)
            .unwrap_or(100.0)
    })
}

/// The machine a run was measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    /// The device and filesystem of the work folder, e.g. `/dev/vda1 (ext4)`.
    pub disk: String,
    pub kernel: String,
}

impl Machine {
    pub fn read(root: &Path) -> Self {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .unwrap_or(0)
            * 1024;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        Self { cores: std::thread::available_parallelism().map_or(1, usize::from), memory_bytes, disk: disk_of(root), kernel }
    }
}

/// The mount that holds `path` (the longest mount point it is under).
fn disk_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, point, _)| path.starts_with(point))
        .max_by_key(|(_, point, _)| point.len())
        .map_or_else(|| "unknown".into(), |(device, _, fstype)| format!("{device} ({fstype})"))
}

/// The commit the bench was built from (`+dirty` with uncommitted
/// changes), as the work tree showed it when the bench started: read once,
/// so a change made to the tree while it runs (a run takes minutes) is not
/// taken for the build's.
pub fn commit() -> String {
    static AT_START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AT_START.get_or_init(read_commit).clone()
}

fn read_commit() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(dir).output().ok().filter(|o| o.status.success());
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else { return "unknown".into() };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{head}+dirty")
    } else {
        head
    }
}

pub fn human(bytes: u64) -> String {
    rookery_types::format_bytes(bytes)
}
