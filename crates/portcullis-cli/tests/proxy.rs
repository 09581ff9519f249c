//! The reverse proxy: correlation IDs, forwarding headers, hop-by-hop stripping, failures,
//! h2c on both sides, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use portcullis_test::{Client, GatewayProcess, TestUpstream, json_line};

fn dev_policy(extra: &str) -> String {
    format!("environment = \"development\"\n{extra}")
}

#[tokio::test]
async fn correlation_ids_are_generated_kept_forwarded_and_echoed() {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let client = Client::http1(gw.addr);

    let generated = client.get("/v1/status").await;
    let id = generated.header("x-correlation-id").unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        upstream.last().header("x-correlation-id"),
        Some(id.as_str())
    );

    let kept = client
        .send(
            client
                .request("GET", "/v1/status")
                .header("x-correlation-id", "trace-42")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(kept.header("x-correlation-id"), Some("trace-42"));
    assert_eq!(
        upstream.last().header_all("x-correlation-id"),
        vec!["trace-42"]
    );

    // X-Request-ID is accepted too; the upstream sees one ID in one header.
    let from_request_id = client
        .send(
            client
                .request("GET", "/v1/status")
                .header("x-request-id", "req-7")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(from_request_id.header("x-correlation-id"), Some("req-7"));
    let seen = upstream.last();
    assert_eq!(seen.header("x-correlation-id"), Some("req-7"));
    assert!(seen.header("x-request-id").is_none());

    // Malformed IDs are replaced, never forwarded.
    for bad in ["has space", "x".repeat(200).as_str(), "a\"b", "<script>"] {
        let reply = client
            .send(
                client
                    .request("GET", "/v1/status")
                    .header("x-correlation-id", bad)
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        let id = reply.header("x-correlation-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36);
        assert!(!upstream.last().headers.iter().any(|(_, v)| v == bad));
    }
}

#[tokio::test]
async fn correlation_ids_appear_in_logs_and_error_bodies() {
    let gw = GatewayProcess::start(
        common::binary(),
        &common::sdk_api("production"),
        Some("http://127.0.0.1:9"),
        &[],
    );
    let client = Client::http1(gw.addr);
    let reply = client
        .send(
            client
                .request("GET", "/v1/status")
                .header("x-correlation-id", "trace-log-1")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"]["correlation_id"], "trace-log-1");
    let lines = gw.output();
    let (access, json) = json_line(&lines, "portcullis::access");
    assert_eq!(json["status"], 502);
    assert_eq!(json["path"], "/v1/status");
    assert!(access.contains("trace-log-1"), "{access}");
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("request failed"))
            .all(|l| l.contains("trace-log-1"))
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(
        common::binary(),
        &dev_policy(""),
        Some(&upstream.url()),
        &[],
    );
    let client = Client::http1(gw.addr);
    for path in ["/a", "/status/404", "/b", "/status/500", "/c"] {
        client.get(path).await;
    }
    let received = upstream.received();
    assert_eq!(received.len(), 5);
    // One request at a time: every one on the connection the first opened.
    assert!(
        received.iter().all(|r| r.peer == received[0].peer),
        "{:?}",
        received.iter().map(|r| r.peer).collect::<Vec<_>>()
    );

    // A request whose response is still being read when the next one comes gets a second
    // connection; both are kept.
    let slow = tokio::spawn({
        let client = Client::http1(gw.addr);
        async move { client.get("/slow/300").await.status }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.get("/d").await.status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(client.get("/e").await.status, 200);
    let peers: std::collections::HashSet<_> = upstream.received().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 2, "{peers:?}");
}

#[tokio::test]
async fn upstream_down_is_a_safe_502() {
    // Port 9 (discard) is closed on loopback: connection refused.
    let prod = GatewayProcess::start(
        common::binary(),
        &common::sdk_api("production"),
        Some("http://127.0.0.1:9"),
        &[],
    );
    let reply = Client::http1(prod.addr).get("/v1/account/me").await;
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(body["error"].get("detail").is_none(), "{body}");
    assert!(!String::from_utf8_lossy(&reply.body).contains("127.0.0.1"));
    assert_eq!(reply.header("cache-control"), Some("no-store, private"));

    let dev = GatewayProcess::start(
        common::binary(),
        &dev_policy(""),
        Some("http://127.0.0.1:9"),
        &[],
    );
    let body = Client::http1(dev.addr).get("/x").await.json();
    assert!(
        body["error"]["detail"].as_str().unwrap().contains("onnect"),
        "{body}"
    );
}

#[tokio::test]
async fn slow_upstream_is_a_504() {
    let upstream = TestUpstream::start().await;
    let policy =
        dev_policy("[upstream]\nurl = \"http://127.0.0.1:1\"\nrequest-timeout = \"300ms\"\n");
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    let reply = client.get("/slow/3000").await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"]["code"], "upstream_timeout");
    assert_eq!(client.get("/slow/10").await.status, 200);
}

#[tokio::test]
async fn connections_to_the_upstream_are_capped_and_a_request_left_waiting_is_a_503() {
    let upstream = TestUpstream::start().await;
    let policy = dev_policy(
        "[upstream]\nurl = \"http://127.0.0.1:1\"\nmax-connections = 1\nconnect-timeout = \"200ms\"\n",
    );
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    let slow = tokio::spawn({
        let client = Client::http1(gw.addr);
        async move { client.get("/slow/1500").await.status }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = client.get("/x").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    let body = reply.json();
    assert_eq!(body["error"]["code"], "upstream_busy");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("all 1 connections"),
        "{body}"
    );
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(client.get("/x").await.status, 200);
    let peers: std::collections::HashSet<_> = upstream.received().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 1, "one connection at a time: {peers:?}");
}

#[tokio::test]
async fn upstream_errors_pass_through_with_the_posture() {
    let (_upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let reply = Client::http1(gw.addr).get("/status/503").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-upstream"), Some("1"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.header("server").is_none());
}

#[tokio::test]
async fn forwarding_headers_come_from_the_gateway_not_the_client() {
    let (upstream, gw) = common::gateway(&dev_policy("")).await;
    let client = Client::http1(gw.addr);
    let req = client
        .request("GET", "/x")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "6.6.6.6")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header_all("x-real-ip"), vec!["127.0.0.1"]);
    assert!(
        seen.header("forwarded")
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http")
    );
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );

    // From a trusted proxy, the chain is extended instead.
    let trusted = dev_policy("[server]\ntrusted-proxies = [\"127.0.0.0/8\"]\n");
    let gw = GatewayProcess::start(common::binary(), &trusted, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    let req = client
        .request("GET", "/x")
        .header("x-forwarded-for", "198.51.100.7")
        .body(Full::default())
        .unwrap();
    client.send(req).await;
    assert_eq!(
        upstream.last().header("x-forwarded-for"),
        Some("198.51.100.7, 127.0.0.1")
    );
    // X-Real-IP is the client the gateway resolved (what its IP lists and limits key on),
    // whatever the proxy said.
    let req = client
        .request("GET", "/x")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-real-ip", "6.6.6.6")
        .body(Full::default())
        .unwrap();
    client.send(req).await;
    assert_eq!(
        upstream.last().header_all("x-real-ip"),
        vec!["198.51.100.7"]
    );
}

#[tokio::test]
async fn preserve_host_forwards_the_clients_host() {
    let upstream = TestUpstream::start().await;
    let policy = dev_policy("[upstream]\nurl = \"http://127.0.0.1:1\"\npreserve-host = true\n");
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    client
        .send(
            client
                .request("GET", "/x")
                .header("host", "api.example.com")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(upstream.last().header("host"), Some("api.example.com"));
}

#[tokio::test]
async fn hop_by_hop_headers_never_cross() {
    let (upstream, gw) = common::gateway(&dev_policy("")).await;
    let client = Client::http1(gw.addr);
    let req = client
        .request("GET", "/x")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "gzip, trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, 200);
    let seen = upstream.last();
    for name in [
        "te",
        "x-secret-hop",
        "keep-alive",
        "proxy-authorization",
        "upgrade",
        "http2-settings",
    ] {
        assert!(seen.header(name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen.version, "HTTP/1.1");
}

#[tokio::test]
async fn request_bodies_stream_through() {
    let (_upstream, gw) = common::gateway(&dev_policy("")).await;
    let client = Client::http1(gw.addr);
    let body = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let reply = client
        .send(
            client
                .request("POST", "/upload")
                .body(Full::new(body))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_len"], 3 * 1024 * 1024);
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    let reply = Client::h2c(gw.addr).get("/v1/account/me").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.header("cache-control"), Some("no-store, private"));
    assert_eq!(reply.header("x-frame-options"), Some("SAMEORIGIN"));
    // The upstream still gets canonical HTTP/1.1.
    assert_eq!(upstream.last().version, "HTTP/1.1");
}

#[tokio::test]
async fn h2c_upstreams_are_spoken_to_in_http2() {
    let upstream = TestUpstream::start().await;
    let policy = dev_policy("[upstream]\nurl = \"http://127.0.0.1:1\"\nprotocol = \"h2c\"\n");
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    let reply = client.get("/h2").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.last().version, "HTTP/2.0");
    assert_eq!(reply.version, http::Version::HTTP_11);
    // `TE: trailers` is passed on (gRPC needs it), and nothing else of TE.
    let req = client
        .request("GET", "/h2")
        .header("te", "gzip, trailers")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, 200);
    assert_eq!(upstream.last().header_all("te"), vec!["trailers"]);
}

#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    let (_upstream, mut gw) =
        common::gateway(&dev_policy("[server]\nshutdown-grace = \"20s\"\n")).await;
    // Both clients keep their connection open, idle, after their request.
    let h1 = Client::http1(gw.addr);
    let h2 = Client::h2c(gw.addr);
    assert_eq!(h1.get("/x").await.status, 200);
    assert_eq!(h2.get("/x").await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let code = tokio::task::spawn_blocking(move || gw.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle connections held the shutdown for {:?}",
        started.elapsed()
    );
    drop((h1, h2));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let (upstream, mut gw) = common::gateway(&dev_policy("")).await;
    let client = Client::http1(gw.addr);
    let in_flight = tokio::spawn(async move { client.get("/slow/800").await });
    // Wait until the request has reached the upstream.
    for _ in 0..100 {
        if !upstream.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = gw.terminate();
        (code, gw)
    });
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request was cut off");
    let (code, gw) = code.await.unwrap();
    assert_eq!(code, Some(0));
    // New connections are refused once it has stopped.
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
