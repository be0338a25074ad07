//! Crash points for tests. With the `failpoints` feature, `ROOKERY_FAILPOINTS`
//! arms points by name (comma-separated): `name` makes the process exit at
//! once with code 86 when it reaches that point (a crash, not a panic that
//! could be caught); `name=sleep:MS` makes it pause there, so that a test can
//! act in the middle of a job (start a second one, `kill -9` the server).
//! Without the feature, [`hit`] compiles to nothing.

/// The exit code of a process stopped at a failpoint.
pub const FAILPOINT_EXIT_CODE: i32 = 86;

/// Acts at the failpoint `name` if it is armed.
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        use std::sync::OnceLock;
        static ARMED: OnceLock<Vec<(String, Option<u64>)>> = OnceLock::new();
        let armed = ARMED.get_or_init(|| {
            std::env::var("ROOKERY_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|spec| match spec.split_once("=sleep:") {
                    Some((n, ms)) => (n.to_string(), ms.parse().ok()),
                    None => (spec.to_string(), None),
                })
                .collect()
        });
        for (point, sleep) in armed {
            if point == name {
                match sleep {
                    Some(ms) => std::thread::sleep(std::time::Duration::from_millis(*ms)),
                    None => {
                        eprintln!("failpoint {name}: exiting");
                        std::process::exit(FAILPOINT_EXIT_CODE);
                    }
                }
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
