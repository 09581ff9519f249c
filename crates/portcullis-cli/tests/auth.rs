//! Tenant API keys through the real gateway: 401 vs 403, scopes, tenant isolation, identity
//! headers, rotation, expiry, revocation and suspension seen by every instance within 5 s,
//! against SQLite (always) and PostgreSQL (CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_store::{KeyStore, NewKey, PostgresStore, SqliteStore};
use portcullis_test::{Client, GatewayProcess, Reply, TestUpstream};

fn policy(store: &str) -> String {
    format!(
        r#"environment = "test"
[errors]
expose-detail = true

[auth]
tenant-header = "x-app-id"

[auth.api-keys]
prefix = "pcl"
store = {store}
cache-ttl = "1s"
rotation-grace = "1h"

[[route]]
name = "public"
paths = ["/public/*"]
[route.auth]
mode = "none"

[[route]]
name = "billing"
paths = ["/billing/*"]
[route.auth]
scopes = ["billing:read"]

[[route]]
name = "maybe"
paths = ["/maybe/*"]
[route.auth]
mode = "optional"
"#
    )
}

struct Setup {
    upstream: TestUpstream,
    gateways: Vec<GatewayProcess>,
    store: Arc<dyn KeyStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_setup(instances: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let policy = policy(&format!("\"sqlite:{}\"", db.display()));
    let upstream = TestUpstream::start().await;
    let gateways = (0..instances)
        .map(|_| GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]))
        .collect();
    Setup {
        upstream,
        gateways,
        store,
        _dir: Some(dir),
    }
}

