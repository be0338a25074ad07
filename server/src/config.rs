//! The server's configuration: one typed struct, from flags, environment
//! variables and an optional `--config` file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use crate::storage::Durability;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable; coloured only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `rookery-server`'s flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rookery-server", version, about = "Rookery: a document database with online backup and verified restore.")]
#[command(args_override_self = true)]
pub struct Config {
    /// The data directory (`System/` and `Databases/<name>/` inside).
    #[arg(long, env = "ROOKERY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Address and port to listen on.
    #[arg(long, env = "ROOKERY_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// A file of flags, one per line (`data-dir = /srv/rookery` or `--data-dir=/srv/rookery`);
    /// flags on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// A folder, or `s3://bucket[/prefix]` in object storage, under which
    /// backups may be written and read (repeatable). Default: the folder that
    /// holds the data directory (`DATA/..`), the data directory itself
    /// excluded; without an `s3://` root no object storage location is allowed.
    #[arg(long = "backup-root", env = "ROOKERY_BACKUP_ROOTS", value_delimiter = ',')]
    pub backup_roots: Vec<PathBuf>,

    /// Log lines as `text` (colours only on a terminal) or `json` (one object
    /// a line, for log shippers).
    #[arg(long = "log-format", value_enum, env = "ROOKERY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds a request may take (streams and restore starts excepted).
    #[arg(long = "request-timeout", env = "ROOKERY_REQUEST_TIMEOUT", default_value_t = 120)]
    pub request_timeout_secs: u64,

    /// A folder under which a restore may place a database with
    /// `DatabaseLocation` (repeatable). The data directory always is one.
    #[arg(long = "database-root", env = "ROOKERY_DATABASE_ROOTS", value_delimiter = ',')]
    pub database_roots: Vec<PathBuf>,

    /// When a write is acknowledged: after an fsync (`fsync`, survives power
    /// loss) or after the OS has it (`os`, survives a process crash).
    #[arg(long, value_enum, env = "ROOKERY_DURABILITY", default_value = "fsync")]
    pub durability: Durability,

    /// Where the studio's compiled files are (`cargo leptos build` output).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Create (or reset) an administrator with this name, then exit. The
    /// password comes from `ROOKERY_PASSWORD`, or is asked on a terminal.
    #[arg(long, value_name = "NAME")]
    pub create_admin: Option<String>,

    /// The master key file, which wraps the keys of encrypted databases
    /// (created with mode 0600 when first needed). Default:
    /// `rookery-master.key` beside the data directory. `ROOKERY_MASTER_KEY`
    /// (base64 of 32 bytes) takes precedence.
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,

    /// How long a set that never completed (no manifest) must have been left
    /// untouched before a backup into its location removes it, when this
    /// server did not record it as its own (`30s`, `15m`, `24h`, `7d`): a
    /// younger one may be another writer's upload in progress.
    #[arg(long, env = "ROOKERY_UNFINISHED_SET_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub unfinished_set_grace: std::time::Duration,

    /// Failed authentications allowed per client address and minute before
    /// that address gets 429 for the rest of the minute.
    #[arg(long, default_value_t = 20)]
    pub max_failed_auth: u32,

    #[command(flatten)]
    pub restore: RestoreArgs,

    #[command(flatten)]
    pub credentials: Credentials,
}

/// The restore modes of `rookery-server` (see the README).
#[derive(Debug, Clone, Default, Args)]
pub struct RestoreArgs {
    /// The backup location to restore from (a path on the server that restores).
    #[arg(long)]
    pub restore_source: Option<String>,
    /// With `--restore-system-database`: the data directory to create. With
    /// `--restore-database`: where the restored database's files go.
    #[arg(long)]
    pub restore_destination: Option<PathBuf>,
    /// Restore the system database offline into `--restore-destination`, then exit.
    #[arg(long)]
    pub restore_system_database: bool,
    /// Restore a named database online, through the server at this root URL.
    #[arg(long, value_name = "URL")]
    pub restore_database: Option<String>,
    /// The restored database's name (default: the name in the backup).
    #[arg(long)]
    pub restore_database_name: Option<String>,
    /// Compact the restored database fully before it is opened.
    #[arg(long)]
    pub restore_defrag: bool,
    /// Return as soon as the server accepted the restore.
    #[arg(long)]
    pub restore_no_wait: bool,
    /// Seconds to wait for a running restore to finish before giving up.
    #[arg(long, default_value_t = 15)]
    pub restore_start_timeout: u64,
    /// Restore only up to this set, or up to the newest set created at or
    /// before this RFC 3339 time (point in time).
    #[arg(long)]
    pub restore_up_to: Option<String>,
    /// The database whose chains to restore, when the source holds chains
    /// of several (the name in the sets).
    #[arg(long)]
    pub restore_source_database_name: Option<String>,
    /// The database key, for a set of an encrypted database made without it.
    #[arg(long)]
    pub restore_encryption_key: Option<String>,
    /// The key of an encrypted backup set (base64 of 32 bytes).
    #[arg(long, env = "ROOKERY_BACKUP_KEY", hide_env_values = true)]
    pub restore_backup_key: Option<String>,
    /// The passphrase of an encrypted backup set.
    #[arg(long, env = "ROOKERY_BACKUP_PASSPHRASE", hide_env_values = true)]
    pub restore_backup_passphrase: Option<String>,
}

