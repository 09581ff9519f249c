//! Graceful shutdown of a listener's connections (the gateway's and the admin API's): told to
//! finish their requests and close, then waited for.
//!
//! As hyper-util's `GracefulShutdown` does it: each connection holds a receiver of a watch
//! channel, the shutdown sends on it and then waits until every receiver is gone. One thing is
//! done differently, on the hot path: hyper-util polls the watch each time the connection's
//! task runs (two or three times per request), about 300 instructions per request for a signal
//! that comes once in the life of the process (bench/README.md). Here the watch is polled once,
//! which registers the task to be woken by the signal, and after that only once a flag says
//! that the shutdown has begun. The flag is set before the signal is sent, so the task the
//! signal wakes sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::watch;

/// Connections that can be told to finish what they are doing and close.
pub trait GracefulConnection: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S, E> GracefulConnection
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, B, S, E> GracefulConnection for hyper_util::server::conn::auto::Connection<'_, I, S, E>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::Connection::graceful_shutdown(self);
    }
}

/// The shutdown signal of one server's connections.
#[derive(Debug)]
pub struct GracefulShutdown {
    tx: watch::Sender<()>,
    begun: Arc<AtomicBool>,
}

impl GracefulShutdown {
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(()),
            begun: Arc::new(AtomicBool::new(false)),
        }
    }

    /// `conn`, closed gracefully when [`shutdown`](Self::shutdown) is called, and counted until
    /// it ends. The returned future must be the task's own future (spawned as it is): the task
    /// is woken through the waker it had when first polled.
    pub fn watch<C: GracefulConnection>(
        &self,
        conn: C,
    ) -> Watched<C, impl Future<Output = watch::Receiver<()>> + use<C>> {
        let mut rx = self.tx.subscribe();
        Watched {
            conn,
            signal: async move {
                // An error means the sender is gone: no shutdown will come, and the connection
                // is told to close as it would be by one (the server is going away).
                let _ = rx.changed().await;
                rx
            },
            polled: false,
            begun: self.begun.clone(),
            signalled: None,
        }
    }

    /// Connections still open.
    pub fn count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Tells every connection to close once its requests are answered, and waits until all
    /// of them have.
    pub async fn shutdown(self) {
        self.begun.store(true, Ordering::Release);
        let _ = self.tx.send(());
        self.tx.closed().await;
    }
}

impl Default for GracefulShutdown {
    fn default() -> Self {
        Self::new()
    }
}

pin_project_lite::pin_project! {
    /// See [`GracefulShutdown::watch`].
    pub struct Watched<C, S> {
        #[pin]
        conn: C,
        #[pin]
        signal: S,
        polled: bool,
        begun: Arc<AtomicBool>,
        // Kept until the connection ends, so that it is counted until then.
        signalled: Option<watch::Receiver<()>>,
    }
}

impl<C, S> Future for Watched<C, S>
where
    C: GracefulConnection,
    S: Future<Output = watch::Receiver<()>>,
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.signalled.is_none() && (!*this.polled || this.begun.load(Ordering::Acquire)) {
            *this.polled = true;
            if let Poll::Ready(rx) = this.signal.poll(cx) {
                *this.signalled = Some(rx);
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A connection that ends once told to shut down, counting its polls.
    struct Conn {
        told: Arc<AtomicBool>,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Conn {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.told.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl GracefulConnection for Conn {
        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.told.store(true, Ordering::SeqCst);
        }
    }

    fn conn() -> (Conn, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let told = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            told: told.clone(),
            polls: polls.clone(),
        };
        (conn, told, polls)
    }

    #[tokio::test]
    async fn shutdown_tells_every_connection_and_waits_for_them() {
        let graceful = GracefulShutdown::new();
        let (a, a_told, a_polls) = conn();
        let (b, b_told, _) = conn();
        let a = tokio::spawn(graceful.watch(a));
        let b = tokio::spawn(graceful.watch(b));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a_polls.load(Ordering::SeqCst), 1, "pending, not spun");
        assert_eq!(graceful.count(), 2);
        assert!(!a_told.load(Ordering::SeqCst));
        tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
            .await
            .expect("both connections ended");
        assert!(a_told.load(Ordering::SeqCst) && b_told.load(Ordering::SeqCst));
        a.await.unwrap();
        b.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_is_counted_until_it_ends() {
        let graceful = GracefulShutdown::new();
        let (c, _, _) = conn();
        let task = tokio::spawn(graceful.watch(c));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(graceful.count(), 1);
        // Ended (here: dropped), it is no longer counted.
        task.abort();
        let _ = task.await;
        assert_eq!(graceful.count(), 0);
        tokio::time::timeout(Duration::from_secs(1), graceful.shutdown())
            .await
            .expect("nothing left to wait for");
    }

    #[test]
    fn the_signal_is_polled_once_until_a_shutdown_begins() {
        let graceful = GracefulShutdown::new();
        let (c, told, _) = conn();
        let mut watched = Box::pin(graceful.watch(c));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..3 {
            assert!(watched.as_mut().poll(&mut cx).is_pending());
        }
        assert!(watched.polled);
        // The signal sent without the flag (which `shutdown` never does) goes unseen: the
        // signal is not polled again until the flag is up.
        let _ = graceful.tx.send(());
        assert!(watched.as_mut().poll(&mut cx).is_pending());
        assert!(!told.load(Ordering::SeqCst));
        graceful.begun.store(true, Ordering::Release);
        assert!(watched.as_mut().poll(&mut cx).is_ready());
        assert!(told.load(Ordering::SeqCst));
    }
}
