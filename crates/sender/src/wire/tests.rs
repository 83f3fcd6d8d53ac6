use hookd_types::format::{Preset, PreviousSecret};
use hookd_types::EndpointId;

use super::*;

fn event(data: &str) -> Event {
    Event {
        id: "evt_1".into(),
        tenant: "t".into(),
        event_type: "deployment.running".into(),
        created_at_ms: 1_746_723_690_123,
        data: data.into(),
    }
}

fn endpoint(preset: Preset, secret: &str, previous: Option<&str>) -> Endpoint {
    let mut ep = Endpoint::new(EndpointId(1), "t", "n", "https://e.com", vec![], secret, 0);
    ep.format = preset.format();
    ep.previous_secrets.extend(previous.map(|s| PreviousSecret {
        secret: s.into(),
        expires_at_ms: 1_000,
    }));
    ep
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

#[test]
fn envelopes() {
    let ev = event(r#"{"deployment_id":"dep_1", "specs":{"price_per_hr":1.710}}"#);
    let mut f = Preset::Huddle01.format();
    f.body_json = BodyJson::Producer;
    assert_eq!(
        text(body(&f, &ev)),
        r#"{"event":"deployment.running","deployment_id":"dep_1", "specs":{"price_per_hr":1.710},"timestamp":"2025-05-08T17:01:30.123Z"}"#
    );
    f.body_json = BodyJson::Javascript;
    assert_eq!(
        text(body(&f, &ev)),
        r#"{"event":"deployment.running","deployment_id":"dep_1","specs":{"price_per_hr":1.71},"timestamp":"2025-05-08T17:01:30.123Z"}"#
    );
    assert_eq!(
        text(body(&f, &event(" { } "))),
        r#"{"event":"deployment.running","timestamp":"2025-05-08T17:01:30.123Z"}"#
    );
    assert_eq!(
        text(body(&f, &event("[1]"))),
        r#"{"event":"deployment.running","data":[1],"timestamp":"2025-05-08T17:01:30.123Z"}"#
    );
    let camel = Preset::Cortex.format();
    assert_eq!(
        text(body(&camel, &event(r#"{"a":1e2}"#))),
        r#"{"id":"evt_1","type":"deployment.running","createdAt":"2025-05-08T17:01:30.123Z","data":{"a":100}}"#
    );
    let mut raw = Preset::Standard.format();
    raw.envelope = Envelope::Raw;
    assert_eq!(text(body(&raw, &event(r#"{"a":1e2}"#))), r#"{"a":1e2}"#);
}

#[test]
fn rotation_adds_a_signature_only_where_the_scheme_has_room() {
    let body = b"{}";
    let sig = |ep: &Endpoint, now: u64| {
        let h = headers(ep, "evt_1", 1_700_000_000, body, now).unwrap();
        h.get(ep.format.signature_header.as_str())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let new = "a-new-secret-0123456789";
    let old = "an-old-secret-0123456789";
    let gpu = endpoint(Preset::Gpuai, new, Some(old));
    let during = sig(&gpu, 999);
    assert_eq!(
        during,
        format!(
            "t=1700000000,v1={},v1={}",
            hex_hmac(new, &[b"1700000000.{}"]),
            hex_hmac(old, &[b"1700000000.{}"])
        )
    );
    assert_eq!(
        sig(&gpu, 1_000),
        format!("t=1700000000,v1={}", hex_hmac(new, &[b"1700000000.{}"]))
    );
    let huddle = endpoint(Preset::Huddle01, new, Some(old));
    assert_eq!(sig(&huddle, 999), hex_hmac(new, &[body]));
    let std_new = crate::sign::generate_secret();
    let std_old = crate::sign::generate_secret();
    let standard = endpoint(Preset::Standard, &std_new, Some(&std_old));
    assert_eq!(sig(&standard, 999).split(' ').count(), 2);
    assert_eq!(sig(&standard, 1_000).split(' ').count(), 1);
}

#[test]
fn preset_headers() {
    let mut ep = endpoint(Preset::Coreweave, "a-secret-0123456789", None);
    ep.format.headers.insert("X-Static".into(), "yes".into());
    let h = headers(&ep, "evt_1", 42, b"{}", 0).unwrap();
    assert_eq!(h["x-coreweave-timestamp"], "42");
    assert_eq!(
        h["x-coreweave-signature"],
        hex_hmac("a-secret-0123456789", &[b"42.{}"]).as_str()
    );
    assert_eq!(h["x-static"], "yes");
    let gpu = endpoint(Preset::Gpuai, "a-secret-0123456789", None);
    let h = headers(&gpu, "evt_9", 42, b"{}", 0).unwrap();
    assert_eq!(h["gpuai-event-id"], "evt_9");
    assert!(h.get("webhook-id").is_none());
}

/// What the API shows for an attempt is rebuilt from the attempt's time: the same time gives
/// the same request, signature included.
#[test]
fn request_is_stamped_with_the_given_time() {
    let ep = endpoint(Preset::Coreweave, "a-secret-0123456789", None);
    let ev = event(r#"{"a":1}"#);
    let (h, body) = request(&ep, &ev, 42_999).unwrap();
    assert_eq!(body, super::body(&ep.format, &ev));
    assert_eq!(h["x-coreweave-timestamp"], "42");
    assert!(h[http::header::USER_AGENT]
        .to_str()
        .unwrap()
        .starts_with("hookd/"));
    let mut expected = headers(&ep, "evt_1", 42, &body, 42_999).unwrap();
    crate::client::add_user_agent(&mut expected);
    assert_eq!(h, expected);
    assert_eq!(request(&ep, &ev, 42_000).unwrap(), (h, body));
}
