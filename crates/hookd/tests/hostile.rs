//! Hostile input, end to end against the real binary (docs/SECURITY.md, "Hostile input"): JSON
//! nested too deep, endpoint URLs that hide a private address in a numeric or IPv6 form, a
//! slowloris connection, more connections than allowed and an oversized request head.

mod common;

use std::time::Instant;

use common::raw::{closed_by_peer, connect, exchange, get_request, read_response, status_of};
use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// An event whose body nests `depth` levels: the event object, `data`, then arrays.
fn event_of_depth(id: &str, depth: usize) -> String {
    format!(
        r#"{{"type":"job.completed","id":"{id}","data":{{"a":{}}}}}"#,
        nested(depth - 2)
    )
}

#[tokio::test]
async fn json_nested_too_deep_is_refused_and_nothing_is_stored() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let api = &d.api;

    // The default limit is 64: the deepest accepted event is stored, one more level is not.
    api.post_raw("/v1/events", &event_of_depth("at_limit", 64), &[])
        .await
        .expect(202);
    api.get("/v1/events/at_limit").await.expect(200);
    for (id, depth) in [("over_limit", 65), ("very_deep", 100_000)] {
        let r = api
            .post_raw("/v1/events", &event_of_depth(id, depth), &[])
            .await;
        r.expect_error(400, "VALIDATION_ERROR");
        assert!(r.text.contains("nested deeper than 64"), "{}", r.text);
        let batch = format!("[{}]", event_of_depth(&format!("{id}_batch"), depth - 1));
        api.post_raw("/v1/events/batch", &batch, &[])
            .await
            .expect_error(400, "VALIDATION_ERROR");
        for stored in [id.to_owned(), format!("{id}_batch")] {
            api.get(&format!("/v1/events/{stored}"))
                .await
                .expect_error(404, "NOT_FOUND");
        }
    }
    // A bare 100,000-deep array is refused, not parsed.
    api.post_raw("/v1/events", &nested(100_000), &[])
        .await
        .expect_error(400, "VALIDATION_ERROR");

    // The management API: creating, changing and rotating with a deep body changes nothing.
    let deep_name = format!(
        r#"{{"name":{},"url":"http://127.0.0.1:9/x"}}"#,
        nested(100_000)
    );
    api.post_raw("/v1/endpoints", &deep_name, &[])
        .await
        .expect_error(400, "VALIDATION_ERROR");
    assert_eq!(
        api.get("/v1/endpoints").await.expect(200)["data"],
        json!([])
    );
    let (id, secret, _) = api
        .create_endpoint(
            json!({"name": "ep", "url": "http://127.0.0.1:9/x", "event_types": ["job.completed"]}),
        )
        .await;
    let deep_meta = format!(r#"{{"description":{}}}"#, nested(100_000));
    let r = api
        .send(
            hyper::Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            Some(deep_meta.as_bytes()),
            &[("content-type", "application/json")],
        )
        .await;
    r.expect_error(400, "VALIDATION_ERROR");
    api.post_raw(
        &format!("/v1/endpoints/{id}/rotate-secret"),
        &format!(r#"{{"secret":{}}}"#, nested(100_000)),
        &[],
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");
    let ep = api.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(ep.expect(200)["name"], "ep");
    assert!(!ep.text.contains(&secret), "secrets are not shown again");

    // The daemon is still serving.
    api.get("/health").await.expect(200);
}

#[tokio::test]
async fn json_depth_limit_is_configurable() {
    let (_dir, _rx, d) = setup(|c| c.set("server", "max_json_depth", "4")).await;
    d.api
        .post_raw("/v1/events", &event_of_depth("four", 4), &[])
        .await
        .expect(202);
    d.api
        .post_raw("/v1/events", &event_of_depth("five", 5), &[])
        .await
        .expect_error(400, "VALIDATION_ERROR");
    d.api
        .get("/v1/events/five")
        .await
        .expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn numeric_and_ipv6_embedded_private_urls_are_refused_and_nothing_is_stored() {
    let (_dir, _rx, d) = setup(|c| c.set("sender", "allow_private_targets", "false")).await;
    let api = &d.api;
    let (id, _, _) = api
        .create_endpoint(json!({"name": "public", "url": "https://example.com/hook", "event_types": ["job.completed"]}))
        .await;
    let hostile = [
        "http://127.0.0.1/x",
        "http://2130706433/x",
        "http://0x7f.1/x",
        "http://0x7f000001/x",
        "http://017700000001/x",
        "http://0177.0.0.1/x",
        "http://127.1/x",
        "http://127.0.1/x",
        "http://0/x",
        "http://3232235777/x",
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::ffff:7f00:1]/x",
        "http://[64:ff9b::127.0.0.1]/x",
        "http://[64:ff9b::a00:1]/x",
        "http://[2002:7f00:1::1]/x",
        "http://[2002:c0a8:101::]/x",
        "http://[::127.0.0.1]/x",
    ];
    for url in hostile {
        api.post(
            "/v1/endpoints",
            &json!({"name": "evil", "url": url, "event_types": ["job.completed"]}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
        api.patch(&format!("/v1/endpoints/{id}"), &json!({"url": url}))
            .await
            .expect_error(403, "FORBIDDEN");
    }
    // Hosts that end in a number without being an IPv4 address are not URLs at all.
    for url in [
        "http://4294967296/x",
        "http://1.2.3.256/x",
        "http://%31%32%37.0.0.1/x",
    ] {
        api.post(
            "/v1/endpoints",
            &json!({"name": "evil", "url": url, "event_types": ["job.completed"]}),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR");
    }
    let list = api.get("/v1/endpoints").await;
    let data = list.expect(200)["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", list.text);
    assert_eq!(data[0]["url"], "https://example.com/hook");
    // A numeric form of a public address is a public address.
    api.patch(
        &format!("/v1/endpoints/{id}"),
        &json!({"url": "http://134744072/x"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn numeric_private_urls_are_accepted_when_private_targets_are() {
    let (_dir, rx, d) = setup(|c| c).await;
    let port = rx
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let (_id, _, _) = d
        .api
        .create_endpoint(
            json!({"name": "local", "url": format!("http://2130706433:{port}/numeric"), "event_types": ["job.completed"]}),
        )
        .await;
    d.api.post_event(json!({"type": "job.completed"})).await;
    rx.wait_for_path("/numeric", 1, secs(30)).await;
}

#[tokio::test]
async fn slowloris_is_cut_after_the_header_timeout_while_others_are_served() {
    let (_dir, _rx, d) = setup(|c| c.set("server", "header_read_timeout", "\"2s\"")).await;
    let started = Instant::now();

    // Sends nothing at all.
    let mut silent = connect(d.addr).await;
    // Sends a head that would take minutes, a byte every 50 ms.
    let mut slow = connect(d.addr).await;
    let head = get_request("/health", &format!("x-pad: {}\r\n", "a".repeat(4000)));
    let (mut reader, mut writer) = slow.split();
    let dripping = async {
        for b in head.as_bytes() {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(millis(50)).await;
        }
    };
    let watching = async {
        let mut chunk = [0u8; 256];
        let deadline = Instant::now() + secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, tokio::io::AsyncReadExt::read(&mut reader, &mut chunk))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    };
    let serving = async {
        // Meanwhile another connection is served at once, again and again.
        for _ in 0..5 {
            let r = exchange(d.addr, &get_request("/health", "connection: close\r\n")).await;
            assert_eq!(status_of(&r.expect("a normal request is answered")), 200);
            tokio::time::sleep(millis(100)).await;
        }
    };
    let cut = tokio::select! {
        cut = watching => cut,
        _ = dripping => panic!("the whole slow head was sent without the connection being cut"),
    };
    serving.await;
    assert!(cut, "the slow connection was not closed within 30 s");
    assert!(
        started.elapsed() >= secs(2),
        "cut before the header timeout: {:?}",
        started.elapsed()
    );
    assert!(
        closed_by_peer(&mut silent, Instant::now() + secs(30)).await,
        "a connection that sends nothing stays open"
    );
    d.api.get("/health").await.expect(200);
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_until_one_closes() {
    let (_dir, _rx, d) = setup(|c| {
        c.set("server", "max_connections", "3")
            .set("server", "header_read_timeout", "\"60s\"")
    })
    .await;
    // Three connections, each served once and kept alive: they hold every slot.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(d.addr).await;
        s.write_all(get_request("/health", "").as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut s, secs(20)).await.expect("served");
        assert_eq!(status_of(&r), 200);
        held.push(s);
    }
    // A fourth is told so and closed.
    let mut extra = connect(d.addr).await;
    let r = read_response(&mut extra, secs(20))
        .await
        .expect("an over-limit connection gets an answer before it is closed");
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    let body = r.split("\r\n\r\n").nth(1).unwrap();
    assert_error_shape(&serde_json::from_str(body).unwrap(), "UNAVAILABLE", body);
    assert!(closed_by_peer(&mut extra, Instant::now() + secs(20)).await);
    // The held ones are still served.
    held[0]
        .write_all(get_request("/health", "").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        status_of(&read_response(&mut held[0], secs(20)).await.unwrap()),
        200
    );

    // Closing one frees its slot.
    drop(held.pop());
    let deadline = Instant::now() + secs(30);
    loop {
        let r = exchange(d.addr, &get_request("/health", "connection: close\r\n")).await;
        if r.as_deref().map(status_of) == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free: {r:?}");
        tokio::time::sleep(millis(50)).await;
    }
}

#[tokio::test]
async fn oversized_request_heads_are_refused_with_431() {
    let (_dir, _rx, d) = setup(|c| c.set("server", "max_header_bytes", "16384")).await;
    let fits = get_request(
        "/health",
        &format!("connection: close\r\nx-pad: {}\r\n", "a".repeat(12_000)),
    );
    assert_eq!(status_of(&exchange(d.addr, &fits).await.unwrap()), 200);
    let too_big = get_request(
        "/health",
        &format!("connection: close\r\nx-pad: {}\r\n", "a".repeat(20_000)),
    );
    let r = exchange(d.addr, &too_big).await.expect("an answer");
    assert_eq!(status_of(&r), 431, "{r}");
    // Many small headers adding up past the limit too.
    let many: String = (0..1000)
        .map(|i| format!("x-h{i}: {}\r\n", "b".repeat(20)))
        .collect();
    let r = exchange(
        d.addr,
        &get_request("/health", &format!("connection: close\r\n{many}")),
    )
    .await
    .expect("an answer");
    assert_eq!(status_of(&r), 431, "{r}");
    d.api.get("/health").await.expect(200);
}
