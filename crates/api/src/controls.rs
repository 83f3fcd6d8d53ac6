//! The delivery controls of endpoint input (`rate_limit`, `fifo`): their checks, and handing
//! them to the scheduler shard that enforces them.
//!
//! Rules (docs/API.md says the same):
//! - `rate_limit.per_second` and `rate_limit.burst` are whole numbers in `1..=10000`; `burst`
//!   defaults to 1. Zero or below is a 400 naming the field.
//! - `fifo: true` starts one delivery at a time, so it cannot honour a burst: FIFO with
//!   `rate_limit.burst` above 1 is a 400 naming the field the request set (`fifo`, or
//!   `rate_limit.burst`). FIFO with a rate limit of burst 1 is fine (one at a time, at most
//!   that often), and so is FIFO with a retry schedule of its own.
//! - In a PATCH, `rate_limit: null` lifts the limit; an absent field changes nothing.

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use hookd_http::ApiError;
use hookd_scheduler::Job;
use hookd_types::{DeliveryControls, Endpoint, RateLimit};

use crate::ApiState;

/// A rate limit as the API takes it: a token bucket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RateLimitInput, example = json!({"per_second": 20, "burst": 1}))]
pub(crate) struct RateLimitIn {
    /// Attempts started per second.
    #[schema(required = true, value_type = u32, minimum = 1, maximum = 10000)]
    per_second: Option<i64>,
    /// Attempts that may start at once after a quiet spell; default 1. Must be 1 for a FIFO
    /// endpoint.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    burst: Option<i64>,
}

/// Reads a field that may be absent (outer `None`), `null` (`Some(None)`) or a value.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn number(field: &str, v: Option<i64>, default: Option<i64>) -> Result<u32, ApiError> {
    let v = v
        .or(default)
        .ok_or_else(|| ApiError::validation(format!("`{field}` is required")))?;
    match u32::try_from(v) {
        Ok(n) if (1..=RateLimit::MAX).contains(&n) => Ok(n),
        _ => Err(ApiError::validation(format!(
            "`{field}` must be 1..={}",
            RateLimit::MAX
        ))),
    }
}

/// The rate limit `input` asks for, checked.
pub(crate) fn rate_limit(input: RateLimitIn) -> Result<RateLimit, ApiError> {
    let limit = RateLimit {
        per_second: number("rate_limit.per_second", input.per_second, None)?,
        burst: number("rate_limit.burst", input.burst, Some(1))?,
    };
    // The numbers are checked above; this is the types crate's word on them.
    limit
        .check()
        .map_err(|f| ApiError::validation(format!("`rate_limit.{f}` is out of range")))?;
    Ok(limit)
}

/// Whether FIFO can honour the rest of `controls`; `fifo_given` says whether the request set
/// `fifo` (then the error names it, else the burst).
pub(crate) fn check(controls: &DeliveryControls, fifo_given: bool) -> Result<(), ApiError> {
    let burst = controls.rate_limit.map_or(1, |r| r.burst);
    if controls.fifo && burst > 1 {
        let field = if fifo_given {
            "fifo"
        } else {
            "rate_limit.burst"
        };
        return Err(ApiError::validation(format!(
            "`{field}`: a FIFO endpoint starts one delivery at a time, so its `rate_limit.burst` must be 1"
        )));
    }
    Ok(())
}

/// Hands an endpoint's controls to its shard after a change (`before`: what they were). An
/// endpoint that just turned FIFO also gets its deliveries waiting beyond the scheduler's
/// horizon handed in (before the answer), so that a head waiting long for its retry still
/// holds the line. Failing that, the change stands and the error is logged: those deliveries
/// are handed in by the horizon as it comes near, or on the next start.
pub(crate) async fn publish(state: &ApiState, before: DeliveryControls, ep: &Endpoint) {
    state.scheduler.set_controls(ep.id, ep.controls);
    if !ep.controls.fifo || before.fifo {
        return;
    }
    // The read model first catches up with every outcome recorded so far, so a delivery
    // finished meanwhile is not read back with its old deadline.
    if let Err(e) = state.outcomes.caught_up().await {
        tracing::error!(error = %e, endpoint = %ep.id, "reading a FIFO endpoint's deadlines");
        return;
    }
    let id = ep.id;
    let read = state.reads.deadlines_between(0, u64::MAX, Some(id)).await;
    match read {
        Ok(waiting) => {
            for e in waiting {
                state.scheduler.page(Job::from(e));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, endpoint = %id, "reading a FIFO endpoint's deadlines")
        }
    }
}
