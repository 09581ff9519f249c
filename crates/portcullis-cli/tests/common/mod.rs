//! Shared by the end-to-end tests: the binary under test and the example policies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example policy from `examples/`.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).unwrap()
}

/// The seed-000 example, with `environment` replaced.
pub fn sdk_api(environment: &str) -> String {
    example("sdk-api.toml").replace(
        "environment = \"production\"",
        &format!("environment = \"{environment}\""),
    )
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
