//! The send path against a local receiver: a bare pooled hyper-util client vs hookd's
//! `HttpClient` with the envelope and signature built per request (a delivery minus storage).
//!
//! The receiver is `hookd_testkit`'s, counting only and answering `204`, on its own runtime
//! (threads named `bench-recv`). Every iteration sends a batch of [`BATCH`] concurrent
//! requests so the pool keeps [`BATCH`] connections busy.
//!
//! Wall time on a small shared machine is noisy, so after each case the CPU time per request is
//! printed too, split into client and receiver runtime threads. It is read from
//! `/proc/self/task/*/stat` (Linux; 100 ticks/s) over the whole case, warm-up included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::header::{HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use hookd_benches::{sample_event, SECRET};
use hookd_sender::client::ClientConfig;
use hookd_sender::deliver::{envelope, signed_headers};
use hookd_sender::policy::TargetPolicy;
use hookd_sender::sign::SigningKey;
use hookd_sender::HttpClient;
use hookd_testkit::{Receiver, Record};
use hookd_types::time::now_ms;

/// Concurrent requests per iteration.
const BATCH: usize = 64;

/// Names of the client and receiver runtimes' threads.
const CLIENT_THREAD: &str = "bench-client";
const RECV_THREAD: &str = "bench-recv";
/// Fewest requests for which a CPU-per-request figure is printed.
const MIN_REQUESTS_FOR_CPU: u64 = 10_000;
/// Clock ticks per second of `/proc/*/stat` times (USER_HZ).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds used so far by the (client, receiver) runtimes' threads, from
/// `/proc/self/task/*/stat`; `None` where that is unavailable. The main thread (criterion's own
/// analysis) is left out. Threads that exited are not counted, which is fine here: the runtimes'
/// threads live as long as the benchmark.
fn cpu_split() -> Option<(f64, f64)> {
    let (mut client, mut recv) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(stat) = std::fs::read_to_string(task.ok()?.path().join("stat")) else {
            continue;
        };
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let comm = &stat[open + 1..close];
        // After the comm: state is field 3, utime and stime are fields 14 and 15.
        let mut fields = stat[close + 2..].split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        if comm.starts_with(RECV_THREAD) {
            recv += utime + stime;
        } else if comm.starts_with(CLIENT_THREAD) {
            client += utime + stime;
        }
    }
    Some((client as f64 / TICKS_PER_SEC, recv as f64 / TICKS_PER_SEC))
}

/// Runs `case` and prints its CPU time per request (`requests` counts what it sent).
fn with_cpu_report(name: &str, requests: &AtomicU64, case: impl FnOnce()) {
    let before = (cpu_split(), requests.load(Ordering::Relaxed));
    case();
    let after = (cpu_split(), requests.load(Ordering::Relaxed));
    if let ((Some((c0, r0)), n0), (Some((c1, r1)), n1)) = (before, after) {
        // At 100 ticks/s a figure needs many requests (quick `--test` mode sends one batch).
        if n1 - n0 < MIN_REQUESTS_FOR_CPU {
            return;
        }
        let n = (n1 - n0) as f64;
        eprintln!(
            "send/{name}: cpu per request: client {:.1} us, receiver {:.1} us ({} requests)",
            (c1 - c0) * 1e6 / n,
            (r1 - r0) * 1e6 / n,
            n1 - n0
        );
    }
}

/// Starts the receiver on `rt`: every request is read to its end, counted and answered `204`.
fn serve(rt: &Runtime) -> Receiver {
    rt.block_on(Receiver::builder().record(Record::Counts).start())
        .expect("start the receiver")
}

/// Runs `iters` batches of [`BATCH`] concurrent calls of `one` on `rt` and returns the time
/// taken. The loop itself runs on a worker, so the calling thread only waits.
fn run_batches<F, Fut>(rt: &Runtime, sent: &AtomicU64, iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let elapsed = rt
        .block_on(rt.spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                let mut set = JoinSet::new();
                for _ in 0..BATCH {
                    set.spawn(one());
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap();
                }
            }
            start.elapsed()
        }))
        .unwrap();
    sent.fetch_add(iters * BATCH as u64, Ordering::Relaxed);
    elapsed
}

