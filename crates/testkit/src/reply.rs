//! What the receiver does with a request to a path: [`Reply`] is the script, [`Action`] what one
//! request gets once its number on the path is known.
//!
//! New behaviours (a share of 5xx, 429 with `Retry-After` after N, ...) are new [`Reply`]
//! variants mapped to the same few actions in [`Reply::action`].

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
