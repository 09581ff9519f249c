//! Request smuggling defences, with raw bytes no well-behaved client would send.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use portcullis_test::{GatewayProcess, TestUpstream, raw_exchange};

async fn gateway() -> (TestUpstream, GatewayProcess) {
    let (upstream, gw) = common::gateway(&common::sdk_api("production")).await;
    (upstream, gw)
}

fn status_of(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Sends `request`, asserts the first response is `status`, and that nothing reached the upstream.
async fn refused(request: &str, status: u16) {
    let (upstream, gw) = gateway().await;
    let response = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(status_of(&response), status, "{request:?} -> {response}");
    assert!(
        upstream.received().is_empty(),
        "{request:?} reached the upstream: {:?}",
        upstream.received()
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused() {
    refused(
        "POST /v1/status HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/admin/x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    )
    .await;
    refused(
        "POST /v1/status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn duplicate_content_length_is_refused() {
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    )
    .await;
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    )
    .await;
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        400,
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_that_is_not_chunked_last_is_refused() {
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
    refused(
        "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn header_names_aliasing_framing_headers_are_refused() {
    refused(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent_Length: 3\r\n\r\nabc",
        400,
    )
    .await;
    refused(
        "GET /x HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn host_must_be_single_and_consistent() {
    refused("GET /x HTTP/1.1\r\n\r\n", 400).await;
    refused("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400).await;
    refused(
        "GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
        400,
    )
    .await;
    refused("GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400).await;
}

#[tokio::test]
async fn malformed_heads_are_refused() {
    // Control characters, obsolete line folding, whitespace before the colon, bare LF.
    refused("GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", 400).await;
    refused(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n",
        400,
    )
    .await;
    refused(
        "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
        400,
    )
    .await;
    refused("GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400).await;
}

#[tokio::test]
async fn connect_and_trace_are_not_forwarded() {
    refused("TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n", 405).await;
    let (upstream, gw) = gateway().await;
    let response = raw_exchange(
        gw.addr,
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    )
    .await;
    assert!(matches!(status_of(&response), 400 | 405), "{response}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn ambiguous_paths_are_refused() {
    refused("GET /v1/public/..;/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400).await;
    refused("GET /v1/a%2f..%2fadmin HTTP/1.1\r\nHost: a\r\n\r\n", 400).await;
    refused("GET /v1\\admin HTTP/1.1\r\nHost: a\r\n\r\n", 400).await;
    refused("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400).await;
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_forwarded() {
    let (upstream, gw) = gateway().await;
    let response = raw_exchange(
        gw.addr,
        b"GET /v1/status HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    // Served as plain HTTP/1.1: no switch of protocols.
    assert_eq!(status_of(&response), 200, "{response}");
    let seen = upstream.last();
    assert!(seen.header("upgrade").is_none());
    assert!(seen.header("http2-settings").is_none());
    assert!(seen.header("connection").is_none());
}

#[tokio::test]
async fn a_valid_request_after_a_refused_one_is_not_smuggled() {
    // The classic CL.TE desync: if the gateway framed by Content-Length and the upstream by
    // chunked (or the reverse), the second request would reach the upstream unchecked.
    let (upstream, gw) = gateway().await;
    let _ = raw_exchange(
        gw.addr,
        b"POST /v1/status HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/admin/secret HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(
        upstream
            .received()
            .iter()
            .all(|r| r.target != "/v1/admin/secret"),
        "{:?}",
        upstream.received()
    );
}

#[tokio::test]
async fn pipelined_valid_requests_are_all_served() {
    let (upstream, gw) = gateway().await;
    let response = raw_exchange(
        gw.addr,
        b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPOST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.matches("HTTP/1.1 200").count(), 3, "{response}");
    let targets: Vec<String> = upstream.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, vec!["/one", "/two", "/three"]);
}

#[tokio::test]
async fn heads_larger_than_the_scanner_reads_are_refused() {
    let (upstream, gw) = gateway().await;
    let big = "a".repeat(70 * 1024);
    let response = raw_exchange(
        gw.addr,
        format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(
        status_of(&response),
        431,
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(upstream.received().is_empty());
}
