//! `GET /metrics`: the live counters, and gauges read from the state at each
//! scrape (backup records, tasks, drills, databases, object storage), in the
//! OpenMetrics text format that Prometheus reads.

use jiff::Timestamp;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::metrics::{labels, Labels};
use super::protection::TaskView;
use super::records::KindRecord;
use crate::engine::Rookery;
use crate::storage::DatabaseHandle;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Gauges = Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// The gauges of one scrape, registered at the end in a fixed order.
#[derive(Default)]
struct Scrape {
    gauges: Vec<(&'static str, &'static str, Gauges)>,
}

impl Scrape {
    fn set(&mut self, name: &'static str, help: &'static str, labels: &Labels, value: f64) {
        let family = match self.gauges.iter().position(|(n, _, _)| *n == name) {
            Some(i) => &self.gauges[i].2,
            None => {
                self.gauges.push((name, help, Gauges::default()));
                &self.gauges[self.gauges.len() - 1].2
            }
        };
        family.get_or_create(labels).set(value);
    }
}

fn seconds(ms: Option<i64>) -> f64 {
    ms.map_or(0.0, |ms| ms as f64 / 1000.0)
}

fn add_record(scrape: &mut Scrape, record: &KindRecord) {
    let Some(kind) = record.kind else { return };
    let l = labels(&[("database", &record.database), ("task", &record.task), ("kind", kind.as_str())]);
    scrape.set(
        "rookery_backup_last_success_timestamp_seconds",
        "When the last successful backup of this kind ended (Unix seconds; 0: never)",
        &l,
        seconds(record.last_success_ms),
    );
    scrape.set(
        "rookery_backup_last_failure_timestamp_seconds",
        "When the last failed backup of this kind ended (Unix seconds; 0: never)",
        &l,
        seconds(record.last_failure_ms),
    );
    scrape.set(
        "rookery_backup_last_duration_seconds",
        "How long the last backup of this kind took",
        &l,
        record.last_duration_ms as f64 / 1000.0,
    );
    scrape.set("rookery_backup_last_size_bytes", "Bytes the last successful backup of this kind wrote", &l, record.last_bytes as f64);
    scrape.set(
        "rookery_backup_last_documents",
        "Documents the last successful backup of this kind wrote",
        &l,
        record.last_documents as f64,
    );
}

/// The labels of one location of a task.
fn located(db: &DatabaseHandle, view: &TaskView, location: &str) -> Labels {
    let kind = if location.starts_with(crate::backup::object::SCHEME) { "s3" } else { "folder" };
    labels(&[("database", &db.name), ("task", &view.task), ("location", location), ("location_kind", kind)])
}

fn set_recovery_point_age(scrape: &mut Scrape, located: &Labels, age: f64) {
    scrape.set(
        "rookery_backup_recovery_point_age_seconds",
        "Seconds of client writes a restore of the task's location would lose now (0: nothing changed since its newest set)",
        located,
        age,
    );
}

/// One other destination of a task: its own recovery point age (since its
/// newest set was taken), the sets it lacks, and whether its last copy failed.
fn add_copy(scrape: &mut Scrape, db: &DatabaseHandle, view: &TaskView, copy: &crate::monitor::protection::CopyView, now_ms: i64) {
    let located = located(db, view, &copy.location);
    // A copy that holds the first destination's newest set, with nothing
    // changed since, loses nothing, as the first destination does not.
    let current = view.up_to_date && copy.last_set_id.is_some() && copy.last_set_id == view.last_set_id;
    if let Some(point) = copy.point_ms {
        set_recovery_point_age(scrape, &located, if current { 0.0 } else { now_ms.saturating_sub(point).max(0) as f64 / 1000.0 });
    }
    scrape.set(
        "rookery_backup_destination_missing_sets",
        "Sets of the task's first destination this destination lacks",
        &located,
        copy.missing_sets as f64,
    );
    scrape.set(
        "rookery_backup_destination_failing",
        "1 while the last copy into this destination failed",
        &located,
        f64::from(u8::from(copy.failing)),
    );
}

