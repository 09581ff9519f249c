//! The response body type of the gateway: the upstream's stream, or bytes the gateway made.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// Streams the upstream's body through untouched, or carries a gateway-made body (errors,
    /// security.txt). An enum rather than a boxed body: no allocation per response.
    #[project = ProxyBodyProj]
    #[derive(Debug)]
    pub enum ProxyBody {
        Upstream { #[pin] body: Incoming },
        Full { data: Option<Bytes> },
    }
}

impl ProxyBody {
    pub fn upstream(body: Incoming) -> Self {
        Self::Upstream { body }
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
            ProxyBodyProj::Upstream { body } => body.poll_frame(cx),
            ProxyBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream { body } => body.is_end_stream(),
            Self::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream { body } => body.size_hint(),
            Self::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
