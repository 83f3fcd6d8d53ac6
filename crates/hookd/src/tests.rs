//! The OpenAPI document lists every route the daemon mounts, with exactly its methods, and
//! nothing else.

use std::collections::{BTreeMap, BTreeSet};

use hookd_api::openapi::{document, to_json, Site};

/// `(METHOD, path)` of every route in `router`, read from its `Debug` text: axum offers no other
/// way to list routes. The text names each route's id, its `Allow` methods and its path; should
/// its shape change, this finds no route and the test below fails saying so.
fn routes_of(router: &impl std::fmt::Debug) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    // The routes proper; the fallback router comes after.
    let text = text.split("fallback_router:").next().unwrap_or_default();
    let mut methods: BTreeMap<&str, &str> = BTreeMap::new();
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    for chunk in text.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): ") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix('"') {
            paths.insert(id, path.split('"').next().unwrap_or_default());
        } else if let Some((_, allow)) = rest.split_once("allow_header: Bytes(b\"") {
            methods.insert(id, allow.split('"').next().unwrap_or_default());
        }
    }
    let mut out = BTreeSet::new();
    for (id, path) in paths {
        let allow = methods
            .get(id)
            .unwrap_or_else(|| panic!("{path}: no methods"));
        for m in allow.split(',').filter(|m| *m != "HEAD") {
            out.insert((m.to_owned(), path.to_owned()));
        }
    }
    out
}

fn documented(site: &Site) -> BTreeSet<(String, String)> {
    let doc = to_json(&document(site));
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in [
            "get", "post", "put", "patch", "delete", "options", "head", "trace",
        ] {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_in_the_document_and_nothing_else() {
    let site = Site {
        event_types: vec!["job.completed".into()],
        pages: hookd_ui::pages(),
    };
    // What `run` mounts, part by part.
    let parts = [
        routes_of(&hookd_ingest::routes()),
        routes_of(&hookd_api::routes()),
        routes_of(&hookd_api::ops::routes()),
        routes_of(&hookd_api::openapi::router(&site)),
        routes_of(&hookd_ui::router::<()>()),
    ];
    for (i, p) in parts.iter().enumerate() {
        assert!(
            !p.is_empty(),
            "part {i}: no route read from axum's Debug text"
        );
    }
    let served: BTreeSet<_> = parts.into_iter().flatten().collect();
    let listed = documented(&site);
    let missing: Vec<_> = served.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "served but not in the document: {missing:?}"
    );
    let extra: Vec<_> = listed.difference(&served).collect();
    assert!(
        extra.is_empty(),
        "in the document but not served: {extra:?}"
    );
}

#[test]
fn reads_routes_and_methods_from_a_router() {
    use axum::routing::{get, post};
    let r: axum::Router = axum::Router::new()
        .route("/a", get(|| async {}).post(|| async {}))
        .route("/b/{id}", post(|| async {}));
    let want: BTreeSet<(String, String)> = [("GET", "/a"), ("POST", "/a"), ("POST", "/b/{id}")]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(routes_of(&r), want);
}