fn add_task(scrape: &mut Scrape, db: &DatabaseHandle, view: &TaskView, now_ms: i64) {
    let task = labels(&[("database", &db.name), ("task", &view.task)]);
    let located = located(db, view, &view.location);
    if let Some(age) = view.age_seconds(now_ms) {
        set_recovery_point_age(scrape, &located, age);
        scrape.set(
            "rookery_backup_recovery_point_timestamp_seconds",
            "The point the newest set of the task's location restores to (Unix seconds)",
            &located,
            seconds(view.point_ms),
        );
    }
    for copy in &view.copies {
        add_copy(scrape, db, view, copy, now_ms);
    }
    scrape.set(
        "rookery_backup_task_objective_seconds",
        "The task's recovery point objective: RecoveryPointObjective, else twice its interval (at least 300)",
        &task,
        view.objective.as_secs_f64(),
    );
    if let Some(interval) = view.interval {
        scrape.set(
            "rookery_backup_task_interval_seconds",
            "How often the task backs up (its shortest schedule)",
            &task,
            interval.as_secs_f64(),
        );
    }
    scrape.set("rookery_backup_task_failing", "1 while the task's last run failed", &task, f64::from(u8::from(view.health.failing)));
    scrape.set("rookery_backup_task_disabled", "1 when the task is disabled", &task, f64::from(u8::from(view.disabled)));
    if let Some((lag, max_lag, shipped)) = view.continuous {
        scrape.set("rookery_backup_continuous_lag_seconds", "Seconds the oldest unshipped change has waited", &task, lag);
        scrape.set("rookery_backup_continuous_max_lag_seconds", "The task's MaxLagSeconds", &task, f64::from(max_lag));
        scrape.set("rookery_backup_continuous_last_shipped_etag", "The ToEtag of the last set shipped", &task, shipped.unwrap_or(0) as f64);
    }
    if let Some((last, interval)) = &view.drill {
        if let Some(drill) = last {
            let at = time::OffsetDateTime::parse(&drill.at, &time::format_description::well_known::Rfc3339)
                .map_or(0.0, |t| t.unix_timestamp() as f64);
            scrape.set("rookery_drill_last_timestamp_seconds", "When the task's last restore drill ended (Unix seconds)", &task, at);
            scrape.set(
                "rookery_drill_last_success",
                "1 when the task's last restore drill succeeded",
                &task,
                f64::from(u8::from(drill.success)),
            );
            scrape.set(
                "rookery_drill_last_duration_seconds",
                "How long the task's last restore drill took",
                &task,
                drill.duration_ms as f64 / 1000.0,
            );
        }
        if let Some(interval) = interval {
            scrape.set("rookery_drill_interval_seconds", "How often the task's drills run", &task, interval.as_secs_f64());
        }
    }
}

fn add_database(scrape: &mut Scrape, db: &DatabaseHandle) {
    let l = labels(&[("database", &db.name)]);
    scrape.set(
        "rookery_database_documents",
        "Documents in the database (status documents included)",
        &l,
        db.store().document_count() as f64,
    );
    scrape.set(
        "rookery_database_data_size_bytes",
        "Bytes of the live documents as stored (DataSizeBytes)",
        &l,
        db.store().data_bytes() as f64,
    );
    scrape.set("rookery_database_size_bytes", "Bytes the database takes on disk (SizeBytes)", &l, db.store().size_bytes() as f64);
    scrape.set("rookery_database_last_etag", "The database's newest etag", &l, db.store().last_etag() as f64);
}

impl Rookery {
    /// The metrics, as a scrape answers them.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let now_ms = Timestamp::now().as_millisecond();
        let mut scrape = Scrape::default();
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            add_database(&mut scrape, &db);
            let (views, by_hand) = self.task_views(&db);
            for view in &views {
                add_task(&mut scrape, &db, view, now_ms);
                view.records.iter().for_each(|r| add_record(&mut scrape, r));
            }
            by_hand.iter().for_each(|r| add_record(&mut scrape, r));
        }
        let mut registry = Registry::default();
        let build = Gauges::default();
        build.get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))])).set(1.0);
        registry.register("rookery_build_info", "The server's version", build);
        for (name, help, family) in scrape.gauges {
            registry.register(name, help, family);
        }
        let (requests, errors) = (Family::<Labels, Counter>::default(), Family::<Labels, Counter>::default());
        for (operation, sent, failed) in crate::backup::object_requests::totals() {
            requests.get_or_create(&labels(&[("operation", operation)])).inc_by(sent);
            errors.get_or_create(&labels(&[("operation", operation)])).inc_by(failed);
        }
        registry.register("rookery_object_storage_requests", "Requests made to object storage, by operation", requests);
        registry.register("rookery_object_storage_errors", "Requests to object storage that failed, by operation", errors);
        self.monitor.metrics.register(&mut registry);
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}
