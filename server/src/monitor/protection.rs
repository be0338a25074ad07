//! "Is every database protected right now?": for each database and each of
//! its tasks, the newest restorable point, its age against the task's
//! schedule and objective, the last failure and the last drill. The studio's
//! front page, the metrics and the `BackupStale` notification all read it.
//!
//! A task's recovery point is the start of its newest successful backup in
//! its location (the point that set restores to); when no client changed
//! the database since that set, nothing is at risk and its age is zero. It
//! is late when older than its schedule's interval (with a grace of a tenth,
//! at least a minute), stale when older than its objective
//! (`RecoveryPointObjective`, else twice the interval and at least five
//! minutes), failed while its last run failed.

use std::time::Duration;

use jiff::Timestamp;
use rookery_types::{DatabaseProtection, LastDrill, ProtectionOverview, ProtectionState, TaskProtection};

use super::records::{self, KindRecord, TaskHealth};
use crate::engine::Rookery;
use crate::storage::DatabaseHandle;
use crate::tasks::record::{task_records, StoredTask};
use crate::tasks::schedule::{zone, Schedule};

/// The least objective a task gets by default.
const MIN_OBJECTIVE: Duration = Duration::from_secs(300);

/// One task as the protection overview sees it (times in Unix milliseconds).
#[derive(Debug, Clone)]
pub struct TaskView {
    pub task: String,
    pub location: String,
    pub disabled: bool,
    /// The newest restorable point, and whether nothing changed since.
    pub point_ms: Option<i64>,
    pub up_to_date: bool,
    pub last_set_id: Option<String>,
    pub last_success_ms: Option<i64>,
    pub interval: Option<Duration>,
    pub objective: Duration,
    pub health: TaskHealth,
    pub state: ProtectionState,
    pub next_backup: Option<Timestamp>,
    /// Continuous tasks: (lag now, MaxLagSeconds, last shipped etag).
    pub continuous: Option<(f64, u32, Option<u64>)>,
    /// Tasks with drills: the last drill and how often they run.
    pub drill: Option<(Option<LastDrill>, Option<Duration>)>,
    /// The records of this task's backups, one per kind.
    pub records: Vec<KindRecord>,
    /// The task's other destinations (see `Destinations`).
    pub copies: Vec<CopyView>,
}

/// One other destination of a task: the point its newest set restores to,
/// the sets it lacks, and whether the last copy into it failed.
#[derive(Debug, Clone)]
pub struct CopyView {
    pub location: String,
    pub last_set_id: Option<String>,
    pub point_ms: Option<i64>,
    pub missing_sets: u64,
    pub failing: bool,
}

/// The other destinations of a task, from its record.
fn copies(stored: &StoredTask) -> Vec<CopyView> {
    let state = &stored.state.destinations;
    stored
        .task
        .destinations
        .iter()
        .skip(1)
        .map(|d| {
            let kept = state.get(&d.location);
            let created = kept.and_then(|k| k.last_created.as_deref()).and_then(|c| c.parse::<Timestamp>().ok());
            CopyView {
                location: d.location.clone(),
                last_set_id: kept.and_then(|k| k.last_set_id.clone()),
                point_ms: created.map(Timestamp::as_millisecond),
                missing_sets: kept.map_or(0, |k| k.missing_sets),
                failing: kept.is_some_and(|k| k.last_error.is_some()),
            }
        })
        .collect()
}

impl TaskView {
    /// Seconds since the newest restorable point (zero when up to date).
    #[must_use]
    pub fn age_seconds(&self, now_ms: i64) -> Option<f64> {
        if self.up_to_date {
            return Some(0.0);
        }
        self.point_ms.map(|p| (now_ms.saturating_sub(p)).max(0) as f64 / 1000.0)
    }
}

/// The shortest interval of the task's backup schedules (continuous: its `MaxLagSeconds`).
fn interval(stored: &StoredTask, now: Timestamp) -> Option<Duration> {
    let task = &stored.task;
    if let Some(c) = &task.continuous {
        return Some(Duration::from_secs(u64::from(c.max_lag_seconds)));
    }
    let zone = zone(task.time_zone.as_deref()).ok()?;
    [task.full_backup_frequency.as_deref(), task.incremental_backup_frequency.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|cron| Schedule::parse("", cron).ok()?.interval(&zone, now))
        .min()
}

