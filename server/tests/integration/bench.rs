//! `rookery-bench` itself, on a small database: every measure is the median
//! of its runs, each phase in a process of its own, the JSON report holds
//! the runs, the commit and the machine, and the chart script draws it.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_bench_reports_medians_of_runs_as_json_and_the_chart_draws_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Named as `make bench` names a whole run.
    let json = dir.path().join("20261204T000000Z-3000.json");
    let stdout = bench(&["--documents", "3000", "--runs", "2", "--load-seconds", "1", "--no-s3", "--skip", "writes,snapshots,rest"], &json);
    assert!(stdout.contains("full backup, run 2/2"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    assert_eq!(report["documents"], 3000);
    assert_eq!(report["runs"], 2);
    assert!(report["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c >= 1), "{}", report["machine"]);
    assert_eq!(report["baselines"]["cp -r (s)"]["runs"].as_array().map(Vec::len), Some(2));
    let rows = report["rows"].as_array().expect("rows");
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no row {name}: {rows:?}"));
    let full = row("full backup / cp -r + sync");
    let (measure, baseline) = (runs(&full["measure"]), runs(&full["baseline"]));
    assert_eq!((measure.len(), baseline.len()), (2, 2));
    let median = |v: &[f64]| (v[0] + v[1]) / 2.0;
    let value = full["value"].as_f64().expect("a value");
    assert!((value - median(&measure) / median(&baseline)).abs() < 1e-9, "the ratio is of the medians: {full}");
    // Each phase's peak RSS is its own process's (a restore's is not the sum of all before it).
    assert!(row("peak RSS, restore (MB)")["value"].as_f64().is_some_and(|mb| mb > 1.0 && mb < 256.0));
    assert!(row("compaction (full + 24 x 1%, each in 10 runs of ids) / fresh full backup")["value"].as_f64().is_some_and(f64::is_finite));
    assert!(row("compaction (full + 24 x 1% scattered: every frame changed) / fresh full backup")["value"]
        .as_f64()
        .is_some_and(f64::is_finite));

    // A newer run of some phases only (more after the count in its name) is not drawn.
    let mut partial = report.clone();
    partial["commit"] = "partial-run".into();
    std::fs::write(dir.path().join("20261204T000001Z-3000-s3.json"), partial.to_string()).expect("writes");
    let chart = dir.path().join("chart.svg");
    let runs_dir = dir.path();
    let drawn = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/bench-chart.py"))
        .arg(runs_dir)
        .arg(&chart)
        .output()
        .expect("python3 runs");
    assert!(drawn.status.success(), "{}", String::from_utf8_lossy(&drawn.stderr));
    let svg = std::fs::read_to_string(&chart).expect("the chart");
    assert!(svg.starts_with("<svg") && svg.contains("full backup / cp -r + sync"), "{svg}");
    assert!(!svg.contains("partial-run"), "only whole runs are drawn: {svg}");
}

/// Runs the bench with `args`, its JSON report to `json` and its work folder
/// beside it; returns what it printed.
fn bench(args: &[&str], json: &std::path::Path) -> String {
    let work = json.with_extension("work");
    let out = Command::new(env!("CARGO_BIN_EXE_rookery-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .arg("--dir")
        .arg(&work)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn runs(sample: &Value) -> Vec<f64> {
    sample["runs"].as_array().expect("runs").iter().filter_map(Value::as_f64).collect()
}

/// `--scale-from`: each operation at both sizes, taking turns in one run,
/// each row the ratio of the two medians against 1.1 times the ratio of the sizes.
#[test]
fn the_bench_measures_how_each_operation_grows_with_the_data_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("20261206T000000Z-4000-scale.json");
    let stdout = bench(&["--documents", "4000", "--scale-from", "2000", "--runs", "2", "--no-s3"], &json);
    // Taking turns: run 1 at both sizes before run 2 at either.
    let at = |line: &str| stdout.find(line).unwrap_or_else(|| panic!("no line {line}: {stdout}"));
    assert!(at("full backup, 4000 documents, run 1/2") < at("full backup, 2000 documents, run 2/2"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    let rows = report["rows"].as_array().expect("rows");
    for operation in ["full backup", "restore of the full set", "export", "import", "compaction (full + 24 x 1% in runs)"] {
        let name = format!("{operation}, 4000 / 2000 documents");
        let row = rows.iter().find(|r| r["name"] == name.as_str()).unwrap_or_else(|| panic!("no row {name}: {rows:?}"));
        assert_eq!(row["target"], "<= 2.2", "{row}");
        let (measure, baseline) = (runs(&row["measure"]), runs(&row["baseline"]));
        assert_eq!((measure.len(), baseline.len()), (2, 2), "{row}");
        let median = |v: &[f64]| (v[0] + v[1]) / 2.0;
        let value = row["value"].as_f64().expect("a value");
        assert!((value - median(&measure) / median(&baseline)).abs() < 1e-9, "the ratio is of the medians: {row}");
        let rss = format!("peak RSS, {operation}, 4000 documents (MB)");
        assert!(rows.iter().any(|r| r["name"] == rss.as_str() && r["value"].as_f64().is_some_and(|mb| mb > 1.0)), "{rows:?}");
    }
    assert!(rows.iter().any(|r| r["name"] == "cp -r + sync, 4000 / 2000 documents" && r["target"] == "(information)"));
}
