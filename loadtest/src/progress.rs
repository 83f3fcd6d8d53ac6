//! The live progress line on stderr: rate, done (of the total), in flight, errors, elapsed and
//! ETA, refreshed once a second by the sampler. Shown only when stderr is a terminal (redrawn in
//! place) or when `--progress` asks for it (one line per second, for logs).

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How the progress line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Off,
    /// Redrawn in place (`\r`, clear to end of line): stderr is a terminal.
    InPlace,
    /// One line per refresh: `--progress` with stderr not a terminal.
    Lines,
}

impl Show {
    /// In place on a terminal; else lines if `--progress`, else nothing.
    pub fn choose(flag: bool) -> Show {
        Show::pick(flag, std::io::stderr().is_terminal())
    }

    fn pick(flag: bool, tty: bool) -> Show {
        match (tty, flag) {
            (true, _) => Show::InPlace,
            (false, true) => Show::Lines,
            (false, false) => Show::Off,
        }
    }

    /// Draws `line` (no-op when off).
    pub fn draw(self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = match self {
            Show::Off => Ok(()),
            Show::InPlace => write!(err, "\r{line}\x1b[K"),
            Show::Lines => writeln!(err, "{line}"),
        };
        let _ = err.flush();
    }

    /// Ends an in-place line so what follows starts on a fresh one.
    pub fn finish(self) {
        if self == Show::InPlace {
            eprintln!();
        }
    }
}

/// What one progress line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress<'a> {
    pub label: &'a str,
    /// Per second, over the last few seconds.
    pub rate: f64,
    pub unit: &'a str,
    pub done: u64,
    pub total: Option<u64>,
    pub in_flight: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// The run's own end (a `--duration`), when it is bounded by time rather than by count.
    pub ends_in: Option<Duration>,
}

impl Progress<'_> {
    /// Time left: the time bound if there is one, else what is left of the total at `rate`.
    pub fn eta(&self) -> Option<Duration> {
        if let Some(left) = self.ends_in {
            return Some(left);
        }
        let left = self.total?.saturating_sub(self.done);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        (self.rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / self.rate))
    }

    pub fn line(&self) -> String {
        let done = match self.total {
            Some(t) if t > 0 => format!(
                "{}/{} ({:.0}%)",
                count(self.done),
                count(t),
                (self.done as f64 * 100.0 / t as f64).min(100.0)
            ),
            _ => count(self.done),
        };
        format!(
            "[{}] {} {}  done {}  in flight {}  errors {}  elapsed {}  ETA {}",
            self.label,
            count_f(self.rate),
            self.unit,
            done,
            count(self.in_flight),
            count(self.errors),
            clock(self.elapsed),
            self.eta().map(clock).unwrap_or_else(|| "?".into()),
        )
    }
}

/// 999, 1.2k, 45.0k, 1.20M: short and of a steady width.
pub fn count(n: u64) -> String {
    count_f(n as f64)
}

fn count_f(x: f64) -> String {
    let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
    if x < 1_000.0 {
        format!("{x:.0}")
    } else if x < 999_950.0 {
        format!("{:.1}k", x / 1e3)
    } else if x < 999_995_000.0 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.2}G", x / 1e9)
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64, total: Option<u64>, rate: f64) -> Progress<'static> {
        Progress {
            label: "fanout",
            rate,
            unit: "deliveries/s",
            done,
            total,
            in_flight: 2_300,
            errors: 3,
            elapsed: Duration::from_secs(12),
            ends_in: None,
        }
    }

    #[test]
    fn line_shows_rate_done_in_flight_errors_and_eta() {
        assert_eq!(
            p(45_000, Some(100_000), 5_000.0).line(),
            "[fanout] 5.0k deliveries/s  done 45.0k/100.0k (45%)  in flight 2.3k  errors 3  \
             elapsed 0:12  ETA 0:11"
        );
        // No total: no percentage, no ETA.
        assert_eq!(
            p(999, None, 12.4).line(),
            "[fanout] 12 deliveries/s  done 999  in flight 2.3k  errors 3  elapsed 0:12  ETA ?"
        );
    }

    #[test]
    fn eta_from_rate_or_time_bound() {
        assert_eq!(p(10, Some(100), 0.0).eta(), None);
        assert_eq!(p(100, Some(100), 0.0).eta(), Some(Duration::ZERO));
        assert_eq!(p(0, Some(100), 4.0).eta(), Some(Duration::from_secs(25)));
        let bounded = Progress {
            ends_in: Some(Duration::from_secs(90)),
            ..p(5, None, 1.0)
        };
        assert!(bounded.line().ends_with("ETA 1:30"), "{}", bounded.line());
    }

    #[test]
    fn counts_and_clocks() {
        let got: Vec<String> = [0, 999, 1_000, 12_345, 999_949, 999_950, 1_234_567]
            .into_iter()
            .map(count)
            .collect();
        assert_eq!(
            got,
            ["0", "999", "1.0k", "12.3k", "999.9k", "1.00M", "1.23M"]
        );
        assert_eq!(count_f(f64::NAN), "0");
        assert_eq!(clock(Duration::from_secs(59)), "0:59");
        assert_eq!(clock(Duration::from_secs(61)), "1:01");
        assert_eq!(clock(Duration::from_secs(3_725)), "1:02:05");
    }

    #[test]
    fn shown_on_a_terminal_or_when_asked() {
        assert_eq!(Show::pick(false, true), Show::InPlace);
        assert_eq!(Show::pick(true, true), Show::InPlace);
        assert_eq!(Show::pick(true, false), Show::Lines);
        assert_eq!(Show::pick(false, false), Show::Off);
    }
}