async fn get(gw: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client = Client::http1(gw.addr);
    let mut req = client.request("GET", path);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

async fn create(store: &Arc<dyn KeyStore>, tenant: &str, scopes: &[&str]) -> String {
    let (_, key) = store
        .create(
            NewKey::new("pcl", tenant)
                .with_subject("ci-bot")
                .with_scopes(scopes.iter().copied()),
        )
        .await
        .unwrap();
    key.expose_secret().to_owned()
}

/// Polls until `path` with `key` answers `status`, and returns how long it took.
async fn until_status(
    gw: &GatewayProcess,
    key: &str,
    status: StatusCode,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let reply = get(gw, "/v1/things", &[("x-api-key", key)]).await;
        if reply.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {} after {limit:?}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn status_codes_scopes_and_tenant_isolation() {
    let s = sqlite_setup(1).await;
    let gw = &s.gateways[0];
    let reader = create(&s.store, "acme", &["things:read"]).await;
    let billing = create(&s.store, "acme", &["billing:read"]).await;

    // No credential: 401 with WWW-Authenticate and the JSON error; the upstream never sees it.
    let reply = get(gw, "/v1/things", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    let body = reply.json();
    assert_eq!(body["error"]["code"], "authentication_required");
    assert_eq!(
        body["error"]["correlation_id"].as_str(),
        reply.header("x-correlation-id")
    );
    assert!(s.upstream.received().is_empty());

    // Wrong, malformed, or a real key with one character changed: the same 401.
    let mut tampered = reader.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in ["pcl_nope", "pcl_aaaaaaaaaaaaaaaa_short", tampered.as_str()] {
        let reply = get(gw, "/v1/things", &[("x-api-key", bad)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(reply.json()["error"]["code"], "invalid_credentials");
    }

    // A valid key, as X-API-Key or as a Bearer token.
    for header in [
        ("x-api-key", reader.clone()),
        ("authorization", format!("Bearer {reader}")),
    ] {
        let reply = get(gw, "/v1/things", &[(header.0, header.1.as_str())]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    // Scopes: 403, not 401.
    let reply = get(gw, "/billing/invoices", &[("x-api-key", &reader)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "insufficient_scope");
    let reply = get(gw, "/billing/invoices", &[("x-api-key", &billing)]).await;
    assert_eq!(reply.status, StatusCode::OK);

    // The tenant comes from the key: naming another one is refused.
    let reply = get(
        gw,
        "/v1/things",
        &[("x-api-key", &reader), ("x-app-id", "globex")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "tenant_mismatch");
    let reply = get(
        gw,
        "/v1/things",
        &[("x-api-key", &reader), ("x-app-id", "acme")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Optional routes: none is fine, an invalid one is not. `none` routes read nothing.
    assert_eq!(get(gw, "/maybe/x", &[]).await.status, StatusCode::OK);
    assert_eq!(
        get(gw, "/maybe/x", &[("x-api-key", "pcl_nope")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(gw, "/public/x", &[("x-api-key", "pcl_nope")])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_upstream_gets_the_verified_identity_and_never_the_key() {
    let s = sqlite_setup(1).await;
    let gw = &s.gateways[0];
    let key = create(&s.store, "acme", &["things:read", "things:write"]).await;
    let forged = [
        ("x-portcullis-tenant", "globex"),
        ("x-portcullis-scopes", "admin"),
        ("x-portcullis-role", "registered"),
        ("x-portcullis-subject", "root"),
    ];

    let mut headers = forged.to_vec();
    headers.push(("x-api-key", &key));
    let reply = get(gw, "/v1/things", &headers).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = s.upstream.last();
    assert_eq!(seen.header_all("x-portcullis-tenant"), ["acme"]);
    assert_eq!(
        seen.header_all("x-portcullis-scopes"),
        ["things:read,things:write"]
    );
    assert_eq!(seen.header_all("x-portcullis-subject"), ["ci-bot"]);
    assert_eq!(seen.header_all("x-portcullis-role"), ["registered"]);
    assert_eq!(seen.header("x-portcullis-key-id"), key.split('_').nth(1));
    assert!(seen.header("x-api-key").is_none());

    // Forged identity headers are removed on routes that read no credential, too.
    let reply = get(gw, "/public/x", &forged).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = s.upstream.last();
    assert!(
        seen.headers
            .iter()
            .all(|(n, _)| !n.starts_with("x-portcullis-")),
        "{:?}",
        seen.headers
    );

    // No log line carries the key or its secret.
    let secret = key.rsplit_once('_').map(|(_, s)| s).unwrap();
    let _ = get(gw, "/v1/things", &[("x-api-key", &format!("{key}x"))]).await;
    let lines = gw.output();
    assert!(
        lines.iter().all(|l| !l.contains(secret)),
        "a secret was logged"
    );
}

#[tokio::test]
async fn rotation_expiry_revocation_and_suspension_reach_every_instance_within_5s() {
    let s = sqlite_setup(2).await;
    let key = create(&s.store, "acme", &[]).await;
    for gw in &s.gateways {
        until_status(gw, &key, StatusCode::OK, Duration::from_secs(5)).await;
    }

    // Rotation: both work during the grace period, then only the successor.
    let id = key.split('_').nth(1).unwrap().parse().unwrap();
    let (_, successor) = s.store.rotate(&id, Duration::from_secs(2)).await.unwrap();
    let successor = successor.expose_secret().to_owned();
    for gw in &s.gateways {
        assert_eq!(
            get(gw, "/v1/things", &[("x-api-key", &key)]).await.status,
            StatusCode::OK
        );
        until_status(gw, &successor, StatusCode::OK, Duration::from_secs(5)).await;
    }
    for gw in &s.gateways {
        until_status(
            gw,
            &key,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(2 + 5),
        )
        .await;
        assert_eq!(
            get(gw, "/v1/things", &[("x-api-key", &successor)])
                .await
                .status,
            StatusCode::OK
        );
    }

    // Revocation: seen by both instances within 5 s.
    let id = successor.split('_').nth(1).unwrap().parse().unwrap();
    s.store.revoke(&id).await.unwrap();
    for gw in &s.gateways {
        let took = until_status(
            gw,
            &successor,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(5),
        )
        .await;
        assert!(took < Duration::from_secs(5));
    }

    // Tenant suspension, then lifting it.
    let other = create(&s.store, "globex", &[]).await;
    for gw in &s.gateways {
        until_status(gw, &other, StatusCode::OK, Duration::from_secs(5)).await;
    }
    s.store.suspend_tenant("globex").await.unwrap();
    for gw in &s.gateways {
        until_status(gw, &other, StatusCode::UNAUTHORIZED, Duration::from_secs(5)).await;
    }
    s.store.unsuspend_tenant("globex").await.unwrap();
    for gw in &s.gateways {
        until_status(gw, &other, StatusCode::OK, Duration::from_secs(5)).await;
    }

    // Expiry.
    let (_, short) = s
        .store
        .create(NewKey::new("pcl", "acme").with_expiry(SystemTime::now() + Duration::from_secs(1)))
        .await
        .unwrap();
    let short = short.expose_secret().to_owned();
    until_status(
        &s.gateways[0],
        &short,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_stops_the_start() {
    let policy = policy("{ env = \"PORTCULLIS_TEST_UNSET_VARIABLE\" }");
    let file = portcullis_test::gateway::write_temp("auth.toml", &policy);
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&file)
        .args([
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PORTCULLIS_TEST_UNSET_VARIABLE"),
        "{stderr}"
    );
}

/// The same lifecycle against PostgreSQL: the store many instances share.
#[tokio::test]
#[ignore = "needs DATABASE_URL (CI sets it)"]
async fn postgres_revocation_reaches_a_second_instance_within_5s() {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/test",
    );
    let store: Arc<dyn KeyStore> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let upstream = TestUpstream::start().await;
    let policy = policy("{ env = \"DATABASE_URL\" }");
    let gateways: Vec<GatewayProcess> = (0..2)
        .map(|_| GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]))
        .collect();
    // A tenant of its own, so runs and parallel tests sharing the database do not collide.
    let tenant = format!("pg-{}", std::process::id());
    let key = create(&store, &tenant, &[]).await;
    for gw in &gateways {
        until_status(gw, &key, StatusCode::OK, Duration::from_secs(5)).await;
    }
    let id = key.split('_').nth(1).unwrap().parse().unwrap();
    store.revoke(&id).await.unwrap();
    for gw in &gateways {
        let took = until_status(gw, &key, StatusCode::UNAUTHORIZED, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(5));
    }
}
