//! Writing a run's report to files: `--report-json PATH` (the result line plus every sample) and
//! `--report-svg PATH` (the chart of [`crate::svg`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::report::{r1, r3};
use crate::timeline::{Sample, Timeline};

/// Where a run's report files go.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

impl ReportFiles {
    /// Writes the files asked for. `result` is the run's JSON result line (its `mode` first).
    pub fn write(&self, mode: &str, title: &str, result: &str, timeline: &Timeline) -> Result<()> {
        if let Some(path) = &self.json {
            write(path, &json_report(mode, result, timeline))?;
            eprintln!("report: {}", path.display());
        }
        if let Some(path) = &self.svg {
            write(path, &crate::svg::chart(title, timeline))?;
            eprintln!("chart: {}", path.display());
        }
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `{"mode","unit","result":{...},"samples":[{...},...]}`, one sample per line.
pub fn json_report(mode: &str, result: &str, timeline: &Timeline) -> String {
    let samples: Vec<String> = timeline.samples.iter().map(sample_json).collect();
    format!(
        "{{\"mode\":{},\"unit\":{},\"result\":{result},\"samples\":[\n{}\n]}}\n",
        serde_json::Value::from(mode),
        serde_json::Value::from(timeline.unit),
        samples.join(",\n")
    )
}

pub fn sample_json(s: &Sample) -> String {
    jline! {
        "t_s": r3(s.t),
        "rate": r1(s.rate),
        "done": s.done,
        "in_flight": s.in_flight,
        "errors": s.errors,
        "p50_ms": s.p50_ms.map(r3),
        "p99_ms": s.p99_ms.map(r3),
        "hookd_cpu_pct": s.cpu_pct.map(r1),
        "hookd_rss_bytes": s.rss_bytes,
        "data_dir_bytes": s.disk_bytes,
        "read_p50_ms": s.read_p50_ms.map(r3),
        "read_p99_ms": s.read_p99_ms.map(r3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_holds_the_result_and_every_sample() {
        let t = Timeline {
            unit: "events/s",
            samples: vec![
                Sample {
                    t: 1.0004,
                    rate: 1234.56,
                    done: 1234,
                    p99_ms: Some(2.5),
                    rss_bytes: Some(1 << 20),
                    ..Sample::default()
                },
                Sample {
                    t: 2.0,
                    done: 1300,
                    ..Sample::default()
                },
            ],
        };
        let text = json_report("ingest", r#"{"mode":"ingest","events":1300}"#, &t);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mode"], "ingest");
        assert_eq!(v["unit"], "events/s");
        assert_eq!(v["result"]["events"], 1300);
        let s = v["samples"].as_array().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["t_s"], 1.0);
        assert_eq!(s[0]["rate"], 1234.6);
        assert_eq!(s[0]["p99_ms"], 2.5);
        assert_eq!(s[0]["hookd_rss_bytes"], 1_048_576);
        assert!(s[1]["p99_ms"].is_null() && s[1]["hookd_rss_bytes"].is_null());
        assert!(
            text.contains("\n{\"t_s\":2.0,"),
            "one sample per line: {text}"
        );
    }

    #[test]
    fn writes_both_files() {
        let dir = std::env::temp_dir().join(format!("lt-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = ReportFiles {
            json: Some(dir.join("r.json")),
            svg: Some(dir.join("r.svg")),
        };
        let t = Timeline {
            unit: "requests/s",
            samples: vec![Sample {
                t: 1.0,
                rate: 5.0,
                ..Sample::default()
            }],
        };
        files
            .write("baseline", "baseline", r#"{"mode":"baseline"}"#, &t)
            .unwrap();
        let json = std::fs::read_to_string(dir.join("r.json")).unwrap();
        let svg = std::fs::read_to_string(dir.join("r.svg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(json.starts_with(r#"{"mode":"baseline","unit":"requests/s","result":{"mode""#));
        assert!(svg.contains("<polyline"), "{svg}");
        let bad = ReportFiles {
            json: Some(dir.join("missing/r.json")),
            svg: None,
        };
        assert!(bad.write("x", "x", "{}", &t).is_err());
    }
}
