//! Retention: which sets of a database's chains a policy keeps, and deleting
//! the others so that nothing half-deleted ever lists as complete.
//!
//! The rules, in order:
//! 1. `KeepLast`, `KeepDaily`, `KeepWeekly`, `KeepMonthly` and `MinimumAge`
//!    each keep sets, counted in sets (restorable points), newest first, the
//!    way restic's `forget` does (one set per day, week or month: the newest).
//!    A policy without any rule keeps everything.
//! 2. Every set of the newest complete chain is kept.
//! 3. A set a kept set stands on (the earlier sets of its chain) is kept.
//!
//! Deleting: newest first (an incremental goes before its base, so no orphan
//! appears even for a moment), each set's folder renamed to `.deleting-<SetId>`
//! (a name no reader takes for a set) and fsynced before its files go; a
//! crash leaves at most such a folder, removed by the next retention.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::Timestamp;
use rookery_types::{RetentionOutcome, RetentionPolicy};

use super::error::TaskError;
use crate::backup::location::{Chain, Location};

/// The largest count a retention rule takes (sets kept).
pub const MAX_KEEP: u32 = 1_000_000;

/// Prefix of a set folder being deleted.
pub const DELETING_PREFIX: &str = ".deleting-";

/// A set as retention sees it.
#[derive(Debug, Clone)]
struct Point {
    set_id: String,
    created: Timestamp,
    chain: usize,
    position: usize,
}

/// Parses `MinimumAge` (`30s`, `15m`, `12h`, `7d`).
///
/// # Errors
/// `InvalidRequest` naming the field.
pub fn minimum_age(text: &str) -> Result<std::time::Duration, TaskError> {
    crate::config::parse_duration(text).map_err(|e| TaskError::Invalid(format!("Retention.MinimumAge: {e}")))
}

/// Checks a policy.
///
/// # Errors
/// `InvalidRequest` for a bad `MinimumAge` or a count of 0.
pub fn validate(policy: &RetentionPolicy) -> Result<(), TaskError> {
    for (name, value) in [
        ("KeepLast", policy.keep_last),
        ("KeepDaily", policy.keep_daily),
        ("KeepWeekly", policy.keep_weekly),
        ("KeepMonthly", policy.keep_monthly),
    ] {
        if value == Some(0) || value.is_some_and(|v| v > MAX_KEEP) {
            return Err(TaskError::Invalid(format!("Retention.{name} is 1 to {MAX_KEEP} (leave it out to not use it)")));
        }
    }
    if let Some(age) = &policy.minimum_age {
        minimum_age(age)?;
    }
    Ok(())
}