fn bench_send(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let recv_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(RECV_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let recv = serve(&recv_rt);
    let sent = AtomicU64::new(0);
    let uri: Uri = recv.url("/hook").parse().unwrap();
    let event = Arc::new(sample_event());

    // The bare client sends the very same bytes and headers, built once.
    let key = SigningKey::from_secret(SECRET).unwrap();
    let body = Bytes::from(envelope(&event));
    let mut headers = signed_headers(&key, &event.id, (now_ms() / 1000) as i64, &body).unwrap();
    headers.insert(USER_AGENT, HeaderValue::from_static("hookd-bench"));
    let headers: Arc<HeaderMap> = Arc::new(headers);

    let bare: Client<HttpConnector, Full<Bytes>> = {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(BATCH)
            .build(http)
    };
    let hookd = {
        let _guard = rt.enter();
        HttpClient::new(ClientConfig {
            timeout: Duration::from_secs(10),
            policy: TargetPolicy {
                allow_private: true,
                require_https: false,
            },
            pool_idle_per_host: BATCH,
            extra_roots: Vec::new(),
        })
    };

    let mut g = c.benchmark_group("send");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(BATCH as u64));

    with_cpu_report("bare_hyper", &sent, || {
        g.bench_function("bare_hyper", |b| {
            b.iter_custom(|iters| {
                let (client, uri, body, headers) =
                    (bare.clone(), uri.clone(), body.clone(), headers.clone());
                run_batches(&rt, &sent, iters, move || {
                    let (client, uri, body, headers) =
                        (client.clone(), uri.clone(), body.clone(), headers.clone());
                    async move {
                        let mut req = Request::new(Full::new(body));
                        *req.method_mut() = Method::POST;
                        *req.uri_mut() = uri;
                        *req.headers_mut() = (*headers).clone();
                        let resp = client.request(req).await.unwrap();
                        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
                        resp.into_body().collect().await.unwrap();
                    }
                })
            })
        });
    });

    // What `Sender::send` does per delivery: parse the URL and the secret, build the envelope,
    // sign it, POST it through the policy-checking, timeout-bounded client.
    let url = uri.to_string();
    with_cpu_report("hookd_client", &sent, || {
        g.bench_function("hookd_client", |b| {
            b.iter_custom(|iters| {
                let (client, url, event) = (hookd.clone(), url.clone(), event.clone());
                run_batches(&rt, &sent, iters, move || {
                    let (client, url, event) = (client.clone(), url.clone(), event.clone());
                    async move {
                        let uri: Uri = url.parse().unwrap();
                        let key = SigningKey::from_secret(SECRET).unwrap();
                        let body = envelope(&event);
                        let ts = (now_ms() / 1000) as i64;
                        let headers = signed_headers(&key, &event.id, ts, &body).unwrap();
                        let r = client.post(&uri, headers, Bytes::from(body)).await.unwrap();
                        assert_eq!(r.status, 204);
                    }
                })
            })
        });
    });

    // hookd's client with the bare client's prebuilt request: isolates the client from signing.
    with_cpu_report("hookd_client_presigned", &sent, || {
        g.bench_function("hookd_client_presigned", |b| {
            b.iter_custom(|iters| {
                let (client, uri, body, headers) =
                    (hookd.clone(), uri.clone(), body.clone(), headers.clone());
                run_batches(&rt, &sent, iters, move || {
                    let (client, uri, body, headers) =
                        (client.clone(), uri.clone(), body.clone(), headers.clone());
                    async move {
                        let r = client.post(&uri, (*headers).clone(), body).await.unwrap();
                        assert_eq!(r.status, 204);
                    }
                })
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench_send);
criterion_main!(benches);
