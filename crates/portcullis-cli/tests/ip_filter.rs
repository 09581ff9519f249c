//! IP allow/deny lists and the client-IP resolver, through the real gateway. Every request
//! comes from 127.0.0.1, so the policies trust it as a proxy and present other clients with
//! `X-Forwarded-For`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use http_body_util::Full;
use portcullis_test::{Client, Reply, TestUpstream, json_line};

const TRUSTED: &str = "[server]\ntrusted-proxies = [\"127.0.0.1/32\"]\n";

const ROUTES: &str = "[[route]]\nname = \"admin\"\npaths = [\"/admin/*\"]\n\
     ip-filter = { allow = [\"10.1.0.0/16\"], reason = \"office only\" }\n\
     [[route]]\nname = \"api\"\npaths = [\"/api/*\"]\n";

fn policy(server: &str, rest: &str) -> String {
    format!("environment = \"development\"\n{server}{rest}")
}

async fn get_from(client: &Client, path: &str, xff: Option<&str>) -> Reply {
    let mut req = client.request("GET", path);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

fn assert_denied(reply: &Reply, upstream: &TestUpstream, seen_before: usize) {
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "ip_denied");
    let id = reply.header("x-correlation-id").unwrap();
    assert_eq!(body["error"]["correlation_id"], id);
    assert_eq!(
        upstream.received().len(),
        seen_before,
        "reached the upstream"
    );
}

#[tokio::test]
async fn global_deny_list_refuses_before_the_upstream() {
    let text = policy(
        TRUSTED,
        &format!("[ip-filter]\ndeny = [\"203.0.113.0/24\", \"2001:db8:bad::/48\"]\n{ROUTES}"),
    );
    let (upstream, gw) = common::gateway(&text).await;
    let client = Client::http1(gw.addr);

    let denied = get_from(&client, "/api/x", Some("203.0.113.5")).await;
    assert_denied(&denied, &upstream, 0);
    // Security headers are on refusals too.
    assert!(denied.header("x-content-type-options").is_some());

    // IPv6 clients in XFF, inside and outside the denied range.
    let denied = get_from(&client, "/api/x", Some("2001:db8:bad:1::7")).await;
    assert_denied(&denied, &upstream, 0);
    let ok = get_from(&client, "/api/x", Some("2001:db8:900::7")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(upstream.received().len(), 1);

    // Unrelated clients and the default route pass.
    let ok = get_from(&client, "/elsewhere", Some("198.51.100.1")).await;
    assert_eq!(ok.status, 200);

    let log = gw.output().join("\n");
    assert!(log.contains("client IP refused"), "{log}");
    assert!(log.contains("203.0.113.5"), "{log}");
}

#[tokio::test]
async fn route_allow_list_admits_only_its_range() {
    let (upstream, gw) = common::gateway(&policy(TRUSTED, ROUTES)).await;
    let client = Client::http1(gw.addr);

    let ok = get_from(&client, "/admin/users", Some("10.1.4.2")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(upstream.received().len(), 1);

    let denied = get_from(&client, "/admin/users", Some("10.2.0.1")).await;
    assert_denied(&denied, &upstream, 1);

    // A spoofed left-most entry does not get through: the proxy (127.0.0.1) appended the
    // real client, and that is the one that counts.
    let spoofed = get_from(&client, "/admin/users", Some("10.1.0.1, 192.0.2.44")).await;
    assert_denied(&spoofed, &upstream, 1);

    // No XFF at all: the client is the trusted peer itself, outside the office range.
    let direct = get_from(&client, "/admin/users", None).await;
    assert_denied(&direct, &upstream, 1);

    // Other routes have no list.
    let ok = get_from(&client, "/api/x", Some("192.0.2.44")).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn without_trusted_proxies_xff_is_ignored() {
    let text = policy(
        "",
        "[ip-filter]\ndeny = [\"10.9.0.0/16\"]\n\
         [[route]]\nname = \"admin\"\npaths = [\"/admin/*\"]\n\
         ip-filter = { allow = [\"127.0.0.0/8\"] }\n",
    );
    let (upstream, gw) = common::gateway(&text).await;
    let client = Client::http1(gw.addr);

    // The peer 127.0.0.1 decides: an XFF claiming a denied address changes nothing...
    let ok = get_from(&client, "/admin/x", Some("10.9.0.1")).await;
    assert_eq!(ok.status, 200);
    // ...nor does one claiming to be outside the allow list.
    let ok = get_from(&client, "/admin/x", Some("192.0.2.1")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn a_denied_client_gets_no_cors_answer() {
    let text = policy(
        TRUSTED,
        "[cors.app]\norigins = [\"https://app.example\"]\nmethods = [\"GET\", \"POST\"]\n\
         [[route]]\nname = \"admin\"\npaths = [\"/admin/*\"]\ncors = \"app\"\n\
         ip-filter = { allow = [\"10.1.0.0/16\"] }\n",
    );
    let (upstream, gw) = common::gateway(&text).await;
    let client = Client::http1(gw.addr);
    let req = client
        .request("OPTIONS", "/admin/x")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("x-forwarded-for", "192.0.2.1")
        .body(Full::<Bytes>::default())
        .unwrap();
    let reply = client.send(req).await;
    assert_denied(&reply, &upstream, 0);
    assert!(reply.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_refusal_is_logged_with_the_requests_correlation_id() {
    // The IP filter refuses while the stack is being called, before any future is polled: its
    // log line must still carry the request's correlation ID.
    let text = policy(
        "[logging]\nformat = \"json\"\n",
        "[ip-filter]\ndeny = [\"127.0.0.0/8\"]\n",
    );
    let (upstream, gw) = common::gateway(&text).await;
    let client = Client::http1(gw.addr);
    let reply = client
        .send(
            client
                .request("GET", "/api/x")
                .header("x-correlation-id", "ip-log-1")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await;
    assert_denied(&reply, &upstream, 0);
    let (refused, json) = json_line(&gw.output(), "client IP refused");
    assert_eq!(json["spans"][0]["correlation_id"], "ip-log-1", "{refused}");
}
