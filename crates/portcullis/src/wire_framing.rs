//! What the wire said about a request's framing, before hyper resolved it.
//!
//! hyper's HTTP/1 parser handles ambiguous framing safely but silently: with both
//! `Content-Length` and `Transfer-Encoding` it drops the length, frames by chunked and closes
//! the connection afterwards; identical duplicate lengths are folded into one. A request that
//! reaches the layers therefore no longer shows the ambiguity, yet RFC 9112 §6.3 says a server
//! ought to refuse it, and nginx does. [`ScannedIo`] reads the same bytes hyper reads, parses
//! each request head with `httparse` (the parser hyper itself uses) and follows the body framing
//! to find the next head; for every head it queues a [`WireFraming`] that the server attaches
//! to the matching request, where [`portcullis_layers::framing`] refuses it.
//!
//! Requests on an HTTP/1 connection are dispatched in order, so the n-th queued entry belongs
//! to the n-th request. On anything the scanner does not understand (HTTP/2's preface, a head
//! hyper would reject anyway, a CONNECT) it stops scanning and queues nothing more: the
//! requests then carry no entry and only the layer's own checks apply. Written by hand because
//! no crate exposes this: it is the one piece of HTTP/1 framing hyper keeps to itself.
//!
//! After a `101 Switching Protocols` the connection carries another protocol (WebSocket
//! frames), so the server calls [`FramingQueue::stop`] when it hands hyper a 101, before hyper
//! writes it: a conforming client sends nothing until it has read the 101, so no byte of the
//! new protocol is scanned, and frames can neither fill the queue nor be taken for requests.
//! It is the 101, not the upgrade request, that stops the scanner: a handshake answered with
//! anything else leaves the connection in HTTP/1.1, and the requests after it must still be
//! scanned. Bytes a client sends early, between its handshake and the 101, are scanned as if
//! they were HTTP; they can only queue entries that no request will ever take (hyper parses no
//! request after a 101), at most hyper's own read buffer's worth.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use portcullis_layers::framing::WireFraming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head the scanner buffers. The server caps hyper's read buffer at the same
/// size, so hyper refuses (431) any head the scanner cannot see whole.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
const MAX_HEADERS: usize = 256;

/// The per-connection queue of scanned heads, shared between the IO and the service.
#[derive(Debug, Clone, Default)]
pub struct FramingQueue(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    entries: Mutex<VecDeque<WireFraming>>,
    stopped: AtomicBool,
}

impl FramingQueue {
    /// The entry for the next request, if the scanner produced one.
    pub fn pop(&self) -> Option<WireFraming> {
        self.0.entries.lock().ok()?.pop_front()
    }

    /// Stops the scanner for the rest of the connection and drops what it queued: the
    /// connection is switching to another protocol (see the module docs).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        if let Ok(mut queue) = self.0.entries.lock() {
            *queue = VecDeque::new();
        }
    }

    fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    fn push(&self, entry: WireFraming) {
        if let Ok(mut queue) = self.0.entries.lock() {
            queue.push_back(entry);
        }
    }
}

/// An IO wrapper that scans request heads as they are read. See the module docs.
#[derive(Debug)]
pub struct ScannedIo<T> {
    inner: T,
    scanner: Scanner,
}

impl<T> ScannedIo<T> {
    pub fn new(inner: T, queue: FramingQueue) -> Self {
        Self {
            inner,
            scanner: Scanner::new(queue),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScannedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.scanner.feed(&buf.filled()[before..]);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ScannedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// A fixed-length body with this many bytes left.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Chunk data with this many bytes left.
    ChunkData(u64),
    /// The CRLF after chunk data.
    ChunkEnd,
    /// Trailer lines until an empty one.
    Trailers,
    /// Stopped scanning for the rest of the connection.
    Off,
}

#[derive(Debug)]
struct Scanner {
    state: State,
    buf: Vec<u8>,
    queue: FramingQueue,
}

impl Scanner {
    fn new(queue: FramingQueue) -> Self {
        Self {
            state: State::Head,
            buf: Vec::new(),
            queue,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        if self.state != State::Off && self.queue.is_stopped() {
            self.off();
        }
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Fixed(left) => {
                    let take = left.min(data.len() as u64);
                    data = &data[take as usize..];
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Fixed(left - take)
                    };
                }
                State::ChunkData(left) => {
                    let take = left.min(data.len() as u64);
                    data = &data[take as usize..];
                    self.state = if take == left {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - take)
                    };
                }
                State::Head => data = self.head(data),
                State::ChunkSize | State::ChunkEnd | State::Trailers => data = self.line(data),
            }
        }
    }

    /// Buffers head bytes until `httparse` finds a complete head; returns the rest.
    fn head<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let previously = self.buf.len();
        // Most heads arrive whole in one read: those are parsed where they lie, and only a
        // partial head is copied aside to wait for the rest.
        if previously > 0 {
            self.buf.extend_from_slice(data);
        }
        let input: &[u8] = if previously > 0 { &self.buf } else { data };
        // Left uninitialised for `httparse` to fill (as hyper does): the 256 slots are 8 KiB,
        // which were otherwise written on every request before the parse began.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = match req.parse_with_uninit_headers(input, &mut headers) {
            Ok(httparse::Status::Complete(len)) => Ok(Some((len, classify(&req)))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(()),
        };
        match parsed {
            Ok(Some((len, (entry, next)))) => {
                self.queue.push(entry);
                self.state = next;
                let consumed_from_data = len.saturating_sub(previously);
                self.buf.clear();
                &data[consumed_from_data.min(data.len())..]
            }
            Ok(None) => {
                if previously == 0 {
                    self.buf.extend_from_slice(data);
                }
                if self.buf.len() > MAX_HEAD {
                    self.off();
                }
                &[]
            }
            Err(()) => {
                self.off();
                &[]
            }
        }
    }

    /// Buffers one line (chunk size, chunk end, trailer); returns the rest.
    fn line<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let Some(end) = data.iter().position(|&b| b == b'\n') else {
            self.buf.extend_from_slice(data);
            if self.buf.len() > MAX_LINE {
                self.off();
            }
            return &[];
        };
        self.buf.extend_from_slice(&data[..=end]);
        let rest = &data[end + 1..];
        let line = std::mem::take(&mut self.buf);
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        self.state = match self.state {
            State::ChunkSize => match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, 0))) => State::Trailers,
                Ok(httparse::Status::Complete((_, size))) => State::ChunkData(size),
                _ => State::Off,
            },
            State::ChunkEnd if content.is_empty() => State::ChunkSize,
            State::Trailers if content.is_empty() => State::Head,
            State::Trailers => State::Trailers,
            _ => State::Off,
        };
        rest
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.buf = Vec::new();
    }
}

