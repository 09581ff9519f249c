//! Shared by the end-to-end tests: the binary under test and the example policies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub mod private_redis;

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example policy from `examples/`, its SQLite key store (if any) moved to a fresh file in
/// the system's temporary directory, so that tests never write into the repository.
pub fn example(name: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples").join(name)).unwrap();
    text.replace(
        "\"sqlite:portcullis-keys.db\"",
        &format!("\"sqlite:{}\"", fresh_db().display()),
    )
}

/// A path for a new SQLite database, unique in this run.
pub fn fresh_db() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("portcullis-test-{}-{n}.db", std::process::id()))
}

/// The seed-000 example's posture, with `environment` replaced and its authentication taken
/// out: the tests that use it are about headers, CORS, framing and proxying, and send no keys.
/// `tests/sdk_api_auth.rs` covers the example as written, keys included.
pub fn sdk_api(environment: &str) -> String {
    without_auth(&example("sdk-api.toml")).replace(
        "environment = \"production\"",
        &format!("environment = \"{environment}\""),
    )
}

/// `policy` without its `[auth…]` tables and the routes' one-line `auth = {…}`, the rest kept
/// as written (tests edit the text further). Panics if an `auth` is left that it cannot take
/// out, so a test never runs against a policy it did not mean.
pub fn without_auth(policy: &str) -> String {
    let mut out = String::new();
    let mut in_auth = false;
    for line in policy.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_auth = trimmed.starts_with("[auth]") || trimmed.starts_with("[auth.");
        }
        if in_auth || trimmed.starts_with("auth = {") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let doc: toml::Table = out.parse().unwrap();
    assert!(!doc.contains_key("auth"), "an [auth] table is left");
    out
}

/// A test upstream and a gateway process running `policy` in front of it.
pub async fn gateway(
    policy: &str,
) -> (
    portcullis_test::TestUpstream,
    portcullis_test::GatewayProcess,
) {
    let upstream = portcullis_test::TestUpstream::start().await;
    let gw = portcullis_test::GatewayProcess::start(binary(), policy, Some(&upstream.url()), &[]);
    (upstream, gw)
}
