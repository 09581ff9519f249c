//! `portcullis probe` against real servers: a Portcullis gateway (no drift), a misconfigured
//! plain server (every drift class), nothing at all (unreachable), and broken inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_test::gateway::write_temp;
use tokio::net::TcpListener;

/// `plan::MAX_REQUESTS` in the binary.
const REQUEST_LIMIT: usize = 40;

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    fn checks(&self) -> Vec<String> {
        self.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Runs `portcullis probe --config <policy> <url> [args]` off the test's runtime, so servers
/// running on it keep answering.
async fn probe(policy: &str, url: &str, args: &[&str]) -> Outcome {
    let file = write_temp("probe.toml", policy);
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::binary())
            .arg("probe")
            .arg("--config")
            .arg(&file)
            .arg(&url)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A policy exercising every check against the gateway: a credentialed CORS policy with a
/// subdomain pattern, an any-origin one, routes without CORS, CSRF with a session cookie and
/// an exemption, rate limits counted before and after authentication, routes that require an
/// API key (with and without a quota counted before the `401`), headers deliberately not set.
fn rich_policy() -> String {
    format!(
        r#"
environment = "test"

[correlation-id]
header = "x-request-id"

[headers.not-set]
cross-origin-embedder-policy = "no embeddable surfaces"

[cors.app]
origins = ["https://app.example.com", "https://*.partners.example"]
methods = ["GET", "POST"]
allow-headers = ["content-type"]
credentials = true

[cors.public]
# `*` is refused in production, and in a list shared by every environment.
origins = {{ test = ["*"] }}
methods = ["GET"]

[csrf]
session-cookies = ["sid"]

[[csrf.exempt]]
path = "/v1/hooks/pay"
reason = "the payment provider posts from its own site"

[rate-limit]
default = ["per-ip"]

[rate-limit.quotas.per-ip]
key = "ip"
limit = 1000
per = "1s"

[rate-limit.quotas.per-key]
key = "api-key"
limit = 1000
per = "1s"

[auth]

[auth.api-keys]
prefix = "pk"
store = "sqlite:{db}"

[[route]]
name = "account"
paths = ["/v1/account/*"]
cors = "app"
cache-control = "no-store, private"
rate-limit = ["per-key"]

[[route]]
name = "billing"
paths = ["/v1/billing/*"]
cache-control = "no-store, private"
rate-limit = ["per-ip", "per-key"]

[[route]]
name = "hooks"
paths = ["/v1/hooks/pay"]
cache-control = "no-store"
auth = {{ mode = "none" }}

[[route]]
name = "users"
paths = ["/v1/users/{{id}}"]
cors = "app"
cache-control = "no-store, private"
auth = {{ mode = "none" }}

[[route]]
name = "public"
paths = ["/v1/public/*"]
cors = "public"
cache-control = "public, max-age=60"
auth = {{ mode = "none" }}
rate-limit = []

[default-route]
cache-control = "no-store"
auth = {{ mode = "none" }}
"#,
        db = common::fresh_db().display()
    )
}

#[tokio::test]
async fn a_gateway_matches_its_own_policy() {
    let policies = [
        ("sdk-api", common::example("sdk-api.toml")),
        ("dashboard", common::example("dashboard.toml")),
        ("public-internal", common::example("public-internal.toml")),
        ("rich", rich_policy()),
    ];
    for (name, policy) in policies {
        let (_upstream, gw) = common::gateway(&policy).await;
        let url = format!("http://{}", gw.addr);
        let out = probe(&policy, &url, &[]).await;
        assert_eq!(out.code, 0, "{name}:\n{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(": 0 finding(s) in "),
            "{name}: {}",
            out.stdout
        );
        let json = probe(&policy, &url, &["--json"]).await;
        assert_eq!(json.code, 0, "{name}: {}", json.stdout);
        let doc = json.json();
        assert_eq!(doc["summary"]["drift"], false);
        assert_eq!(doc["findings"].as_array().unwrap().len(), 0);
        let sent = doc["summary"]["requests_sent"].as_u64().unwrap();
        assert!(sent >= 4, "{name}: only {sent} requests");
    }
}

#[tokio::test]
async fn the_rich_policy_sends_every_kind_of_request() {
    let policy = rich_policy();
    let (upstream, gw) = common::gateway(&policy).await;
    let out = probe(&policy, &format!("http://{}", gw.addr), &["--json"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let received = upstream.received();
    // The gateway answered the preflights and refused the cross-site POST itself.
    assert!(received.iter().all(|r| r.method == "GET"), "{received:?}");
    let doc = out.json();
    // 6 GETs; 1 POST; a preflight from an allowed origin on each of the 3 CORS routes, and from
    // the policy's first origin on the 3 without CORS; look-alikes: 4 on each `app` route, 1
    // (`null`) on the any-origin one (it allows every other look-alike).
    assert_eq!(doc["summary"]["requests_sent"], 6 + 1 + 3 + 3 + 4 + 4 + 1);
    assert_eq!(doc["not_probed"].as_array().unwrap().len(), 0, "{doc:#}");
}

/// What a server that ignores the policy answers, and how many requests it got.
#[derive(Clone, Default)]
struct Misconfigured {
    requests: Arc<AtomicUsize>,
}

impl Misconfigured {
    /// Omits nosniff, frames SAMEORIGIN, sends COEP the policy does not set, names itself,
    /// reflects any Origin with credentials (`*` with credentials on `/v1/status`), lets a
    /// private path be cached, never varies on Origin, sends no correlation ID or rate-limit
    /// headers, and accepts every POST.
    async fn start(&self) -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let requests = requests.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(misconfigured_answer(&req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn misconfigured_answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let status_path = req.uri().path().starts_with("/v1/status");
    let mut res = Response::builder()
        .status(StatusCode::OK)
        .header("server", "nginx/1.18.0")
        .header("x-powered-by", "Express")
        .header("x-frame-options", "SAMEORIGIN")
        .header("cross-origin-embedder-policy", "require-corp")
        .header(
            "cache-control",
            if status_path {
                "public, max-age=3600"
            } else {
                "public, max-age=600"
            },
        );
    if let Some(origin) = req.headers().get("origin") {
        let allow = if status_path {
            "*"
        } else {
            origin.to_str().unwrap_or("null")
        };
        res = res
            .header("access-control-allow-origin", allow)
            .header("access-control-allow-credentials", "true");
    }
    res.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

/// The policy the misconfigured server is probed against: defaults headers, a private CORS
/// route, a public one, a per-IP quota, CSRF on.
const PROMISES: &str = r#"
environment = "production"

[headers.not-set]
cross-origin-embedder-policy = "no embeddable surfaces"

[cors.app]
origins = ["https://app.example.com"]
methods = ["GET", "POST"]
credentials = true

[rate-limit]
default = ["per-ip"]

[rate-limit.quotas.per-ip]
key = "ip"
limit = 10
per = "1s"

[[route]]
name = "account"
paths = ["/v1/account/*"]
cors = "app"
cache-control = "no-store, private"

[[route]]
name = "status"
paths = ["/v1/status"]
cors = "app"
cache-control = "public, max-age=30"

[default-route]
cache-control = "no-store"

[disclosure]
contact = ["mailto:security@example.com"]
expires = 2030-01-01T00:00:00Z
"#;

#[tokio::test]
async fn a_misconfigured_server_shows_every_drift_class() {
    let server = Misconfigured::default();
    let addr = server.start().await;
    let out = probe(PROMISES, &format!("http://{addr}"), &["--json"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let checks = out.checks();
    for expected in [
        "header-missing",
        "header-mismatch",
        "header-extra",
        "cache-control-mismatch",
        "private-cacheable",
        "server-leak",
        "powered-by-leak",
        "correlation-id-missing",
        "rate-limit-headers-missing",
        "cors-origin-reflected",
        "cors-wildcard-credentials",
        "cors-allowed-origin-refused",
        "cors-vary-missing",
        "csrf-cross-site-accepted",
        "security-txt-drift",
    ] {
        assert!(
            checks.iter().any(|c| c == expected),
            "{expected} not found in {checks:?}"
        );
    }
    let doc = out.json();
    let findings = doc["findings"].as_array().unwrap();
    for f in findings {
        for field in ["check", "route", "request", "expected", "got"] {
            assert!(f[field].is_string(), "{field} in {f}");
        }
    }
    // Specific, readable findings.
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "server-leak" && f["got"] == "server: nginx/1.18.0")
    );
    assert!(findings.iter().any(|f| f["check"] == "private-cacheable"
        && f["route"] == "account"
        && f["got"] == "cache-control: public, max-age=600"));
    assert!(findings.iter().any(|f| {
        f["check"] == "cors-origin-reflected"
            && f["got"]
                .as_str()
                .unwrap()
                .contains("https://app.example.com.evil.test")
    }));
    assert_eq!(doc["summary"]["findings"], findings.len());
    assert_eq!(doc["summary"]["drift"], true);
    assert_eq!(doc["summary"]["by_check"]["csrf-cross-site-accepted"], 1);
    // Exactly the requests it reports, and no more than the bound.
    let sent = doc["summary"]["requests_sent"].as_u64().unwrap() as usize;
    assert_eq!(server.count(), sent);
    assert!(sent <= REQUEST_LIMIT);
    assert_eq!(doc["summary"]["request_limit"], REQUEST_LIMIT);

    // The table: a header line, one line per finding, and the summary.
    let table = probe(PROMISES, &format!("http://{addr}"), &[]).await;
    assert_eq!(table.code, 1);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("check "), "{}", table.stdout);
    assert!(lines[0].contains("| route") && lines[0].ends_with("| got"));
    assert!(table.stdout.contains("csrf-cross-site-accepted"));
    assert!(
        table.stdout.contains(&format!(
            ": {} finding(s) in {sent} request(s)",
            findings.len()
        )),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn requests_are_bounded_however_large_the_policy() {
    let mut policy = PROMISES.to_owned();
    for i in 0..60 {
        policy.push_str(&format!(
            "\n[[route]]\nname = \"r{i}\"\npaths = [\"/r{i}/*\"]\ncors = \"app\"\ncache-control = \"no-store\"\n"
        ));
    }
    let server = Misconfigured::default();
    let addr = server.start().await;
    let out = probe(&policy, &format!("http://{addr}"), &["--json"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(server.count(), REQUEST_LIMIT);
    let doc = out.json();
    assert_eq!(doc["summary"]["requests_sent"], REQUEST_LIMIT);
    let not_sent = doc["not_probed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["reason"]
                .as_str()
                .unwrap()
                .contains("at most 40 requests")
        })
        .count();
    assert!(not_sent > 0);
}

#[tokio::test]
async fn an_unreachable_target_exits_2() {
    // A port nobody listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = probe(PROMISES, &url, &["--timeout", "2s"]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("did not answer"), "{}", out.stderr);
    let out = probe(PROMISES, &url, &["--json"]).await;
    assert_eq!(out.code, 2);
    let doc = out.json();
    assert_eq!(doc["summary"]["unreachable"], true);
    assert!(doc["error"].as_str().unwrap().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_silent_target_times_out_with_exit_2() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let out = probe(PROMISES, &format!("http://{addr}"), &["--timeout", "300ms"]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no response within 300 ms"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn unusable_inputs_exit_3() {
    let invalid = "environment = \"production\"\n[[route]]\nname = \"x\"\npaths = [\"nope\"]\n";
    let out = probe(invalid, "http://127.0.0.1:9", &[]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("error"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    for bad_url in [
        "127.0.0.1:8080",
        "http://127.0.0.1:8080/v1",
        "ftp://x.example",
    ] {
        let out = probe(PROMISES, bad_url, &[]).await;
        assert_eq!(out.code, 3, "{bad_url}: {}", out.stderr);
    }
    let out = probe(PROMISES, "http://127.0.0.1:9", &["--timeout", "soon"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
}
