//! Which role each route needs, and the limit on failed sign-ins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rookery_types::Role;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, the studio's pages and files, sign-in.
    Public,
    /// An identity with at least this role.
    Role(Role),
    /// `GET /metrics`: an `Admin`, or a `Monitor` (which may read nothing else).
    Metrics,
}

impl Access {
    /// Whether `role` may make a request that needs this access.
    #[must_use]
    pub fn allows(self, role: Role) -> bool {
        match self {
            Self::Public => true,
            // `Monitor` is below `ReadOnly`: it passes no role check.
            Self::Role(needed) => role >= needed,
            Self::Metrics => matches!(role, Role::Admin | Role::Monitor),
        }
    }
}

/// The access rule of a request (its HTTP method, `GET`, and path). Every API route falls in one of the
/// branches; anything unknown needs `ReadOnly` (and then gets its 404).
#[must_use]
pub fn required_access(method: &str, path: &str) -> Access {
    let public = path == "/"
        || path == "/health"
        || path == "/openapi.json"
        || path == "/favicon.png"
        || path == "/studio"
        || path.starts_with("/studio/")
        || path.starts_with("/pkg/")
        || path.starts_with("/auth/");
    if public {
        return Access::Public;
    }
    if path == "/metrics" && matches!(method, "GET" | "HEAD") {
        return Access::Metrics;
    }
    // `/databases/{db}/rest` follows the same rules as `/rest` at the root.
    let rest = match path.strip_prefix("/databases/") {
        Some(tail) => match tail.find('/') {
            Some(i) => &tail[i..],
            None => return Access::Role(Role::ReadOnly),
        },
        None => path,
    };
    let writes = !matches!(method, "GET" | "HEAD" | "OPTIONS");
    if rest.starts_with("/admin/") || rest == "/admin" || rest.starts_with("/smuggler/import") {
        Access::Role(Role::Admin)
    } else if (rest == "/docs" || rest.starts_with("/docs/")) && writes {
        Access::Role(Role::ReadWrite)
    } else if writes {
        // No other route writes; refuse anything unknown that tries.
        Access::Role(Role::Admin)
    } else {
        Access::Role(Role::ReadOnly)
    }
}

/// Failed authentications per client address: after [`FailureLimiter::MAX`]
/// failures within [`FailureLimiter::WINDOW`], that address is refused (429)
/// until the window has passed.
#[derive(Debug)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    max: u32,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new(Self::MAX)
    }
}

impl FailureLimiter {
    /// The default number of failures allowed per window.
    pub const MAX: u32 = 20;
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// A limiter allowing `max` failures per window and address.
    #[must_use]
    pub fn new(max: u32) -> Self {
        Self { failures: Mutex::default(), max }
    }

    /// Whether `ip` is refused for now.
    #[must_use]
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&ip).is_some_and(|(n, since)| *n >= self.max && since.elapsed() < Self::WINDOW)
    }

    /// Counts an attempt of `ip` before an expensive check (a password hash),
    /// so that attempts made at once are counted as they start; false when
    /// `ip` is blocked. A success gives it back with [`FailureLimiter::forgive`].
    pub fn attempt(&self, ip: IpAddr) -> bool {
        if self.is_blocked(ip) {
            return false;
        }
        self.fail(ip);
        true
    }

    /// Gives back an attempt that succeeded.
    pub fn forgive(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&ip) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// Records a failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let r = |m: &str, p: &str| required_access(m, p);
        assert_eq!(r("GET", "/health"), Access::Public);
        assert_eq!(r("GET", "/studio/backup"), Access::Public);
        assert_eq!(r("GET", "/docs/a"), Access::Role(Role::ReadOnly));
        assert_eq!(r("PUT", "/docs/a/b"), Access::Role(Role::ReadWrite));
        assert_eq!(r("DELETE", "/databases/X/docs/a"), Access::Role(Role::ReadWrite));
        assert_eq!(r("POST", "/databases/X/admin/backup"), Access::Role(Role::Admin));
        assert_eq!(r("POST", "/admin/restore"), Access::Role(Role::Admin));
        assert_eq!(r("GET", "/admin/backup/sets"), Access::Role(Role::Admin));
        assert_eq!(r("POST", "/databases/X/smuggler/import"), Access::Role(Role::Admin));
        assert_eq!(r("GET", "/databases/X/smuggler/export"), Access::Role(Role::ReadOnly));
        assert_eq!(r("GET", "/databases"), Access::Role(Role::ReadOnly));
        assert_eq!(r("POST", "/databases/X/unknown"), Access::Role(Role::Admin));
        // A database named like a public prefix gains nothing.
        assert_eq!(r("PUT", "/databases/studio/docs/a"), Access::Role(Role::ReadWrite));
        assert_eq!(r("GET", "/metrics"), Access::Metrics);
        assert_eq!(r("POST", "/metrics"), Access::Role(Role::Admin));
        assert_eq!(r("GET", "/databases/X/metrics"), Access::Role(Role::ReadOnly));
    }

    #[test]
    fn a_monitor_reads_the_metrics_and_nothing_else() {
        for role in [Role::Monitor, Role::Admin] {
            assert!(Access::Metrics.allows(role), "{role:?}");
        }
        for role in [Role::ReadOnly, Role::ReadWrite] {
            assert!(!Access::Metrics.allows(role), "{role:?} may not read the metrics");
        }
        for method in ["GET", "PUT", "POST", "DELETE"] {
            for path in ["/docs/a", "/databases", "/admin/backup/sets", "/databases/X/docs/a", "/smuggler/export", "/admin/protection"] {
                assert!(!required_access(method, path).allows(Role::Monitor), "{method} {path}");
            }
        }
        assert!(required_access("GET", "/health").allows(Role::Monitor));
    }

    #[test]
    fn limiter_blocks_after_many_failures() {
        let l = FailureLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FailureLimiter::MAX {
            assert!(!l.is_blocked(ip));
            l.fail(ip);
        }
        assert!(l.is_blocked(ip));
        assert!(!l.is_blocked([10, 0, 0, 2].into()), "per address");
    }
}
