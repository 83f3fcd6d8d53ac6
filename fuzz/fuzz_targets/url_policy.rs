//! The endpoint URL policy: any text as a URL under each policy. Must never panic, and the
//! answers must agree: what the strict policy accepts the open one accepts, and a host that is
//! an IP address (in any form) is accepted by the strict policy only if the address is public.
#![no_main]

use hookd_sender::policy::{is_forbidden_ip, numeric_ipv4, TargetPolicy, UrlError};
use libfuzzer_sys::fuzz_target;

fn policy(allow_private: bool, require_https: bool) -> TargetPolicy {
    TargetPolicy {
        allow_private,
        require_https,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for url in [text.to_owned(), format!("http://{text}/")] {
        let strict = policy(false, false).check_url(&url);
        let open = policy(true, false).check_url(&url);
        let https = policy(false, true).check_url(&url);
        match (&strict, &open) {
            (Ok(_), Err(e)) => panic!("{url:?}: strict accepts, open refuses: {e}"),
            (Err(UrlError::Invalid(_)), Ok(_)) => panic!("{url:?}: invalid only when strict"),
            _ => {}
        }
        if https.is_ok() {
            assert!(strict.is_ok(), "{url:?}");
        }
        if let Ok(uri) = strict {
            let host = uri.host().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse() {
                assert!(!is_forbidden_ip(ip), "{url:?} reaches {ip}");
            }
            if let Ok(Some(v4)) = numeric_ipv4(host) {
                assert!(!is_forbidden_ip(v4.into()), "{url:?} reaches {v4}");
            }
        }
    }
});
