//! Benchmarks for Portcullis: see bench/README.md.
//!
//! This library holds what the benchmark binaries share: the upstream's 1 KiB JSON body, the
//! proxy plumbing of `bare-proxy` and `floor-proxy` ([`proxy`]), and the argument parsing of the
//! three, which only ever listen on or connect to loopback addresses (the load harness must
//! never send traffic anywhere else).

pub mod proxy;

use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;

/// Length of the upstream's response body.
pub const BODY_LEN: usize = 1024;

/// A JSON document of exactly [`BODY_LEN`] bytes, shaped like an SDK API's list response.
pub fn json_body() -> Bytes {
    let mut doc = String::from(r#"{"object":"list","has_more":false,"data":["#);
    for i in 0..6 {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!(
            r#"{{"id":"acct_{i:08}","object":"account","email":"user{i}@example.com","created":1700000000,"livemode":false}}"#
        ));
    }
    doc.push_str(r#"],"pad":""#);
    // Close with `"}` and pad to the exact length.
    let pad = BODY_LEN.saturating_sub(doc.len() + 2);
    doc.extend(std::iter::repeat_n('x', pad));
    doc.push_str("\"}");
    debug_assert_eq!(doc.len(), BODY_LEN);
    Bytes::from(doc)
}

/// A benchmark binary's exit status: failure, with `NAME: error` on stderr, when `result` is
/// an error.
pub fn exit_status(name: &str, result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the command line was refused.
#[derive(Debug)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// `--name value` pairs from the command line; unknown flags are refused.
pub fn flags(known: &[&str]) -> Result<Vec<(String, String)>, ArgError> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let name = flag
            .strip_prefix("--")
            .filter(|n| known.contains(n))
            .ok_or_else(|| ArgError(format!("unknown argument {flag:?}; expected {known:?}")))?;
        let value = args
            .next()
            .ok_or_else(|| ArgError(format!("--{name} needs a value")))?;
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// Parses a socket address and refuses anything but loopback.
pub fn loopback_addr(value: &str) -> Result<SocketAddr, ArgError> {
    let addr: SocketAddr = value
        .parse()
        .map_err(|e| ArgError(format!("{value:?} is not an address: {e}")))?;
    if !addr.ip().is_loopback() {
        return Err(ArgError(format!(
            "{addr} is not a loopback address: benchmark traffic stays on this machine"
        )));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_1_kib_of_json() {
        let body = json_body();
        assert_eq!(body.len(), BODY_LEN);
        assert!(body.starts_with(b"{") && body.ends_with(b"}"));
    }

    #[test]
    fn only_loopback_is_accepted() {
        assert!(loopback_addr("127.0.0.1:8080").is_ok());
        assert!(loopback_addr("[::1]:8080").is_ok());
        assert!(loopback_addr("0.0.0.0:8080").is_err());
        assert!(loopback_addr("10.0.0.1:80").is_err());
    }
}
