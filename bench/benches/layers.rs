//! Per-request cost of the policy layers, without sockets or the proxy.
//!
//! Each benchmark drives one service stack with `ServiceExt::ready` + `Service::call` on a
//! current-thread Tokio runtime (one `block_on` per criterion sample, not per request). The
//! wrapped service is a `tower::service_fn` that answers at once with an `http::Response<Bytes>`
//! shaped like the load harness's upstream (1 KiB JSON, `Content-Type`, `Server`,
//! `X-Powered-By`, `Cache-Control`). Requests are built before the timer starts; responses are
//! dropped inside the timed loop.
//!
//! `baseline/service_fn` is that inner service alone: subtract it from the other figures to get
//! what a layer adds. No `tracing` subscriber is installed, as in a service that mounts the
//! layers without one: spans and events cost a callsite check each (the gateway, which installs
//! a JSON subscriber, is measured by `bench/load.py`).
//!
//! `cargo bench -p portcullis-bench --bench layers -- --warm-up-time 1 --measurement-time 3`

// Benchmark code: a policy that does not load is a broken benchmark, not an error to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use portcullis::PolicyLayer;
use portcullis::layers::response_posture::RoutePosture;
use portcullis::layers::{CorrelationIdLayer, ResponsePostureLayer};
use portcullis::policy::{CompileOptions, Policy, load_str};
use portcullis::routing::RoutingLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

const POLICY: &str = include_str!("../../examples/sdk-api.toml");

fn policy() -> Arc<Policy> {
    let compiled = load_str("examples/sdk-api.toml", POLICY, &CompileOptions::default())
        .expect("examples/sdk-api.toml loads");
    Arc::new(compiled.policy)
}

/// The innermost service: answers like `bench-upstream`, immediately.
fn upstream() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Bytes>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Bytes>, Infallible>>,
> + Clone {
    let body = portcullis_bench::json_body();
    service_fn(move |_req: Request<Full<Bytes>>| {
        let mut res = Response::new(body.clone());
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::SERVER, HeaderValue::from_static("bench-upstream"));
        headers.insert("x-powered-by", HeaderValue::from_static("bench"));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        std::future::ready(Ok(res))
    })
}

/// What wrk sends: `GET path HTTP/1.1` with a Host header, optionally a caller's request ID.
fn request(path: &'static str, caller_id: Option<&'static str>) -> Request<Full<Bytes>> {
    let mut builder = Request::get(path).header(header::HOST, "127.0.0.1:8080");
    if let Some(id) = caller_id {
        builder = builder.header("x-request-id", id);
    }
    builder.body(Full::default()).unwrap()
}

/// Times `iters` calls of `svc` on a current-thread runtime.
fn run<S>(
    rt: &tokio::runtime::Runtime,
    svc: &mut S,
    iters: u64,
    make: impl Fn() -> Request<Full<Bytes>>,
) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<Bytes>, Error = Infallible>,
{
    let requests: Vec<_> = (0..iters).map(|_| make()).collect();
    rt.block_on(async {
        let start = Instant::now();
        for req in requests {
            let svc = svc.ready().await.unwrap();
            black_box(svc.call(req).await.unwrap());
        }
        start.elapsed()
    })
}

fn bench_layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let policy = policy();
    let ids = &policy.correlation_id;
    let correlation = CorrelationIdLayer::new(ids.header.clone())
        .accept(ids.accept.clone())
        .max_length(ids.max_length);
    // As `PolicyLayer::new` builds them.
    let per_route = policy
        .all_routes()
        .map(|r| RoutePosture {
            insert: r.response_headers(policy.environment),
            remove: r.removed_headers(&policy).cloned().collect(),
        })
        .collect();
    let posture = ResponsePostureLayer::new(per_route);
    let routing = RoutingLayer::new(policy.clone());
    let full = PolicyLayer::new(policy.clone());

    // `/v1/users/42` falls through every route to the default one (the slowest match);
    // `/v1/account/profile` is the first route.
    let default_path = || request("/v1/users/42", None);

    let mut group = c.benchmark_group("layers");

    let mut svc = upstream();
    group.bench_function("baseline/service_fn", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });

    let mut svc = correlation.layer(upstream());
    group.bench_function("correlation_id/generated", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });
    group.bench_function("correlation_id/from_caller", |b| {
        b.iter_custom(|n| {
            run(&rt, &mut svc, n, || {
                request("/v1/users/42", Some("req_01HXK5J9N3Q8Z"))
            })
        });
    });

    let mut svc = posture.layer(upstream());
    group.bench_function("response_posture/default_route", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });

    let mut svc = routing.layer(upstream());
    group.bench_function("routing/default_route", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });
    group.bench_function("routing/first_route", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, || request("/v1/account/profile", None)));
    });
    group.bench_function("routing/rewritten_path", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, || request("/v1//account/./profile", None)));
    });

    // The "header + cache + correlation" figure: posture needs the matched route, so
    // routing is part of it; nothing else of the policy stack is.
    let mut svc = correlation.layer(posture.layer(routing.layer(upstream())));
    group.bench_function("headers_cache_correlation/default_route", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });

    let mut svc = full.layer(upstream());
    group.bench_function("policy_layer/default_route", |b| {
        b.iter_custom(|n| run(&rt, &mut svc, n, default_path));
    });
    group.bench_function("policy_layer/first_route_caller_id", |b| {
        b.iter_custom(|n| {
            run(&rt, &mut svc, n, || {
                request("/v1/account/profile", Some("req_01HXK5J9N3Q8Z"))
            })
        });
    });

    group.finish();
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
