//! Keep-alive HTTP/1.1 connections to the one upstream, reused request after request.
//!
//! Written here rather than taken from hyper-util's legacy `Client` (which still serves h2c
//! upstreams, where one multiplexed connection is shared): that client is built for many
//! hosts and pays for it on every request. It hashes its pool key with SipHash three times,
//! races a pool checkout against a connect future, and moves its large futures about: about
//! 9 500 instructions per proxied request under callgrind, a quarter of what the whole bare
//! proxy spends (bench/README.md). A proxy talks to one upstream, so a stack of idle
//! connections behind one uncontended mutex is enough, and the response body hands its
//! connection back when it ends. hyper does the HTTP; the connector (`HttpConnector`: name
//! resolution, connect timeout, `TCP_NODELAY`) is still hyper-util's.
//!
//! Semantics kept from the legacy client: the most recently used idle connection goes first
//! (warm caches, and the upstream's idle timers see fewer connections); a connection idle for
//! longer than the idle timeout is closed, not used; a request that a reused connection
//! refused before writing a byte of it (the upstream closed it while it sat idle) is retried
//! once per idle connection, then on a new one; a response body dropped before its end closes
//! its connection (its unread rest would be taken for the next response).
//!
//! One addition: the legacy client never sends again a request of which any part was written,
//! so a request written into an idle connection that the upstream had just closed (the close
//! not yet seen) fails. Here an idempotent request without a body, sent on a connection that
//! had been idle for a while, is sent again after such a failure (see [`Http1Pool::send`]).
//!
//! Another: a cap on the connections open at once ([`Http1Pool::with_limit`]). Without one, a
//! burst of slow requests opens a connection per request, as many as clients care to send, and
//! passes the whole burst to the upstream. At the cap a request waits for a connection to come
//! back idle (or to close, making room for a new one) for a bounded time, then fails with
//! [`PoolError::Saturated`]: HAProxy's server `maxconn` with its queue timeout.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower::Service;

/// Why a request got no response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to the upstream")]
    Connect(#[source] Box<dyn StdError + Send + Sync>),
    #[error("the upstream refused the HTTP/1.1 handshake")]
    Handshake(#[source] hyper::Error),
    #[error("the upstream did not answer")]
    Send(#[source] hyper::Error),
    #[error("all {max} connections to the upstream stayed busy for {waited:?}")]
    Saturated { max: usize, waited: Duration },
}

/// HTTP/1.1 connections to one upstream. Cheap to clone: clones share the connections.
pub struct Http1Pool<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Clone for Http1Pool<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<B> std::fmt::Debug for Http1Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("target", &self.shared.target)
            .field("idle", &self.idle_count())
            .finish()
    }
}

struct Shared<B> {
    connector: HttpConnector,
    /// `http://host:port`, what the connector connects to.
    target: Uri,
    idle_timeout: Duration,
    /// Oldest first: checkout pops the newest, expiry trims the front.
    idle: Mutex<Vec<Idle<B>>>,
    /// `None`: connections are opened as requests need them, without a cap.
    limit: Option<Limit>,
    /// Told each time a connection comes back idle: a request waiting at the cap takes it.
    returned: Notify,
}

