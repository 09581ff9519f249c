//! Seed 000's header and cache posture through the real gateway in front of a real upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use portcullis_test::{Client, GatewayProcess, TestUpstream};

/// Every header seed 000 lists, with its value.
const SEED_000_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains; preload",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "no-referrer"),
    ("x-dns-prefetch-control", "off"),
    ("cross-origin-resource-policy", "cross-origin"),
];

async fn gateway() -> (TestUpstream, GatewayProcess, Client) {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::http1(gw.addr);
    (upstream, gw, client)
}

#[tokio::test]
async fn seed_000_headers_on_every_response_and_nothing_it_does_not_set() {
    let (_upstream, _gw, client) = gateway().await;
    for path in ["/v1/status", "/v1/account/me", "/anything", "/v1/a%2Fb"] {
        let reply = client.get(path).await;
        for (name, value) in SEED_000_HEADERS {
            assert_eq!(reply.header(name), Some(*value), "{name} on {path}");
        }
        for absent in [
            "content-security-policy",
            "cross-origin-embedder-policy",
            "permissions-policy",
            "server",
            "x-powered-by",
        ] {
            assert!(reply.header(absent).is_none(), "{absent} on {path}");
        }
        assert!(reply.header("x-correlation-id").is_some());
    }
}

#[tokio::test]
async fn cache_control_follows_the_route_table() {
    let (_upstream, _gw, client) = gateway().await;
    let table = [
        ("/v1/account/me", "no-store, private"),
        ("/v1/admin/users/7", "no-store, private"),
        ("/v1/billing/invoices", "no-store, private"),
        ("/v1/billing", "no-store, private"),
        ("/v1/status", "public, max-age=30"),
        ("/v1/status/", "public, max-age=30"),
        ("/v1/status/stream", "no-cache, no-transform"),
        ("/v1/accounts", "no-store"),
        ("/", "no-store"),
    ];
    for (path, expected) in table {
        let reply = client.get(path).await;
        assert_eq!(
            reply.headers.get_all("cache-control").iter().count(),
            1,
            "{path}"
        );
        assert_eq!(reply.header("cache-control"), Some(expected), "{path}");
        assert_eq!(reply.status, 200, "{path}");
    }
}

#[tokio::test]
async fn alternative_spellings_cannot_escape_their_group() {
    let (upstream, _gw, client) = gateway().await;
    let escapes = [
        ("/v1//account/../account/x", "/v1/account/x"),
        ("/v1/status/../account/me", "/v1/account/me"),
        ("/v1/%61ccount/me", "/v1/account/me"),
        ("/v1/status/%2e%2e/billing/1", "/v1/billing/1"),
        ("/v1/./admin//keys", "/v1/admin/keys"),
        ("/v1/status/..%2f..%2fv1/account", ""),
    ];
    for (path, canonical) in escapes {
        let reply = client.get(path).await;
        if canonical.is_empty() {
            assert_eq!(reply.status, 400, "{path}");
            continue;
        }
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store, private"),
            "{path}"
        );
        // The upstream routes on exactly what the gateway matched.
        assert_eq!(upstream.last().target, canonical, "{path}");
    }
}

#[tokio::test]
async fn query_strings_are_forwarded_untouched() {
    let (upstream, _gw, client) = gateway().await;
    let reply = client.get("/v1//status?x=1&y=%2F").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.last().target, "/v1/status?x=1&y=%2F");
}

#[tokio::test]
async fn errors_get_the_posture_too_and_are_safe_in_production() {
    let (_upstream, _gw, client) = gateway().await;
    let reply = client.get("/v1/a%2Fb").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(
        body["error"]["correlation_id"],
        reply.header("x-correlation-id").unwrap()
    );
    assert!(
        body["error"].get("detail").is_none(),
        "production leaks detail: {body}"
    );
}

#[tokio::test]
async fn security_txt_is_served_from_the_disclosure_section() {
    let (upstream, _gw, client) = gateway().await;
    let reply = client.get("/.well-known/security.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let text = std::str::from_utf8(&reply.body).unwrap();
    assert!(
        text.starts_with(
            "Contact: mailto:security@driftstack.example\nExpires: 2027-11-30T00:00:00Z\n"
        ),
        "{text}"
    );
    assert!(text.contains("Encryption: https://driftstack.example/.well-known/pgp-key.txt\n"));
    assert!(
        upstream.received().is_empty(),
        "security.txt must not reach the upstream"
    );
}

#[tokio::test]
async fn default_posture_applies_when_the_policy_lists_no_headers() {
    let (upstream, gw) = common::gateway("environment = \"development\"\n").await;
    let reply = Client::http1(gw.addr).get("/x").await;
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.header("permissions-policy").is_some());
    // HSTS is production-only in the built-in set.
    assert!(reply.header("strict-transport-security").is_none());
    let prod = GatewayProcess::start(
        common::binary(),
        "environment = \"production\"\n",
        Some(&upstream.url()),
        &[],
    );
    let reply = Client::http1(prod.addr).get("/x").await;
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
}

#[tokio::test]
async fn routes_override_and_unset_global_headers() {
    let policy = r#"
environment = "test"
[headers.set.x-frame-options]
value = "DENY"
[[route]]
name = "embed"
paths = ["/embed/*"]
cache-control = "public, max-age=60"
[route.headers.set.x-frame-options]
value = "SAMEORIGIN"
reason = "embedded by our own dashboard"
[route.headers.not-set]
permissions-policy = "the embed page negotiates features itself"
"#;
    let (_upstream, gw) = common::gateway(policy).await;
    let client = Client::http1(gw.addr);
    let embed = client.get("/embed/widget").await;
    assert_eq!(embed.header("x-frame-options"), Some("SAMEORIGIN"));
    assert!(embed.header("permissions-policy").is_none());
    assert_eq!(embed.header("cache-control"), Some("public, max-age=60"));
    let other = client.get("/api").await;
    assert_eq!(other.header("x-frame-options"), Some("DENY"));
    assert!(other.header("permissions-policy").is_some());
}

#[tokio::test]
async fn headers_the_policy_does_not_set_are_not_sent_even_by_the_upstream() {
    let policy = "environment = \"test\"\n[headers.not-set]\nx-upstream = \"the upstream's marker is internal\"\n";
    let (_upstream, gw) = common::gateway(policy).await;
    let reply = Client::http1(gw.addr).get("/x").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("x-upstream").is_none());
}

#[tokio::test]
async fn path_parameters_do_not_move_a_request_out_of_its_group() {
    let (upstream, _gw, client) = gateway().await;
    let reply = client.get("/v1/account;jsessionid=1/me").await;
    assert_eq!(reply.header("cache-control"), Some("no-store, private"));
    // Forwarded as sent: parameters belong to the upstream.
    assert_eq!(upstream.last().target, "/v1/account;jsessionid=1/me");
    let encoded = client.get("/v1/account%3Bx/me").await;
    assert_eq!(encoded.header("cache-control"), Some("no-store"));
    assert_eq!(upstream.last().target, "/v1/account%3Bx/me");
}
