//! Seed 000's "auth-gated at the request layer", as `examples/sdk-api.toml` writes it: SDK
//! callers present tenant API keys as `Authorization: Bearer`; `/v1/status` and its stream are
//! public; everything else, unlisted paths included, needs a key. A refusal still carries the
//! route's posture and, for an allowed origin, the CORS headers an SDK in a browser needs to
//! read it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_store::{KeyStore, NewKey, SqliteStore};
use portcullis_test::{Client, GatewayProcess, Reply, TestUpstream};

const DASHBOARD: &str = "https://dashboard.driftstack.example";

struct Setup {
    upstream: TestUpstream,
    gw: GatewayProcess,
    key: String,
    _dir: tempfile::TempDir,
}

/// The example as written, its SQLite store in a temporary directory, and one key of tenant
/// `acme` made in it.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let text = std::fs::read_to_string(common::repo_root().join("examples/sdk-api.toml")).unwrap();
    let policy = text.replace(
        "\"sqlite:portcullis-keys.db\"",
        &format!("\"sqlite:{}\"", db.display()),
    );
    assert_ne!(policy, text, "the example no longer names its SQLite store");
    let store = SqliteStore::open(&db).await.unwrap();
    let (_, key) = store.create(NewKey::new("ds", "acme")).await.unwrap();
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    Setup {
        upstream,
        gw,
        key: key.expose_secret().to_owned(),
        _dir: dir,
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

#[tokio::test]
async fn private_and_unlisted_paths_need_a_bearer_key_and_status_is_public() {
    let s = setup().await;
    let bearer = format!("Bearer {}", s.key);

    for (path, cache) in [
        ("/v1/status", "public, max-age=30"),
        ("/v1/status/stream", "no-cache, no-transform"),
    ] {
        let reply = get(&s.gw, path, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} is public");
        assert_eq!(reply.header("cache-control"), Some(cache));
    }

    for (path, cache) in [
        ("/v1/account/me", "no-store, private"),
        ("/v1/billing/invoices", "no-store, private"),
        ("/v1/users/42", "no-store"),
    ] {
        let before = s.upstream.received().len();
        let reply = get(&s.gw, path, &[("origin", DASHBOARD)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.json()["error"]["code"], "authentication_required");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"api\"")
        );
        // The refusal keeps the route's posture and is readable by the allowed origin.
        assert_eq!(reply.header("cache-control"), Some(cache), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(DASHBOARD),
            "{path}"
        );
        assert_eq!(
            s.upstream.received().len(),
            before,
            "{path} reached the upstream"
        );

        let reply = get(&s.gw, path, &[("authorization", &bearer)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} with a key");
        let seen = s.upstream.last();
        assert_eq!(seen.header("x-portcullis-tenant"), Some("acme"));
        assert_eq!(
            seen.header("authorization"),
            None,
            "the key reached the upstream"
        );
    }

    // A bearer token that is not one of the example's keys is refused like a wrong key.
    let reply = get(
        &s.gw,
        "/v1/account/me",
        &[("authorization", "Bearer ds_aaaaaaaaaaaaaaaa_wrong")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"]["code"], "invalid_credentials");
}

#[tokio::test]
async fn preflights_to_private_routes_are_answered_without_a_key() {
    let s = setup().await;
    let client = Client::http1(s.gw.addr);
    let reply = client
        .send(
            client
                .request("OPTIONS", "/v1/account/me")
                .header("origin", DASHBOARD)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(reply.header("access-control-allow-origin"), Some(DASHBOARD));
    assert!(s.upstream.received().is_empty());
}

#[tokio::test]
async fn security_txt_is_public_where_everything_else_needs_a_key() {
    let s = setup().await;
    // The default route requires a key; the disclosure file must not (RFC 9116).
    let reply = get(&s.gw, "/.well-known/security.txt", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("Contact: "),
        "{:?}",
        reply.body
    );
    // Answered by the gateway, with the route's posture.
    assert!(s.upstream.received().is_empty());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        get(&s.gw, "/v1/elsewhere", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}