/// The framing facts of one head, and where the scanner goes next (RFC 9112 §6.3).
fn classify(req: &httparse::Request<'_, '_>) -> (WireFraming, State) {
    let mut entry = WireFraming::default();
    let mut length: Option<u64> = None;
    let mut chunked_last = false;
    for header in req.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            for value in header.value.split(|&b| b == b',') {
                entry.content_length_values += 1;
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            entry.transfer_encoding = true;
            chunked_last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let next = if req
        .method
        .is_some_and(|m| m.eq_ignore_ascii_case("CONNECT"))
    {
        State::Off
    } else if entry.transfer_encoding {
        if chunked_last {
            State::ChunkSize
        } else {
            State::Off
        }
    } else {
        match (entry.content_length_values, length) {
            (0, _) => State::Head,
            (_, Some(0)) => State::Head,
            (_, Some(n)) => State::Fixed(n),
            (_, None) => State::Off,
        }
    };
    (entry, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> (Vec<WireFraming>, State) {
        let queue = FramingQueue::default();
        let mut scanner = Scanner::new(queue.clone());
        for chunk in chunks {
            scanner.feed(chunk);
        }
        let mut out = Vec::new();
        while let Some(e) = queue.pop() {
            out.push(e);
        }
        (out, scanner.state)
    }

    fn wf(cl: usize, te: bool) -> WireFraming {
        WireFraming {
            content_length_values: cl,
            transfer_encoding: te,
        }
    }

    #[test]
    fn follows_fixed_and_chunked_bodies_to_the_next_head() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
            POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: a\r\n\r\n";
        let expected = vec![wf(1, false), wf(0, true), wf(0, false)];
        assert_eq!(scan(&[stream]), (expected.clone(), State::Head));
        // The same bytes one at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(&bytes), (expected, State::Head));
    }

    #[test]
    fn records_ambiguous_framing() {
        let (entries, _) = scan(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]);
        assert_eq!(entries, vec![wf(1, true)]);
        let (entries, _) =
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"]);
        assert_eq!(entries, vec![wf(2, false)]);
        let (entries, _) = scan(&[b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc"]);
        assert_eq!(entries, vec![wf(2, false)]);
    }

    #[test]
    fn stops_on_what_it_does_not_understand() {
        assert_eq!(scan(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).1, State::Off);
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"]).1,
            State::Off
        );
        assert_eq!(scan(&[b"CONNECT a:443 HTTP/1.1\r\n\r\n"]).1, State::Off);
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"]).1,
            State::Off
        );
    }

    #[test]
    fn a_head_longer_than_hypers_limit_stops_the_scanner() {
        let mut head = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        // In one read, and in many.
        assert_eq!(scan(&[&head]).1, State::Off);
        let chunks: Vec<&[u8]> = head.chunks(1024).collect();
        assert_eq!(scan(&chunks).1, State::Off);
        // Just under the limit, the head is still awaited.
        assert_eq!(scan(&[&head[..MAX_HEAD - 1]]).1, State::Head);
    }

    #[test]
    fn stops_for_good_once_the_connection_switches_protocols() {
        let queue = FramingQueue::default();
        let mut scanner = Scanner::new(queue.clone());
        let handshake: &[u8] =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        scanner.feed(handshake);
        assert_eq!(scanner.state, State::Head);
        // Early bytes, before the 101, are still scanned (and then dropped by `stop`).
        scanner.feed(b"GET /early HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n");
        queue.stop();
        assert_eq!(queue.pop(), None);
        // Tunnelled bytes that happen to look like requests queue nothing.
        let smuggled: &[u8] =
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        for _ in 0..100 {
            scanner.feed(smuggled);
        }
        assert_eq!(scanner.state, State::Off);
        assert!(scanner.buf.is_empty());
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_refused_upgrade_keeps_the_connection_scanned() {
        // An upgrade answered with anything but 101: the next request is HTTP and scanned.
        let (entries, state) = scan(&[
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ]);
        assert_eq!(entries, vec![wf(0, false), wf(2, false)]);
        assert_eq!(state, State::Head);
    }
}
