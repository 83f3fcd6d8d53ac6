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