/// The sets of `chains` (one database's) that `policy` keeps and deletes, newest first.
///
/// # Errors
/// `InvalidRequest` for a bad policy.
/// Sets in `locked` (their object lock not yet expired) are kept, whatever the rules say.
pub fn plan(chains: &[Chain], policy: &RetentionPolicy, now: Timestamp, locked: &BTreeSet<String>) -> Result<RetentionOutcome, TaskError> {
    validate(policy)?;
    let mut points: Vec<Point> = Vec::new();
    for (c, chain) in chains.iter().enumerate() {
        for (p, set) in chain.sets.iter().enumerate() {
            let created = set.manifest.created.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
            points.push(Point { set_id: set.manifest.set_id.clone(), created, chain: c, position: p });
        }
    }
    points.sort_by(|a, b| b.created.cmp(&a.created).then(b.set_id.cmp(&a.set_id)));
    let rules = policy.keep_last.is_some()
        || policy.keep_daily.is_some()
        || policy.keep_weekly.is_some()
        || policy.keep_monthly.is_some()
        || policy.minimum_age.is_some();
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    if !rules {
        keep.extend(0..points.len());
    }
    // 1. The rules.
    if let Some(n) = policy.keep_last {
        keep.extend(0..points.len().min(n as usize));
    }
    let buckets = |n: Option<u32>, key: &dyn Fn(&Timestamp) -> String, keep: &mut BTreeSet<usize>| {
        let Some(n) = n else { return };
        let mut seen: Vec<String> = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let k = key(&p.created);
            if !seen.contains(&k) {
                if seen.len() == n as usize {
                    break;
                }
                seen.push(k);
                keep.insert(i);
            }
        }
    };
    let utc = |t: &Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC);
    buckets(policy.keep_daily, &|t| utc(t).date().to_string(), &mut keep);
    buckets(
        policy.keep_weekly,
        &|t| {
            let week = utc(t).date().iso_week_date();
            format!("{}-W{}", week.year(), week.week())
        },
        &mut keep,
    );
    buckets(policy.keep_monthly, &|t| format!("{}-{}", utc(t).year(), utc(t).month()), &mut keep);
    if let Some(age) = &policy.minimum_age {
        let age = minimum_age(age)?;
        let since = now.checked_sub(jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(Timestamp::MIN);
        keep.extend(points.iter().enumerate().filter(|(_, p)| p.created > since).map(|(i, _)| i));
    }
    // 2. Locked sets: the storage would refuse to delete them anyway.
    keep.extend(points.iter().enumerate().filter(|(_, p)| locked.contains(&p.set_id)).map(|(i, _)| i));
    // 3. The newest complete chain.
    let newest_chain = chains.iter().enumerate().max_by(|a, b| a.1.newest_created().cmp(b.1.newest_created())).map(|(i, _)| i);
    if let Some(c) = newest_chain {
        keep.extend(points.iter().enumerate().filter(|(_, p)| p.chain == c).map(|(i, _)| i));
    }
    // 4. What kept sets stand on.
    let standing: Vec<(usize, usize)> = keep.iter().map(|&i| (points[i].chain, points[i].position)).collect();
    for (chain, position) in standing {
        keep.extend(points.iter().enumerate().filter(|(_, p)| p.chain == chain && p.position < position).map(|(i, _)| i));
    }
    let mut outcome = RetentionOutcome::default();
    for (i, p) in points.iter().enumerate() {
        if keep.contains(&i) {
            if locked.contains(&p.set_id) {
                outcome.locked.push(p.set_id.clone());
            }
            outcome.kept.push(p.set_id.clone());
        } else {
            outcome.deleted.push(p.set_id.clone());
        }
    }
    Ok(outcome)
}

/// Plans `policy` over `chains` (one database's, in `location`) and, unless
/// `dry_run`, deletes what the plan says.
///
/// # Errors
/// As [`plan`] and [`delete_sets`].
///
/// After sets are deleted, the shared tables they named that no set names
/// any more (and untouched for `grace`) go too (see `backup::shared_tables`).
pub fn apply(
    location: &Location,
    chains: &[Chain],
    policy: &RetentionPolicy,
    dry_run: bool,
    grace: std::time::Duration,
) -> Result<RetentionOutcome, TaskError> {
    let now = Timestamp::now();
    let ids: Vec<String> = chains.iter().flat_map(|c| c.sets.iter().map(|s| s.manifest.set_id.clone())).collect();
    let locked: BTreeSet<String> = location.set_locks(&ids)?.into_iter().filter(|(_, lock)| lock.until > now).map(|(id, _)| id).collect();
    let outcome = plan(chains, policy, now, &locked)?;
    if !dry_run && !outcome.deleted.is_empty() {
        // The shared tables the deleted sets named: the only candidates for removal.
        let sets = chains.iter().flat_map(|c| &c.sets).filter(|s| outcome.deleted.contains(&s.manifest.set_id));
        let freed: BTreeSet<String> = sets.flat_map(|s| s.manifest.files.iter().filter(|f| f.shared).map(|f| f.sha256.clone())).collect();
        delete_sets(location, &outcome.deleted)?;
        let removed = crate::backup::shared_tables::collect(location, &freed, grace)?;
        if !removed.is_empty() {
            tracing::info!(location = %location, tables = removed.len(), "removed shared tables no set names any more");
        }
    }
    Ok(outcome)
}

