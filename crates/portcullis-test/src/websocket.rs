//! A WebSocket upstream and a WebSocket client, for tests of the gateway's upgrade tunnel.
//!
//! Both sides are tokio-tungstenite, a complete RFC 6455 implementation written by others:
//! the handshake key and accept, masking and framing are checked by code that does not share
//! the gateway's assumptions, which a hand-rolled frame writer would.
//!
//! [`WsUpstream`] records every handshake it reads, then:
//! - for a path starting with `/ws/deny`, answers `403` with the body `denied by upstream`
//!   instead of switching protocols;
//! - otherwise switches, sends the text message `hello`, and answers every text message `m`
//!   with `echo: m` and every binary message with the same bytes, until the client closes.
//!
//! A request that is not a WebSocket handshake gets no answer: the connection is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::client::Client;
use crate::upstream::Received;

pub use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A running WebSocket upstream; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct WsUpstream {
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Received>>>,
}

impl WsUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let log = handshakes.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(stream, log.clone()));
            }
        });
        Self { addr, handshakes }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every handshake request received so far (whether or not it switched).
    pub fn handshakes(&self) -> Vec<Received> {
        self.handshakes.lock().unwrap().clone()
    }

    /// The most recent handshake.
    pub fn last(&self) -> Received {
        self.handshakes()
            .pop()
            .expect("the upstream received no handshake")
    }
}

async fn serve(stream: TcpStream, log: Arc<Mutex<Vec<Received>>>) {
    let stream_peer = stream.peer_addr().ok();
    // The signature is tungstenite's `Callback`, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
        log.lock().unwrap().push(Received {
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            version: format!("{:?}", req.version()),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: bytes::Bytes::new(),
            peer: stream_peer,
        });
        if req.uri().path().starts_with("/ws/deny") {
            let body = "denied by upstream";
            let mut refusal = ErrorResponse::new(Some(body.to_owned()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            let headers = refusal.headers_mut();
            headers.insert("content-type", "text/plain".parse().unwrap());
            // tungstenite sends no length of its own (it closes the connection instead).
            headers.insert("content-length", body.len().into());
            return Err(refusal);
        }
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if ws.send(Message::text("hello")).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let reply = match message {
            Message::Text(text) => Message::text(format!("echo: {}", text.as_str())),
            Message::Binary(data) => Message::Binary(data),
            Message::Close(_) => break,
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

/// A WebSocket client connection, after a successful handshake.
#[derive(Debug)]
pub struct WsClient {
    stream: WebSocketStream<TcpStream>,
    /// The 101 the client got.
    pub response: tungstenite::handshake::client::Response,
}

impl WsClient {
    /// Connects to `addr` and upgrades `GET path`, sending `Origin: origin` if given.
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Self, WsError> {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::handshake(stream, addr, path, origin).await
    }

    /// Upgrades on an already open connection (e.g. one that served other requests first).
    pub async fn handshake(
        stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Self, WsError> {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (stream, response) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .expect("the WebSocket handshake timed out")?;
        Ok(Self { stream, response })
    }

    /// A header of the 101.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.stream.send(Message::binary(data)).await.unwrap();
    }

    /// Sends a close frame and closes the connection.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// The next data message; `None` once the connection is closed (cleanly or not).
    /// Panics after 20 s of silence.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(20), self.stream.next())
                .await
                .expect("no WebSocket message within 20 s");
            match next {
                Some(Ok(Message::Text(t))) => return Some(Message::Text(t)),
                Some(Ok(Message::Binary(b))) => return Some(Message::Binary(b)),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message, which must be text.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Some(Message::Text(t)) => t.as_str().to_owned(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// A `GET path` carrying a WebSocket handshake's headers, for the plain HTTP [`Client`]: for
/// handshakes that are meant to be refused, whose JSON answer the client then reads.
pub fn handshake_request(client: &Client, path: &str) -> http::request::Builder {
    client
        .request("GET", path)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}
