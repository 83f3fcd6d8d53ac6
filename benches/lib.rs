//! Benchmarks live in benches/*.rs; this holds the fixtures they share.

use hookd_types::Event;

/// The Standard Webhooks test secret (a 24-byte key).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A producer's `data` object of 186 bytes: with the envelope around it, a delivery body is
/// about 300 bytes.
pub const DATA: &str = r#"{"job_id":"job_01HZYQ8M4X2V7K9N3B5C6D7E8F","status":"completed","gpu":"a100-80g","region":"eu-west-1","duration_ms":183245,"exit_code":0,"artifacts":["s3://bucket/out/model.bin"],"n":42}"#;

/// A typical event, as fan-out hands it to the sender.
pub fn sample_event() -> Event {
    Event {
        id: "evt_01HZYQ8M4X2V7K9N3B5C6D7E8F".to_owned(),
        tenant: "default".to_owned(),
        event_type: "job.completed".to_owned(),
        created_at_ms: 1_746_723_690_123,
        data: DATA.into(),
    }
}

/// An ingest request body for one event of type `job.completed` carrying [`DATA`].
pub fn ingest_body() -> String {
    format!(r#"{{"type":"job.completed","data":{DATA}}}"#)
}
