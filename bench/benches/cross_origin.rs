//! Per-request cost of the cross-origin decisions with a 100-origin allow-list.
//!
//! Target (issue 3): CORS + CSRF decision under 1 µs per request. Measured three ways:
//! - `origin/*`: parsing a request's `Origin` and looking it up in a list of 90 exact origins
//!   and 10 one-label patterns (the lookup is a hash probe plus the patterns, so the worst case
//!   is an origin that matches nothing);
//! - `csrf/*`: `CsrfConfig::evaluate` for the request kinds that do work (a cookie-carrying
//!   cross-site POST, trusted or not) and the common one that does not (a GET);
//! - `layers/*`: the `CorsLayer` + `CsrfLayer` services around an inner `service_fn`, minus
//!   `layers/baseline` (the inner service alone): what the two layers add to a request,
//!   response headers included.
//!
//! `cargo bench -p portcullis-bench --bench cross_origin -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, Method, Request, Response};
use portcullis::layers::cors::{CorsLayer, CorsPolicy};
use portcullis::layers::csrf::{CsrfConfig, CsrfLayer, CsrfMode};
use portcullis::layers::origin::{AllowedOrigins, Origin};
use tower::{Layer, Service, ServiceExt, service_fn};

/// 90 exact origins and 10 subdomain patterns.
fn hundred_origins() -> AllowedOrigins {
    let mut list = AllowedOrigins::new();
    for i in 0..90 {
        list = list
            .allow(&format!("https://app{i}.customer{i}.example"))
            .unwrap();
    }
    for i in 0..10 {
        list = list.allow(&format!("https://*.tenant{i}.example")).unwrap();
    }
    list
}

fn request(method: Method, origin: &'static str, cookie: bool, site: &'static str) -> Request<()> {
    let mut b = Request::builder()
        .method(method)
        .uri("/v1/items")
        .header("host", "api.example.com")
        .header("origin", origin);
    if cookie {
        b = b.header("cookie", "session=abc; theme=dark");
    }
    if !site.is_empty() {
        b = b.header("sec-fetch-site", site);
    }
    b.body(()).unwrap()
}

fn run<S>(rt: &tokio::runtime::Runtime, svc: &mut S, req: &Request<()>, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<Bytes>, Error = Infallible>,
{
    let reqs: Vec<Request<()>> = (0..iters)
        .map(|_| {
            let mut r = Request::new(());
            *r.method_mut() = req.method().clone();
            *r.uri_mut() = req.uri().clone();
            *r.headers_mut() = req.headers().clone();
            r
        })
        .collect();
    rt.block_on(async {
        let start = Instant::now();
        for r in reqs {
            let res = svc.ready().await.unwrap().call(r).await.unwrap();
            black_box(res);
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let allowed = hundred_origins();
    let mut g = c.benchmark_group("origin");
    for (name, origin) in [
        ("exact_hit", "https://app45.customer45.example"),
        ("pattern_hit", "https://eu.tenant9.example"),
        ("miss", "https://evil.example"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let o = Origin::parse(black_box(origin.as_bytes())).unwrap();
                black_box(allowed.allows(&o))
            })
        });
    }
    g.finish();

    let csrf = CsrfConfig::new(CsrfMode::Enforce)
        .trusted(hundred_origins())
        .api_key_header(HeaderName::from_static("x-api-key"));
    let mut g = c.benchmark_group("csrf");
    for (name, req) in [
        (
            "get_passes",
            request(Method::GET, "https://evil.example", true, "cross-site"),
        ),
        (
            "post_trusted",
            request(
                Method::POST,
                "https://app45.customer45.example",
                true,
                "cross-site",
            ),
        ),
        (
            "post_refused",
            request(Method::POST, "https://evil.example", true, "cross-site"),
        ),
        (
            "post_no_fetch_metadata_same_host",
            request(Method::POST, "https://api.example.com", true, ""),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(csrf.evaluate(black_box(&req))))
        });
    }
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inner = service_fn(|_req: Request<()>| async {
        let mut res = Response::new(Bytes::from_static(b"{}"));
        res.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let cors = CorsLayer::new(vec![Some(
        CorsPolicy::new(hundred_origins())
            .methods([Method::GET, Method::POST])
            .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static("x-correlation-id")])
            .max_age(Duration::from_secs(600))
            .credentials(true),
    )])
    .unwrap();
    let csrf = CsrfLayer::new(
        CsrfConfig::new(CsrfMode::Enforce)
            .trusted(hundred_origins())
            .api_key_header(HeaderName::from_static("x-api-key")),
    );
    let mut g = c.benchmark_group("layers");
    let get = request(
        Method::GET,
        "https://app45.customer45.example",
        true,
        "cross-site",
    );
    g.bench_function("baseline", |b| {
        let mut svc = inner;
        b.iter_custom(|iters| run(&rt, &mut svc, &get, iters))
    });
    for (name, req) in [
        ("allowed_get", get.clone()),
        (
            "allowed_cookie_post",
            request(
                Method::POST,
                "https://app45.customer45.example",
                true,
                "cross-site",
            ),
        ),
        (
            "unlisted_get",
            request(Method::GET, "https://evil.example", false, "cross-site"),
        ),
    ] {
        g.bench_function(name, |b| {
            let mut svc = cors.layer(csrf.layer(inner));
            b.iter_custom(|iters| run(&rt, &mut svc, &req, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
