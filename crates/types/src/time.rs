//! Wall-clock helpers. Durable deadlines are unix milliseconds so they survive restarts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-05-08T17:01:30.123Z`
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses RFC 3339 (`2026-05-08T17:01:30Z`) or plain unix milliseconds.
pub fn parse_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
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
}
