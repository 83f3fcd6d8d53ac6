//! The config loader: any text as the user's file, merged over the built-in defaults and
//! validated. Must never panic; every failure is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `ca_file` names a file to read: the fuzzer must not make the loader read /dev/zero.
    if text.contains("ca_file") {
        return;
    }
    match hookd::config::load_text(Some(("fuzz.toml", text)), |_| None) {
        Ok(c) => {
            assert!(c.server.max_json_depth >= 1);
            assert!(c.server.max_header_bytes >= hookd::config::MIN_HEADER_BYTES);
            assert!(!c.server.header_read_timeout.is_zero());
            assert!(c.server.max_connections >= 1);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});
