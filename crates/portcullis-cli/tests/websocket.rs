//! WebSocket upgrades through the gateway: the origin check, the handshake, the tunnel, the
//! refusals, and shutdown with a tunnel open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use http_body_util::Full;
use portcullis_test::websocket::{Message, handshake_request};
use portcullis_test::{Client, GatewayProcess, TestUpstream, WsClient, WsUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "http://app.example.test";

/// `/ws` has the `app` CORS policy; everything else (the default route) has none. (A plain
/// `http:` origin must be listed for development only: the policy refuses it in production.)
fn policy(extra: &str) -> String {
    format!(
        "environment = \"development\"\n{extra}\n\
         [cors.app]\norigins = {{ development = [\"{APP}\"] }}\nmethods = [\"GET\"]\n\
         [[route]]\nname = \"socket\"\npaths = [\"/ws/*\"]\ncors = \"app\"\n"
    )
}

async fn ws_gateway(policy: &str) -> (WsUpstream, GatewayProcess) {
    let upstream = WsUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), policy, Some(&upstream.url()), &[]);
    (upstream, gw)
}

#[tokio::test]
async fn an_allowed_origin_upgrades_and_messages_cross_both_ways() {
    let (upstream, gw) = ws_gateway(&policy("")).await;
    let mut ws = WsClient::connect(gw.addr, "/ws", Some(APP)).await.unwrap();
    assert_eq!(ws.response.status(), 101);
    assert!(ws.header("sec-websocket-accept").is_some());
    assert_eq!(ws.header("upgrade"), Some("websocket"));
    // The posture still applies to the 101, and the correlation ID is echoed.
    assert_eq!(ws.header("x-content-type-options"), Some("nosniff"));
    assert!(ws.header("x-correlation-id").is_some());
    assert_eq!(ws.header("access-control-allow-origin"), Some(APP));

    assert_eq!(ws.recv_text().await, "hello");
    ws.send_text("ping").await;
    assert_eq!(ws.recv_text().await, "echo: ping");
    // Larger than any buffer on the way, in both directions.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(big.clone()).await;
    match ws.recv().await {
        Some(Message::Binary(data)) => assert!(data == big, "binary message corrupted"),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    // Bytes that look like HTTP inside the tunnel are just data.
    let smuggle =
        "GET /admin HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    ws.send_text(smuggle).await;
    assert_eq!(ws.recv_text().await, format!("echo: {smuggle}"));

    let seen = upstream.last();
    assert_eq!(seen.target, "/ws");
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("connection"), Some("upgrade"));
    assert_eq!(seen.header("sec-websocket-version"), Some("13"));
    assert!(seen.header("sec-websocket-key").is_some());
    assert_eq!(seen.header("origin"), Some(APP));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(upstream.handshakes().len(), 1);
}

