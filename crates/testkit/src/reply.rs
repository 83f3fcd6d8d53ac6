//! What the receiver does with a request to a path: [`Reply`] is the script, [`Action`] what one
//! request gets once its number on the path is known.
//!
//! New behaviours are new [`Reply`] variants mapped to the same few actions in
//! [`Reply::action`]. (A listener that accepts connections and never reads them cannot be a
//! per-path reply, since the path is never read: that is [`crate::Silent`].) The random ones ([`Reply::Share`],
//! [`Reply::SlowRange`]) draw from their seed and the request's number on the path, so a seed
//! gives the same answers in the same order on every run.

use std::time::Duration;

use bytes::Bytes;

/// How the receiver answers requests to one path. Paths without a script answer
/// [`Reply::Status`]`(204)` unless the receiver was built with another default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Reply {
    /// Always this status, with the body `status <code>` (none for 204 and 304).
    Status(u16),
    /// `fails` answers of `fail_status` (body `fail <n>`), then `ok_status` (body `ok`).
    FailThenOk {
        fails: usize,
        fail_status: u16,
        ok_status: u16,
    },
    /// Waits `delay`, then answers `status` (body `slow`).
    Slow { delay: Duration, status: u16 },
    /// A seeded random share of failures: each request answers `fail` (body `fail <n>`) with
    /// probability `fail_share` (0.0 to 1.0), else `ok` (body `ok`). The n-th request to the
    /// path gets the same answer for the same seed.
    Share {
        ok: u16,
        fail: u16,
        fail_share: f64,
        seed: u64,
    },
    /// Waits a seeded random delay in `min..max` (`min` when the range is empty), then answers
    /// `status` (body `slow`). The n-th request to the path waits the same for the same seed.
    SlowRange {
        min: Duration,
        max: Duration,
        status: u16,
        seed: u64,
    },
    /// `status` (429 or 503 for a receiver asking to be left alone) with the header
    /// `retry-after: <seconds>` and the body `retry after <seconds>`.
    RetryAfter { status: u16, seconds: u64 },
    /// Exactly this answer: status, headers, body, after a delay.
    Respond(Answer),
    /// The n-th request to the path gets the n-th reply; the last one repeats.
    Sequence(Vec<Reply>),
    /// Sends the head with `content-length: promised` and only `body` (shorter), then cuts.
    Truncated {
        status: u16,
        promised: usize,
        body: Bytes,
        then: AfterCut,
    },
    /// Reads the request and never answers; the connection stays open until the receiver stops.
    Hang,
    /// Reads the request and closes the connection without an answer.
    Close,
    /// Reads the request and resets the connection (TCP RST) without an answer.
    Reset,
}

/// What a [`Reply::Truncated`] answer does after the partial body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCut {
    /// Closes the connection.
    Close,
    /// Sends nothing more and keeps the connection open until the receiver stops.
    Hold,
}

/// A complete answer.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Waited before answering.
    pub delay: Duration,
}

impl Answer {
    /// `status` with no headers, no body, no delay.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            ..Answer::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Answer {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

impl From<Answer> for Reply {
    fn from(a: Answer) -> Reply {
        Reply::Respond(a)
    }
}

/// What one request gets.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Answer(Answer),
    Truncated {
        status: u16,
        promised: usize,
        body: Bytes,
        then: AfterCut,
    },
    Hang,
    Close,
    Reset,
}

impl Action {
    /// The status sent, 0 when none is.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Action::Answer(a) => a.status,
            Action::Truncated { status, .. } => *status,
            Action::Hang | Action::Close | Action::Reset => 0,
        }
    }
}

/// A uniform draw in `0.0..1.0` fixed by `seed` and `nth`.
fn draw(seed: u64, nth: usize) -> f64 {
    bits53(seed, nth) as f64 / (1u64 << 53) as f64
}