/// Deletes `set_ids` (newest first, as [`plan`] lists them) from `location`.
///
/// # Errors
/// I/O errors; what was deleted before the error stays deleted.
pub fn delete_sets(location: &Location, set_ids: &[String]) -> Result<(), TaskError> {
    let Some(location) = location.folder() else {
        // Object storage: each set's manifest goes first, so it stops being a set at once.
        for id in set_ids.iter().filter(|id| crate::backup::format::is_valid_set_id(id)) {
            location.delete_set_objects(id)?;
            crate::failpoint::hit("retention.after_hide");
        }
        return Ok(());
    };
    let io = |what: String| move |e: std::io::Error| TaskError::Io(format!("{what}: {e}"));
    remove_leftovers(location);
    for id in set_ids {
        if !crate::backup::format::is_valid_set_id(id) {
            continue;
        }
        crate::failpoint::io_error("retention.delete").map_err(io(format!("cannot delete {id}")))?;
        let from = location.join(id);
        let hidden = location.join(format!("{DELETING_PREFIX}{id}"));
        std::fs::rename(&from, &hidden).map_err(io(format!("cannot hide {id} before deleting it")))?;
        crate::durable::sync_dir(location).map_err(io(format!("cannot sync {}", location.display())))?;
        crate::failpoint::hit("retention.after_hide");
        std::fs::remove_dir_all(&hidden).map_err(io(format!("cannot delete {id}")))?;
    }
    Ok(())
}

