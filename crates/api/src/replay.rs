//! Replay: the events of a time range sent again to one endpoint, as new deliveries.
//!
//! Recovery ([`crate::recovery`]) re-sends deliveries that failed; a replay makes new ones: one
//! for every event of the endpoint's tenant made in `[since, until)` that the endpoint's
//! `event_types` accept, whether or not the endpoint existed or subscribed then (a new endpoint
//! that wants yesterday's events). Each keeps its event's id, which is the `webhook-id` (and the
//! body's `id`), so a receiver that already has an event can tell.
//!
//! Durable like fan-out: the decision is appended to the outcome log
//! ([`hookd_log::Change::Replayed`], synced before the answer), the indexer applies it (fresh
//! deliveries, restored by a restart), and only then are the jobs handed to the scheduler. The
//! events are read from the store's time index (`AsyncHistoryReads::events_between`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hookd_http::error::ErrorBody;
use hookd_http::{Access, ApiError, ErrorCode, JsonBody, Principal, RouteAccess};
use hookd_log::outcome::FannedEvent;
use hookd_log::Change;
use hookd_scheduler::Job;
use hookd_types::metrics::{inc, METRICS};
use hookd_types::time::{now_ms, rfc3339};
use hookd_types::{DeliveryId, Endpoint, Scope};

use crate::keys::TimeIn;
use crate::recovery::{require_enabled, since_ms};
use crate::{endpoints, ApiState};

/// The most deliveries one replay makes; more is refused (choose a shorter range).
pub const MAX_REPLAY: usize = 100_000;

/// Events per outcome-log record: a record stays far below the journal's 16 MiB limit even
/// with the longest ids, tenants and types (about 350 bytes an event at most).
const EVENTS_PER_RECORD: usize = 1024;

pub const ACCESS: &[RouteAccess] = &[(
    "POST",
    "/v1/endpoints/{id}/replay",
    Access::Scope(Scope::DeliveriesWrite),
)];

#[derive(utoipa::OpenApi)]
#[openapi(paths(replay))]
pub struct Doc;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/endpoints/{id}/replay", post(replay))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = ReplayInput,
    example = json!({"since": "2026-05-07T00:00:00Z", "until": "2026-05-08T00:00:00Z"})
)]
struct ReplayIn {
    /// Events made at or after this time (RFC 3339 or unix milliseconds), not in the future.
    #[schema(required = true, value_type = String)]
    since: Option<TimeIn>,
    /// Events made before this time (RFC 3339 or unix milliseconds), later than `since`;
    /// default and at most: now.
    #[schema(value_type = Option<String>)]
    until: Option<TimeIn>,
}

/// What a replay did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Replayed)]
struct ReplayedView {
    /// New deliveries made, one per matching event, due now.
    scheduled: usize,
    /// The range replayed: `since` as given.
    #[schema(format = DateTime)]
    since: String,
    /// The end of the range (exclusive): `until` as given, or now if it was later or left out.
    #[schema(format = DateTime)]
    until: String,
}

