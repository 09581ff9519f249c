//! The request body type of the gateway: the client's stream, or bytes already read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// Streams the client's body to the upstream untouched, or carries a body the gateway had to
    /// read whole first (a signed request: its signature covers the body, so nothing is
    /// forwarded before the signature is checked). An enum rather than a boxed body: no
    /// allocation per request.
    #[project = RequestBodyProj]
    #[derive(Debug)]
    pub enum RequestBody {
        Streaming { #[pin] body: Incoming },
        Buffered { data: Option<Bytes> },
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        Self::Streaming { body }
    }
}

impl From<Bytes> for RequestBody {
    fn from(data: Bytes) -> Self {
        Self::Buffered {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            RequestBodyProj::Streaming { body } => body.poll_frame(cx),
            RequestBodyProj::Buffered { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming { body } => body.is_end_stream(),
            Self::Buffered { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming { body } => body.size_hint(),
            Self::Buffered { data } => {
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
    async fn buffered_bytes_come_out_whole_with_an_exact_size() {
        let body = RequestBody::from(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        let empty = RequestBody::from(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
