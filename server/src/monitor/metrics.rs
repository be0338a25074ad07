//! The metrics that count as things happen: jobs, HTTP requests, document
//! reads and writes, notifications. The gauges that describe the state
//! (backups, tasks, drills, databases) are read at each scrape instead (see
//! [`super::scrape`]), so they never go stale.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rookery_types::NotificationEvent;

/// A metric's labels, as name and value pairs.
pub type Labels = Vec<(String, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Seconds, from a millisecond to about 9 hours.
fn job_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// Seconds, from a millisecond to about 30 seconds.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

/// Labels from pairs.
#[must_use]
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

/// The live metrics of one engine.
#[derive(Debug)]
pub struct Metrics {
    jobs: Family<Labels, Counter>,
    job_duration: HistogramFamily,
    http_duration: HistogramFamily,
    document_reads: Family<Labels, Counter>,
    document_writes: Family<Labels, Counter>,
    notifications: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(job_buckets),
            http_duration: Family::new_with_constructor(request_buckets),
            document_reads: Family::default(),
            document_writes: Family::default(),
            notifications: Family::default(),
        }
    }
}

impl Metrics {
    /// A job ended: `kind` (`backup`, `restore`, `import`, `compaction`) and
    /// `outcome` (`succeeded`, `failed`, `canceled`).
    pub fn job_ended(&self, kind: &str, outcome: &str, seconds: f64) {
        self.jobs.get_or_create(&labels(&[("kind", kind), ("outcome", outcome)])).inc();
        self.job_duration.get_or_create(&labels(&[("kind", kind), ("outcome", outcome)])).observe(seconds);
    }

    /// An HTTP request was answered (`route`: the route's template).
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        self.http_duration.get_or_create(&labels(&[("route", route), ("method", method), ("status_class", &class)])).observe(seconds);
    }

    /// Documents of `database` read by clients (one, or a page of them).
    pub fn documents_read(&self, database: &str, count: u64) {
        self.document_reads.get_or_create(&labels(&[("database", database)])).inc_by(count);
    }

    /// Documents of `database` written or deleted by clients.
    pub fn documents_written(&self, database: &str, count: u64) {
        self.document_writes.get_or_create(&labels(&[("database", database)])).inc_by(count);
    }

    /// A notification attempt: `outcome` is `delivered`, `retried` or `given_up`.
    pub fn notification(&self, event: NotificationEvent, outcome: &str) {
        self.notifications.get_or_create(&labels(&[("event", &format!("{event:?}")), ("outcome", outcome)])).inc();
    }

    /// Adds the live metrics to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("rookery_jobs", "Jobs ended, by kind and outcome", self.jobs.clone());
        registry.register("rookery_job_duration_seconds", "How long jobs took, by kind and outcome", self.job_duration.clone());
        registry.register(
            "rookery_http_request_duration_seconds",
            "HTTP requests answered, by route template, method and status class",
            self.http_duration.clone(),
        );
        registry.register("rookery_document_reads", "Documents read by clients", self.document_reads.clone());
        registry.register("rookery_document_writes", "Documents written or deleted by clients", self.document_writes.clone());
        registry.register("rookery_notifications", "Notification delivery attempts, by event and outcome", self.notifications.clone());
    }
}
