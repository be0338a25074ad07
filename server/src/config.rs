//! The server's configuration: one typed struct, from flags, environment
//! variables and an optional `--config` file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser};

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

    /// Where the studio's compiled files are. Default: `site/` beside the
    /// executable when it holds them (a `make release` folder), else
    /// `target/site` (the output of `cargo leptos build`).
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

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

    /// The studio's address as its users reach it, for the links in
    /// notifications (default: `http://` and `--bind`).
    #[arg(long, env = "ROOKERY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Also serve `GET /metrics`, alone and without credentials, on this
    /// address (for a Prometheus scraper; keep it on a private network).
    #[arg(long, env = "ROOKERY_METRICS_BIND", value_name = "ADDR:PORT")]
    pub metrics_bind: Option<SocketAddr>,

    /// Failed authentications allowed per client address and minute before
    /// that address gets 429 for the rest of the minute.
    #[arg(long, default_value_t = 20)]
    pub max_failed_auth: u32,

    #[command(flatten)]
    pub restore: RestoreArgs,

    #[command(flatten)]
    pub credentials: Credentials,
}

/// The restore modes of `rookery-server` (see the README): offline
/// (`--restore-system-database`) or online (`--restore-database=URL`), one
/// at a time; a flag the chosen mode would ignore is refused.
#[derive(Debug, Clone, Default, Args)]
#[group(skip)]
pub struct RestoreArgs {
    /// The backup location to restore from (a path on the server that restores).
    #[arg(long, requires = "restore_mode")]
    pub restore_source: Option<String>,
    /// With `--restore-system-database`: the data directory to create. With
    /// `--restore-database`: where the restored database's files go.
    #[arg(long, requires = "restore_mode")]
    pub restore_destination: Option<PathBuf>,
    /// Restore the system database offline into `--restore-destination`, then exit.
    #[arg(long, group = "restore_mode", requires_all = ["restore_source", "restore_destination"], conflicts_with_all = OFFLINE_IGNORES)]
    pub restore_system_database: bool,
    /// Restore a named database online, through the server at this root URL.
    #[arg(long, value_name = "URL", group = "restore_mode", requires = "restore_source")]
    pub restore_database: Option<String>,
    /// The restored database's name (default: the name in the backup).
    #[arg(long, requires = "restore_database")]
    pub restore_database_name: Option<String>,
    /// Compact the restored database fully before it is opened.
    #[arg(long, requires = "restore_mode")]
    pub restore_defrag: bool,
    /// Return as soon as the server accepted the restore.
    #[arg(long, requires = "restore_database")]
    pub restore_no_wait: bool,
    /// Seconds to wait for a running restore to finish before giving up.
    #[arg(long, default_value_t = 15)]
    pub restore_start_timeout: u64,
    /// Restore only up to this set, or up to the newest set created at or
    /// before this RFC 3339 time (point in time).
    #[arg(long, requires = "restore_mode")]
    pub restore_up_to: Option<String>,
    /// The database whose chains to restore, when the source holds chains
    /// of several (the name in the sets).
    #[arg(long, requires = "restore_database")]
    pub restore_source_database_name: Option<String>,
    /// The database key, for a set of an encrypted database made without it.
    #[arg(long, requires = "restore_database")]
    pub restore_encryption_key: Option<String>,
    /// The key of an encrypted backup set (base64 of 32 bytes).
    #[arg(long, env = "ROOKERY_BACKUP_KEY", hide_env_values = true)]
    pub restore_backup_key: Option<String>,
    /// The passphrase of an encrypted backup set.
    #[arg(long, env = "ROOKERY_BACKUP_PASSPHRASE", hide_env_values = true)]
    pub restore_backup_passphrase: Option<String>,
}

