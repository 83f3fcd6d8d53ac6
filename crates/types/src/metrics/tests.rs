use std::time::Duration;

use super::*;
use crate::EndpointId;

fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(name)).collect()
}

#[test]
fn histogram_renders_cumulative_buckets_sum_and_count() {
    let h = Histogram::new([10_000, 100_000, 1_000_000]);
    // One in each bucket, a second exactly on the 100 ms bound (`le` is inclusive), two over
    // the last bound.
    for ms in [3, 40, 100, 700, 1_500, 60_000] {
        h.observe(Duration::from_millis(ms));
    }
    let mut out = String::new();
    h.render(&mut out, "x_seconds", "What x takes.");
    assert_eq!(
        out,
        "# HELP x_seconds What x takes.\n\
         # TYPE x_seconds histogram\n\
         x_seconds_bucket{le=\"0.01\"} 1\n\
         x_seconds_bucket{le=\"0.1\"} 3\n\
         x_seconds_bucket{le=\"1\"} 4\n\
         x_seconds_bucket{le=\"+Inf\"} 6\n\
         x_seconds_sum 62.343\n\
         x_seconds_count 6\n"
    );
}

#[test]
fn empty_histogram_renders_zeros() {
    let h = Histogram::new([5_000, 2_500_000]);
    let mut out = String::new();
    h.render(&mut out, "y", "Y.");
    assert_eq!(
        lines_of(&out, "y_"),
        [
            "y_bucket{le=\"0.005\"} 0",
            "y_bucket{le=\"2.5\"} 0",
            "y_bucket{le=\"+Inf\"} 0",
            "y_sum 0",
            "y_count 0",
        ]
    );
}

#[test]
fn histogram_keeps_microseconds_and_survives_extremes() {
    let h = Histogram::new([1]);
    h.observe(Duration::from_nanos(999)); // 0 us: at most 1 us
    h.observe(Duration::from_micros(1));
    h.observe(Duration::from_micros(2));
    h.observe_ms(5_000, 4_000); // the clock went back: zero
    let s = h.snapshot();
    assert_eq!(s.buckets, vec![(1, 3)]);
    assert_eq!((s.count, s.sum_us), (4, 3));
    let h = Histogram::new([1]);
    h.observe(Duration::MAX);
    assert_eq!((h.snapshot().count, h.snapshot().sum_us), (1, u64::MAX));
}

#[test]
fn daemon_bounds_ascend() {
    let m = Metrics::new();
    for b in [
        &m.attempt_duration_seconds.bounds_us()[..],
        &m.delivery_lag_seconds.bounds_us()[..],
    ] {
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
    }
}

#[test]
fn outcomes_index_their_counters() {
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert_eq!(*o as usize, i, "{o:?}");
    }
    let names: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(names.len(), Outcome::ALL.len());
}

#[test]
fn outcomes_classify_statuses_and_errors() {
    for (status, o) in [
        (200, Outcome::Success),
        (204, Outcome::Success),
        (299, Outcome::Success),
        (301, Outcome::HttpOther),
        (101, Outcome::HttpOther),
        (400, Outcome::Http4xx),
        (429, Outcome::Http4xx),
        (500, Outcome::Http5xx),
        (599, Outcome::Http5xx),
        (600, Outcome::HttpOther),
    ] {
        assert_eq!(Outcome::of_status(status), o, "{status}");
    }
    use crate::ErrorKind as K;
    for (kind, o) in [
        (K::Timeout, Outcome::Timeout),
        (K::Connect, Outcome::ConnectError),
        (K::Tls, Outcome::TlsError),
        (K::Dns, Outcome::DnsError),
        (K::Io, Outcome::IoError),
        (K::ForbiddenTarget, Outcome::NotSent),
        (K::EndpointDeleted, Outcome::NotSent),
        (K::EndpointDisabled, Outcome::NotSent),
        (K::InvalidUrl, Outcome::NotSent),
    ] {
        assert_eq!(Outcome::of_error(kind), o, "{kind:?}");
    }
}