/// The cap on open connections.
struct Limit {
    /// One permit per open connection, held by its task until the connection closes.
    permits: Arc<Semaphore>,
    max: usize,
    /// How long a request waits at the cap for a connection.
    wait: Duration,
}

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> Shared<B> {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle<B>>> {
        // The list stays consistent whatever panicked while holding it: it is only pushed to,
        // popped from and trimmed at the front.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the connections idle for longer than the idle timeout (closing them).
    fn expire(&self, now: Instant) {
        let mut idle = self.idle();
        let fresh = idle
            .iter()
            .position(|c| now.saturating_duration_since(c.since) <= self.idle_timeout)
            .unwrap_or(idle.len());
        idle.drain(..fresh);
    }
}

impl<B> Http1Pool<B>
where
    B: Body + Default + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A pool of connections made by `connector` to `target` (`http://host:port`), each closed
    /// once idle for `idle_timeout`. Must be called inside a Tokio runtime: a task closes
    /// expired connections while no request comes to do it.
    pub fn new(connector: HttpConnector, target: Uri, idle_timeout: Duration) -> Self {
        Self::build(connector, target, idle_timeout, None)
    }

    /// Like [`new`](Self::new), keeping at most `max` connections open at once (at least
    /// one). A request that finds all of them busy waits up to `wait` for one, then fails with
    /// [`PoolError::Saturated`]. A connection handed to a WebSocket tunnel leaves the pool,
    /// and no longer counts.
    pub fn with_limit(
        connector: HttpConnector,
        target: Uri,
        idle_timeout: Duration,
        max: usize,
        wait: Duration,
    ) -> Self {
        let max = max.max(1);
        let limit = Limit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            wait,
        };
        Self::build(connector, target, idle_timeout, Some(limit))
    }

    fn build(
        connector: HttpConnector,
        target: Uri,
        idle_timeout: Duration,
        limit: Option<Limit>,
    ) -> Self {
        let shared = Arc::new(Shared {
            connector,
            target,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            limit,
            returned: Notify::new(),
        });
        spawn_expiry(Arc::downgrade(&shared), idle_timeout);
        Self { shared }
    }

    /// Sends `req` (origin-form target, `Host` set) on an idle connection, or a new one.
    ///
    /// The future owns a handle on the pool rather than borrowing it, so the proxy can keep it
    /// in a named future of its own; and it holds the request in one place only (an `async fn`
    /// whose argument is rebound keeps two slots for it), which matters because the future is
    /// moved whole on its way to the task: every byte of it is copied per request.
    pub fn send(
        &self,
        mut req: Request<B>,
    ) -> impl Future<Output = Result<Response<PooledBody<B>>, PoolError>> + Send + 'static {
        let pool = self.clone();
        async move {
            // When a request waiting at the cap gives up; set when it first waits.
            let mut deadline = None;
            loop {
                let (mut sender, reused, idle_for) = match pool.checkout() {
                    Some((sender, idle_for)) if sender.is_ready() => (sender, true, idle_for),
                    // Its response has ended but its connection task has not yet asked for the
                    // next request (it is woken and will), or the upstream closed it. Rare, as
                    // are connecting (a connection per idle timeout and concurrency step) and
                    // waiting at the cap: all boxed, so that their state does not enlarge every
                    // request's future.
                    Some((sender, idle_for)) => match Box::pin(wait_ready(sender)).await {
                        Some(sender) => (sender, true, idle_for),
                        None => continue,
                    },
                    None => {
                        let permit = match pool.room() {
                            Room::Unlimited => None,
                            Room::Permit(permit) => Some(permit),
                            Room::Full(limit) => {
                                let deadline = *deadline.get_or_insert_with(|| {
                                    tokio::time::Instant::now() + limit.wait
                                });
                                match Box::pin(pool.wait_at_cap(limit, deadline)).await? {
                                    Some(permit) => Some(permit),
                                    // A connection came back idle: take it, if no one else has.
                                    None => continue,
                                }
                            }
                        };
                        (Box::pin(pool.connect(permit)).await?, false, Duration::ZERO)
                    }
                };
                // A connection that sat idle may have been closed by the upstream (its
                // keep-alive timeout, a restart) so recently that its task has not seen it yet:
                // the request is then written into a dead socket, and fails. An idempotent
                // request without a body may be sent again after such a failure (RFC 9110,
                // section 9.2.2), so it keeps a copy of its head for that. Only after an idle
                // spell: a connection in steady use is alive, and copying the head of every
                // request would cost more than it saves. Boxed: the future holds a pointer
                // rather than room for a second request.
                let replay = (reused && idle_for >= REPLAY_AFTER_IDLE)
                    .then(|| replayable(&req).map(Box::new))
                    .flatten();
                match sender.try_send_request(req).await {
                    Ok(res) => {
                        // After a 101 the connection belongs to the upgrade, never to the pool.
                        let checkin =
                            (res.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Checkin {
                                sender,
                                pool: Arc::downgrade(&pool.shared),
                            });
                        return Ok(res.map(|body| PooledBody {
                            body,
                            ended: false,
                            checkin,
                        }));
                    }
                    Err(mut e) => match (e.take_message(), replay) {
                        // Not a byte was written: the idle connection had been closed under us.
                        (Some(unsent), _) if reused => req = unsent,
                        // Written, and the connection died before any answer.
                        (None, Some(copy)) if died_unanswered(e.error()) => {
                            tracing::debug!(
                                error = %e.error(),
                                ?idle_for,
                                "idle upstream connection was closed; sending the request again"
                            );
                            req = *copy;
                        }
                        _ => return Err(PoolError::Send(e.into_error())),
                    },
                }
            }
        }
    }

    /// The newest idle connection not past the idle timeout, if any, and how long it has been
    /// idle.
    fn checkout(&self) -> Option<(SendRequest<B>, Duration)> {
        let idle = self.shared.idle().pop()?;
        let now = Instant::now();
        let idle_for = now.saturating_duration_since(idle.since);
        if idle_for > self.shared.idle_timeout {
            // The rest are older still (but one returned meanwhile may be fresh).
            self.shared.expire(now);
            return None;
        }
        Some((idle.sender, idle_for))
    }

    /// Whether a new connection may be opened now.
    fn room(&self) -> Room<'_> {
        match &self.shared.limit {
            None => Room::Unlimited,
            Some(limit) => match limit.permits.clone().try_acquire_owned() {
                Ok(permit) => Room::Permit(permit),
                Err(_) => Room::Full(limit),
            },
        }
    }

    /// Waits at the cap until a connection closes (the permit to open another) or comes back
    /// idle (`None`: check it out), or until `deadline`.
    async fn wait_at_cap(
        &self,
        limit: &Limit,
        deadline: tokio::time::Instant,
    ) -> Result<Option<OwnedSemaphorePermit>, PoolError> {
        let saturated = || PoolError::Saturated {
            max: limit.max,
            waited: limit.wait,
        };
        tokio::select! {
            permit = limit.permits.clone().acquire_owned() => permit.map(Some).map_err(|_| saturated()),
            () = self.shared.returned.notified() => Ok(None),
            () = tokio::time::sleep_until(deadline) => Err(saturated()),
        }
    }

    /// Opens a connection; `permit` (with a cap) is held until the connection closes.
    async fn connect(
        &self,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<SendRequest<B>, PoolError> {
        let mut connector = self.shared.connector.clone();
        let io = connector
            .call(self.shared.target.clone())
            .await
            .map_err(|e| PoolError::Connect(e.into()))?;
        let (sender, conn) = http1::handshake(io).await.map_err(PoolError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            drop(permit);
        });
        Ok(sender)
    }
}

