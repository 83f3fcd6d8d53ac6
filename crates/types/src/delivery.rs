//! A delivery is one event bound for one endpoint. It moves
//! `pending -> (retrying ->)* delivered | dead_lettered`; a manual retry puts a failed or
//! dead-lettered delivery back on the schedule.

use serde::{Deserialize, Serialize};

use crate::id::{DeliveryId, EndpointId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// At least one attempt failed; another is scheduled.
    Retrying,
    Delivered,
    /// Every scheduled attempt failed; only a manual retry sends it again.
    DeadLettered,
}

names_schema!(
    DeliveryStatus,
    DeliveryStatus::ALL,
    "pending -> (retrying ->)* delivered | dead_lettered"
);

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        Self::Pending,
        Self::Retrying,
        Self::Delivered,
        Self::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "retrying" => Self::Retrying,
            "delivered" => Self::Delivered,
            "dead_lettered" => Self::DeadLettered,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: String,
    pub endpoint_id: EndpointId,
    pub tenant: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The durable deadline of the next attempt, when scheduled.
    pub next_attempt_ms: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    pub last_status_code: Option<u16>,
}

/// Why an attempt failed. Stable strings: they appear in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The endpoint answered with a non-2xx status.
    HttpStatus,
    Timeout,
    Connect,
    Tls,
    Dns,
    /// The target resolved to an address the policy forbids (private, loopback...).
    ForbiddenTarget,
    InvalidUrl,
    /// The connection broke mid-exchange.
    Io,
    EndpointDisabled,
    EndpointDeleted,
}

names_schema!(
    ErrorKind,
    ErrorKind::ALL,
    "Why an attempt failed (`http_status`: the endpoint answered a non-2xx status)"
);

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        Self::HttpStatus,
        Self::Timeout,
        Self::Connect,
        Self::Tls,
        Self::Dns,
        Self::ForbiddenTarget,
        Self::InvalidUrl,
        Self::Io,
        Self::EndpointDisabled,
        Self::EndpointDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::ForbiddenTarget => "forbidden_target",
            Self::InvalidUrl => "invalid_url",
            Self::Io => "io",
            Self::EndpointDisabled => "endpoint_disabled",
            Self::EndpointDeleted => "endpoint_deleted",
        }
    }
}

/// What one attempt tells of its endpoint's health: the scheduler's circuit breaker and
/// adaptive concurrency act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A 429 or 503 with `Retry-After`: the endpoint asks to be left alone this long (clamped).
    AskedToWait(std::time::Duration),
    /// A 2xx.
    Delivered,
    /// Another answer from an endpoint that is up and deciding (3xx, 4xx, 429).
    Answered,
    /// A 5xx.
    ServerError,
    /// No answer: a timeout, a connection refused, reset or closed, TLS, DNS.
    Unreachable,
    /// Nothing was sent (endpoint disabled or deleted, forbidden target, event missing).
    NotSent,
}

impl Signal {
    /// The signal of an attempt that got `status`, or failed with `error` before one.
    pub fn of(status: Option<u16>, error: Option<ErrorKind>) -> Self {
        match (status, error) {
            (Some(200..=299), _) => Self::Delivered,
            (Some(500..), _) => Self::ServerError,
            (Some(_), _) => Self::Answered,
            (
                None,
                Some(
                    ErrorKind::Timeout
                    | ErrorKind::Connect
                    | ErrorKind::Tls
                    | ErrorKind::Dns
                    | ErrorKind::Io,
                ),
            ) => Self::Unreachable,
            (None, _) => Self::NotSent,
        }
    }

    /// Whether it counts towards opening the circuit breaker.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::ServerError | Self::Unreachable)
    }

    /// How it moves its endpoint's failing streak, the one auto-disable measures. The live
    /// streak (the sender's) and the durable one (the indexer's stats) both follow this.
    pub fn streak(self) -> Streak {
        match self {
            Self::NotSent => Streak::Keeps,
            Self::Delivered => Streak::Ends,
            Self::Answered | Self::AskedToWait(_) | Self::ServerError | Self::Unreachable => {
                Streak::Extends
            }
        }
    }
}

/// What one attempt does to its endpoint's failing streak ([`Signal::streak`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streak {
    /// Nothing was sent: the streak stands as it was.
    Keeps,
    /// Delivered: the streak is over.
    Ends,
    /// Any other answer, or none: the endpoint is failing (since the streak's first attempt).
    Extends,
}

/// One try of a delivery, kept forever beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<ErrorKind>,
    /// Human-readable detail of the error, if any.
    pub error_detail: String,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: String,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Largest response-body excerpt kept per attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_tell_a_failing_endpoint_from_one_that_answers() {
        assert_eq!(Signal::of(Some(204), None), Signal::Delivered);
        for s in [301, 404, 410, 429] {
            assert_eq!(
                Signal::of(Some(s), Some(ErrorKind::HttpStatus)),
                Signal::Answered
            );
        }
        assert_eq!(Signal::of(Some(503), None), Signal::ServerError);
        for k in [ErrorKind::Timeout, ErrorKind::Connect, ErrorKind::Io] {
            assert_eq!(Signal::of(None, Some(k)), Signal::Unreachable);
        }
        for k in [ErrorKind::EndpointDisabled, ErrorKind::ForbiddenTarget] {
            assert_eq!(Signal::of(None, Some(k)), Signal::NotSent);
        }
        assert!(Signal::ServerError.is_failure() && Signal::Unreachable.is_failure());
        assert!(!Signal::Answered.is_failure() && !Signal::NotSent.is_failure());
    }
}