/// The flags of an online restore that the offline system restore has no
/// use for (the system database keeps its name, is never encrypted at rest,
/// and no server is asked).
const OFFLINE_IGNORES: [&str; 5] =
    ["restore_database_name", "restore_no_wait", "restore_start_timeout", "restore_source_database_name", "restore_encryption_key"];

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

    /// The base of the links in notifications (see [`Config::public_url`]).
    #[must_use]
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.bind))
    }

    /// The studio's files in force (see [`Config::site_root`]).
    #[must_use]
    pub fn site_root(&self) -> PathBuf {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("site")));
        beside.filter(|site| site.join("pkg").is_dir()).unwrap_or_else(|| PathBuf::from("target/site"))
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

    /// Parses the command line, reading `--config FILE` (TOML) first when given.
    ///
    /// # Errors
    /// The config file cannot be read, is not TOML, or names a key that is
    /// not a flag (or gives it a value of the wrong shape); an `s3://` backup
    /// root that cannot be parsed.
    pub fn from_args() -> Result<Self, ConfigError> {
        Self::from_arg_list(std::env::args().collect())
    }

    /// [`Config::from_args`] for a given command line (`args[0]` the program).
    ///
    /// # Errors
    /// See [`Config::from_args`].
    pub fn from_arg_list(args: Vec<String>) -> Result<Self, ConfigError> {
        let given = Self::command().try_get_matches_from(&args)?;
        let mut all = vec![args.first().cloned().unwrap_or_else(|| "rookery-server".into())];
        if let Some(file) = given.get_one::<PathBuf>("config") {
            let text = std::fs::read_to_string(file)
                .map_err(|e| ConfigError::Invalid(format!("cannot read config file '{}': {e}", file.display())))?;
            let file_args =
                config_file_args(&text, &given).map_err(|e| ConfigError::Invalid(format!("config file '{}': {e}", file.display())))?;
            all.extend(file_args);
        }
        all.extend(args.into_iter().skip(1));
        let config = Self::try_parse_from(all)?;
        for root in config.backup_roots.iter().filter(|r| is_object_url(r)) {
            crate::backup::object::parse_url(&root.to_string_lossy()).map_err(|e| ConfigError::Invalid(format!("--backup-root: {e}")))?;
        }
        Ok(config)
    }
}

/// Why the configuration cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line (and `--help`, `--version`): clap prints it and exits.
    #[error("{}", .0.render())]
    Usage(#[from] clap::Error),
    /// The config file, or a value clap cannot check.
    #[error("{0}")]
    Invalid(String),
}