/// Credentials every CLI sends.
#[derive(Debug, Clone, Default, Args)]
pub struct Credentials {
    /// User name (HTTP Basic).
    #[arg(long, env = "ROOKERY_USERNAME")]
    pub username: Option<String>,
    /// Password (HTTP Basic).
    #[arg(long, env = "ROOKERY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// API key, `name/secret`.
    #[arg(long, env = "ROOKERY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl Config {
    /// The master key file in force.
    #[must_use]
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| {
            let data = if self.data_dir.is_absolute() {
                self.data_dir.clone()
            } else {
                std::env::current_dir().map(|d| d.join(&self.data_dir)).unwrap_or_else(|_| self.data_dir.clone())
            };
            data.parent().map_or_else(|| PathBuf::from("rookery-master.key"), |p| p.join("rookery-master.key"))
        })
    }

    /// See [`Config::unfinished_set_grace`].
    #[must_use]
    pub fn unfinished_set_grace(&self) -> std::time::Duration {
        self.unfinished_set_grace
    }

    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// The folder backup roots in force: the configured ones, else (when no
    /// root at all is configured) the parent of the data directory. Empty when
    /// only object storage roots are configured: then no folder is a location.
    #[must_use]
    pub fn effective_backup_roots(&self) -> Vec<PathBuf> {
        if !self.backup_roots.is_empty() {
            return self.backup_roots.iter().filter(|r| !is_object_url(r)).cloned().collect();
        }
        let data = if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            std::env::current_dir().map(|d| d.join(&self.data_dir)).unwrap_or_else(|_| self.data_dir.clone())
        };
        vec![data.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)]
    }

    /// The object storage backup roots (`--backup-root=s3://bucket[/prefix]`),
    /// as (bucket, prefix); unparsable ones are refused at start.
    #[must_use]
    pub fn object_backup_roots(&self) -> Vec<(String, String)> {
        self.backup_roots
            .iter()
            .filter(|r| is_object_url(r))
            .filter_map(|r| crate::backup::object::parse_url(&r.to_string_lossy()).ok())
            .collect()
    }

    /// A configuration for tests and embedding: data in `data_dir`, writes
    /// acknowledged after the OS has them, no backup roots.
    #[must_use]
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut config = Self::parse_from(["rookery-server"]);
        config.data_dir = data_dir.to_path_buf();
        config.durability = Durability::Os;
        config
    }

    /// Parses the command line, reading `--config FILE` first when given.
    ///
    /// # Errors
    /// The config file cannot be read.
    pub fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().collect();
        let file = args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--config=").map(str::to_string).or_else(|| (a == "--config").then(|| args.get(i + 1).cloned()).flatten())
        });
        let mut all = vec![args.first().cloned().unwrap_or_else(|| "rookery-server".into())];
        if let Some(file) = file {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read config file '{file}': {e}"))?;
            all.extend(config_file_args(&text));
        }
        all.extend(args.into_iter().skip(1));
        let config = Self::parse_from(all);
        for root in config.backup_roots.iter().filter(|r| is_object_url(r)) {
            crate::backup::object::parse_url(&root.to_string_lossy()).map_err(|e| format!("--backup-root: {e}"))?;
        }
        Ok(config)
    }
}

/// Turns a config file's lines into flags: `key = value`, `key value`,
/// `--key=value` and bare `key` (a switch); `#` starts a comment.
fn config_file_args(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|line| {
            let line = line.trim_start_matches("--");
            match line.split_once('=').or_else(|| line.split_once(char::is_whitespace)) {
                Some((k, v)) => format!("--{}={}", k.trim(), v.trim().trim_matches('"')),
                None => format!("--{line}"),
            }
        })
        .collect()
}

/// A duration as `30s`, `15m`, `24h` or `7d` (a number and a unit).
///
/// # Errors
/// Why the text is not one.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{text}' is not a duration: a number followed by s, m, h or d (24h)");
    let unit_at = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(std::time::Duration::from_secs(seconds))
}

fn is_object_url(root: &Path) -> bool {
    root.to_string_lossy().starts_with(crate::backup::object::SCHEME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_lines_become_flags() {
        let args = config_file_args("# comment\ndata-dir = /srv/data\n--bind=0.0.0.0:9\nrestore-defrag\nbackup-root \"/b\"\n");
        assert_eq!(args, ["--data-dir=/srv/data", "--bind=0.0.0.0:9", "--restore-defrag", "--backup-root=/b"]);
    }

    #[test]
    fn later_flags_win() {
        let c = Config::parse_from(["x", "--data-dir=/a", "--data-dir=/b"]);
        assert_eq!(c.data_dir, PathBuf::from("/b"));
    }
}
