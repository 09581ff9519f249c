//! The CSRF origin check (seed 001) and the cookie rules through the real gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_test::{Client, Reply};

const APP: &str = "https://app.example.test";
const PARTNER: &str = "https://partner.example.test";

fn policy(mode: &str) -> String {
    format!(
        r#"environment = "test"
[errors]
expose-detail = true

[cors.app]
origins = ["{APP}"]
methods = ["GET", "POST", "DELETE"]
credentials = true

[csrf]
mode = "{mode}"
trusted-origins = ["{PARTNER}"]
api-key-headers = ["x-api-key"]

[[csrf.exempt]]
path = "/sso/callback"
reason = "the identity provider posts a signed assertion"

[[route]]
name = "api"
paths = ["/api/*"]
cors = "app"
"#
    )
}

#[derive(Debug, Clone, Copy)]
enum Auth {
    None,
    Bearer,
    Basic,
    ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum From {
    Absent,
    SameHost,
    Partner,
    App,
    Evil,
    Null,
}

/// The rule, spelled out independently of the implementation.
fn expected_pass(method: &str, cookie: bool, auth: Auth, site: Option<&str>, origin: From) -> bool {
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS");
    let non_ambient = matches!(auth, Auth::Bearer | Auth::ApiKey);
    // Trusted: the configured partner, and on /api/* the credentialed CORS origin.
    let trusted = matches!(origin, From::Partner | From::App);
    safe || !cookie
        || non_ambient
        || match site {
            Some("same-origin") | Some("none") => true,
            Some(_) => trusted,
            None => match origin {
                From::Absent | From::SameHost => true,
                From::Null | From::Evil => false,
                From::Partner | From::App => true,
            },
        }
}

#[allow(clippy::too_many_arguments)] // one argument per column of the decision table
async fn send(
    client: &Client,
    gw: &portcullis_test::GatewayProcess,
    method: &str,
    path: &str,
    cookie: bool,
    auth: Auth,
    site: Option<&str>,
    origin: From,
) -> Reply {
    let mut req = client.request(method, path);
    if cookie {
        req = req.header("cookie", "session=s3cret; theme=dark");
    }
    req = match auth {
        Auth::None => req,
        Auth::Bearer => req.header("authorization", "Bearer abc"),
        Auth::Basic => req.header("authorization", "Basic dXNlcjpwdw=="),
        Auth::ApiKey => req.header("x-api-key", "k_123"),
    };
    if let Some(site) = site {
        req = req.header("sec-fetch-site", site);
    }
    let same_host = format!("http://{}", gw.addr);
    let origin = match origin {
        From::Absent => None,
        From::SameHost => Some(same_host.as_str()),
        From::Partner => Some(PARTNER),
        From::App => Some(APP),
        From::Evil => Some("https://evil.example"),
        From::Null => Some("null"),
    };
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

/// The request the check exists for: a cross-site POST carrying the session cookie.
async fn cross_site_cookie_post(
    client: &Client,
    gw: &portcullis_test::GatewayProcess,
    path: &str,
    origin: From,
) -> Reply {
    send(
        client,
        gw,
        "POST",
        path,
        true,
        Auth::None,
        Some("cross-site"),
        origin,
    )
    .await
}

#[tokio::test]
async fn csrf_decision_table() {
    let (upstream, gw) = common::gateway(&policy("enforce")).await;
    let client = Client::http1(gw.addr);
    let mut refused = 0;
    let mut cases = 0;
    for method in ["GET", "POST", "DELETE"] {
        for cookie in [false, true] {
            for auth in [Auth::None, Auth::Bearer, Auth::Basic, Auth::ApiKey] {
                for site in [
                    None,
                    Some("same-origin"),
                    Some("none"),
                    Some("same-site"),
                    Some("cross-site"),
                ] {
                    for origin in [
                        From::Absent,
                        From::SameHost,
                        From::Partner,
                        From::App,
                        From::Evil,
                        From::Null,
                    ] {
                        cases += 1;
                        let before = upstream.received().len();
                        let reply = send(
                            &client,
                            &gw,
                            method,
                            "/api/items",
                            cookie,
                            auth,
                            site,
                            origin,
                        )
                        .await;
                        let pass = expected_pass(method, cookie, auth, site, origin);
                        let case = format!(
                            "{method} cookie={cookie} {auth:?} sec-fetch-site={site:?} origin={origin:?}"
                        );
                        if pass {
                            assert_eq!(reply.status, StatusCode::OK, "{case}: {:?}", reply.body);
                            assert_eq!(upstream.received().len(), before + 1, "{case}");
                        } else {
                            refused += 1;
                            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{case}");
                            let body = reply.json();
                            assert_eq!(body["error"]["code"], "csrf_origin_mismatch", "{case}");
                            assert_eq!(
                                body["error"]["correlation_id"].as_str(),
                                reply.header("x-correlation-id"),
                                "{case}"
                            );
                            assert_eq!(
                                upstream.received().len(),
                                before,
                                "{case}: reached the upstream"
                            );
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 720);
    assert!(refused > 0);

    // The credentialed CORS origin is trusted only on the routes of that CORS policy.
    let reply = cross_site_cookie_post(&client, &gw, "/other", From::App).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cross_site_cookie_post(&client, &gw, "/other", From::Partner).await;
    assert_eq!(reply.status, StatusCode::OK);

    // Exempt: exactly the listed path, however it is spelled.
    for path in [
        "/sso/callback",
        "/sso//callback",
        "/sso/./callback",
        "/%73so/callback",
    ] {
        let reply = cross_site_cookie_post(&client, &gw, path, From::Evil).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    for path in ["/sso/callback/x", "/sso/callbacks", "/sso"] {
        let reply = cross_site_cookie_post(&client, &gw, path, From::Evil).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }

    // An audit-worthy line for every refusal, without the cookie's value.
    let lines = gw.output();
    let csrf_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("portcullis::csrf"))
        .collect();
    assert!(!csrf_lines.is_empty(), "{lines:?}");
    assert!(
        csrf_lines
            .iter()
            .any(|l| l.contains("https://evil.example"))
    );
    assert!(
        lines.iter().all(|l| !l.contains("s3cret")),
        "a cookie value was logged"
    );
}

#[tokio::test]
async fn report_only_lets_requests_through_and_logs_them() {
    let (upstream, gw) = common::gateway(&policy("report-only")).await;
    let client = Client::http1(gw.addr);
    let reply = cross_site_cookie_post(&client, &gw, "/api/items", From::Evil).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().method, "POST");
    assert_eq!(
        upstream.last().header("cookie"),
        Some("session=s3cret; theme=dark")
    );
    let lines = gw.output();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("portcullis::csrf") && l.contains("report-only")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn csrf_off_checks_nothing() {
    let (_upstream, gw) = common::gateway(&policy("off")).await;
    let client = Client::http1(gw.addr);
    let reply = cross_site_cookie_post(&client, &gw, "/api/items", From::Evil).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Seed 001's cookie rules rewrite the upstream's Set-Cookie; other cookies are untouched.
#[tokio::test]
async fn cookie_rules_rewrite_upstream_cookies() {
    let (_upstream, gw) = common::gateway(&common::example("dashboard.toml")).await;
    let client = Client::http1(gw.addr);
    let reply = client
        .send(
            client
                .request("GET", "/api/v1/auth/login")
                .header(
                    "x-test-respond-header",
                    "set-cookie: session=abc%3D; Path=/; SameSite=Lax",
                )
                .header("x-test-respond-header", "set-cookie: theme=dark; Path=/")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    let cookies: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let session = cookies[0];
    assert!(session.starts_with("session=abc%3D;"), "{session}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/api/v1/auth"] {
        assert!(
            session.split("; ").any(|a| a == attribute),
            "{attribute} missing: {session}"
        );
    }
    assert!(
        !session.contains("SameSite=Lax") && !session.contains("Path=/;"),
        "{session}"
    );
    assert_eq!(cookies[1], "theme=dark; Path=/");
}

#[tokio::test]
async fn cookies_are_not_forced_secure_in_development() {
    let policy = common::example("dashboard.toml").replace(
        "environment = \"production\"",
        "environment = \"development\"",
    );
    let (_upstream, gw) = common::gateway(&policy).await;
    let client = Client::http1(gw.addr);
    let reply = client
        .send(
            client
                .request("GET", "/api/v1/auth/login")
                .header("x-test-respond-header", "set-cookie: session=abc")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    let cookie = reply.header("set-cookie").unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}