/// Removes `.deleting-*` folders a crash left behind.
fn remove_leftovers(location: &Path) {
    let Ok(entries) = std::fs::read_dir(location) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.strip_prefix(DELETING_PREFIX).is_some_and(crate::backup::format::is_valid_set_id) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, dir = %entry.path().display(), "cannot remove a half-deleted set");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::format::{Manifest, SetKind};
    use crate::backup::location::StoredSet;

    fn set(id: &str, created: &str, kind: SetKind, base: Option<&str>) -> StoredSet {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "FormatVersion": 2, "ServerVersion": "t", "SetId": id, "DatabaseName": "D", "DatabaseId": "x",
            "Kind": kind, "BaseSetId": base, "FromEtag": 0, "ToEtag": 1, "DocumentCount": 0, "DeletionCount": 0,
            "Created": created, "Compression": "zstd", "Encryption": null, "Files": []
        }))
        .expect("a manifest");
        StoredSet { location: Location::Folder(std::path::PathBuf::from("/b")), manifest, size_bytes: 0, manifest_sha256: None }
    }

    /// Two chains: a full each day on the 1st and 2nd, incrementals every 6 hours.
    fn chains() -> Vec<Chain> {
        let chain = |day: &str| {
            let full = format!("202611{day}T000000Z-full");
            let mut sets = vec![set(&full, &format!("2026-11-{day}T00:00:00Z"), SetKind::Full, None)];
            let mut base = full;
            for hour in ["06", "12", "18"] {
                let id = format!("202611{day}T{hour}0000Z-incremental");
                sets.push(set(&id, &format!("2026-11-{day}T{hour}:00:00Z"), SetKind::Incremental, Some(&base)));
                base = id;
            }
            Chain { database_id: "x".into(), database_name: "D".into(), sets }
        };
        vec![chain("01"), chain("02")]
    }

    fn policy(last: Option<u32>, daily: Option<u32>, age: Option<&str>) -> RetentionPolicy {
        RetentionPolicy { keep_last: last, keep_daily: daily, minimum_age: age.map(str::to_string), ..Default::default() }
    }

    #[test]
    fn each_rule_keeps_what_it_says_and_never_breaks_a_chain() {
        let now: Timestamp = "2026-11-03T00:00:00Z".parse().expect("now");
        let chains = chains();
        let newest_chain =
            vec!["20261102T180000Z-incremental", "20261102T120000Z-incremental", "20261102T060000Z-incremental", "20261102T000000Z-full"];
        let oldest_chain =
            ["20261101T180000Z-incremental", "20261101T120000Z-incremental", "20261101T060000Z-incremental", "20261101T000000Z-full"];
        let everything: Vec<&str> = newest_chain.iter().chain(oldest_chain.iter()).copied().collect();
        // (policy, sets kept, newest first)
        let cases: Vec<(RetentionPolicy, Vec<&str>)> = vec![
            // No rule: everything.
            (RetentionPolicy::default(), everything.clone()),
            // KeepLast 1: the newest set, and the newest chain is whole anyway.
            (policy(Some(1), None, None), newest_chain.clone()),
            // KeepDaily 2: the newest set of each day; the 1st's 18:00 needs its whole chain.
            (policy(None, Some(2), None), everything.clone()),
            // MinimumAge 2d: everything since Nov 1st 00:00 (exclusive): the 1st's 06:00 pulls its base.
            (policy(None, None, Some("2d")), everything),
            // MinimumAge 1d: only the newest chain.
            (policy(None, None, Some("1d")), newest_chain),
        ];
        for (p, kept) in cases {
            let outcome = plan(&chains, &p, now, &BTreeSet::new()).expect("plans");
            assert_eq!(outcome.kept, kept, "{p:?}");
            assert_eq!(outcome.kept.len() + outcome.deleted.len(), 8);
            // Every kept incremental's base is kept.
            let all: Vec<_> = chains.iter().flat_map(|c| c.sets.iter()).collect();
            for id in &outcome.kept {
                let s = all.iter().find(|s| &s.manifest.set_id == id).expect("a set");
                if let Some(base) = &s.manifest.base_set_id {
                    assert!(outcome.kept.contains(base), "{id} kept without its base {base}");
                }
            }
        }
    }

    #[test]
    fn a_locked_set_is_kept_with_what_it_stands_on_and_listed_as_locked() {
        let now: Timestamp = "2026-11-03T00:00:00Z".parse().expect("now");
        let locked: BTreeSet<String> = ["20261101T120000Z-incremental".to_string()].into();
        let outcome = plan(&chains(), &policy(Some(1), None, None), now, &locked).expect("plans");
        assert_eq!(outcome.locked, vec!["20261101T120000Z-incremental".to_string()]);
        for id in ["20261101T120000Z-incremental", "20261101T060000Z-incremental", "20261101T000000Z-full"] {
            assert!(outcome.kept.iter().any(|k| k == id), "{id} is kept: {outcome:?}");
        }
        assert_eq!(outcome.deleted, vec!["20261101T180000Z-incremental".to_string()]);
    }

    #[test]
    fn weekly_and_monthly_keep_the_newest_set_of_each_iso_week_and_month() {
        // One full set a chain, on days whose ISO weeks and months are known.
        let days = [
            "2026-11-30", // Monday, week 49
            "2026-11-29", // Sunday, week 48
            "2026-11-24", // week 48
            "2026-11-18", // week 47
            "2026-11-10", // week 46
            "2026-10-31", // week 44, October
            "2026-10-15",
            "2026-09-30", // September
            "2026-09-01",
            "2026-08-20", // August
        ];
        let chains: Vec<Chain> = days
            .iter()
            .map(|day| {
                let id = format!("{}T120000Z-full", day.replace('-', ""));
                Chain {
                    database_id: "x".into(),
                    database_name: "D".into(),
                    sets: vec![set(&id, &format!("{day}T12:00:00Z"), SetKind::Full, None)],
                }
            })
            .collect();
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().expect("now");
        let kept = |weekly: Option<u32>, monthly: Option<u32>| {
            let p = RetentionPolicy { keep_weekly: weekly, keep_monthly: monthly, ..Default::default() };
            let mut kept: Vec<String> =
                plan(&chains, &p, now, &BTreeSet::new()).expect("plans").kept.iter().map(|id| id[..8].to_string()).collect();
            kept.sort();
            kept
        };
        assert_eq!(kept(Some(3), None), ["20261118", "20261129", "20261130"], "the newest of weeks 49, 48 and 47");
        assert_eq!(kept(None, Some(3)), ["20260930", "20261031", "20261130"], "the newest of November, October, September");
        assert_eq!(kept(Some(2), Some(2)), ["20261031", "20261129", "20261130"], "the union of both rules");
        assert_eq!(kept(Some(100), None).len(), 9, "one a week: 11-24 shares week 48 with the newer 11-29");
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(validate(&policy(Some(0), None, None)).is_err());
        assert!(validate(&policy(None, None, Some("7 days"))).is_err());
        assert!(validate(&policy(None, None, Some("d"))).is_err());
        assert_eq!(minimum_age("7d").expect("parses").as_secs(), 7 * 86_400);
    }
}
