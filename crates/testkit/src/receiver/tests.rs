use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::*;
use crate::reply::{AfterCut, Answer};

const LONG: Duration = Duration::from_secs(20);

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

type Answered = (StatusCode, http::HeaderMap, Bytes);

async fn send(
    rx: &Receiver,
    method: Method,
    path: &str,
    body: &'static str,
) -> Result<Answered, String> {
    let req = Request::builder()
        .method(method)
        .uri(rx.url(path))
        .header("webhook-id", "msg_1")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = client().request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[tokio::test]
async fn records_and_answers_as_scripted() {
    let rx = Receiver::start().await;
    rx.script(
        "/limited",
        Answer::status(429)
            .header("retry-after", "7")
            .body("slow down")
            .into(),
    );
    let (status, _, body) = send(&rx, Method::POST, "/plain?x=1", "one").await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::NO_CONTENT, &b""[..]));
    let (status, headers, body) = send(&rx, Method::POST, "/limited", "two").await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(&body[..], b"slow down");

    let reqs = rx.wait_for(2, LONG).await;
    assert_eq!(reqs.len(), 2, "{}", describe(&reqs));
    assert_eq!(reqs[0].path, "/plain");
    assert_eq!(reqs[0].query.as_deref(), Some("x=1"));
    assert_eq!(reqs[0].body_str(), "one");
    assert_eq!((reqs[0].status, reqs[1].status), (204, 429));
    assert_eq!(reqs[1].webhook_id(), "msg_1");
    assert_eq!(rx.requests_to("/limited").len(), 1);
    let c = rx.counts();
    assert_eq!((c.requests, c.unique_ids, c.deliveries), (2, 1, 2));
    assert_eq!(c.body_bytes, 6);
}

