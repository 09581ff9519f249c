//! A server of fixed responses by path: the web pages a browser test loads, or an upstream
//! that must answer with HTML, redirects or cookies (which [`TestUpstream`] never sends).
//!
//! Pages can be added after start-up, because a page often has to name the port of something
//! that is started after it (a gateway in front of this very server). The query string is
//! ignored when looking a page up, so one page serves every `?case=...`; an unknown path gets
//! 404. Every request is recorded, as [`TestUpstream`] does, so a test can check what a browser
//! actually sent, and what it did not.
//!
//! [`TestUpstream`]: crate::upstream::TestUpstream

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::upstream::Received;

/// One fixed response.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    /// `200` with an HTML body.
    pub fn html(body: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
        }
    }

    /// `200` with a JSON body.
    pub fn json(body: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// `303 See Other` to `location`: the way a login answers a form, and the way to chain
    /// navigations in a browser that is given one URL.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: StatusCode::SEE_OTHER,
            headers: vec![("location".into(), location.into())],
            body: String::new(),
        }
    }

    /// Adds a response header (repeatable, e.g. several `Set-Cookie`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Pages = Arc<Mutex<HashMap<String, Page>>>;

/// A running page server; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct PageServer {
    pub addr: SocketAddr,
    pages: Pages,
    received: Arc<Mutex<Vec<Received>>>,
}

impl PageServer {
    /// Starts with no pages, on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pages = Pages::default();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (serve, log) = (pages.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (pages, log) = (serve.clone(), log.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, pages.clone(), log.clone())
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            pages,
            received,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `page` at `path` (without query), for every method, replacing any earlier page.
    pub fn serve(&self, path: &str, page: Page) {
        self.pages.lock().unwrap().insert(path.to_owned(), page);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn handle(
    req: Request<Incoming>,
    pages: Pages,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    log.lock().unwrap().push(Received::new(&parts, body));

    let page = pages.lock().unwrap().get(parts.uri.path()).cloned();
    let Some(page) = page else {
        return Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"no such page")))
            .unwrap());
    };
    let mut res = Response::builder().status(page.status);
    for (name, value) in &page.headers {
        res = res.header(name, value);
    }
    Ok(res.body(Full::new(Bytes::from(page.body))).unwrap())
}
