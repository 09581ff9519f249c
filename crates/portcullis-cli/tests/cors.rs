//! CORS through the real gateway: seed 000's block exactly, default-deny, origin mutations,
//! preflights that never reach the upstream, `Vary`, and internal routes (seed 003).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_test::{Client, Reply};

const DASHBOARD: &str = "https://dashboard.driftstack.example";

async fn get_with(client: &Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client.request("GET", path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

async fn preflight(
    client: &Client,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Reply {
    let mut req = client
        .request("OPTIONS", path)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(h) = headers {
        req = req.header("access-control-request-headers", h);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

fn cors_headers(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .map(|k| k.to_string())
        .collect()
}

fn varies_on_origin(reply: &Reply) -> bool {
    reply.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("origin"))
    })
}

#[tokio::test]
async fn seed_000_cors_block_exactly() {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::http1(gw.addr);

    let reply = preflight(
        &client,
        "/v1/account/me",
        DASHBOARD,
        "PATCH",
        Some("authorization, content-type"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for (name, value) in [
        ("access-control-allow-origin", DASHBOARD),
        (
            "access-control-allow-methods",
            "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        (
            "access-control-allow-headers",
            "authorization, content-type, x-request-id, stripe-signature, x-nowpayments-sig",
        ),
        ("access-control-max-age", "600"),
        ("access-control-allow-credentials", "true"),
    ] {
        assert_eq!(reply.header(name), Some(value), "{name}");
    }
    assert!(reply.header("access-control-expose-headers").is_none());
    assert!(varies_on_origin(&reply));
    // The preflight is the gateway's answer: the upstream never saw it, and it still carries
    // the security headers and a correlation ID.
    assert!(upstream.received().is_empty());
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert!(reply.header("x-correlation-id").is_some());

    let reply = get_with(&client, "/v1/status", &[("origin", DASHBOARD)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), Some(DASHBOARD));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some(
            "x-request-id, x-ratelimit-bucket, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after"
        )
    );
    assert!(varies_on_origin(&reply));
    assert!(reply.header("access-control-allow-methods").is_none());
}

/// Every spelling of an allowed origin that a browser could send is allowed; every near miss
/// gets no CORS header at all, and its preflight a 403.
#[tokio::test]
async fn origin_mutations() {
    let policy = common::sdk_api("development").replace(
        r#"origins = ["https://dashboard.driftstack.example", "https://app.customer.example"]"#,
        r#"origins = ["https://dashboard.driftstack.example", "https://*.customers.example", "https://bücher.example", "https://app.example.com:8443"]"#,
    );
    let (_upstream, gw) = common::gateway(&policy).await;
    let client = Client::http1(gw.addr);
    let allowed = [
        (DASHBOARD, DASHBOARD),
        ("https://DASHBOARD.Driftstack.example", DASHBOARD),
        ("HTTPS://dashboard.driftstack.example:443", DASHBOARD),
        (
            "https://acme.customers.example",
            "https://acme.customers.example",
        ),
        (
            "https://xn--bcher-kva.example",
            "https://xn--bcher-kva.example",
        ),
        (
            "https://app.example.com:8443",
            "https://app.example.com:8443",
        ),
    ];
    let refused = [
        "https://dashboard.driftstack.example.",
        "https://dashboard.driftstack.example:8443",
        "http://dashboard.driftstack.example",
        "https://dashboard.driftstack.example.evil.net",
        "https://evildashboard.driftstack.example",
        "https://a.dashboard.driftstack.example",
        "https://driftstack.example",
        "https://user@dashboard.driftstack.example",
        "https://user:pw@dashboard.driftstack.example",
        "https://dashboard.driftstack.example/",
        "https://dashboard.driftstack.example/path",
        "https://dashboard.driftstack.example?x=1",
        "dashboard.driftstack.example",
        "null",
        "https://customers.example",
        "https://a.b.customers.example",
        "http://acme.customers.example",
        "https://acme.customers.example.evil.net",
        "https://evilcustomers.example",
        "https://app.example.com",
        "https://app.example.com:443",
        "https://*.customers.example",
        "*",
    ];
    for (origin, reflected) in allowed {
        let reply = get_with(&client, "/v1/account/me", &[("origin", origin)]).await;
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(reflected),
            "{origin}"
        );
        let reply = preflight(&client, "/v1/account/me", origin, "GET", None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(reflected),
            "{origin}"
        );
    }
    for origin in refused {
        let reply = get_with(&client, "/v1/account/me", &[("origin", origin)]).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{origin}: the request itself is served"
        );
        assert!(
            cors_headers(&reply).is_empty(),
            "{origin}: {:?}",
            reply.headers
        );
        assert!(varies_on_origin(&reply), "{origin}");
        let reply = preflight(&client, "/v1/account/me", origin, "GET", None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin}");
        assert!(
            cors_headers(&reply).is_empty(),
            "{origin}: {:?}",
            reply.headers
        );
    }
    // A raw UTF-8 host is not what browsers send (they send punycode); it never matches.
    let reply = client
        .send(
            client
                .request("GET", "/v1/status")
                .header(
                    "origin",
                    http::HeaderValue::from_bytes("https://bücher.example".as_bytes()).unwrap(),
                )
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    assert!(cors_headers(&reply).is_empty());
}

#[tokio::test]
async fn refused_preflights_are_403_json_and_never_reach_the_upstream() {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::http1(gw.addr);
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        (DASHBOARD, "TRACE", None),
        (DASHBOARD, "put", None),
        (DASHBOARD, "GET", Some("x-internal-admin")),
        (DASHBOARD, "GET", Some("authorization, cookie")),
    ] {
        let reply = preflight(&client, "/v1/billing/invoices", origin, method, headers).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{origin} {method} {headers:?}"
        );
        let body = reply.json();
        assert_eq!(body["error"]["code"], "cors_preflight_refused");
        assert_eq!(
            body["error"]["correlation_id"].as_str(),
            reply.header("x-correlation-id")
        );
        // Production: no detail about which part was refused.
        assert!(body["error"].get("detail").is_none());
        assert!(cors_headers(&reply).is_empty());
    }
    assert!(upstream.received().is_empty(), "{:?}", upstream.received());

    // An OPTIONS without Access-Control-Request-Method is not a preflight: it is forwarded.
    let reply = client
        .send(
            client
                .request("OPTIONS", "/v1/status")
                .header("origin", DASHBOARD)
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().method, "OPTIONS");
}