fn drill_interval(stored: &StoredTask, now: Timestamp) -> Option<Duration> {
    let drill = stored.task.drill.as_ref()?;
    let zone = zone(stored.task.time_zone.as_deref()).ok()?;
    Schedule::parse("", &drill.frequency).ok()?.interval(&zone, now)
}

/// The task's objective: its `RecoveryPointObjective`, else twice its interval (at least five minutes).
#[must_use]
pub fn objective(stored: &StoredTask, interval: Option<Duration>) -> Duration {
    if let Some(rpo) = stored.task.recovery_point_objective.as_deref().and_then(|t| crate::config::parse_duration(t).ok()) {
        return rpo;
    }
    interval.map_or(Duration::from_secs(24 * 3600), |i| (i * 2).max(MIN_OBJECTIVE))
}

fn state_of(view: &TaskView, now_ms: i64) -> ProtectionState {
    if view.disabled {
        return ProtectionState::Disabled;
    }
    if view.health.failing {
        return ProtectionState::Failed;
    }
    let Some(age) = view.age_seconds(now_ms) else { return ProtectionState::Late };
    if age > view.objective.as_secs_f64() {
        return ProtectionState::Stale;
    }
    let late = view.interval.map(|i| i.as_secs_f64() + (i.as_secs_f64() / 10.0).max(60.0));
    if late.is_some_and(|l| age > l) {
        ProtectionState::Late
    } else {
        ProtectionState::Ok
    }
}

