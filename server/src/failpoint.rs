//! Crash points for tests: with the `failpoints` feature, a process whose
//! `ROOKERY_FAILPOINTS` names a point (comma-separated) exits at once, with
//! code 86, when it reaches that point: a crash, not a panic that could be caught.
//! Without the feature, [`hit`] compiles to nothing.

/// The exit code of a process stopped at a failpoint.
pub const FAILPOINT_EXIT_CODE: i32 = 86;

/// Stops the process here if the failpoint `name` is armed.
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        use std::sync::OnceLock;
        static ARMED: OnceLock<Vec<String>> = OnceLock::new();
        let armed = ARMED.get_or_init(|| {
            std::env::var("ROOKERY_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        });
        if armed.iter().any(|a| a == name) {
            eprintln!("failpoint {name}: exiting");
            std::process::exit(FAILPOINT_EXIT_CODE);
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
