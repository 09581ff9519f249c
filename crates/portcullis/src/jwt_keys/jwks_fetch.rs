//! Fetching a JWKS document from its URL: one bounded GET.
//!
//! Bounded because the identity provider, or whatever answers in its place, is not trusted to
//! behave: 5 s for the whole exchange (connect, TLS, response, body), a 256 KiB body (real sets
//! are a few KiB), status 200 only. Redirects are not followed: a redirect could lead to plain
//! `http` or to another host than the policy names. TLS is rustls with the system's roots.
//!
//! Errors never carry the URL: its query may hold a token. Callers name the key path and the
//! host.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The whole exchange, connect to last body byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why a fetch failed. Never contains the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {} s", FETCH_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Request(String),
    #[error("status {0}, expected 200")]
    Status(StatusCode),
    #[error("the body is over {} KiB", MAX_JWKS_BYTES / 1024)]
    TooLarge,
    #[error("reading the body: {0}")]
    Body(String),
}

/// A client for JWKS URLs, shared by the start-up fetches and the refreshers.
#[derive(Clone)]
pub struct JwksClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksClient").finish_non_exhaustive()
    }
}

impl JwksClient {
    /// `https`: whether any URL needs TLS. Only then are the system's roots loaded, so that a
    /// host without a CA bundle can still fetch from a loopback `http` provider (tests,
    /// development); with `https` URLs and no roots, the start stops with this error.
    pub fn new(https: bool) -> std::io::Result<Self> {
        // Named, not left to rustls' process default, which is ambiguous (and panics) when
        // another crate in the build enables a second provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let builder = if https {
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
        // `https_or_http`: the policy decides where plain `http` is allowed (never in
        // production); the client only carries it out.
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            // A fetch every few minutes: an idle connection would only be closed by the
            // provider in between.
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self { client })
    }

    /// GETs `url` and returns its body: status 200, at most [`MAX_JWKS_BYTES`], all within
    /// [`FETCH_TIMEOUT`].
    pub async fn fetch(&self, url: &Uri) -> Result<Bytes, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.exchange(url))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn exchange(&self, url: &Uri) -> Result<Bytes, FetchError> {
        let request = Request::get(url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .header(
                USER_AGENT,
                concat!("portcullis/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Request(crate::error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Body(e.to_string())
                }
            })?;
        Ok(body.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server answering every connection with `head` and `body`.
    async fn answering(head: &'static str, body: Vec<u8>) -> Uri {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = head.replace("{len}", &body.len().to_string());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            }
        });
        format!("http://{addr}/jwks.json?token=q").parse().unwrap()
    }

    #[tokio::test]
    async fn only_a_bounded_200_is_a_jwks() {
        let client = JwksClient::new(false).unwrap();
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n";
        let url = answering(ok, br#"{"keys":[]}"#.to_vec()).await;
        assert_eq!(&client.fetch(&url).await.unwrap()[..], br#"{"keys":[]}"#);

        // A redirect is not followed: it could lead to plain http or another host.
        let moved =
            "HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\n\r\n";
        let url = answering(moved, Vec::new()).await;
        let err = client.fetch(&url).await.unwrap_err();
        assert_eq!(err.to_string(), "status 302 Found, expected 200");

        let url = answering(ok, vec![b' '; MAX_JWKS_BYTES + 1]).await;
        assert!(matches!(
            client.fetch(&url).await,
            Err(FetchError::TooLarge)
        ));

        // Nothing listens: the message says why, without the URL.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: Uri = format!("http://127.0.0.1:{port}/jwks.json?token=q")
            .parse()
            .unwrap();
        let err = client.fetch(&url).await.unwrap_err().to_string();
        assert!(err.contains("Connection refused"), "{err}");
        assert!(
            !err.contains("token=q") && !err.contains("jwks.json"),
            "{err}"
        );
    }
}
