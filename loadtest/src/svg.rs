//! The SVG chart of a run: stacked panels sharing the time axis: throughput, delivery latency
//! p50/p99, the API reads' latency when there were any, hookd's RSS and data-directory disk use,
//! hookd's CPU. A panel with nothing to show is left out.
//!
//! Written by hand: a chart of a few polylines, gridlines and labels is ~200 lines of string
//! formatting, while the plotting crates (plotters and the like) bring font and image stacks this
//! tool does not need. The output is plain SVG 1.1 that browsers and GitHub render as is.

use std::fmt::Write;

use crate::timeline::{Sample, Timeline};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 190.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 56.0;
const GAP: f64 = 34.0;

type Pick = fn(&Sample) -> Option<f64>;

struct Series {
    name: &'static str,
    color: &'static str,
    pick: Pick,
}

struct Panel {
    title: String,
    series: Vec<Series>,
}

const MIB: f64 = 1024.0 * 1024.0;

fn panels(unit: &str) -> Vec<Panel> {
    let s = |name, color, pick: Pick| Series { name, color, pick };
    vec![
        Panel {
            title: format!("throughput ({unit})"),
            series: vec![s("rate", "#1f77b4", |x| Some(x.rate))],
        },
        Panel {
            title: "latency (ms)".into(),
            series: vec![
                s("p50", "#2ca02c", |x| x.p50_ms),
                s("p99", "#d62728", |x| x.p99_ms),
            ],
        },
        Panel {
            title: "API reads of an endpoint's deliveries: latency (ms)".into(),
            series: vec![
                s("p50", "#17becf", |x| x.read_p50_ms),
                s("p99", "#9467bd", |x| x.read_p99_ms),
            ],
        },
        Panel {
            title: "hookd memory and disk (MiB)".into(),
            series: vec![
                s("RSS", "#ff7f0e", |x| x.rss_bytes.map(|b| b as f64 / MIB)),
                s("data dir", "#8c564b", |x| {
                    x.disk_bytes.map(|b| b as f64 / MIB)
                }),
            ],
        },
        Panel {
            title: "hookd CPU (% of a core)".into(),
            series: vec![s("CPU", "#7f7f7f", |x| x.cpu_pct)],
        },
    ]
}

/// The chart of `timeline`, titled `title`.
pub fn chart(title: &str, timeline: &Timeline) -> String {
    let samples = &timeline.samples;
    let mut shown: Vec<Panel> = panels(timeline.unit)
        .into_iter()
        .map(|mut p| {
            p.series.retain(|s| {
                samples
                    .iter()
                    .any(|x| (s.pick)(x).is_some_and(f64::is_finite))
            });
            p
        })
        .filter(|p| !p.series.is_empty())
        .collect();
    if samples.is_empty() {
        shown.clear();
    }
    let height = TOP + shown.len().max(1) as f64 * (PANEL + GAP) + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    if shown.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}">no samples</text>"#,
            TOP + 20.0
        );
    }
    let t_max = nice_max(samples.last().map_or(1.0, |s| s.t));
    for (i, panel) in shown.iter().enumerate() {
        let y0 = TOP + i as f64 * (PANEL + GAP);
        draw_panel(&mut out, panel, samples, y0, t_max);
    }
    out.push_str("</svg>\n");
    out
}

