//! Crash points for tests. With the `failpoints` feature, `ROOKERY_FAILPOINTS`
//! arms points by name (comma-separated): `name` makes the process exit at
//! once with code 86 when it reaches that point (a crash, not a panic that
//! could be caught); `name=sleep:MS` makes it pause there, so that a test can
//! act in the middle of a job (start a second one, `kill -9` the server);
//! `name=enospc` makes [`io_error`] at that point fail with "no space left on
//! device", as a full disk would; `name=panic` panics there (a bug in a job
//! thread). Without the feature, these compile to nothing.

/// The exit code of a process stopped at a failpoint.
pub const FAILPOINT_EXIT_CODE: i32 = 86;

#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Exit,
    Sleep(u64),
    NoSpace,
    Panic,
    Value(u64),
}

#[cfg(feature = "failpoints")]
fn armed(name: &str) -> Option<Action> {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<(String, Action)>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("ROOKERY_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|spec| match spec.split_once('=') {
                Some((n, "enospc")) => (n.to_string(), Action::NoSpace),
                Some((n, "panic")) => (n.to_string(), Action::Panic),
                Some((n, v)) if v.starts_with("value:") => (n.to_string(), Action::Value(v["value:".len()..].parse().unwrap_or(0))),
                Some((n, action)) => (n.to_string(), Action::Sleep(action.trim_start_matches("sleep:").parse().unwrap_or(1000))),
                None => (spec.to_string(), Action::Exit),
            })
            .collect()
    });
    armed.iter().find(|(point, _)| point == name).map(|(_, action)| *action)
}

/// Acts at the failpoint `name` if it is armed (exit or pause).
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    match armed(name) {
        Some(Action::Exit) => {
            eprintln!("failpoint {name}: exiting");
            std::process::exit(FAILPOINT_EXIT_CODE);
        }
        Some(Action::Sleep(ms)) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        Some(Action::Panic) => panic!("failpoint {name}: panic"),
        Some(Action::NoSpace | Action::Value(_)) | None => {}
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// An injected I/O failure at `name` (`name=enospc`): `Err(ENOSPC)`.
///
/// # Errors
/// "No space left on device" when armed so.
#[inline]
pub fn io_error(name: &str) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    if armed(name) == Some(Action::NoSpace) {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    Ok(())
}

/// A number a test sets at `name` (`name=value:N`), else `default`.
#[inline]
#[must_use]
pub fn value(name: &str, default: u64) -> u64 {
    #[cfg(feature = "failpoints")]
    if let Some(Action::Value(n)) = armed(name) {
        return n;
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    default
}
