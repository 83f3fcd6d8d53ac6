//! The outcome of one attempt, as the `outcome` label of `hookd_attempt_outcomes_total`.

use crate::ErrorKind;

/// A small fixed set, so the label never grows: HTTP answers by class, failures by what broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A 2xx.
    Success,
    Http4xx,
    Http5xx,
    /// Any other status that is not 2xx (1xx, 3xx: redirects are not followed).
    HttpOther,
    /// No response within `[sender] timeout`.
    Timeout,
    /// No connection: refused, unreachable, connect timeout.
    ConnectError,
    TlsError,
    /// The name did not resolve.
    DnsError,
    /// The connection broke mid-exchange, or the event could not be read.
    IoError,
    /// Nothing was sent: the endpoint is disabled or deleted, or its URL is refused by policy.
    NotSent,
}

impl Outcome {
    /// Every outcome, in rendering order; `Outcome::X as usize` is its index.
    pub const ALL: [Outcome; 10] = [
        Self::Success,
        Self::Http4xx,
        Self::Http5xx,
        Self::HttpOther,
        Self::Timeout,
        Self::ConnectError,
        Self::TlsError,
        Self::DnsError,
        Self::IoError,
        Self::NotSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Http4xx => "http_4xx",
            Self::Http5xx => "http_5xx",
            Self::HttpOther => "http_other",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::TlsError => "tls_error",
            Self::DnsError => "dns_error",
            Self::IoError => "io_error",
            Self::NotSent => "not_sent",
        }
    }

    /// The outcome of an answered request.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            400..=499 => Self::Http4xx,
            500..=599 => Self::Http5xx,
            _ => Self::HttpOther,
        }
    }

    /// The outcome of an attempt that got no answer.
    pub fn of_error(kind: ErrorKind) -> Self {
        match kind {
            // An answer with a status is classified by `of_status`; this is only a fallback.
            ErrorKind::HttpStatus => Self::HttpOther,
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::Connect => Self::ConnectError,
            ErrorKind::Tls => Self::TlsError,
            ErrorKind::Dns => Self::DnsError,
            ErrorKind::Io => Self::IoError,
            ErrorKind::ForbiddenTarget
            | ErrorKind::InvalidUrl
            | ErrorKind::EndpointDisabled
            | ErrorKind::EndpointDeleted => Self::NotSent,
        }
    }
}
