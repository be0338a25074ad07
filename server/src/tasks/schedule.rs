//! Cron schedules of backup tasks (5 fields, or 6 with seconds first), in a
//! time zone, parsed by `croner` and evaluated with `jiff`.

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::TaskError;

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
}
