//! Wall-clock helpers. Durable deadlines are unix milliseconds so they survive restarts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The last millisecond RFC 3339 can write (`9999-12-31T23:59:59.999Z`): later times are refused
/// on input and shown as this one.
pub const MAX_MS: u64 = 253_402_300_799_999;

/// `2026-05-08T17:01:30.123Z`; a time past [`MAX_MS`] (which input never holds) shows as it.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.min(MAX_MS))).to_string()
}

/// Parses RFC 3339 (`2026-05-08T17:01:30Z`) or plain unix milliseconds up to [`MAX_MS`].
pub fn parse_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return (ms <= MAX_MS).then_some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let s = rfc3339(1_746_723_690_123);
        assert_eq!(s, "2025-05-08T17:01:30.123Z");
        assert_eq!(parse_time(&s), Some(1_746_723_690_123));
        assert_eq!(parse_time("1000"), Some(1000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn times_past_year_9999_are_refused_and_never_break_formatting() {
        assert_eq!(rfc3339(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_time(&rfc3339(MAX_MS)), Some(MAX_MS));
        assert_eq!(parse_time(&MAX_MS.to_string()), Some(MAX_MS));
        assert_eq!(parse_time(&(MAX_MS + 1).to_string()), None);
        for ms in [MAX_MS + 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(rfc3339(ms), "9999-12-31T23:59:59.999Z");
        }
    }
}
