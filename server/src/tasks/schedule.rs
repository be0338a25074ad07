//! Cron schedules of backup tasks (5 fields, or 6 with seconds first), in a
//! time zone, parsed by `croner` and evaluated with `jiff`.

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rookery_types::{BackupKind, BackupTask};

use super::error::TaskError;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    /// Parses the cron expression of `field` (its name is in the error).
    ///
    /// # Errors
    /// `InvalidSchedule` naming the field.
    pub fn parse(field: &str, text: &str) -> Result<Self, TaskError> {
        let fields = text.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(TaskError::InvalidSchedule(format!(
                "{field} '{}' has {fields} fields: give 5 (minute hour day month weekday) or 6 (seconds first)",
                text.escape_debug()
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| TaskError::InvalidSchedule(format!("{field} '{}' is not a cron expression: {e}", text.escape_debug())))?;
        Ok(Self { cron })
    }

    /// The first occurrence strictly after `after`, in `zone`.
    #[must_use]
    pub fn next_after(&self, zone: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(zone.clone());
        self.cron.find_next_occurrence(&start, false).ok().map(|z| z.timestamp())
    }

    /// Whether an occurrence falls in `(after, until]`: however many did (the
    /// server was stopped through several), the run is due once.
    #[must_use]
    pub fn due_between(&self, zone: &TimeZone, after: Timestamp, until: Timestamp) -> bool {
        self.next_after(zone, after).is_some_and(|t| t <= until)
    }

    /// The time between the next two occurrences after `now`: how often it
    /// runs, near now (what "late" and the default objective are measured in).
    #[must_use]
    pub fn interval(&self, zone: &TimeZone, now: Timestamp) -> Option<std::time::Duration> {
        let first = self.next_after(zone, now)?;
        let second = self.next_after(zone, first)?;
        second.duration_since(first).try_into().ok()
    }

    /// A description of the expression in words ("At 02:00 on Sunday").
    #[must_use]
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// The time zone of a task (`UTC` when none is given).
///
/// # Errors
/// `InvalidSchedule` for a name that is not an IANA time zone.
pub fn zone(name: Option<&str>) -> Result<TimeZone, TaskError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) if n.eq_ignore_ascii_case("UTC") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n)
            .map_err(|e| TaskError::InvalidSchedule(format!("TimeZone '{}' is not an IANA time zone: {e}", n.escape_debug()))),
    }
}

/// A task's schedules, checked.
pub struct Schedules {
    pub full: Option<Schedule>,
    pub incremental: Option<Schedule>,
    pub zone: jiff::tz::TimeZone,
}

impl Schedules {
    /// Parses a task's schedules and time zone.
    ///
    /// # Errors
    /// `InvalidSchedule` naming the field; `Invalid` when there is none.
    pub fn of(task: &BackupTask) -> Result<Self, TaskError> {
        let full = task.full_backup_frequency.as_deref().map(|t| Schedule::parse("FullBackupFrequency", t)).transpose()?;
        let incremental =
            task.incremental_backup_frequency.as_deref().map(|t| Schedule::parse("IncrementalBackupFrequency", t)).transpose()?;
        if full.is_none() && incremental.is_none() {
            return Err(TaskError::Invalid("A task needs FullBackupFrequency, IncrementalBackupFrequency or both.".into()));
        }
        Ok(Self { full, incremental, zone: zone(task.time_zone.as_deref())? })
    }

    /// The run due between `after` and `until`, if any (a full wins).
    #[must_use]
    pub fn due(&self, after: Timestamp, until: Timestamp) -> Option<BackupKind> {
        if self.full.as_ref().is_some_and(|s| s.due_between(&self.zone, after, until)) {
            Some(BackupKind::Full)
        } else if self.incremental.as_ref().is_some_and(|s| s.due_between(&self.zone, after, until)) {
            Some(BackupKind::Incremental)
        } else {
            None
        }
    }

    /// The next run after `now` and its kind (a full wins a tie).
    #[must_use]
    pub fn next(&self, now: Timestamp) -> Option<(Timestamp, BackupKind)> {
        let full = self.full.as_ref().and_then(|s| s.next_after(&self.zone, now)).map(|t| (t, BackupKind::Full));
        let incremental = self.incremental.as_ref().and_then(|s| s.next_after(&self.zone, now)).map(|t| (t, BackupKind::Incremental));
        match (full, incremental) {
            (Some(f), Some(i)) => Some(if i.0 < f.0 { i } else { f }),
            (f, i) => f.or(i),
        }
    }
}

