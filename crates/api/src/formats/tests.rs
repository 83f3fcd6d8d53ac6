use std::collections::BTreeMap;

use hookd_types::EndpointId;

use super::*;

fn endpoint(format: DeliveryFormat, secret: &str) -> Endpoint {
    let mut ep = Endpoint::new(EndpointId(1), "t", "n", "https://e.com", vec![], secret, 0);
    ep.format = format;
    ep
}

#[test]
fn a_preset_then_fields_over_it() {
    let f = FormatIn {
        preset: Some("gpuai".into()),
        headers: Some(BTreeMap::from([("X-Env".into(), "prod".into())])),
        retry_schedule: Some(vec![5, 10]),
        ..FormatIn::default()
    }
    .apply(&DeliveryFormat::default(), true)
    .unwrap();
    assert_eq!(f.preset, Preset::Gpuai);
    assert_eq!(f.signature_header, "Gpuai-Signature");
    assert_eq!(f.retry_schedule_secs, Some(vec![5, 10]));
    assert_eq!(f.headers.len(), 1);

    // A field without a preset on create: Standard Webhooks, reported as custom.
    let f = FormatIn {
        envelope: Some("raw".into()),
        ..FormatIn::default()
    }
    .apply(&DeliveryFormat::default(), true)
    .unwrap();
    assert_eq!((f.preset, f.envelope), (Preset::Custom, Envelope::Raw));

    // Changing the scheme on update resets header names it does not use.
    let f = FormatIn {
        signature_scheme: Some("body-hex".into()),
        ..FormatIn::default()
    }
    .apply(&Preset::Coreweave.format(), false)
    .unwrap();
    assert_eq!(f.scheme, Scheme::BodyHex);
    assert_eq!(f.signature_header, "webhook-signature");
    assert_eq!(f.timestamp_header, None);
    assert_eq!(f.preset, Preset::Coreweave);
}

#[test]
fn header_names_may_not_collide() {
    let err = |input: FormatIn| input.apply(&DeliveryFormat::default(), true).is_err();
    assert!(err(FormatIn {
        preset: Some("gpuai".into()),
        event_id_header: Some("gpuai-signature".into()),
        ..FormatIn::default()
    }));
    assert!(err(FormatIn {
        signature_header: Some("webhook-id".into()),
        ..FormatIn::default()
    }));
    assert!(!err(FormatIn {
        preset: Some("gpuai".into()),
        headers: Some(BTreeMap::from([(
            "Authorization".into(),
            "Bearer x".into()
        )])),
        ..FormatIn::default()
    }));
}

#[test]
fn rotation_keeps_live_secrets_only_and_at_most_three() {
    let mut ep = endpoint(Preset::Gpuai.format(), "secret-0-0123456789");
    for i in 1..=5u64 {
        rotate(&mut ep, format!("secret-{i}-0123456789"), Some(100), i * 10).unwrap();
    }
    assert_eq!(ep.secret, "secret-5-0123456789");
    let kept: Vec<&str> = ep
        .previous_secrets
        .iter()
        .map(|p| p.secret.as_str())
        .collect();
    assert_eq!(
        kept,
        [
            "secret-2-0123456789",
            "secret-3-0123456789",
            "secret-4-0123456789"
        ]
    );
    // Past every window, a rotation without overlap leaves none.
    rotate(&mut ep, "secret-6-0123456789".into(), Some(0), 10_000_000).unwrap();
    assert!(ep.previous_secrets.is_empty());
    // The default window is 24 h.
    rotate(&mut ep, "secret-7-0123456789".into(), None, 0).unwrap();
    assert_eq!(ep.previous_secrets[0].expires_at_ms, 86_400_000);
    assert!(rotate(&mut ep, "x".repeat(20), Some(MAX_OVERLAP_SECS + 1), 0).is_err());
}

#[test]
fn a_scheme_change_drops_previous_secrets_it_cannot_use() {
    let mut ep = endpoint(
        Preset::Standard.format(),
        &hookd_sender::sign::generate_secret(),
    );
    ep.previous_secrets.push(PreviousSecret {
        secret: "plain-text-secret-0123".into(),
        expires_at_ms: u64::MAX,
    });
    check_scheme_change(&mut ep).unwrap();
    assert!(ep.previous_secrets.is_empty());
    ep.format = Preset::Standard.format();
    ep.secret = "plain-text-secret-0123".into();
    assert!(check_scheme_change(&mut ep).is_err());
}
