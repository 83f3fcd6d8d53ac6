use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = router::<()>()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_the_policy() {
    let mut paths = vec![
        ("/ui".to_owned(), "text/html; charset=utf-8"),
        ("/ui/".to_owned(), "text/html; charset=utf-8"),
    ];
    paths.extend(ASSETS.iter().map(|(n, t, _)| (format!("/ui/{n}"), *t)));
    for (path, content_type) in paths {
        let (status, headers, body) = get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
        assert_eq!(
            headers[CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY_VALUE,
            "{path}"
        );
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn unknown_assets_are_not_found() {
    let (status, _, _) = get("/ui/secrets.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_policy_forbids_inline_and_foreign_script() {
    let csp = CONTENT_SECURITY_POLICY_VALUE;
    assert!(csp.starts_with("default-src 'self';"));
    assert!(csp.contains("script-src 'self';"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(!csp.contains("unsafe-eval"));
}

/// The page must work under the policy: no inline script or style, no handler attributes.
#[test]
fn the_page_has_no_inline_script_or_style() {
    let lower = INDEX.to_ascii_lowercase();
    for script in lower.split("<script").skip(1) {
        let tag_end = script.find('>').unwrap();
        assert!(
            script[..tag_end].contains("src="),
            "inline script in index.html"
        );
        assert!(script[tag_end + 1..].starts_with("</script>"));
    }
    assert!(!lower.contains("<style"), "inline style in index.html");
    assert!(!lower.contains(" style="), "style attribute in index.html");
    for tag in lower.split('<').skip(1) {
        let inside = &tag[..tag.find('>').unwrap()];
        assert!(
            !inside.split_whitespace().any(|attr| attr.starts_with("on")),
            "event handler attribute in <{inside}>"
        );
    }
}

/// Data from the API is untrusted: the scripts never parse strings as markup.
#[test]
fn the_scripts_never_write_markup() {
    for (name, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!body.contains(sink), "{name} uses {sink}");
        }
    }
}

/// The key is kept for the tab only.
#[test]
fn the_key_is_kept_in_session_storage_only() {
    for (name, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
        assert!(!body.contains("localStorage"), "{name}");
        assert!(!body.contains("document.cookie"), "{name}");
    }
}
