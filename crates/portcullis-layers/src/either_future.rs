//! A future that is one of two futures: the inner service's, or an immediate rejection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// Either the inner service's response future or a ready response.
    #[project = EitherProj]
    #[derive(Debug)]
    pub enum EitherFuture<L, R> {
        Left { #[pin] inner: L },
        Right { #[pin] inner: R },
    }
}

impl<L, R> EitherFuture<L, R> {
    pub fn left(inner: L) -> Self {
        Self::Left { inner }
    }

    pub fn right(inner: R) -> Self {
        Self::Right { inner }
    }
}

impl<L, R, T> Future for EitherFuture<L, R>
where
    L: Future<Output = T>,
    R: Future<Output = T>,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project() {
            EitherProj::Left { inner } => inner.poll(cx),
            EitherProj::Right { inner } => inner.poll(cx),
        }
    }
}
