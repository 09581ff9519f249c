//! Sending the planned requests: hyper-util's client (the workspace's one HTTP client stack),
//! `http://` and, through hyper-rustls with the system's roots, `https://`.
//!
//! Only response heads are read: bodies are dropped unread, so a streaming route (server-sent
//! events) cannot hold the probe. Redirects are not followed: the policy's posture is on the
//! redirect itself. No connection is reused, so every request is judged on its own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::checks::Observed;
use super::plan::{PlannedRequest, Purpose};

/// The largest body the probe reads (a security.txt is a few hundred bytes).
const MAX_BODY: usize = 32 * 1024;

/// The deployment under test: an origin, `http://host[:port]` or `https://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
}

impl Target {
    /// Parses the URL given on the command line. A path other than `/`, a query or user
    /// information is refused: route paths are absolute, and the probe would silently test
    /// something else than written.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL ({e})"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                return Err(format!(
                    "`{url}`: the URL must start with http:// or https://"
                ));
            }
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{url}`: no user information in the URL"));
        }
        let path_ok = uri
            .path_and_query()
            .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
        if !path_ok {
            return Err(format!(
                "`{url}`: give the deployment's origin only (no path or query); the probe requests the policy's own paths"
            ));
        }
        Ok(Self { scheme, authority })
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    fn uri(&self, path: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no response within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// Sends planned requests to one target, each within the per-request timeout.
pub struct ProbeClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    target: Target,
    timeout: Duration,
}

impl fmt::Debug for ProbeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeClient")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ProbeClient {
    /// For `https` targets the system's roots are loaded (an error without any); for `http`
    /// none are, so a host without a CA bundle can still probe a plain-HTTP deployment.
    pub fn new(target: Target, timeout: Duration) -> std::io::Result<Self> {
        // Named, not left to rustls' process default, as the JWKS client does.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let builder = if target.is_https() {
            builder.with_provider_and_native_roots(provider)?
        } else {
            builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(std::io::Error::other)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        };
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            client,
            target,
            timeout,
        })
    }

    /// Sends one request and returns its status and headers.
    pub async fn send(&self, planned: &PlannedRequest) -> Result<Observed, SendError> {
        let uri = self
            .target
            .uri(&planned.path)
            .map_err(|e| SendError::Build(e.to_string()))?;
        let mut builder = Request::builder()
            .method(planned.method.clone())
            .uri(uri)
            .header(HOST, self.target.authority.as_str())
            .header(
                USER_AGENT,
                concat!("portcullis-probe/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &planned.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Empty::new())
            .map_err(|e| SendError::Build(e.to_string()))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| SendError::Timeout(self.timeout))?
            .map_err(|e| SendError::Transport(portcullis::error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        // Only a security.txt's body is read, bounded in size and time: a streaming route
        // must not hang the probe, and nothing else needs a body.
        let body = match planned.purpose {
            Purpose::SecurityTxt { .. } => {
                let read = Limited::new(body, MAX_BODY).collect();
                let collected = tokio::time::timeout(self.timeout, read)
                    .await
                    .map_err(|_| SendError::Timeout(self.timeout))?;
                // Too large or broken off: judged as no readable file.
                Some(collected.map(|c| c.to_bytes()).unwrap_or_default())
            }
            _ => None,
        };
        Ok(Observed {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_origins() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "https://api.example.com",
        ] {
            assert!(Target::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/").unwrap().to_string(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://example.com",
            "http://example.com/v1",
            "http://example.com/?x=1",
            "http://user@example.com",
            "not a url",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