fn draw_panel(out: &mut String, panel: &Panel, samples: &[Sample], y0: f64, t_max: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let v_max = nice_max(
        panel
            .series
            .iter()
            .flat_map(|s| samples.iter().filter_map(s.pick))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let x = |t: f64| LEFT + t / t_max * plot_w;
    let y = |v: f64| y0 + PANEL - v.max(0.0) / v_max * PANEL;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
        y0 - 6.0,
        escape(&panel.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
    );
    for k in 0..=4 {
        let v = v_max * k as f64 / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{gy:.1}" y2="{gy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            num(v),
            gy = y(v),
        );
        let t = t_max * k as f64 / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{} s</text>"#,
            x(t),
            y0 + PANEL + 15.0,
            num(t)
        );
    }
    for (n, s) in panel.series.iter().enumerate() {
        // A gap in the data (no pid yet, no latency that second) breaks the line.
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for sample in samples {
            match (s.pick)(sample).filter(|v| v.is_finite()) {
                Some(v) => runs.last_mut().expect("never empty").push(format!(
                    "{:.1},{:.1}",
                    x(sample.t),
                    y(v)
                )),
                None => runs.push(Vec::new()),
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                s.color,
                run.join(" ")
            );
        }
        let ly = y0 + 14.0 + n as f64 * 16.0;
        let lx = LEFT + plot_w + 12.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{my}" y2="{my}" stroke="{}" stroke-width="3"/><text x="{}" y="{ly}">{}</text>"#,
            lx + 18.0,
            s.color,
            lx + 24.0,
            escape(s.name),
            my = ly - 4.0,
        );
    }
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten that is >= `x` (1 for nothing).
pub fn nice_max(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// An axis label: 2500 -> "2500", 0.25 -> "0.25", 12.5 -> "12.5".
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rate: f64, p99: Option<f64>) -> Sample {
        Sample {
            t,
            rate,
            p50_ms: p99.map(|v| v / 2.0),
            p99_ms: p99,
            ..Sample::default()
        }
    }

    fn timeline(samples: Vec<Sample>) -> Timeline {
        Timeline {
            unit: "deliveries/s",
            samples,
        }
    }

    #[test]
    fn nice_maxima() {
        let got: Vec<f64> = [0.0, 0.3, 1.0, 1.2, 2.2, 3.0, 7.0, 1234.0, f64::NAN]
            .into_iter()
            .map(nice_max)
            .collect();
        assert_eq!(got, [1.0, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 2000.0, 1.0]);
        assert_eq!(
            (num(2500.0), num(0.25), num(12.5)),
            ("2500".into(), "0.25".into(), "12.5".into())
        );
    }

    #[test]
    fn one_polyline_per_series_with_a_point_per_sample() {
        let svg = chart(
            "fanout <10 endpoints> & more",
            &timeline(vec![
                sample(1.0, 100.0, Some(4.0)),
                sample(2.0, 300.0, Some(8.0)),
                sample(3.0, 200.0, Some(6.0)),
            ]),
        );
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("fanout &lt;10 endpoints&gt; &amp; more"));
        // rate, p50, p99; no memory, CPU or read panels without their data.
        let lines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
        assert_eq!(lines.len(), 3, "{svg}");
        for l in &lines {
            let points = l
                .split("points=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"/>");
            assert_eq!(points.split(' ').count(), 3, "{l}");
        }
        assert!(svg.contains("throughput (deliveries/s)"));
        assert!(!svg.contains("CPU"));
        // The highest rate (300 on a 500 axis) is 60% of the panel up from its bottom.
        let at = format!(
            "{:.1},{:.1}",
            LEFT + 2.0 / 5.0 * (WIDTH - LEFT - RIGHT),
            TOP + PANEL - 0.6 * PANEL
        );
        assert!(lines[0].contains(&at), "{at} not in {}", lines[0]);
    }

    #[test]
    fn gaps_break_lines_and_empty_runs_still_render() {
        let svg = chart(
            "x",
            &timeline(vec![
                sample(1.0, 1.0, Some(1.0)),
                sample(2.0, 1.0, None),
                sample(3.0, 1.0, Some(2.0)),
            ]),
        );
        // rate: one line; p50 and p99: two runs each.
        assert_eq!(svg.matches("<polyline").count(), 5, "{svg}");
        let empty = chart("nothing", &timeline(Vec::new()));
        assert!(empty.contains("no samples") && empty.ends_with("</svg>\n"));
        assert!(!empty.contains("<polyline"));
    }
}
