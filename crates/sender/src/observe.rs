//! What the sender tells the process metrics, one call per point of the attempt path, so the
//! attempt logic in [`crate::deliver`] carries single lines.

use hookd_types::metrics::{dec, Outcome, METRICS};
use hookd_types::time::now_ms;
use hookd_types::{DeliveryStatus, EndpointId};

use crate::client::{Response, SendError};

/// An attempt's outcome is recorded and its delivery (to `endpoint`) is now `status`: counts
/// the outcome, times the request (if one was sent), and a delivery that is over leaves the
/// pending gauge.
pub(crate) fn attempt(
    result: &Result<Response, SendError>,
    endpoint: EndpointId,
    status: DeliveryStatus,
) {
    let (outcome, latency) = match result {
        Ok(r) => (Outcome::of_status(r.status), r.latency),
        Err(e) => (Outcome::of_error(e.kind), e.latency),
    };
    METRICS.attempted(endpoint, outcome, latency);
    if matches!(
        status,
        DeliveryStatus::Delivered | DeliveryStatus::DeadLettered
    ) {
        dec(&METRICS.deliveries_pending, 1);
    }
}

/// The endpoint answered a request for an event accepted at `created_at_ms`: a 2xx delivers
/// it, and the time since goes into the lag histogram.
pub(crate) fn answered(result: &Result<Response, SendError>, created_at_ms: u64) {
    if let Ok(r) = result {
        if Outcome::of_status(r.status) == Outcome::Success {
            METRICS
                .delivery_lag_seconds
                .observe_ms(created_at_ms, now_ms());
        }
    }
}
