//! An error and its causes on one line, `a: b: c`.
//!
//! An error's own message is often only its kind (hyper-util's legacy client: "client error
//! (Connect)"; the proxy's pool: "cannot connect to the upstream"); the causes say "Connection
//! refused" or which certificate check failed. The proxy's error detail and log, the JWKS
//! fetcher and `portcullis probe` all need the whole chain.

use std::error::Error;

/// `error`, then each of its sources, joined by `": "`.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(error_chain(&e), "outer: connection refused");
    }
}