pub(crate) fn format_time(t: Timestamp) -> String {
    crate::jobs::format_rfc3339(
        time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// What a schedule means: its description and next three times.
///
/// # Errors
/// `InvalidSchedule`.
pub fn describe_schedule(cron: &str, time_zone: Option<&str>) -> Result<rookery_types::ScheduleInfo, TaskError> {
    let schedule = Schedule::parse("cron", cron)?;
    let zone = zone(time_zone)?;
    let mut next = Vec::new();
    let mut after = Timestamp::now();
    for _ in 0..3 {
        let Some(t) = schedule.next_after(&zone, after) else { break };
        next.push(format_time(t));
        after = t;
    }
    Ok(rookery_types::ScheduleInfo { description: schedule.describe(), next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn five_or_six_fields_and_bad_ones_name_the_field() {
        assert!(Schedule::parse("FullBackupFrequency", "0 2 * * 0").is_ok());
        assert!(Schedule::parse("FullBackupFrequency", "*/5 * * * * *").is_ok());
        for bad in ["", "* * * *", "0 0 0 0 0 0 0", "61 * * * *", "nonsense here too and more"] {
            let err = Schedule::parse("IncrementalBackupFrequency", bad).expect_err(bad);
            assert!(err.to_string().contains("IncrementalBackupFrequency"), "{err}");
        }
    }

    #[test]
    fn missed_times_make_one_due_run_and_the_next_is_after_now() {
        let hourly = Schedule::parse("F", "0 * * * *").expect("parses");
        let utc = TimeZone::UTC;
        // Stopped from 10:30 to 14:10: four occurrences passed, one run is due.
        assert!(hourly.due_between(&utc, at("2026-11-26T10:30:00Z"), at("2026-11-26T14:10:00Z")));
        assert!(!hourly.due_between(&utc, at("2026-11-26T14:00:00Z"), at("2026-11-26T14:59:59Z")));
        assert_eq!(hourly.next_after(&utc, at("2026-11-26T14:10:00Z")), Some(at("2026-11-26T15:00:00Z")));
    }

    /// Every occurrence in `[from, until)`.
    fn occurrences(schedule: &Schedule, zone: &TimeZone, from: &str, until: &str) -> Vec<Timestamp> {
        let (mut t, until) = (at(from), at(until));
        let mut out = Vec::new();
        while let Some(next) = schedule.next_after(zone, t).filter(|n| *n < until) {
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn a_daily_time_runs_once_a_day_across_daylight_saving_changes() {
        let paris = zone(Some("Europe/Paris")).expect("a zone");
        let half_past_two = Schedule::parse("F", "30 2 * * *").expect("parses");
        // 29 March 2026: 02:00 becomes 03:00 in Paris; 02:30 does not exist that
        // night. The backup is not skipped: it runs at the first valid time after.
        let spring = occurrences(&half_past_two, &paris, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z");
        assert_eq!(spring.len(), 3, "one run each night: {spring:?}");
        assert_eq!(spring[0], at("2026-03-28T01:30:00Z"), "02:30 CET");
        assert!(spring[1] > at("2026-03-29T00:59:59Z") && spring[1] <= at("2026-03-29T01:30:00Z"), "the night of the change: {spring:?}");
        assert_eq!(spring[2], at("2026-03-30T00:30:00Z"), "02:30 CEST");
        // 25 October 2026: 03:00 becomes 02:00; 02:30 happens twice. One run.
        let autumn = occurrences(&half_past_two, &paris, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
        assert_eq!(autumn.len(), 2, "one run each night, not two in the repeated hour: {autumn:?}");
        assert_eq!(autumn[0], at("2026-10-25T00:30:00Z"), "the first 02:30 (CEST)");
        assert_eq!(autumn[1], at("2026-10-26T01:30:00Z"), "02:30 CET");
        // An hourly schedule keeps its hours: 23 runs on the short day, 25 on the long one.
        let hourly = Schedule::parse("F", "0 * * * *").expect("parses");
        assert_eq!(occurrences(&hourly, &paris, "2026-03-28T22:59:59Z", "2026-03-29T22:00:00Z").len(), 23);
        assert_eq!(occurrences(&hourly, &paris, "2026-10-24T21:59:59Z", "2026-10-25T23:00:00Z").len(), 25);
    }

    #[test]
    fn a_time_zone_moves_the_schedule() {
        let two_am = Schedule::parse("F", "0 2 * * *").expect("parses");
        let paris = zone(Some("Europe/Paris")).expect("a zone");
        // 02:00 in Paris in November is 01:00 UTC.
        assert_eq!(two_am.next_after(&paris, at("2026-11-26T12:00:00Z")), Some(at("2026-11-27T01:00:00Z")));
        assert!(zone(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn a_full_and_an_incremental_due_together_run_as_a_full() {
        let task = BackupTask {
            backup_location: "/b".into(),
            full_backup_frequency: Some("0 * * * *".into()),
            incremental_backup_frequency: Some("*/15 * * * *".into()),
            ..Default::default()
        };
        let s = Schedules::of(&task).expect("valid");
        let at = |t: &str| t.parse::<Timestamp>().expect("a time");
        // 14:00 is both a full's and an incremental's time.
        assert_eq!(s.due(at("2026-11-26T13:59:00Z"), at("2026-11-26T14:00:30Z")), Some(BackupKind::Full));
        assert_eq!(s.due(at("2026-11-26T14:10:00Z"), at("2026-11-26T14:15:30Z")), Some(BackupKind::Incremental));
        assert_eq!(s.due(at("2026-11-26T14:16:00Z"), at("2026-11-26T14:20:00Z")), None);
        // The next run: a tie goes to the full.
        assert_eq!(s.next(at("2026-11-26T14:50:00Z")), Some((at("2026-11-26T15:00:00Z"), BackupKind::Full)));
        assert_eq!(s.next(at("2026-11-26T15:01:00Z")), Some((at("2026-11-26T15:15:00Z"), BackupKind::Incremental)));
        assert!(Schedules::of(&BackupTask { backup_location: "/b".into(), ..Default::default() }).is_err(), "no schedule");
    }
}
