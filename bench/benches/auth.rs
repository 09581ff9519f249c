//! Per-request cost of API-key verification (issue 4): a hot key served from the cache, and the
//! whole authentication layer around an inner `service_fn`; and of HS256 JWT verification, on
//! its own and through the same layer; and of checking a signed request (HMAC, body hash,
//! replay).
//!
//! `cargo bench -p portcullis-bench --bench auth -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis::key_store::StoreVerifier;
use portcullis::layers::auth::{ApiKeyVerifier, AuthLayer, AuthMode, RouteRequirement};
use portcullis::layers::jwt::{JwtKey, JwtVerifier};
use portcullis_store::{CachedKeyStore, KeyStore, MemoryStore, NewKey};
use tower::{Layer, Service, ServiceExt, service_fn};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn KeyStore> = Arc::new(
        CachedKeyStore::new(Arc::new(MemoryStore::new())).with_ttl(Duration::from_secs(3600)),
    );
    let key = rt.block_on(async {
        // A thousand keys, so the cache is not a one-entry map.
        for i in 0..1000 {
            store
                .create(NewKey::new("pcl", format!("tenant{i}")))
                .await
                .unwrap();
        }
        let (_, key) = store
            .create(NewKey::new("pcl", "acme").with_scopes(["read"]))
            .await
            .unwrap();
        key.expose_secret().to_owned()
    });

    c.bench_function("verify/cached_hit", |b| {
        b.iter(|| rt.block_on(async { black_box(store.verify(black_box(&key)).await.unwrap()) }))
    });
    c.bench_function("verify/malformed", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(store.verify(black_box("pcl_nope")).await.is_err()) })
        })
    });

    let verifier: Arc<dyn ApiKeyVerifier> = Arc::new(StoreVerifier::new(store.clone()));
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Bytes::new()))
    });
    let layer = AuthLayer::new(
        vec![RouteRequirement {
            mode: AuthMode::Required,
            api_key: true,
            signed_only: false,
            query_token: None,
            jwt: false,
            scopes: vec!["read".into()],
            require_registered: false,
        }],
        Some(verifier),
        "pcl",
    );
    let mut group = c.benchmark_group("layer");
    for (name, with_layer) in [("baseline", false), ("api_key_required", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let reqs: Vec<Request<Full<Bytes>>> = (0..iters)
                    .map(|_| {
                        Request::get("/v1/things")
                            .header("x-api-key", key.as_str())
                            .body(Full::default())
                            .unwrap()
                    })
                    .collect();
                rt.block_on(async {
                    let start = Instant::now();
                    if with_layer {
                        let mut svc = layer.layer(inner);
                        for r in reqs {
                            black_box(svc.ready().await.unwrap().call(r).await.unwrap());
                        }
                    } else {
                        let mut svc = inner;
                        for r in reqs {
                            black_box(svc.ready().await.unwrap().call(r).await.unwrap());
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// HS256 verification per request: the verifier alone (signature, `exp`/`nbf`/`iss`/`aud`,
/// maximum lifetime, claim mapping), a token with a bad signature, and the whole
/// authentication layer with a JWT-only route against the same baseline as above.
fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secret = b"benchmark-secret-benchmark-secret-0123456789";
    let verifier = Arc::new(
        JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(secret).unwrap())
            .issuer(Some("https://auth.example.com".into()))
            .audience(vec!["api".into()])
            .max_lifetime(Some(Duration::from_secs(24 * 3600)))
            .build()
            .unwrap(),
    );
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "iss": "https://auth.example.com",
        "aud": "api",
        "sub": "user-42",
        "tenant": "acme",
        "role": "registered",
        "scope": "read write",
        "iat": now,
        "exp": now + 23 * 3600,
    });
    let sign = |key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap()
    };
    let token = sign(secret);
    let forged = sign(b"not-the-benchmark-secret-0123456789abcdefgh");

    c.bench_function("jwt/verify_hs256", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&token)).unwrap()))
    });
    c.bench_function("jwt/bad_signature", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&forged)).is_err()))
    });

    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Bytes::new()))
    });
    let layer = AuthLayer::new(
        vec![RouteRequirement {
            mode: AuthMode::Required,
            api_key: false,
            signed_only: false,
            query_token: None,
            jwt: true,
            scopes: vec!["read".into()],
            require_registered: true,
        }],
        None,
        "pcl",
    )
    .jwt(Some(verifier.clone()));
    let bearer = format!("Bearer {token}");
    let mut group = c.benchmark_group("layer");
    group.bench_function("jwt_required", |b| {
        b.iter_custom(|iters| {
            let reqs: Vec<Request<Full<Bytes>>> = (0..iters)
                .map(|_| {
                    Request::get("/v1/things")
                        .header("authorization", bearer.as_str())
                        .body(Full::default())
                        .unwrap()
                })
                .collect();
            rt.block_on(async {
                let start = Instant::now();
                let mut svc = layer.layer(inner);
                for r in reqs {
                    black_box(svc.ready().await.unwrap().call(r).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// A signed request through the signature layer: timestamp, a 1 KiB body read whole, SHA-256 of
/// it, HMAC over the canonical string, and a replay check against the in-memory guard. Every
/// request is a new signature (distinct paths), as in real traffic.
fn signature(c: &mut Criterion) {
    use portcullis::layers::signature::{
        ReplayCheck, ReplayFuture, SignatureLayer, SignatureRequired, SigningSecret,
        canonical_string, sign,
    };
    use portcullis_store::{MemoryReplayGuard, ReplayGuard, SystemClock};
    use std::time::{SystemTime, UNIX_EPOCH};

    #[derive(Debug)]
    struct Guard(MemoryReplayGuard);
    impl ReplayCheck for Guard {
        fn first_use<'a>(&'a self, id: [u8; 32], ttl: Duration) -> ReplayFuture<'a> {
            Box::pin(async move { self.0.first_use(&id, ttl).await.map_err(|e| e.to_string()) })
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = Arc::new(Guard(MemoryReplayGuard::new(
        Arc::new(SystemClock),
        MemoryReplayGuard::DEFAULT_CAPACITY,
    )));
    let layer = SignatureLayer::builder(guard).build().unwrap();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Bytes::new()))
    });
    let secret = b"acme_sig_Q2xpZW50U2VjcmV0Q2xpZW50U2VjcmV0Q2xpZW50U2U";
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut counter = 0u64;
    c.bench_function("signature/verify_1kib_body", |b| {
        b.iter_custom(|iters| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string();
            let reqs: Vec<Request<Full<Bytes>>> = (0..iters)
                .map(|_| {
                    counter += 1;
                    let target = format!("/v1/orders/{counter}");
                    let signature = sign(secret, &canonical_string(&now, "POST", &target, &body));
                    let mut req = Request::post(target)
                        .header("x-portcullis-timestamp", now.as_str())
                        .header("x-portcullis-signature", signature)
                        .body(Full::new(body.clone()))
                        .unwrap();
                    req.extensions_mut()
                        .insert(SignatureRequired::new(SigningSecret::new(secret.to_vec())));
                    req
                })
                .collect();
            rt.block_on(async {
                let start = Instant::now();
                let mut svc = layer.layer(inner);
                for r in reqs {
                    let res = svc.ready().await.unwrap().call(r).await.unwrap();
                    assert_eq!(res.status(), 200);
                    black_box(res);
                }
                start.elapsed()
            })
        })
    });
}

criterion_group!(benches, bench, jwt, signature);
criterion_main!(benches);
