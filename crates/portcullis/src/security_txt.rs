//! `GET /.well-known/security.txt`, answered by the gateway from the policy's `[disclosure]`.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use portcullis_layers::EitherFuture;
use portcullis_policy::Disclosure;
use tower::{Layer, Service};

/// The path RFC 9116 fixes.
pub const PATH: &str = "/.well-known/security.txt";

/// Serves security.txt when the policy has a disclosure contact; otherwise passes through.
#[derive(Debug, Clone)]
pub struct SecurityTxtLayer {
    body: Option<Bytes>,
}

impl SecurityTxtLayer {
    pub fn new(disclosure: Option<&Disclosure>) -> Self {
        Self {
            body: disclosure.map(|d| Bytes::from(d.to_security_txt())),
        }
    }
}

impl<S> Layer<S> for SecurityTxtLayer {
    type Service = SecurityTxt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityTxt {
            inner,
            body: self.body.clone().map(Arc::new),
        }
    }
}

/// See [`SecurityTxtLayer`].
#[derive(Debug, Clone)]
pub struct SecurityTxt<S> {
    inner: S,
    body: Option<Arc<Bytes>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityTxt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let answer =
            matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == PATH;
        match (&self.body, answer) {
            (Some(body), true) => {
                // hyper omits the body of a HEAD response itself.
                let mut res = Response::new(ResBody::from((**body).clone()));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                EitherFuture::right(ready(Ok(res)))
            }
            _ => EitherFuture::left(self.inner.call(req)),
        }
    }
}