/// What [`Http1Pool::room`] found.
enum Room<'a> {
    Unlimited,
    Permit(OwnedSemaphorePermit),
    Full(&'a Limit),
}

/// How long a connection must have been idle before an idempotent request sent on it keeps a
/// copy to send again (see [`Http1Pool::send`]). Far above the gaps between the requests of a
/// busy gateway, so the copy is never made in steady use; far below any upstream's keep-alive
/// timeout (seconds), so a connection such a timeout closes is covered.
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(50);

/// A copy of `req` to send again, if it is idempotent (RFC 9110, section 9.2.2) and has no
/// body: one already streamed cannot be read a second time.
fn replayable<B: Body + Default>(req: &Request<B>) -> Option<Request<B>> {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    if !idempotent || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(B::default());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether `error` says the connection ended before the response began: closed mid-message,
/// or reset by the upstream.
fn died_unanswered(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() {
        return true;
    }
    let mut source = StdError::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = e.source();
    }
    false
}

/// `sender` once it can take a request; `None` when its connection closed instead.
async fn wait_ready<B>(mut sender: SendRequest<B>) -> Option<SendRequest<B>> {
    (!sender.is_closed() && sender.ready().await.is_ok()).then_some(sender)
}

impl<B> Http1Pool<B> {
    /// Connections now idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.shared.idle().len()
    }
}

/// Closes expired idle connections every half idle timeout, until the pool is gone.
fn spawn_expiry<B: Send + 'static>(pool: Weak<Shared<B>>, idle_timeout: Duration) {
    let every = (idle_timeout / 2).max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = pool.upgrade() else { break };
            shared.expire(Instant::now());
        }
    });
}

/// A response's connection, returned to the pool when its body has ended.
struct Checkin<B> {
    sender: SendRequest<B>,
    pool: Weak<Shared<B>>,
}