#[tokio::test]
async fn fail_then_ok_counts_requests_per_path() {
    let rx = Receiver::start().await;
    rx.script(
        "/flaky",
        Reply::FailThenOk {
            fails: 2,
            fail_status: 503,
            ok_status: 200,
        },
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            send(&rx, Method::POST, "/flaky", "")
                .await
                .unwrap()
                .0
                .as_u16(),
        );
        // Another path does not move the count of /flaky.
        send(&rx, Method::POST, "/other", "").await.unwrap();
    }
    assert_eq!(got, vec![503, 503, 200]);
    let nth: Vec<usize> = rx.requests_to("/flaky").iter().map(|r| r.nth).collect();
    assert_eq!(nth, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_hanging_request_is_recorded_before_any_answer() {
    let rx = Receiver::start().await;
    rx.script("/hang", Reply::Hang);
    let url = rx.url("/hang");
    let pending = tokio::spawn(async move {
        let req = Request::post(url).body(Full::new(Bytes::new())).unwrap();
        client().request(req).await
    });
    let reqs = rx.wait_for_path("/hang", 1, LONG).await;
    assert_eq!(reqs[0].status, 0);
    assert!(!pending.is_finished());
    // Stopping the receiver ends the held connection.
    drop(rx);
    let r = tokio::time::timeout(LONG, pending).await.unwrap().unwrap();
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn in_flight_counts_requests_until_they_are_answered_or_dropped() {
    let rx = Receiver::start().await;
    rx.script("/hang", Reply::Hang);
    send(&rx, Method::POST, "/plain", "one").await.unwrap();
    // The gauge drops before the answer is written, so an answered request is out of it.
    assert_eq!(rx.in_flight(), 0);
    let url = rx.url("/hang");
    let pending = tokio::spawn(async move {
        let req = Request::post(url).body(Full::new(Bytes::new())).unwrap();
        client().request(req).await
    });
    rx.wait_for_path("/hang", 1, LONG).await;
    assert_eq!(rx.in_flight(), 1);
    // Stopping the receiver drops the held request, and with it its count.
    let shared = rx.shared.clone();
    drop(rx);
    let deadline = tokio::time::Instant::now() + LONG;
    while shared.in_flight.load(Ordering::SeqCst) != 0 {
        assert!(tokio::time::Instant::now() < deadline, "still in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = tokio::time::timeout(LONG, pending).await.unwrap().unwrap();
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn share_and_slow_range_answer_by_their_seed() {
    let rx = Receiver::start().await;
    let share = Reply::Share {
        ok: 204,
        fail: 503,
        fail_share: 0.5,
        seed: 11,
    };
    rx.script("/share", share.clone());
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(
            send(&rx, Method::POST, "/share", "x")
                .await
                .unwrap()
                .0
                .as_u16(),
        );
    }
    let want: Vec<u16> = (1..=20).map(|n| share.action(n).status()).collect();
    assert_eq!(got, want);
    assert!(got.contains(&503) && got.contains(&204), "{got:?}");
    // Healing: a new script replaces the share; the path's count goes on.
    rx.script("/share", Reply::Status(204));
    assert_eq!(send(&rx, Method::POST, "/share", "x").await.unwrap().0, 204);
    assert_eq!(rx.requests_to("/share").last().unwrap().nth, 21);

    let (min, max) = (Duration::from_millis(20), Duration::from_millis(40));
    rx.script(
        "/slow",
        Reply::SlowRange {
            min,
            max,
            status: 200,
            seed: 5,
        },
    );
    let start = std::time::Instant::now();
    let (status, _, body) = send(&rx, Method::POST, "/slow", "x").await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"slow"[..]));
    assert!(
        start.elapsed() >= min,
        "answered after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn close_reset_and_cut_bodies_are_errors_to_the_client() {
    let rx = Receiver::start().await;
    rx.script("/close", Reply::Close);
    rx.script("/reset", Reply::Reset);
    rx.script(
        "/cut",
        Reply::Truncated {
            status: 200,
            promised: 100,
            body: Bytes::from_static(b"abc"),
            then: AfterCut::Close,
        },
    );
    for path in ["/close", "/cut"] {
        let e = send(&rx, Method::POST, path, "x").await.unwrap_err();
        assert!(!e.contains("ConnectionReset"), "{path}: {e}");
    }
    let e = send(&rx, Method::POST, "/reset", "x").await.unwrap_err();
    assert!(e.contains("ConnectionReset"), "{e}");
    assert_eq!(rx.count(), 3);
    assert_eq!(rx.connections(), 3, "each dropped connection is a new one");
}

#[tokio::test]
async fn counting_only_keeps_no_requests() {
    let rx = Receiver::builder()
        .record(Record::Counts)
        .post_only(true)
        .http1_only(true)
        .default_reply(Answer::status(200).into())
        .start()
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, _, _) = send(&rx, Method::POST, "/e0", "abcd").await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = send(&rx, Method::GET, "/e0", "").await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let c = rx
        .wait_counts("3 requests", LONG, |c| c.requests == 3)
        .await;
    assert_eq!(
        (c.body_bytes, c.non_post, c.unique_ids, c.deliveries),
        (12, 1, 1, 1)
    );
    assert!(rx.requests().is_empty());
    assert_eq!(rx.count(), 3);
}

#[tokio::test]
async fn an_observer_sees_each_request_before_its_answer() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let rx = Receiver::builder()
        .record(Record::Counts)
        .observe(crate::Observer::new(move |o| {
            let id = o.headers.get("webhook-id").map(|v| v.as_bytes().to_vec());
            log.lock()
                .unwrap()
                .push((o.path.to_owned(), o.body.to_vec(), o.status, id));
        }))
        .start()
        .await
        .unwrap();
    rx.script(
        "/busy",
        Reply::RetryAfter {
            status: 429,
            seconds: 9,
        },
    );
    let (status, headers, _) = send(&rx, Method::POST, "/busy", "one").await.unwrap();
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (StatusCode::TOO_MANY_REQUESTS, "9")
    );
    let (status, _, _) = send(&rx, Method::POST, "/ok", "two").await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = seen.lock().unwrap().clone();
    let id = Some(b"msg_1".to_vec());
    assert_eq!(
        seen,
        vec![
            ("/busy".to_owned(), b"one".to_vec(), 429, id.clone()),
            ("/ok".to_owned(), b"two".to_vec(), 204, id),
        ]
    );
}

#[tokio::test]
async fn refuses_addresses_off_the_loopback() {
    let e = Receiver::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "timed out after 5s waiting for 1 requests")]
async fn waits_give_up_at_their_deadline() {
    let rx = Receiver::start().await;
    rx.wait_for(1, Duration::from_secs(5)).await;
}