#[test]
fn attempts_count_by_outcome_and_time_only_what_was_sent() {
    let m = Metrics::new();
    let ep = EndpointId(1);
    m.attempted(ep, Outcome::Success, Duration::from_millis(20));
    m.attempted(ep, Outcome::Http5xx, Duration::from_millis(3));
    m.attempted(ep, Outcome::NotSent, Duration::ZERO);
    assert_eq!(m.outcome(Outcome::Success), 1);
    assert_eq!(m.outcome(Outcome::Http5xx), 1);
    assert_eq!(m.outcome(Outcome::NotSent), 1);
    assert_eq!(m.outcome(Outcome::Timeout), 0);
    let s = m.attempt_duration_seconds.snapshot();
    assert_eq!((s.count, s.sum_us), (2, 23_000));
    let text = m.render();
    assert!(
        text.contains("hookd_attempt_outcomes_total{outcome=\"not_sent\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("hookd_attempt_duration_seconds_bucket{le=\"0.005\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("hookd_attempt_duration_seconds_count 2\n"),
        "{text}"
    );
    // Off by default: no series per endpoint.
    assert!(!text.contains("endpoint="), "{text}");
}

#[test]
fn per_endpoint_outcomes_only_when_enabled() {
    let m = Metrics::new();
    let (a, b) = (EndpointId(1), EndpointId(2));
    m.attempted(a, Outcome::Success, Duration::ZERO);
    m.per_endpoint.enable(true);
    m.attempted(a, Outcome::Success, Duration::ZERO);
    m.attempted(a, Outcome::Success, Duration::ZERO);
    m.attempted(b, Outcome::Timeout, Duration::ZERO);
    let text = m.render();
    let name = "hookd_endpoint_attempt_outcomes_total";
    let series: Vec<&str> = lines_of(&text, name);
    assert_eq!(series.len(), 2 * Outcome::ALL.len(), "{text}");
    for (ep, o, n) in [
        (a, "success", 2),
        (a, "timeout", 0),
        (b, "timeout", 1),
        (b, "success", 0),
    ] {
        let line = format!("{name}{{endpoint=\"{ep}\",outcome=\"{o}\"}} {n}");
        assert!(series.contains(&line.as_str()), "no {line:?} in {text}");
    }
    assert!(text.contains(&format!("# TYPE {name} counter\n")), "{text}");
    // The process-wide family counts every attempt, on or off.
    assert_eq!(m.outcome(Outcome::Success), 3);
    m.per_endpoint.enable(false);
    assert!(!m.render().contains(name));
}

#[test]
fn render_types_every_metric_once() {
    let text = Metrics::new().render();
    let mut helped = Vec::new();
    let mut typed = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap());
        } else if let Some(rest) = l.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap());
        } else {
            // Every sample belongs to the family described just above it.
            let name = l.split(['{', ' ']).next().unwrap();
            let family = typed.last().expect("a sample before any # TYPE");
            assert!(name.starts_with(family), "{l:?} after # TYPE {family}");
        }
    }
    assert_eq!(helped, typed);
    let unique: std::collections::HashSet<_> = typed.iter().collect();
    assert_eq!(unique.len(), typed.len(), "{typed:?}");
    for (name, kind) in [
        ("hookd_deliveries_pending", "gauge"),
        ("hookd_deliveries_in_flight", "gauge"),
        ("hookd_attempts_total", "counter"),
        ("hookd_attempt_outcomes_total", "counter"),
        ("hookd_delivery_lag_seconds", "histogram"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {text}"
        );
    }
}

#[test]
fn gauges_stop_at_zero() {
    let m = Metrics::new();
    inc(&m.deliveries_pending, 2);
    dec(&m.deliveries_pending, 3);
    assert_eq!(m.deliveries_pending.load(Ordering::Relaxed), 0);
}