/// An upstream response body that returns its connection to the pool once it has been read to
/// its end, and closes it when dropped before.
pub struct PooledBody<B> {
    body: Incoming,
    ended: bool,
    checkin: Option<Checkin<B>>,
}

impl<B> std::fmt::Debug for PooledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("body", &self.body)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<B> Body for PooledBody<B> {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended = true,
            // The connection is not reused after an error: it no longer frames messages.
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for PooledBody<B> {
    fn drop(&mut self) {
        let Some(Checkin { sender, pool }) = self.checkin.take() else {
            return;
        };
        // hyper skips polling a body that says it has ended (an empty or fully read one).
        if !(self.ended || self.body.is_end_stream()) || sender.is_closed() {
            return;
        }
        if let Some(shared) = pool.upgrade() {
            shared.idle().push(Idle {
                sender,
                since: Instant::now(),
            });
            shared.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::server::conn::http1 as server;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback upstream that counts the connections it accepts. `/big` answers 1 MiB,
    /// `/close` asks to close the connection, `/empty` is a 204, `/slow` waits 50 ms.
    async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
                    match req.uri().path() {
                        "/big" => *res.body_mut() = Full::new(Bytes::from(vec![b'x'; 1 << 20])),
                        "/close" => {
                            res.headers_mut()
                                .insert(http::header::CONNECTION, "close".parse().unwrap());
                        }
                        "/empty" => {
                            *res.status_mut() = StatusCode::NO_CONTENT;
                            *res.body_mut() = Full::default();
                        }
                        "/slow" => tokio::time::sleep(Duration::from_millis(50)).await,
                        _ => {}
                    }
                    Ok::<_, Infallible>(res)
                });
                tokio::spawn(
                    server::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted)
    }

    fn pool(addr: SocketAddr, idle_timeout: Duration) -> Http1Pool<Empty<Bytes>> {
        let target = format!("http://{addr}/").parse().unwrap();
        Http1Pool::new(HttpConnector::new(), target, idle_timeout)
    }