/// Send the events of a time range to an endpoint again, as new deliveries: one for every event
/// of the endpoint's tenant made in `[since, until)` whose type the endpoint subscribes to now,
/// whether or not it existed or subscribed then. Each carries its event's id (`webhook-id`), so
/// a receiver can drop the ones it has. Events older than `[retention] history` are gone.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/replay",
    tag = "deliveries",
    operation_id = "replay_endpoint",
    params(
        crate::IdParam,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the call safe to retry: a second replay of this endpoint with the same key makes nothing and answers as the first did (1 to 255 printable ASCII characters, no spaces)"),
    ),
    request_body = ReplayIn,
    responses(
        (status = 202, description = "Scheduled (or, with an Idempotency-Key already used for the same request, the first answer again)", body = ReplayedView),
        (status = 400, description = "`VALIDATION_ERROR`: `since` missing, malformed or in the future, `until` malformed or not later than `since`, an unknown field, more than 100,000 events to replay, or a malformed Idempotency-Key", body = ErrorBody),
        (status = 409, description = "`CONFLICT`: the endpoint is disabled, or the Idempotency-Key was used for a different replay of this endpoint", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ReplayIn>,
) -> Result<Response, ApiError> {
    let ep = endpoints::load(&state, &caller, &id)?;
    let key = hookd_http::idempotency::key(&headers)?.map(str::to_owned);
    let request = format!("{input:?}");
    let (since, until) = range(input, now_ms())?;
    require_enabled(&ep, "replaying events to it")?;
    let answer = match key {
        Some(key) => keyed(&state, &ep, &key, request, since, until).await?,
        None => replay_now(&state, &ep, since, until).await?,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// A replay under an `Idempotency-Key`: the stored answer if the key was used for the same
/// request, a conflict if for another, else the replay, then its answer stored.
async fn keyed(
    state: &ApiState,
    ep: &Endpoint,
    key: &str,
    request: String,
    since: u64,
    until: u64,
) -> Result<serde_json::Value, ApiError> {
    // One keyed replay at a time: two requests with the same key cannot both miss the record.
    let _one = KEYED.lock().await;
    if let Some(stored) = state.reads.replay_answer(ep.id, key.to_owned()).await? {
        let stored: Keyed = serde_json::from_slice(&stored)
            .map_err(|e| internal(format!("a stored replay answer: {e}")))?;
        if stored.request != request {
            return Err(ApiError::conflict(format!(
                "Idempotency-Key {key:?} was already used for a different replay of this endpoint"
            )));
        }
        return Ok(stored.answer);
    }
    let answer = replay_now(state, ep, since, until).await?;
    let value = serde_json::to_vec(&Keyed {
        request,
        answer: answer.clone(),
    })
    .map_err(|e| internal(format!("encoding a replay answer: {e}")))?;
    state
        .reads
        .put_replay_answer(ep.id, key.to_owned(), value)
        .await?;
    Ok(answer)
}

/// A failure that is hookd's, not the caller's: logged, and answered without its detail.
fn internal(detail: String) -> ApiError {
    tracing::error!(%detail, "replay");
    ApiError::new(ErrorCode::InternalError, "internal error")
}

/// Serializes replays that carry an `Idempotency-Key` (they are rare; unkeyed ones never wait).
static KEYED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a keyed replay keeps: the request as it was understood, and the answer it got.
#[derive(Serialize, Deserialize)]
struct Keyed {
    request: String,
    answer: serde_json::Value,
}

/// Makes, records and schedules the replay's deliveries; answers what it did.
async fn replay_now(
    state: &ApiState,
    ep: &Endpoint,
    since: u64,
    until: u64,
) -> Result<serde_json::Value, ApiError> {
    let found = state
        .reads
        .events_between(
            ep.tenant.clone(),
            (since, until),
            ep.event_types.clone(),
            MAX_REPLAY,
        )
        .await?;
    if found.more {
        return Err(ApiError::validation(format!(
            "more than {MAX_REPLAY} events to replay between `since` and `until`: choose a shorter range"
        )));
    }
    let jobs = record(state, ep, found.events).await?;
    let scheduled = jobs.len();
    inc(&METRICS.deliveries_created_total, scheduled as u64);
    inc(&METRICS.deliveries_pending, scheduled as u64);
    for job in jobs {
        state.scheduler.schedule(job);
    }
    tracing::info!(endpoint = %ep.id, scheduled, since, until, "replay");
    let view = ReplayedView {
        scheduled,
        since: rfc3339(since),
        until: rfc3339(until),
    };
    serde_json::to_value(view).map_err(|e| internal(format!("a replay answer: {e}")))
}

/// `[since, until)` in unix ms, checked: `since` given and not after `now`; `until`, if given,
/// later than `since` (and cut to `now`); else `now`.
fn range(input: ReplayIn, now: u64) -> Result<(u64, u64), ApiError> {
    let since = since_ms(input.since, now)?;
    let until = match input.until {
        Some(t) => {
            let until = t.ms("until")?;
            if until <= since {
                return Err(ApiError::validation("`until` must be later than `since`"));
            }
            until.min(now)
        }
        None => now,
    };
    Ok((since, until))
}

/// Makes one delivery of each event (id, type) for `ep`, records them durably in the outcome
/// log, waits until the read model shows them, and returns their jobs.
async fn record(
    state: &ApiState,
    ep: &Endpoint,
    events: Vec<(String, String)>,
) -> Result<Vec<Job>, ApiError> {
    let mut ids = ulid::Generator::new();
    let mut jobs = Vec::with_capacity(events.len());
    let mut records = Vec::new();
    for chunk in events.chunks(EVENTS_PER_RECORD) {
        let mut fanned = Vec::with_capacity(chunk.len());
        for (event_id, event_type) in chunk {
            // Strictly increasing, so the endpoint's list shows them in event order.
            let id = ids
                .generate()
                .map_or_else(|_| DeliveryId::generate(), |u| DeliveryId(u.0));
            fanned.push(FannedEvent {
                event_id: event_id.clone(),
                tenant: ep.tenant.clone(),
                event_type: event_type.clone(),
                deliveries: vec![(id, ep.id)],
            });
            jobs.push(Job {
                delivery: id,
                endpoint: ep.id,
                // Creation time is the id's own time, as for fan-out's deliveries.
                due_ms: (id.0 >> 80) as u64,
                attempts: 0,
                // The attempt reads it from the store: a replay may be large.
                event: None,
            });
        }
        records.push(Change::Replayed { events: fanned });
    }
    let Some(last) = records.pop() else {
        return Ok(jobs);
    };
    // Every record but the last only written; the last synced, which makes those before it
    // durable too (the journal syncs a segment whole before it starts the next).
    for r in records {
        state.outcomes.record(std::slice::from_ref(&r)).await?;
    }
    let seq = state.outcomes.record_durable(&[last]).await?;
    state.outcomes.applied(seq).await?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(since: Option<TimeIn>, until: Option<TimeIn>) -> ReplayIn {
        ReplayIn { since, until }
    }

    fn message(r: Result<(u64, u64), ApiError>) -> String {
        let e = r.expect_err("refused");
        format!("{e:?}")
    }

    #[test]
    fn the_range_is_checked_and_cut_at_now() {
        let now = 1_000_000;
        let ms = |v| Some(TimeIn::Ms(v));
        assert_eq!(range(input(ms(10), None), now).unwrap(), (10, now));
        assert_eq!(range(input(ms(10), ms(20)), now).unwrap(), (10, 20));
        assert_eq!(range(input(ms(10), ms(now * 2)), now).unwrap(), (10, now));
        assert_eq!(range(input(ms(now), ms(now + 1)), now).unwrap(), (now, now));
        assert_eq!(
            range(input(ms(now), None), now).unwrap(),
            (now, now),
            "empty, not refused"
        );
        assert!(message(range(input(None, None), now)).contains("`since` is required"));
        assert!(message(range(input(ms(now + 1), None), now)).contains("future"));
        assert!(message(range(input(ms(20), ms(10)), now)).contains("`until`"));
        assert!(message(range(input(ms(20), ms(20)), now)).contains("`until`"));
        let text = Some(TimeIn::Text("yesterday".into()));
        assert!(message(range(input(text, None), now)).contains("`since`"));
        let text = Some(TimeIn::Text("soon".into()));
        assert!(message(range(input(ms(1), text), now)).contains("`until`"));
    }
}