/// The worse of two states (for a database: its worst task).
fn worse(a: ProtectionState, b: ProtectionState) -> ProtectionState {
    let rank = |s: ProtectionState| match s {
        ProtectionState::Disabled => 0,
        ProtectionState::Ok => 1,
        ProtectionState::Late => 2,
        ProtectionState::Unprotected => 3,
        ProtectionState::Stale => 4,
        ProtectionState::Failed => 5,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn format_ms(ms: i64) -> String {
    crate::jobs::format_rfc3339(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

impl Rookery {
    /// The tasks of `db` as the overview sees them, and the records of its
    /// backups by hand (task `""`), if any.
    #[must_use]
    pub fn task_views(&self, db: &DatabaseHandle) -> (Vec<TaskView>, Vec<KindRecord>) {
        let system = self.catalog.system();
        let now = Timestamp::now();
        let now_ms = now.as_millisecond();
        let all = records::records_of(&system, db);
        let (by_hand, by_tasks): (Vec<KindRecord>, Vec<KindRecord>) = all.into_iter().partition(|r| r.task.is_empty());
        let mut views = Vec::new();
        for stored in task_records(db).into_iter().filter_map(Result::ok) {
            let mine: Vec<KindRecord> = by_tasks.iter().filter(|r| r.task.eq_ignore_ascii_case(&stored.name)).cloned().collect();
            let location = stored.task.backup_location.clone();
            let newest = mine
                .iter()
                .filter(|r| r.location == location && r.kind.is_some_and(records::RunKind::adds_a_point))
                .filter(|r| r.last_point_ms.is_some())
                .max_by_key(|r| r.last_point_ms);
            let interval = interval(&stored, now);
            let mut view = TaskView {
                task: stored.name.clone(),
                location,
                disabled: stored.task.disabled,
                point_ms: newest.and_then(|r| r.last_point_ms),
                up_to_date: newest.is_some_and(|r| !db.store().has_client_changes_after(r.last_to_etag)),
                last_set_id: newest.and_then(|r| r.last_set_id.clone()),
                last_success_ms: mine.iter().filter_map(|r| r.last_success_ms).max(),
                interval,
                objective: objective(&stored, interval),
                health: records::health(&system, db, &stored.name),
                state: ProtectionState::Ok,
                next_backup: crate::tasks::Schedules::of(&stored.task)
                    .ok()
                    .filter(|_| !stored.task.disabled)
                    .and_then(|s| s.next(now))
                    .map(|(t, _)| t),
                continuous: stored
                    .task
                    .continuous
                    .as_ref()
                    .map(|c| (self.tasks.lag_seconds(&db.name, &stored.name), c.max_lag_seconds, stored.state.last_shipped_etag)),
                drill: stored.task.drill.as_ref().map(|_| (stored.state.last_drill.clone(), drill_interval(&stored, now))),
                records: mine,
                copies: copies(&stored),
            };
            view.state = state_of(&view, now_ms);
            views.push(view);
        }
        (views, by_hand)
    }

    /// The protection of every database, the system database first.
    #[must_use]
    pub fn protection(&self) -> ProtectionOverview {
        let now_ms = Timestamp::now().as_millisecond();
        let databases =
            std::iter::once(self.catalog.system()).chain(self.catalog.list()).map(|db| self.database_protection(&db, now_ms)).collect();
        ProtectionOverview { generated: format_ms(now_ms), databases }
    }

    fn database_protection(&self, db: &DatabaseHandle, now_ms: i64) -> DatabaseProtection {
        let (views, by_hand) = self.task_views(db);
        let tasks: Vec<TaskProtection> = views.iter().map(|v| task_protection(v, now_ms)).collect();
        let enabled = views.iter().filter(|v| !v.disabled);
        let state = enabled.clone().fold(None, |acc: Option<ProtectionState>, v| Some(acc.map_or(v.state, |a| worse(a, v.state))));
        let newest = views
            .iter()
            .filter(|v| !v.disabled)
            .filter_map(|v| v.point_ms.map(|p| (p, v.up_to_date)))
            .chain(
                by_hand
                    .iter()
                    .filter(|r| r.kind.is_some_and(records::RunKind::adds_a_point))
                    .filter_map(|r| r.last_point_ms.map(|p| (p, false))),
            )
            .max_by_key(|(p, _)| *p);
        let up_to_date = enabled.clone().any(|v| v.up_to_date);
        DatabaseProtection {
            database: db.name.clone(),
            state: state.unwrap_or(ProtectionState::Unprotected),
            recovery_point: newest.map(|(p, _)| format_ms(p)),
            recovery_point_age_seconds: if up_to_date { Some(0.0) } else { newest.map(|(p, _)| (now_ms - p).max(0) as f64 / 1000.0) },
            up_to_date,
            document_count: db.store().document_count(),
            data_size_bytes: db.store().data_bytes(),
            tasks,
        }
    }

    /// Marks the tasks whose recovery point is older than their objective
    /// stale (a `BackupStale` notification when that begins), and the
    /// others not. The scheduler calls it every few seconds.
    pub fn check_staleness(&self) {
        let now_ms = Timestamp::now().as_millisecond();
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            for view in self.task_views(&db).0 {
                let stale = view.state == ProtectionState::Stale;
                if stale == view.health.stale {
                    continue;
                }
                let age = view.age_seconds(now_ms).unwrap_or(0.0);
                let message = format!(
                    "Task '{}' of '{}': the newest restorable point is {} old, beyond its objective of {}.",
                    view.task,
                    db.name,
                    rookery_types::format_seconds(age),
                    rookery_types::format_seconds(view.objective.as_secs_f64())
                );
                self.monitor.staleness(&db, &view.task, stale, &message);
            }
        }
    }
}

fn task_protection(v: &TaskView, now_ms: i64) -> TaskProtection {
    let last_drill = v.drill.as_ref().and_then(|(d, _)| d.clone());
    TaskProtection {
        name: v.task.clone(),
        location: v.location.clone(),
        state: v.state,
        disabled: v.disabled,
        recovery_point: v.point_ms.map(format_ms),
        recovery_point_age_seconds: v.age_seconds(now_ms),
        up_to_date: v.up_to_date,
        last_set_id: v.last_set_id.clone(),
        last_success: v.last_success_ms.map(format_ms),
        interval_seconds: v.interval.map(|i| i.as_secs_f64()),
        objective_seconds: v.objective.as_secs_f64(),
        failures: v.health.failures,
        last_error_code: v.health.last_error_code.clone(),
        last_error: v.health.last_error.clone(),
        next_backup: v.next_backup.map(|t| format_ms(t.as_millisecond())),
        continuous_lag_seconds: v.continuous.map(|(lag, _, _)| lag),
        proven_restorable_at: last_drill.as_ref().filter(|d| d.success).map(|d| d.at.clone()),
        last_drill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::records::{BackupOutcome, RunKind, SetWritten};
    use crate::notify::notifier::{Delivery, OUTBOX_PREFIX};
    use rookery_types::{BackupTask, NotificationEvent, PutNotificationRequest};

    fn view(age_s: Option<i64>, interval_s: u64, objective_s: u64, now_ms: i64) -> TaskView {
        TaskView {
            task: "t".into(),
            location: "/b".into(),
            disabled: false,
            point_ms: age_s.map(|a| now_ms - a * 1000),
            up_to_date: false,
            last_set_id: None,
            last_success_ms: None,
            interval: Some(Duration::from_secs(interval_s)),
            objective: Duration::from_secs(objective_s),
            health: TaskHealth::default(),
            state: ProtectionState::Ok,
            next_backup: None,
            continuous: None,
            drill: None,
            records: Vec::new(),
            copies: Vec::new(),
        }
    }

    #[test]
    fn a_task_is_ok_late_stale_failed_or_disabled() {
        let now = 10_000_000_000;
        assert_eq!(state_of(&view(Some(3000), 3600, 7200, now), now), ProtectionState::Ok);
        assert_eq!(state_of(&view(Some(3700), 3600, 7200, now), now), ProtectionState::Ok, "within the grace of a tenth");
        assert_eq!(state_of(&view(Some(4000), 3600, 7200, now), now), ProtectionState::Late);
        assert_eq!(state_of(&view(Some(7300), 3600, 7200, now), now), ProtectionState::Stale);
        assert_eq!(state_of(&view(None, 3600, 7200, now), now), ProtectionState::Late, "no backup yet");
        let mut up_to_date = view(Some(99_999), 3600, 7200, now);
        up_to_date.up_to_date = true;
        assert_eq!(state_of(&up_to_date, now), ProtectionState::Ok, "nothing changed since the newest set");
        let mut failing = view(Some(10), 3600, 7200, now);
        failing.health.failing = true;
        assert_eq!(state_of(&failing, now), ProtectionState::Failed);
        let mut off = failing.clone();
        off.disabled = true;
        assert_eq!(state_of(&off, now), ProtectionState::Disabled);
        assert_eq!(worse(ProtectionState::Late, ProtectionState::Failed), ProtectionState::Failed);
        assert_eq!(worse(ProtectionState::Stale, ProtectionState::Ok), ProtectionState::Stale);
    }

    fn outbox(rookery: &Rookery) -> Vec<NotificationEvent> {
        rookery.catalog.system().store().internal_json_with_prefix::<Delivery>(OUTBOX_PREFIX).into_iter().map(|d| d.event).collect()
    }

    #[test]
    fn a_stale_task_is_announced_once_and_its_recovery_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(crate::config::Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("Shop").expect("creates");
        db.store().put("orders/1", b"{}", None).expect("puts");
        let location = dir.path().join("b").display().to_string();
        let task = BackupTask {
            backup_location: location.clone(),
            full_backup_frequency: Some("0 * * * *".into()),
            recovery_point_objective: Some("2h".into()),
            ..Default::default()
        };
        rookery.put_task("Shop", "hourly", task).expect("puts the task");
        let hook = PutNotificationRequest {
            url: "http://127.0.0.1:9/hook".into(),
            events: vec![NotificationEvent::BackupStale, NotificationEvent::BackupRecovered],
            ..Default::default()
        };
        rookery.put_notification("ops", &hook).expect("puts the webhook");
        // A set three hours old, and a change after it.
        let now = crate::notify::notifier::now_ms();
        let set = |started_ms: i64, to_etag: u64| BackupOutcome {
            database: db.clone(),
            task: "hourly".into(),
            kind: RunKind::Full,
            location: location.clone(),
            started_ms,
            ended_ms: started_ms + 1000,
            result: Ok(SetWritten { set_id: "20261126T050000Z-full".into(), bytes: 1, documents: 1, to_etag }),
        };
        crate::monitor::records::record(&rookery.catalog.system(), &set(now - 3 * 3600 * 1000, 0)).expect("records");
        rookery.check_staleness();
        rookery.check_staleness();
        assert_eq!(outbox(&rookery), [NotificationEvent::BackupStale], "announced once");
        let overview = rookery.protection();
        let shop = overview.databases.iter().find(|d| d.database == "Shop").expect("Shop");
        assert_eq!(shop.state, ProtectionState::Stale);
        assert!(shop.tasks[0].recovery_point_age_seconds.is_some_and(|a| a > 3.0 * 3600.0 - 60.0));
        // A new set that holds every change: up to date, and recovered.
        let last = db.store().last_etag();
        let outcome = set(now, last);
        crate::monitor::records::record(&rookery.catalog.system(), &outcome).expect("records");
        rookery.monitor.task_run_ended(&db, "hourly", Ok("20261126T080000Z-full"));
        rookery.check_staleness();
        assert_eq!(outbox(&rookery), [NotificationEvent::BackupStale, NotificationEvent::BackupRecovered]);
        let overview = rookery.protection();
        let shop = overview.databases.iter().find(|d| d.database == "Shop").expect("Shop");
        assert_eq!(shop.state, ProtectionState::Ok, "{shop:?}");
        assert!(shop.up_to_date);
    }
}
