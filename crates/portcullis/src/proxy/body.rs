//! The body type of the gateway, in both directions: a peer's stream passed through, or bytes
//! the gateway holds.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::pool::PooledBody;

pin_project_lite::pin_project! {
    /// Streams a peer's body through untouched (the client's request to the upstream, the
    /// upstream's response to the client), or carries bytes the gateway holds: a body it made
    /// (errors, security.txt) or one it had to read whole (a signed request, whose signature
    /// covers the body, so nothing is forwarded before it is checked). An enum rather than a
    /// boxed body: no allocation per request or response. An HTTP/1.1 upstream's response
    /// comes with its pooled connection, handed back when the body ends.
    #[project = ProxyBodyProj]
    #[derive(Debug)]
    pub enum ProxyBody {
        Streaming { #[pin] body: Incoming },
        Pooled { #[pin] body: PooledBody<ProxyBody> },
        Full { data: Option<Bytes> },
    }
}

impl ProxyBody {
    pub fn upstream(body: Incoming) -> Self {
        Self::Streaming { body }
    }
}

impl From<PooledBody<ProxyBody>> for ProxyBody {
    fn from(body: PooledBody<ProxyBody>) -> Self {
        Self::Pooled { body }
    }
}

impl From<Incoming> for ProxyBody {
    fn from(body: Incoming) -> Self {
        Self::Streaming { body }
    }
}

impl Default for ProxyBody {
    fn default() -> Self {
        Self::Full { data: None }
    }
}

impl From<Bytes> for ProxyBody {
    fn from(data: Bytes) -> Self {
        Self::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ProxyBodyProj::Streaming { body } => body.poll_frame(cx),
            ProxyBodyProj::Pooled { body } => body.poll_frame(cx),
            ProxyBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming { body } => body.is_end_stream(),
            Self::Pooled { body } => body.is_end_stream(),
            Self::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming { body } => body.size_hint(),
            Self::Pooled { body } => body.size_hint(),
            Self::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn held_bytes_come_out_whole_with_an_exact_size() {
        let body = ProxyBody::from(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        let empty = ProxyBody::from(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
