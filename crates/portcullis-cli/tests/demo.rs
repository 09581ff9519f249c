//! The README's first command: `portcullis demo` runs with nothing but the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_test::Client;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_serves_the_three_curl_lines_it_prints() {
    let mut child = Command::new(common::binary())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut curls = Vec::new();
    let mut addr: Option<SocketAddr> = None;
    while curls.len() < 3 && started.elapsed() < Duration::from_secs(30) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(rest) = line.split("gateway on http://").nth(1) {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
        if line.trim_start().starts_with("curl ") {
            curls.push(line);
        }
    }
    let addr = addr.expect("the demo printed no address");
    assert_eq!(curls.len(), 3, "{curls:?}");

    let client = Client::http1(addr);
    let status = client.get("/v1/status").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("cache-control"), Some("public, max-age=30"));
    assert!(status.header("server").is_none());

    let traced = client
        .send(
            client
                .request("GET", "/v1/account/me")
                .header("x-correlation-id", "my-trace-1")
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert_eq!(traced.status, 200);
    assert_eq!(traced.header("x-correlation-id"), Some("my-trace-1"));
    assert_eq!(traced.header("cache-control"), Some("no-store, private"));

    // The third line shows normalisation: a dotted path lands in the private group.
    let dotted = client.get("/v1/status/../account//me").await;
    assert_eq!(dotted.status, 200);
    assert_eq!(dotted.header("cache-control"), Some("no-store, private"));
}