/// Turns a TOML config file into flags: each key is a long flag name
/// (`data-dir = "/srv/rookery"`, `backup-root = ["/b1", "/b2"]`,
/// `restore-defrag = true`). A flag that the command line or its
/// environment variable gave is left out, so that it replaces the file's
/// value (a list too) instead of adding to it.
fn config_file_args(text: &str, given: &clap::ArgMatches) -> Result<Vec<String>, String> {
    use clap::parser::ValueSource;
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let command = Config::command();
    let mut args = Vec::new();
    for (key, value) in &table {
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(key.as_str()) && key != "config") else {
            return Err(format!("'{key}' is not a flag of rookery-server (keys are long flag names: data-dir, bind, backup-root, ...)"));
        };
        let id = arg.get_id().as_str();
        if matches!(given.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let many = matches!(arg.get_action(), clap::ArgAction::Append);
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(n) => Ok(n.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            _ => Err(format!("'{key}' takes a string or a number")),
        };
        match value {
            toml::Value::Boolean(on) if switch => {
                if *on {
                    args.push(format!("--{key}"));
                }
            }
            _ if switch => return Err(format!("'{key}' is a switch: true or false")),
            toml::Value::Array(items) if many => {
                for item in items {
                    args.push(format!("--{key}={}", scalar(item)?));
                }
            }
            toml::Value::Array(_) => return Err(format!("'{key}' takes one value, not a list")),
            other => args.push(format!("--{key}={}", scalar(other)?)),
        }
    }
    Ok(args)
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

    fn from(args: &[&str]) -> Result<Config, String> {
        Config::from_arg_list(args.iter().map(ToString::to_string).collect()).map_err(|e| e.to_string())
    }

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rookery.toml");
        std::fs::write(&path, text).expect("writes");
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn a_toml_file_gives_flags_and_the_command_line_replaces_them() {
        let (_dir, path) = file(
            "# the studio's data\ndata-dir = \"/srv/data#1\"\nbind = \"0.0.0.0:9\"\ndurability = \"os\"\n\
             backup-root = [\"/b1\", \"/b2\"]\nrequest-timeout = 30\n",
        );
        let c = from(&["x", "--config", &path]).expect("parses");
        assert_eq!(c.data_dir, PathBuf::from("/srv/data#1"), "a # inside a value is kept");
        assert_eq!(c.bind.to_string(), "0.0.0.0:9");
        assert_eq!(c.durability, Durability::Os);
        assert_eq!(c.backup_roots, [PathBuf::from("/b1"), PathBuf::from("/b2")]);
        assert_eq!(c.request_timeout_secs, 30);
        let c = from(&["x", "--backup-root=/narrow", &format!("--config={path}"), "--data-dir=/here"]).expect("parses");
        assert_eq!(c.backup_roots, [PathBuf::from("/narrow")], "the command line's list replaces the file's");
        assert_eq!(c.data_dir, PathBuf::from("/here"));
        let (_dir, path) =
            file("restore-system-database = true\nrestore-defrag = false\nrestore-source = \"/b\"\nrestore-destination = \"/d\"\n");
        let c = from(&["x", "--config", &path]).expect("parses");
        assert!(c.restore.restore_system_database && !c.restore.restore_defrag, "switches are true or false");
    }

    #[test]
    fn a_bad_config_file_is_refused_naming_the_key() {
        for (text, says) in [
            ("data_dir = \"/a\"", "'data_dir' is not a flag"),
            ("config = \"/other.toml\"", "'config' is not a flag"),
            ("restore-defrag = \"yes\"", "'restore-defrag' is a switch"),
            ("bind = [\"a\", \"b\"]", "'bind' takes one value"),
            ("data-dir = ", "config file"),
        ] {
            let (_dir, path) = file(text);
            let err = from(&["x", "--config", &path]).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn restore_flags_go_with_their_mode() {
        let parse = |args: &[&str]| Config::try_parse_from(args).map_err(|e| e.to_string());
        let offline = ["x", "--restore-system-database", "--restore-source=/b", "--restore-destination=/d"];
        parse(&offline).expect("an offline restore");
        parse(&["x", "--restore-database=http://h", "--restore-source=/b", "--restore-database-name=N", "--restore-no-wait"])
            .expect("an online restore");
        for (extra, says) in [
            ("--restore-database=http://h", "cannot be used with"),
            ("--restore-database-name=N", "cannot be used with"),
            ("--restore-no-wait", "cannot be used with"),
            ("--restore-start-timeout=5", "cannot be used with"),
            ("--restore-source-database-name=N", "cannot be used with"),
            ("--restore-encryption-key=k", "cannot be used with"),
        ] {
            let err = parse(&[&offline[..], &[extra]].concat()).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
        }
        let err = parse(&["x", "--restore-system-database", "--restore-source=/b"]).expect_err("no destination");
        assert!(err.contains("--restore-destination"), "{err}");
        let err = parse(&["x", "--restore-source=/b"]).expect_err("no mode");
        assert!(err.contains("--restore-system-database") || err.contains("--restore-database"), "{err}");
        let err = parse(&["x", "--restore-defrag"]).expect_err("no mode");
        assert!(err.contains("required"), "{err}");
        parse(&["x", "--data-dir=/d"]).expect("a server, no restore flag");
    }

    #[test]
    fn later_flags_win() {
        let c = Config::parse_from(["x", "--data-dir=/a", "--data-dir=/b"]);
        assert_eq!(c.data_dir, PathBuf::from("/b"));
    }
}
