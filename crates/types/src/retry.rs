//! The retry schedule: attempt `n` (1-based) that failed is followed by attempt `n + 1` after
//! `schedule[n - 1]`, jittered by up to ±`jitter` of the delay; past the end of the schedule the
//! delivery is dead-lettered.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    /// Fraction in `0.0..1.0`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = 60;
        Self {
            schedule: [30, 2 * m, 10 * m, 30 * m, 60 * m, 6 * 60 * m, 24 * 60 * m]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// Delay before the attempt that follows failed attempt `attempt` (1-based), or `None` when
    /// no attempt is left. `unit` is a uniform random number in `[0, 1)`.
    pub fn delay_after(&self, attempt: u32, unit: f64) -> Option<Duration> {
        let base = *self.schedule.get(attempt.checked_sub(1)? as usize)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }

    /// Total attempts a delivery gets before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_jitter_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(p.delay_after(1, 0.5), Some(Duration::from_secs(30)));
        let lo = p.delay_after(2, 0.0).unwrap();
        let hi = p.delay_after(2, 0.999_999).unwrap();
        assert!(lo >= Duration::from_secs(108) && hi <= Duration::from_secs(132));
        assert_eq!(p.delay_after(8, 0.5), None);
        assert_eq!(p.delay_after(0, 0.5), None);
    }

    #[test]
    fn jitter_spreads_the_delay_and_never_goes_below_zero() {
        let p = RetryPolicy {
            schedule: vec![Duration::from_millis(100)],
            jitter: 0.99,
        };
        let delays: Vec<Duration> = (0..100)
            .map(|i| p.delay_after(1, i as f64 / 100.0).unwrap())
            .collect();
        // unit 0 takes the whole jitter off, unit 0.5 none, unit -> 1 adds it all.
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        assert!((ms(delays[0]) - 1.0).abs() < 1e-3, "{:?}", delays[0]);
        assert_eq!(delays[50], Duration::from_millis(100));
        assert!((ms(delays[99]) - 197.02).abs() < 1e-3, "{:?}", delays[99]);
        assert!(delays.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
        // A jitter above 1 would make the factor negative (`mul_f64` panics on that): clamped.
        let wild = RetryPolicy {
            jitter: 1.5,
            ..p.clone()
        };
        assert_eq!(wild.delay_after(1, 0.0), Some(Duration::ZERO));
        assert_eq!(wild.delay_after(1, 0.5), Some(Duration::from_millis(100)));
        // Units outside [0, 1) are clamped, not extrapolated.
        assert_eq!(p.delay_after(1, -3.0), p.delay_after(1, 0.0));
        assert_eq!(p.delay_after(1, 7.0), p.delay_after(1, 1.0));
    }
}
