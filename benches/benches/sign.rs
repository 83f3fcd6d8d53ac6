//! Signing cost: the HMAC over bodies of a few sizes, parsing a `whsec_` secret, and the whole
//! per-delivery CPU work before the network (envelope + signed headers).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hookd_benches::{sample_event, DATA, SECRET};
use hookd_sender::deliver::{envelope, signed_headers};
use hookd_sender::sign::{sign, SigningKey};

const MSG_ID: &str = "evt_01HZYQ8M4X2V7K9N3B5C6D7E8F";
const TS: i64 = 1_746_723_690;

/// What is timed is the real thing: the Standard Webhooks test vector signs as published, and a
/// delivery's envelope and headers carry the event and that signature.
fn check_what_is_timed(key: &SigningKey) {
    let vector = sign(
        key,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(vector, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let event = sample_event();
    let body = envelope(&event);
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["id"], event.id.as_str());
    assert_eq!(
        parsed["data"],
        serde_json::from_str::<serde_json::Value>(DATA).unwrap()
    );
    let headers = signed_headers(key, &event.id, TS, &body).unwrap();
    assert_eq!(headers["webhook-id"], event.id.as_str());
    assert_eq!(headers["webhook-timestamp"], TS.to_string().as_str());
    assert_eq!(
        headers["webhook-signature"],
        sign(key, &event.id, TS, &body).as_str()
    );
}

fn bench_sign(c: &mut Criterion) {
    let key = SigningKey::from_secret(SECRET).unwrap();
    check_what_is_timed(&key);

    let mut g = c.benchmark_group("sign");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in [256usize, 1024, 16 * 1024] {
        let body = vec![b'x'; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("body_{size}"), |b| {
            b.iter(|| sign(&key, black_box(MSG_ID), black_box(TS), black_box(&body)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("per_delivery");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    g.bench_function("key_from_secret", |b| {
        b.iter(|| SigningKey::from_secret(black_box(SECRET)).unwrap())
    });
    let event = sample_event();
    assert!((250..350).contains(&envelope(&event).len()));
    // What `Sender::send` does before the network, given a parsed key.
    g.bench_function("envelope_and_signed_headers", |b| {
        b.iter(|| {
            let body = envelope(black_box(&event));
            let headers = signed_headers(&key, &event.id, black_box(TS), &body).unwrap();
            (body, headers)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
