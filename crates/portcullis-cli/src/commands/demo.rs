//! `portcullis demo`: the bundled policy in front of the bundled demo API. No files, no services.

use std::net::SocketAddr;
use std::process::ExitCode;

use portcullis::policy::{CompileOptions, UpstreamSettings, load_str};

use super::{failure, print_diagnostics, runtime};
use crate::demo_upstream;

/// The bundled demo policy.
pub const POLICY: &str = include_str!("../../demo/policy.toml");

pub fn run(listen: SocketAddr) -> ExitCode {
    let compiled = match load_str("<bundled demo policy>", POLICY, &CompileOptions::default()) {
        Ok(c) => c,
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            return failure("the bundled demo policy is invalid (a bug: please report it)");
        }
    };
    let upstream =
        match runtime().and_then(|rt| rt.block_on(demo_upstream::start()).map(|addr| (rt, addr))) {
            Ok(pair) => pair,
            Err(e) => return failure(format!("cannot start the demo upstream: {e}")),
        };
    // Keep the upstream's runtime alive for as long as the gateway runs.
    let (upstream_runtime, upstream_addr) = upstream;
    let mut policy = compiled.policy;
    policy.server.listen = listen;
    let url = match format!("http://{upstream_addr}").parse() {
        Ok(url) => url,
        Err(e) => return failure(format!("demo upstream address: {e}")),
    };
    policy.upstream = Some(UpstreamSettings::new(url));
    let banner = Box::new(move |addr: SocketAddr| {
        outln!("");
        outln!("Portcullis demo: gateway on http://{addr} -> demo API on http://{upstream_addr}");
        outln!("Try:");
        outln!("  curl -i http://{addr}/v1/status");
        outln!("  curl -i -H 'X-Correlation-ID: my-trace-1' http://{addr}/v1/account/me");
        outln!("  curl -i --path-as-is 'http://{addr}/v1/status/../account//me'");
        outln!("Ctrl-C stops it.");
        outln!("");
    });
    let code = super::serve::serve(policy, Some(banner));
    drop(upstream_runtime);
    code
}