    fn get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
        Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::new())
            .unwrap()
    }

    async fn read(res: Response<PooledBody<Empty<Bytes>>>) -> Bytes {
        res.into_body().collect().await.unwrap().to_bytes()
    }

    /// `GET path`, read to its end.
    async fn fetch(pool: &Http1Pool<Empty<Bytes>>, addr: SocketAddr, path: &str) -> Bytes {
        read(pool.send(get(addr, path)).await.unwrap()).await
    }

    #[tokio::test]
    async fn requests_one_after_another_share_one_connection() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        for _ in 0..5 {
            assert_eq!(fetch(&pool, addr, "/").await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection_and_all_come_back() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        let mut sends = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let pool = pool.clone();
            sends.spawn(async move { fetch(&pool, addr, "/slow").await });
        }
        for body in sends.join_all().await {
            assert_eq!(body, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        assert_eq!(pool.idle_count(), 4);
        // And they are used again.
        for _ in 0..4 {
            fetch(&pool, addr, "/").await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        let mut body = pool.send(get(addr, "/big")).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.data_ref().is_some_and(|d| d.len() < 1 << 20));
        drop(body);
        assert_eq!(pool.idle_count(), 0);
        // The next response is not the rest of the dropped one.
        assert_eq!(fetch(&pool, addr, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_in_many_frames_returns_its_connection() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        let body = fetch(&pool, addr, "/big").await;
        assert_eq!(body.len(), 1 << 20);
        assert_eq!(fetch(&pool, addr, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_response_returns_its_connection_unread() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        let res = pool.send(get(addr, "/empty")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        drop(res);
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(fetch(&pool, addr, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closes_is_not_used_again() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        assert_eq!(fetch(&pool, addr, "/close").await, "ok");
        assert_eq!(fetch(&pool, addr, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// An upstream that answers one request per connection, keep-alive in words only: it
    /// closes each connection right after its response.
    async fn one_shot_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_dropped_is_replaced() {
        let (addr, _) = one_shot_upstream().await;
        let pool = pool(addr, Duration::from_secs(90));
        for _ in 0..3 {
            assert_eq!(fetch(&pool, addr, "/").await, "ok");
            // Time for the connection task to see the upstream's close.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_request_on_a_connection_closed_while_idle_goes_on_a_new_one() {
        // The upstream runs on a thread of its own and closes its connection when told to,
        // long after the response: by then the connection is idle in the pool.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (close, closes) = std::sync::mpsc::channel::<()>();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while let Ok((mut stream, _)) = listener.accept() {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                if closes.recv().is_err() {
                    return;
                }
            }
        });
        let pool = pool(addr, Duration::from_secs(90));
        for round in 1..=3 {
            assert_eq!(fetch(&pool, addr, "/").await, "ok");
            assert_eq!(
                pool.idle_count(),
                1,
                "round {round}: the connection is idle"
            );
            // The runtime's one thread blocks while the upstream closes, so the connection's
            // task cannot notice: the pool still offers the dead connection, and the next
            // request must go on a new one rather than fail.
            close.send(()).unwrap();
            std::thread::sleep(REPLAY_AFTER_IDLE + Duration::from_millis(20));
            assert_eq!(accepted.load(Ordering::SeqCst), round);
        }
    }

    fn limited(addr: SocketAddr, max: usize, wait: Duration) -> Http1Pool<Empty<Bytes>> {
        let target = format!("http://{addr}/").parse().unwrap();
        Http1Pool::with_limit(
            HttpConnector::new(),
            target,
            Duration::from_secs(90),
            max,
            wait,
        )
    }

    #[tokio::test]
    async fn at_the_cap_requests_wait_for_a_connection_to_come_back() {
        let (addr, accepted) = upstream().await;
        let pool = limited(addr, 2, Duration::from_secs(5));
        let all: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { fetch(&pool, addr, "/slow").await })
            })
            .collect();
        for done in all {
            assert_eq!(done.await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn at_the_cap_a_request_that_waits_too_long_is_refused() {
        let (addr, accepted) = upstream().await;
        let pool = limited(addr, 1, Duration::from_millis(50));
        // Its body unread, the response keeps the one connection busy.
        let busy = pool.send(get(addr, "/")).await.unwrap();
        let started = Instant::now();
        match pool.send(get(addr, "/")).await {
            Err(PoolError::Saturated { max: 1, waited }) => {
                assert_eq!(waited, Duration::from_millis(50))
            }
            other => panic!("expected Saturated, got {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(read(busy).await, "ok");
        assert_eq!(fetch(&pool, addr, "/").await, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the connection came back"
        );
    }

    #[tokio::test]
    async fn at_the_cap_a_closed_connection_makes_room_for_a_new_one() {
        let (addr, accepted) = upstream().await;
        let pool = limited(addr, 1, Duration::from_secs(5));
        let busy = pool.send(get(addr, "/big")).await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { fetch(&pool, addr, "/").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the one connection is busy");
        // Dropped before its end: its connection closes rather than coming back.
        drop(busy);
        assert_eq!(waiting.await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_idempotent_requests_without_a_body_are_copied_to_send_again() {
        let request = |method: Method, body: Full<Bytes>| {
            Request::builder()
                .method(method)
                .uri("/x?y=1")
                .header("x-kept", "1")
                .body(body)
                .unwrap()
        };
        let copy = replayable(&request(Method::GET, Full::default())).unwrap();
        assert_eq!(
            (copy.method(), copy.uri().to_string()),
            (&Method::GET, "/x?y=1".into())
        );
        assert_eq!(copy.headers()["x-kept"], "1");
        for method in [Method::HEAD, Method::OPTIONS, Method::PUT, Method::DELETE] {
            assert!(replayable(&request(method, Full::default())).is_some());
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(replayable(&request(method, Full::default())).is_none());
        }
        let with_body = request(Method::PUT, Full::new(Bytes::from_static(b"data")));
        assert!(
            replayable(&with_body).is_none(),
            "a body cannot be read twice"
        );
    }

    #[tokio::test]
    async fn connections_idle_past_the_timeout_are_closed() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr, Duration::from_millis(100));
        fetch(&pool, addr, "/").await;
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.idle_count(), 0, "the expiry task closed it");
        fetch(&pool, addr, "/").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_that_is_down_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = pool(addr, Duration::from_secs(90))
            .send(get(addr, "/"))
            .await
            .unwrap_err();
        assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    }
}
