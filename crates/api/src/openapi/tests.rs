use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn doc() -> Value {
    to_json(&document(&Site {
        event_types: vec!["job.completed".into(), "instance.ready".into()],
        pages: vec![("/ui".into(), "text/html; charset=utf-8")],
    }))
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

/// Every `$ref` in `v`, anywhere.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn is_openapi_3_1_and_every_reference_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "hookd");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{} references", all.len());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn operations_are_named_once_and_declare_their_path_parameters() {
    let doc = doc();
    let ops = operations(&doc);
    assert!(ops.len() > 20, "{} operations", ops.len());
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        if let Some(id) = op["operationId"].as_str() {
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        }
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{method} {path}");
    }
}

#[test]
fn v1_routes_take_the_bearer_key_and_list_the_shared_errors() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        let secured = op["security"][0].get("bearer").is_some();
        assert_eq!(secured, path.starts_with("/v1/"), "{method} {path}");
        if secured {
            for status in ["400", "401", "403", "429", "500", "503"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path}: {status}"
                );
            }
        }
        if path.contains('{') {
            assert!(op["responses"]["404"].is_object(), "{method} {path}: 404");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
}

#[test]
fn links_name_operations_that_exist_in_camel_case() {
    let doc = doc();
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    let mut n = 0;
    for (method, path, op) in operations(&doc) {
        for r in op["responses"].as_object().unwrap().values() {
            for link in r["links"].as_object().into_iter().flat_map(|l| l.values()) {
                let target = link["operationId"].as_str();
                assert!(
                    target.is_some_and(|t| ids.contains(t)),
                    "{method} {path}: {link}"
                );
                assert!(link.get("operation_id").is_none(), "{link}");
                n += 1;
            }
        }
    }
    assert!(n >= 5, "{n} links");
}

/// Found by schemathesis: a delivery read with its attempts was documented as the delivery
/// (whose `attempts` is a count) joined with the list, so no real answer matched.
#[test]
fn a_delivery_read_has_its_attempts_as_a_list() {
    let doc = doc();
    let detail = &doc["components"]["schemas"]["DeliveryDetail"];
    assert_eq!(
        detail["properties"]["attempts"]["type"], "array",
        "{detail}"
    );
    assert!(detail.get("allOf").is_none(), "{detail}");
    let list = &doc["components"]["schemas"]["Delivery"]["properties"]["attempts"];
    assert_eq!(list["type"], "integer");
}

#[test]
fn the_error_schema_lists_every_stable_code() {
    let doc = doc();
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    let codes: Vec<&str> = codes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let want: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, want);
}

#[test]
fn event_types_of_the_site_are_what_events_may_name() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [("EventInput", "type"), ("TestInput", "event_type")] {
        assert_eq!(
            schemas[schema]["properties"][field]["enum"],
            serde_json::json!(["job.completed", "instance.ready"]),
            "{schema}.{field}"
        );
    }
    assert!(
        doc["paths"]["/ui"]["get"]["responses"]["200"]["content"]["text/html; charset=utf-8"]
            .is_object()
    );
}

#[test]
fn endpoints_show_and_take_their_delivery_controls() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    for name in ["EndpointInput", "EndpointPatch", "Endpoint"] {
        let props = &schemas[name]["properties"];
        assert!(props.get("rate_limit").is_some(), "{name}: {props}");
        assert!(props.get("fifo").is_some(), "{name}: {props}");
    }
    let input = &schemas["RateLimitInput"];
    assert_eq!(
        input["required"],
        serde_json::json!(["per_second"]),
        "{input}"
    );
    assert_eq!(input["properties"]["per_second"]["minimum"], 1, "{input}");
    assert_eq!(input["properties"]["burst"]["minimum"], 1, "{input}");
    assert_eq!(input["additionalProperties"], false, "{input}");
    let shown = &schemas["RateLimit"];
    assert_eq!(
        shown["properties"]["per_second"]["maximum"], 10000,
        "{shown}"
    );
    // PATCH takes `null` to lift the limit.
    let patch = schemas["EndpointPatch"]["properties"]["rate_limit"].to_string();
    assert!(patch.contains("null"), "{patch}");
}