#[tokio::test]
async fn the_upstream_cannot_widen_the_policy() {
    let (_upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::http1(gw.addr);
    let hostile = [
        ("x-test-respond-header", "access-control-allow-origin: *"),
        (
            "x-test-respond-header",
            "access-control-allow-credentials: true",
        ),
        (
            "x-test-respond-header",
            "access-control-allow-methods: PROPFIND",
        ),
        ("x-test-respond-header", "vary: accept-encoding"),
    ];
    let mut headers = vec![("origin", "https://evil.example")];
    headers.extend(hostile);
    let reply = get_with(&client, "/v1/account/me", &headers).await;
    assert!(cors_headers(&reply).is_empty(), "{:?}", reply.headers);
    let vary: Vec<&str> = reply
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["accept-encoding", "origin"]);

    let mut headers = vec![("origin", DASHBOARD)];
    headers.extend(hostile);
    let reply = get_with(&client, "/v1/account/me", &headers).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(DASHBOARD));
    assert!(reply.header("access-control-allow-methods").is_none());
    assert_eq!(
        reply
            .headers
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );

    // Vary: Origin even without an Origin, so a shared cache keys on it.
    let reply = get_with(&client, "/v1/status", &[]).await;
    assert!(cors_headers(&reply).is_empty());
    assert!(varies_on_origin(&reply));
}

#[tokio::test]
async fn internal_routes_deny_cross_origin_access() {
    let (upstream, gw) = common::gateway(&common::example("public-internal.toml")).await;
    let client = Client::http1(gw.addr);
    let partner = "https://portal.partner-one.example";

    let reply = get_with(&client, "/api/v1/sanctions", &[("origin", partner)]).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(partner));
    assert!(reply.header("access-control-allow-credentials").is_none());
    let reply = preflight(
        &client,
        "/api/v1/sanctions",
        partner,
        "POST",
        Some("content-type"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-origin"), Some(partner));

    let before = upstream.received().len();
    for path in [
        "/internal/jobs",
        "/api/v2/x",
        "/api/v1x",
        "/api/v1/../../internal",
    ] {
        let reply = preflight(&client, path, partner, "GET", None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(reply.json()["error"]["code"], "cors_preflight_refused");
        let reply = get_with(
            &client,
            path,
            &[
                ("origin", partner),
                ("x-test-respond-header", "access-control-allow-origin: *"),
            ],
        )
        .await;
        assert!(
            cors_headers(&reply).is_empty(),
            "{path}: {:?}",
            reply.headers
        );
        assert!(!varies_on_origin(&reply), "{path}");
    }
    assert_eq!(
        upstream.received().len(),
        before + 4,
        "only the GETs were forwarded"
    );
}

#[tokio::test]
async fn production_without_cors_policies_is_deny_all() {
    let policy = "environment = \"production\"\n";
    let (upstream, gw) = common::gateway(policy).await;
    let client = Client::http1(gw.addr);
    for path in ["/", "/api/v1/x", "/anything"] {
        let reply = preflight(&client, path, "https://app.example.com", "GET", None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        let reply = get_with(
            &client,
            path,
            &[
                ("origin", "https://app.example.com"),
                (
                    "x-test-respond-header",
                    "access-control-allow-origin: https://app.example.com",
                ),
            ],
        )
        .await;
        assert!(cors_headers(&reply).is_empty(), "{path}");
    }
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test]
async fn any_origin_policies_send_a_star_and_never_credentials() {
    let policy = r#"environment = "development"
[cors.public]
origins = { development = ["*"] }
methods = ["GET"]
[default-route]
cors = "public"
"#;
    let (_upstream, gw) = common::gateway(policy).await;
    let client = Client::http1(gw.addr);
    let reply = get_with(&client, "/data", &[("origin", "https://anyone.example")]).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert!(reply.header("access-control-allow-credentials").is_none());
    let reply = get_with(&client, "/data", &[("origin", "null")]).await;
    assert!(reply.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn h2c_clients_get_the_same_answers() {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::h2c(gw.addr);
    let reply = preflight(&client, "/v1/account/me", DASHBOARD, "DELETE", None).await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-origin"), Some(DASHBOARD));
    let reply = preflight(
        &client,
        "/v1/account/me",
        "https://evil.example",
        "DELETE",
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(upstream.received().is_empty());
}
