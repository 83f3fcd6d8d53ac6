//! What an endpoint's answer asks of the next attempt, beyond success or failure:
//!
//! - `429 Too Many Requests` and `503 Service Unavailable` with `Retry-After` (delta seconds or
//!   an HTTP date): the next attempt comes that much later instead of the retry schedule's delay,
//!   clamped to [[`RETRY_AFTER_MIN`], [`RETRY_AFTER_MAX`]]. It still counts as an attempt: a
//!   delivery whose schedule is used up is dead-lettered whatever the header says.
//! - `410 Gone`: the receiver says the endpoint is gone for good. The endpoint is disabled (so
//!   its other deliveries stop) and this delivery is dead-lettered.
//! - `3xx`: a failure like any other non-2xx. Redirects are never followed: the endpoint's URL is
//!   the one the SSRF policy checked.

use std::time::{Duration, SystemTime};

/// The shortest wait a `Retry-After` can ask for.
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
/// The longest wait a `Retry-After` can ask for.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Whether `status` is one whose `Retry-After` is honoured.
pub fn asks_to_wait(status: u16) -> bool {
    status == 429 || status == 503
}

/// The wait a `Retry-After` value asks for at `now`, clamped: delta seconds (`120`) or an HTTP
/// date (`Wed, 21 Oct 2015 07:28:00 GMT`; a date in the past is the shortest wait). `None` when
/// the value is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds_are_clamped() {
        let now = SystemTime::now();
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("0", now), Some(RETRY_AFTER_MIN));
        assert_eq!(retry_after("86400", now), Some(RETRY_AFTER_MAX));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn http_dates_count_from_now() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let later = "Wed, 21 Oct 2015 07:30:00 GMT";
        assert_eq!(retry_after(later, now), Some(Duration::from_secs(120)));
        // The obsolete forms HTTP still asks recipients to read.
        assert_eq!(
            retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        let past = "Tue, 20 Oct 2015 07:28:00 GMT";
        assert_eq!(retry_after(past, now), Some(RETRY_AFTER_MIN));
        let far = "Thu, 21 Oct 2055 07:28:00 GMT";
        assert_eq!(retry_after(far, now), Some(RETRY_AFTER_MAX));
    }

    #[test]
    fn anything_else_is_ignored() {
        let now = SystemTime::now();
        for v in ["", "-5", "1.5", "soon", "30s", "Wed, 21 Oct 2015"] {
            assert_eq!(retry_after(v, now), None, "{v:?}");
        }
        assert!(asks_to_wait(429) && asks_to_wait(503));
        assert!(!asks_to_wait(500) && !asks_to_wait(410) && !asks_to_wait(302));
    }
}