/// 53 uniform random bits fixed by `seed` and `nth` (splitmix64 of both).
fn bits53(seed: u64, nth: usize) -> u64 {
    let mut z = seed ^ (nth as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z >> 11
}

/// The default body of a scripted status: none where HTTP forbids one.
fn text(status: u16, text: String) -> Bytes {
    if status == 204 || status == 304 {
        Bytes::new()
    } else {
        Bytes::from(text)
    }
}

impl Reply {
    /// The action for the `nth` (1-based) request to the path.
    pub(crate) fn action(&self, nth: usize) -> Action {
        let answer = |status: u16, body: String, delay: Duration| {
            Action::Answer(Answer {
                status,
                headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
                body: text(status, body),
                delay,
            })
        };
        match self {
            Reply::Status(s) => answer(*s, format!("status {s}"), Duration::ZERO),
            Reply::FailThenOk {
                fails,
                fail_status,
                ok_status,
            } => {
                if nth <= *fails {
                    answer(*fail_status, format!("fail {nth}"), Duration::ZERO)
                } else {
                    answer(*ok_status, "ok".to_owned(), Duration::ZERO)
                }
            }
            Reply::Slow { delay, status } => answer(*status, "slow".to_owned(), *delay),
            Reply::Share {
                ok,
                fail,
                fail_share,
                seed,
            } => {
                if draw(*seed, nth) < *fail_share {
                    answer(*fail, format!("fail {nth}"), Duration::ZERO)
                } else {
                    answer(*ok, "ok".to_owned(), Duration::ZERO)
                }
            }
            Reply::SlowRange {
                min,
                max,
                status,
                seed,
            } => {
                // In whole nanoseconds and strictly below the span: `max` itself is never drawn.
                let span = max.saturating_sub(*min).as_nanos().min(u64::MAX.into());
                let offset = (u128::from(bits53(*seed, nth)) * span) >> 53;
                let delay = *min + Duration::from_nanos(offset as u64);
                answer(*status, "slow".to_owned(), delay)
            }
            Reply::RetryAfter { status, seconds } => Action::Answer(Answer {
                status: *status,
                headers: vec![
                    ("content-type".to_owned(), "text/plain".to_owned()),
                    ("retry-after".to_owned(), seconds.to_string()),
                ],
                body: text(*status, format!("retry after {seconds}")),
                delay: Duration::ZERO,
            }),
            Reply::Respond(a) => Action::Answer(a.clone()),
            Reply::Sequence(replies) => match replies.get(nth.saturating_sub(1)).or(replies.last())
            {
                Some(r) => r.action(1),
                None => answer(204, String::new(), Duration::ZERO),
            },
            Reply::Truncated {
                status,
                promised,
                body,
                then,
            } => Action::Truncated {
                status: *status,
                promised: *promised,
                body: body.clone(),
                then: *then,
            },
            Reply::Hang => Action::Hang,
            Reply::Close => Action::Close,
            Reply::Reset => Action::Reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_then_ok_counts_per_path() {
        let r = Reply::FailThenOk {
            fails: 2,
            fail_status: 503,
            ok_status: 200,
        };
        let got: Vec<u16> = (1..=4).map(|n| r.action(n).status()).collect();
        assert_eq!(got, vec![503, 503, 200, 200]);
    }

    #[test]
    fn sequence_repeats_its_last_reply() {
        let r = Reply::Sequence(vec![Reply::Status(429), Reply::Close, Reply::Status(200)]);
        let got: Vec<u16> = (1..=5).map(|n| r.action(n).status()).collect();
        assert_eq!(got, vec![429, 0, 200, 200, 200]);
    }

    fn share(seed: u64, fail_share: f64) -> Vec<u16> {
        let r = Reply::Share {
            ok: 204,
            fail: 503,
            fail_share,
            seed,
        };
        (1..=1000).map(|n| r.action(n).status()).collect()
    }

    #[test]
    fn share_fails_a_seeded_share() {
        let a = share(7, 0.4);
        assert_eq!(a, share(7, 0.4), "same seed, same answers");
        assert_ne!(a, share(8, 0.4), "another seed, other answers");
        let fails = a.iter().filter(|s| **s == 503).count();
        assert!((300..500).contains(&fails), "{fails} of 1000 failed");
        assert_eq!(a.iter().filter(|s| **s == 204).count(), 1000 - fails);
        assert!(share(7, 0.0).iter().all(|s| *s == 204));
        assert!(share(7, 1.0).iter().all(|s| *s == 503));
    }

    fn delays(seed: u64, min: Duration, max: Duration) -> Vec<Duration> {
        let r = Reply::SlowRange {
            min,
            max,
            status: 200,
            seed,
        };
        (1..=200)
            .map(|n| match r.action(n) {
                Action::Answer(a) => {
                    assert_eq!(a.status, 200);
                    a.delay
                }
                other => panic!("not an answer: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn slow_range_draws_seeded_delays_in_range() {
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(500));
        let d = delays(3, min, max);
        assert_eq!(d, delays(3, min, max), "same seed, same delays");
        assert_ne!(d, delays(4, min, max), "another seed, other delays");
        assert!(d.iter().all(|d| (min..max).contains(d)), "{d:?}");
        let below = d
            .iter()
            .filter(|d| **d < Duration::from_millis(275))
            .count();
        assert!(
            (50..150).contains(&below),
            "{below} of 200 in the lower half"
        );
        // An empty range waits its minimum.
        assert!(delays(3, max, min).iter().all(|d| *d == max));
    }

    #[test]
    fn retry_after_names_its_seconds() {
        let Action::Answer(a) = (Reply::RetryAfter {
            status: 429,
            seconds: 30,
        })
        .action(1) else {
            panic!("not an answer")
        };
        assert_eq!(a.status, 429);
        assert!(a
            .headers
            .contains(&("retry-after".to_owned(), "30".to_owned())));
        assert_eq!(&a.body[..], b"retry after 30");
    }

    #[test]
    fn no_body_where_http_forbids_one() {
        let Action::Answer(a) = Reply::Status(204).action(1) else {
            panic!("not an answer")
        };
        assert!(a.body.is_empty());
        let Action::Answer(a) = Reply::Status(500).action(1) else {
            panic!("not an answer")
        };
        assert_eq!(&a.body[..], b"status 500");
    }
}