#[tokio::test]
async fn the_tunnel_logs_with_the_correlation_id_of_its_handshake() {
    let upstream = WsUpstream::start().await;
    let gw = GatewayProcess::try_start(
        common::binary(),
        &policy("[logging]\nformat = \"json\"\n"),
        Some(&upstream.url()),
        &[],
        &[("RUST_LOG", "info,portcullis::proxy::websocket=debug")],
    )
    .unwrap();
    let mut ws = WsClient::connect(gw.addr, "/ws", Some(APP)).await.unwrap();
    let id = ws.header("x-correlation-id").unwrap().to_owned();
    assert_eq!(ws.recv_text().await, "hello");
    // The upstream closes on the close frame; the tunnel task logs once both sides are done.
    ws.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let closed = loop {
        // Awaited, not blocked on: the upstream runs on this test's runtime and must answer.
        tokio::time::sleep(Duration::from_millis(50)).await;
        lines.extend(gw.output());
        if let Some(line) = lines.iter().find(|l| l.contains("websocket tunnel closed")) {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no tunnel line in {lines:?}");
    };
    let json: serde_json::Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(json["spans"][0]["correlation_id"], id.as_str(), "{closed}");
}

#[tokio::test]
async fn only_the_upgrade_headers_cross_with_the_handshake() {
    let (upstream, gw) = ws_gateway(&policy("")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade, X-Secret-Hop\r\n\
              Upgrade: websocket\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Authorization: Basic Zm9vOmJhcg==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455's own example: the key above must give this accept value.
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let seen = upstream.last();
    assert_eq!(seen.header_all("connection"), vec!["upgrade"]);
    assert_eq!(seen.header_all("upgrade"), vec!["websocket"]);
    assert_eq!(seen.header("sec-websocket-protocol"), Some("chat"));
    for name in ["x-secret-hop", "keep-alive", "proxy-authorization"] {
        assert!(seen.header(name).is_none(), "{name} reached the upstream");
    }
}

#[tokio::test]
async fn a_refused_origin_gets_403_and_never_reaches_the_upstream() {
    let (upstream, gw) = ws_gateway(&policy("")).await;
    let client = Client::http1(gw.addr);
    for (path, origin) in [
        ("/ws", "http://evil.test"),
        // The default route has no CORS policy: only the gateway's own host may connect.
        ("/other", APP),
    ] {
        let reply = client
            .send(
                handshake_request(&client, path)
                    .header("origin", origin)
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, 403, "{origin} on {path}");
        assert_eq!(reply.json()["error"]["code"], "websocket_origin_refused");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    assert!(
        WsClient::connect(gw.addr, "/ws", Some("http://evil.test"))
            .await
            .is_err()
    );
    assert!(
        upstream.handshakes().is_empty(),
        "{:?}",
        upstream.handshakes()
    );
}

#[tokio::test]
async fn a_client_without_origin_upgrades() {
    let (upstream, gw) = ws_gateway(&policy("")).await;
    let mut ws = WsClient::connect(gw.addr, "/ws", None).await.unwrap();
    assert_eq!(ws.recv_text().await, "hello");
    ws.send_text("no browser").await;
    assert_eq!(ws.recv_text().await, "echo: no browser");
    assert!(upstream.last().header("origin").is_none());
}

#[tokio::test]
async fn the_same_host_upgrades_on_a_route_without_cors() {
    let (_upstream, gw) = ws_gateway(&policy("")).await;
    let own = format!("http://{}", gw.addr);
    let mut ws = WsClient::connect(gw.addr, "/chat", Some(&own))
        .await
        .unwrap();
    assert_eq!(ws.recv_text().await, "hello");
    ws.send_text("same host").await;
    assert_eq!(ws.recv_text().await, "echo: same host");
    assert!(ws.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_upstream_refusal_is_a_normal_response_and_the_connection_stays_http() {
    let (upstream, gw) = ws_gateway(&policy("")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws/deny HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-content-type-options: nosniff"), "{head}");
    assert!(!lower.contains("upgrade:"), "{head}");
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(body, b"denied by upstream");

    // Same connection, still HTTP/1.1: this handshake succeeds.
    let mut ws = WsClient::handshake(stream, gw.addr, "/ws", Some(APP))
        .await
        .unwrap();
    assert_eq!(ws.recv_text().await, "hello");
    ws.send_text("after a refusal").await;
    assert_eq!(ws.recv_text().await, "echo: after a refusal");
    let targets: Vec<String> = upstream
        .handshakes()
        .into_iter()
        .map(|r| r.target)
        .collect();
    assert_eq!(targets, ["/ws/deny", "/ws"]);
}

#[tokio::test]
async fn other_upgrades_are_forwarded_as_plain_requests() {
    let (upstream, gw) = common::gateway(&policy("")).await;
    let client = Client::http1(gw.addr);
    for (method, connection, upgrade) in [
        ("GET", "Upgrade, HTTP2-Settings", "h2c"),
        ("GET", "Upgrade", "websocket, h2c"),
        ("GET", "Upgrade", "foo/1"),
        ("POST", "Upgrade", "websocket"),
    ] {
        let reply = client
            .send(
                client
                    .request(method, "/x")
                    .header("connection", connection)
                    .header("upgrade", upgrade)
                    .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, 200, "{method} {upgrade}");
        assert_eq!(reply.version, http::Version::HTTP_11);
        let seen = upstream.last();
        for name in ["upgrade", "connection", "http2-settings"] {
            assert!(
                seen.header(name).is_none(),
                "{name} reached the upstream for {method} {upgrade}"
            );
        }
    }
}

#[tokio::test]
async fn a_101_the_gateway_did_not_ask_for_is_a_502() {
    let (_upstream, gw) = common::gateway(&policy("")).await;
    let client = Client::http1(gw.addr);
    // The test upstream answers `/status/101` with a bare 101: no handshake behind it.
    let plain = client.get("/status/101").await;
    assert_eq!(plain.status, 502);
    assert_eq!(plain.json()["error"]["code"], "upstream_unavailable");
    let handshake = client
        .send(
            handshake_request(&client, "/status/101")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(handshake.status, 502);
    assert_eq!(handshake.json()["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn an_h2c_upstream_refuses_websocket_cleanly() {
    let upstream = TestUpstream::start().await;
    let policy = policy("[upstream]\nurl = \"http://127.0.0.1:1\"\nprotocol = \"h2c\"\n");
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let client = Client::http1(gw.addr);
    let reply = client
        .send(
            handshake_request(&client, "/ws")
                .header("origin", APP)
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 501);
    assert_eq!(reply.json()["error"]["code"], "websocket_unsupported");
    assert!(upstream.received().is_empty());
    // Plain requests still go through.
    assert_eq!(client.get("/ws").await.status, 200);
    assert_eq!(upstream.last().version, "HTTP/2.0");
}

#[tokio::test]
async fn sigterm_closes_an_open_tunnel_within_the_grace_period() {
    let (_upstream, mut gw) = ws_gateway(&policy("[server]\nshutdown-grace = \"1s\"\n")).await;
    let mut ws = WsClient::connect(gw.addr, "/ws", Some(APP)).await.unwrap();
    assert_eq!(ws.recv_text().await, "hello");
    let started = Instant::now();
    let terminated = tokio::task::spawn_blocking(move || {
        let code = gw.terminate();
        (code, started.elapsed(), gw)
    });
    // The tunnel keeps working during the grace period (SIGTERM is sent at once)...
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send_text("still there").await;
    assert_eq!(ws.recv_text().await, "echo: still there");
    // ...and is closed when it ends.
    assert!(ws.recv().await.is_none());
    let (code, elapsed, gw) = terminated.await.unwrap();
    assert_eq!(code, Some(0));
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    assert!(TcpStream::connect(gw.addr).await.is_err());
}

/// Reads one response head, byte by byte so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("no response head within 20 s")
            .unwrap();
        assert!(n == 1, "connection closed after {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Seed 002's realtime hub: the handshake carries its JWT in `?token=` (a browser cannot set
/// headers on it); the gateway verifies it and the upstream never sees it.
#[tokio::test]
async fn a_websocket_route_takes_its_jwt_in_the_query() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef-ws";
    let policy = format!(
        "environment = \"development\"\n\
         [auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = {{ env = \"WS_JWT_SECRET\" }}\n\
         [cors.app]\norigins = {{ development = [\"{APP}\"] }}\nmethods = [\"GET\"]\n\
         [[route]]\nname = \"socket\"\npaths = [\"/ws/*\"]\ncors = \"app\"\nwebsocket = true\n\
         [route.auth]\nquery-token = \"token\"\n"
    );
    let upstream = WsUpstream::start().await;
    let gw = GatewayProcess::try_start(
        common::binary(),
        &policy,
        Some(&upstream.url()),
        &[],
        &[("WS_JWT_SECRET", SECRET)],
    )
    .unwrap_or_else(|seen| panic!("the gateway did not start:\n{}", seen.join("\n")));
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({
            "sub": "viewer-1", "tenant": "acme", "role": "registered",
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();

    let mut ws = WsClient::connect(gw.addr, &format!("/ws/room?id=7&token={token}"), Some(APP))
        .await
        .unwrap();
    assert_eq!(ws.response.status(), 101);
    assert_eq!(ws.recv_text().await, "hello");
    let seen = upstream.last();
    assert_eq!(
        seen.target, "/ws/room?id=7",
        "the token reached the upstream"
    );
    assert_eq!(seen.header("x-portcullis-subject"), Some("viewer-1"));
    assert_eq!(seen.header("x-portcullis-tenant"), Some("acme"));

    // No token, or a forged one: refused before the upstream.
    let before = upstream.handshakes().len();
    for path in ["/ws/room".to_owned(), format!("/ws/room?token={token}x")] {
        let err = WsClient::connect(gw.addr, &path, Some(APP)).await.err();
        assert!(err.is_some(), "{path} upgraded");
    }
    assert_eq!(upstream.handshakes().len(), before);
    // The token was never logged.
    assert!(gw.output().iter().all(|line| !line.contains(&token)));
}
