//! The management API's query strings: list filters (`status`, `tenant`), cursors, `from`/`to`
//! and `limit`, decoded as axum's `Query` decodes them. Must never panic; what is accepted must
//! be in range.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = serde_urlencoded::from_bytes::<HashMap<String, String>>(data) else {
        return;
    };
    if let Ok(d) = hookd_api::deliveries::parse_query(&q) {
        assert!((1..=500).contains(&d.limit));
        assert_eq!(d.cursor.is_some(), q.contains_key("cursor"));
    }
    if let Ok((cursor, limit)) = hookd_api::endpoints::parse_list_query(&q) {
        assert!((1..=500).contains(&limit));
        if let Some(c) = cursor {
            // A cursor accepted is one the API printed: it reads back the same.
            assert_eq!(c.to_string().parse().ok(), Some(c));
        }
    }
});
