//! Rows of the bench: each baseline and measure the median of its runs,
//! with the spread beside it; printed as a table and written as JSON.

use serde::Serialize;

/// The runs of one measure (seconds, MB, writes a second, ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub runs: Vec<f64>,
}

impl Sample {
    pub fn of(runs: Vec<f64>) -> Self {
        Self { runs }
    }

    pub fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// (max - min) / median, in percent (0 for a single run).
    pub fn spread_percent(&self) -> f64 {
        let min = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let median = self.median();
        if self.runs.len() < 2 || median == 0.0 {
            0.0
        } else {
            (max - min) / median * 100.0
        }
    }

    /// `3.08 s ±12%`.
    pub fn describe(&self, unit: &str) -> String {
        format!("{:.3} {unit} ±{:.0}%", self.median(), self.spread_percent())
    }
}

/// One line of the table: a ratio of two medians, or a median alone.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub target: String,
    /// Whether the target is met (none: for information).
    pub met: Option<bool>,
    /// The measure's runs (the numerator of a ratio).
    pub measure: Sample,
    /// The baseline's runs, for a ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Sample>,
}

impl Row {
    pub fn ratio(name: &str, measure: &Sample, baseline: &Sample, target: &str) -> Self {
        let b = baseline.median();
        let value = if b > 0.0 { measure.median() / b } else { f64::NAN };
        Self::new(name, value, target, measure.clone(), Some(baseline.clone()))
    }

    pub fn absolute(name: &str, measure: &Sample, target: &str) -> Self {
        Self::new(name, measure.median(), target, measure.clone(), None)
    }

    fn new(name: &str, value: f64, target: &str, measure: Sample, baseline: Option<Sample>) -> Self {
        Self { name: name.to_string(), value, target: target.to_string(), met: met(value, target), measure, baseline }
    }

    /// The spread beside the value: the measure's, and the baseline's.
    fn spread(&self) -> String {
        match &self.baseline {
            Some(b) => format!("±{:.0}% / ±{:.0}%", self.measure.spread_percent(), b.spread_percent()),
            None => format!("±{:.0}%", self.measure.spread_percent()),
        }
    }
}

/// Whether `value` meets a target written `<= 1.5`, `>= 0.9` or `< 256`.
pub fn met(value: f64, target: &str) -> Option<bool> {
    let parse = |s: &str| s.trim().parse::<f64>().ok();
    if let Some(v) = target.strip_prefix("<=").and_then(parse) {
        Some(value <= v)
    } else if let Some(v) = target.strip_prefix(">=").and_then(parse) {
        Some(value >= v)
    } else {
        target.strip_prefix('<').and_then(parse).map(|v| value < v)
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!("{:<50} {:>10} {:>16} {:>9}  met", "measure (medians of the runs)", "value", "spread", "target");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("{:<50} {:>10.3} {:>16} {:>9}  {met}", row.name, row.value, row.spread(), row.target);
    }
}

/// What `--json FILE` holds.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub commit: String,
    pub measured_at: String,
    pub documents: u64,
    pub runs: usize,
    pub machine: crate::system::Machine,
    pub baselines: std::collections::BTreeMap<&'static str, Sample>,
    pub rows: &'a [Row],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_the_spread_of_three_runs() {
        let s = Sample::of(vec![1.82, 0.92, 1.0]);
        assert_eq!(s.median(), 1.0);
        assert!((s.spread_percent() - 90.0).abs() < 1e-9);
        assert_eq!(Sample::of(vec![2.0, 4.0]).median(), 3.0);
        assert_eq!(Sample::of(vec![5.0]).spread_percent(), 0.0);
    }

    #[test]
    fn a_ratio_is_of_medians_and_says_whether_it_meets_its_target() {
        let row = Row::ratio("x", &Sample::of(vec![3.0, 2.9, 9.0]), &Sample::of(vec![2.0, 2.2, 1.0]), "<= 1.5");
        assert!((row.value - 1.5).abs() < 1e-9);
        assert_eq!(row.met, Some(true));
        assert_eq!(met(0.89, ">= 0.9"), Some(false));
        assert_eq!(met(255.0, "< 256"), Some(true));
        assert_eq!(met(1.0, "(information)"), None);
    }
}
