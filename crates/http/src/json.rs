//! A JSON body extractor whose every failure is a `VALIDATION_ERROR` or `PAYLOAD_TOO_LARGE` in the
//! envelope, with serde's message (which names the position) after the path of the offending
//! field (which serde's message alone does not name for a value of the wrong type).
//!
//! Every body is first checked for nesting depth ([`check_depth`], a loop without recursion), so
//! hostile input like a 100,000-deep array is refused before serde or anything that walks a value
//! sees it. The limit is a [`JsonLimits`] request extension set by the daemon.

use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Reads the whole body, mapping the body-limit rejection to 413.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
        } else {
            ApiError::validation(format!("could not read body: {rej}"))
        }
    })
}

/// Nesting allowed in a JSON body when the daemon sets no [`JsonLimits`].
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Limits on request bodies, put into every request's extensions by the daemon; handlers read
/// them as an extractor, or with [`JsonLimits::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects accepted: `[]` and `{}` are depth 1.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl JsonLimits {
    pub fn of(extensions: &http::Extensions) -> Self {
        extensions.get().copied().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JsonLimits {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.extensions))
    }
}

/// Refuses text whose arrays and objects nest deeper than `max_depth`. One pass, no recursion
/// and no allocation, whatever the input; brackets inside strings do not count. Anything else
/// wrong with the text is left to the parser.
///
/// Strings (most of an event's bytes) are skipped with `memchr` to their next quote or
/// backslash instead of byte by byte: a batch of 1 KiB events spent 12% of hookd's CPU here.
pub fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => match string_end(bytes, i + 1) {
                Some(end) => i = end,
                // Unterminated: no bracket after it counts; the parser says what is wrong.
                None => return Ok(()),
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::validation(format!(
                        "JSON nested deeper than {max_depth} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The position of the quote that closes the string whose text starts at `from`, if any.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[at] == b'"' {
            return Some(at);
        }
        // A backslash escapes the byte after it, whatever it is.
        from = at + 2;
    }
}

/// [`check_depth`], then the value with serde; a failure names the offending field.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    limits: JsonLimits,
) -> Result<T, ApiError> {
    check_depth(bytes, limits.max_depth)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        if e.path().iter().next().is_none() {
            ApiError::validation(format!("invalid JSON: {}", e.inner()))
        } else {
            ApiError::validation(format!("`{}`: {}", e.path(), e.inner()))
        }
    })?;
    // Trailing characters after the value are an error, as in `serde_json::from_slice`.
    de.end()
        .map_err(|e| ApiError::validation(format!("invalid JSON: {e}")))?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limits = JsonLimits::of(req.extensions());
        let bytes = read_body(req, state).await?;
        parse_json(&bytes, limits).map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_at_the_limit_passes_one_more_fails() {
        check_depth(nested(64).as_bytes(), 64).unwrap();
        let e = check_depth(nested(65).as_bytes(), 64).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.contains("64"), "{}", e.message);
        check_depth(br#"{"a":{"b":[1,{"c":[]}]}}"#, 5).unwrap();
        check_depth(br#"{"a":{"b":[1,{"c":[]}]}}"#, 4).unwrap_err();
        check_depth(b"1", 0).unwrap();
        check_depth(b"[]", 0).unwrap_err();
    }

    /// The check as it was first written, byte by byte: the fast one must agree with it.
    fn depth_ok_reference(bytes: &[u8], max_depth: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max_depth {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_byte_by_byte_check(
            text in proptest::collection::vec(
                proptest::sample::select(&b"[]{}\"\\ab,:"[..]), 0..64),
            max_depth in 0usize..6,
        ) {
            proptest::prop_assert_eq!(
                check_depth(&text, max_depth).is_ok(),
                depth_ok_reference(&text, max_depth),
                "{:?}", String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn a_backslash_at_the_very_end_is_not_read_past() {
        check_depth(b"[\"\\", 1).unwrap();
        check_depth(b"\"\\", 0).unwrap();
        check_depth(b"\"", 0).unwrap();
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let s = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        check_depth(s.as_bytes(), 1).unwrap();
        let v: serde_json::Value = parse_json(s.as_bytes(), JsonLimits { max_depth: 1 }).unwrap();
        assert!(v["a"].as_str().unwrap().starts_with("[[["));
        // An escaped backslash ends the escape: the quote after it closes the string.
        check_depth(br#"["\\", [[]]]"#, 3).unwrap();
        check_depth(br#"["\\", [[]]]"#, 2).unwrap_err();
    }

    #[test]
    fn very_deep_input_is_refused_without_recursion() {
        // Run on a small stack: neither the check nor anything after it may recurse per level.
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let deep = nested(100_000);
                let e = parse_json::<&serde_json::value::RawValue>(
                    deep.as_bytes(),
                    JsonLimits::default(),
                )
                .unwrap_err();
                assert!(e.message.contains("nested deeper"), "{}", e.message);
                let objects = "{\"a\":".repeat(100_000);
                assert!(
                    parse_json::<serde_json::Value>(objects.as_bytes(), JsonLimits::default())
                        .is_err()
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
