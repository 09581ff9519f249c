//! Signed requests through the real gateway: the README's scheme (curl + openssl and Rust),
//! tampering, clock skew, replay (in memory, and across two instances sharing Redis), body
//! limits, keys that must sign, routes that accept only signed requests, start-up checks of the
//! key-encryption key, and no secret in any log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::StatusCode;
use http_body_util::Full;
use portcullis_store::{Kek, KeyStore, NewKey, SqliteStore};
use portcullis_test::{Client, GatewayProcess, Reply, TestUpstream};
use sha2::{Digest, Sha256};

/// The README's Rust client, verbatim (README.md, "Signed requests").
fn sign(
    secret: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix: u64,
) -> (String, String) {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let timestamp = now_unix.to_string();
    let canonical = format!(
        "PORTCULLIS-HMAC-SHA256\n{timestamp}\n{method}\n{path_and_query}\n{}",
        hex(&Sha256::digest(body))
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(canonical.as_bytes());
    (timestamp, hex(&mac.finalize().into_bytes()))
}

const KEK_ENV: &str = "PORTCULLIS_SIGNING_KEK";

fn policy(store: &str, replay: &str) -> String {
    format!(
        r#"environment = "test"
[errors]
expose-detail = true

[auth.api-keys]
prefix = "acme"
store = {store}
cache-ttl = "1s"

[auth.api-keys.signing]
key-encryption-key = {{ env = "{KEK_ENV}" }}
max-body = "1 KiB"
replay = {replay}

[[route]]
name = "signed"
paths = ["/signed/*"]
[route.auth]
credentials = ["signed-key"]
"#
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Setup {
    upstream: TestUpstream,
    gateways: Vec<GatewayProcess>,
    store: Arc<dyn KeyStore>,
    kek: Kek,
    _dir: tempfile::TempDir,
}

async fn setup(instances: usize, replay: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let kek = Kek::generate().unwrap();
    let kek_hex = kek.to_hex();
    let policy = policy(&format!("\"sqlite:{}\"", db.display()), replay);
    let upstream = TestUpstream::start().await;
    let gateways = (0..instances)
        .map(|_| {
            GatewayProcess::try_start(
                common::binary(),
                &policy,
                Some(&upstream.url()),
                &[],
                &[(KEK_ENV, kek_hex.as_str())],
            )
            .unwrap_or_else(|seen| panic!("the gateway did not start:\n{}", seen.join("\n")))
        })
        .collect();
    Setup {
        upstream,
        gateways,
        store,
        kek,
        _dir: dir,
    }
}

/// A key that signs: (key, signing secret).
async fn signing_key(setup: &Setup, tenant: &str) -> (String, String) {
    let (_, key, secret) = setup
        .store
        .create_signed(NewKey::new("acme", tenant), &setup.kek)
        .await
        .unwrap();
    (
        key.expose_secret().to_owned(),
        secret.expose_secret().to_owned(),
    )
}

async fn plain_key(setup: &Setup, tenant: &str) -> String {
    let (_, key) = setup
        .store
        .create(NewKey::new("acme", tenant))
        .await
        .unwrap();
    key.expose_secret().to_owned()
}

async fn send(
    gw: &GatewayProcess,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let client = Client::http1(gw.addr);
    let mut req = client.request(method, target);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    client
        .send(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
}

/// A request signed by `secret` at `at`, sent with `key`; `sent_*` may differ from what was
/// signed (tampering).
struct Signed<'a> {
    key: &'a str,
    secret: &'a str,
    method: &'a str,
    target: &'a str,
    body: &'a [u8],
    at: u64,
}

impl Signed<'_> {
    async fn send_as(&self, gw: &GatewayProcess, method: &str, target: &str, body: &[u8]) -> Reply {
        let (ts, sig) = sign(self.secret, self.method, self.target, self.body, self.at);
        send(
            gw,
            method,
            target,
            &[
                ("x-api-key", self.key),
                ("x-portcullis-timestamp", &ts),
                ("x-portcullis-signature", &sig),
            ],
            body,
        )
        .await
    }

    async fn send(&self, gw: &GatewayProcess) -> Reply {
        self.send_as(gw, self.method, self.target, self.body).await
    }
}

fn code(reply: &Reply) -> String {
    reply.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn signed_requests_end_to_end() {
    let s = setup(1, "\"memory\"").await;
    let gw = &s.gateways[0];
    let (key, secret) = signing_key(&s, "tenant-a").await;
    let body = br#"{"amount":42}"#;
    let request = Signed {
        key: &key,
        secret: &secret,
        method: "POST",
        target: "/signed/orders?dry-run=true",
        body,
        at: now(),
    };

    // A valid signature: the upstream gets the exact body, the identity, and neither the key
    // nor the signature headers.
    let reply = request.send(gw).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let seen = s.upstream.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/signed/orders?dry-run=true");
    assert_eq!(&seen.body[..], body);
    assert_eq!(seen.header("x-portcullis-tenant"), Some("tenant-a"));
    for gone in [
        "x-api-key",
        "x-portcullis-timestamp",
        "x-portcullis-signature",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the upstream");
    }

    // The same request again: a replay.
    let reply = request.send(gw).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&reply), "signature_replayed");

    // Tampering with anything the signature covers.
    let fresh = |at| Signed { at, ..request };
    let t = now() - 1;
    for (method, target, sent_body, what) in [
        (
            "POST",
            "/signed/orders?dry-run=true",
            &br#"{"amount":4200}"#[..],
            "body",
        ),
        ("POST", "/signed/orders?dry-run=false", &body[..], "query"),
        ("POST", "/signed/refunds?dry-run=true", &body[..], "path"),
        ("PUT", "/signed/orders?dry-run=true", &body[..], "method"),
    ] {
        let reply = fresh(t).send_as(gw, method, target, sent_body).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(code(&reply), "invalid_signature", "{what}");
    }
    // Another tenant's secret does not sign for this key.
    let (_, other_secret) = signing_key(&s, "tenant-b").await;
    let reply = Signed {
        secret: &other_secret,
        ..fresh(now() - 2)
    }
    .send(gw)
    .await;
    assert_eq!(code(&reply), "invalid_signature");

    // The signature covers the target as sent; the upstream gets the normalised one.
    let reply = Signed {
        target: "/signed//orders/./x?a=1",
        ..fresh(now() - 4)
    }
    .send(gw)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    assert_eq!(s.upstream.last().target, "/signed/orders/x?a=1");

    // Clock skew: inside ±300 s passes, outside is refused.
    for (at, expected) in [
        (now() - 290, StatusCode::OK),
        (now() + 290, StatusCode::OK),
        (now() - 330, StatusCode::UNAUTHORIZED),
        (now() + 330, StatusCode::UNAUTHORIZED),
    ] {
        let reply = fresh(at).send(gw).await;
        assert_eq!(reply.status, expected, "at {at} (now {})", now());
        if expected == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&reply), "signature_expired");
        }
    }

    // A key that signs must sign, on every route.
    for target in ["/signed/orders", "/elsewhere"] {
        let reply = send(gw, "GET", target, &[("x-api-key", &key)], b"").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{target}");
        assert_eq!(code(&reply), "signature_required", "{target}");
        assert!(reply.header("www-authenticate").is_some());
    }
    // A key that does not sign: fine where API keys are, refused where only signed ones are.
    let plain = plain_key(&s, "tenant-a").await;
    let reply = send(gw, "GET", "/elsewhere", &[("x-api-key", &plain)], b"").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(gw, "GET", "/signed/orders", &[("x-api-key", &plain)], b"").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&reply), "signature_required");

    // A signed body over `max-body` (1 KiB) never reaches the upstream.
    let before = s.upstream.received().len();
    let big = vec![b'x'; 2048];
    let reply = Signed {
        body: &big,
        ..fresh(now() - 3)
    }
    .send(gw)
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.upstream.received().len(), before);

    // No key, signing secret or signature was logged.
    let (_, signature) = sign(&secret, "POST", request.target, body, request.at);
    let lines = gw.output();
    assert!(lines.iter().any(|l| l.contains("signature_replayed")));
    for line in &lines {
        assert!(!line.contains(&secret), "signing secret logged: {line}");
        assert!(!line.contains(&key), "key logged: {line}");
        assert!(!line.contains(&signature), "signature logged: {line}");
    }
}

/// The README's curl + openssl snippet, run by `bash` as written, against the gateway.
#[tokio::test]
async fn the_readme_shell_client_is_accepted() {
    let s = setup(1, "\"memory\"").await;
    let gw = &s.gateways[0];
    let (key, secret) = signing_key(&s, "tenant-a").await;
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- signed-request-shell: begin")
        .nth(1)
        .and_then(|rest| rest.split("<!-- signed-request-shell: end -->").next())
        .expect("the README's signed-request snippet markers");
    let script = block
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block between the markers");
    // The signed-only route stands in for the README's /v1/orders.
    let script = script.replace("/v1/orders", "/signed/orders");
    let url = format!("http://{}", gw.addr);
    // Off the test's runtime: the test upstream runs on it and must answer meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(&script)
            .env("KEY", &key)
            .env("SECRET", &secret)
            .env("URL", url)
            .output()
            .expect("bash, curl and openssl must be installed (.ci/run installs them)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = s.upstream.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/signed/orders?dry-run=true");
    assert_eq!(&seen.body[..], br#"{"amount":42}"#);
}

/// Two gateways sharing one Redis: a signature accepted by one is a replay at the other.
#[tokio::test]
#[ignore = "needs REDIS_URL (CI runs it)"]
async fn replays_are_refused_across_instances_sharing_redis() {
    assert!(
        std::env::var("REDIS_URL").is_ok(),
        "REDIS_URL is not set: this test needs a Redis server"
    );
    let s = setup(2, "{ env = \"REDIS_URL\" }").await;
    let (key, secret) = signing_key(&s, "tenant-a").await;
    let request = Signed {
        key: &key,
        secret: &secret,
        method: "POST",
        target: "/signed/pay",
        body: b"{}",
        at: now(),
    };
    let reply = request.send(&s.gateways[0]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    let reply = request.send(&s.gateways[1]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&reply), "signature_replayed");
    // A fresh signature still passes on the second instance. (Its timestamp is the first one's
    // minus a second, never `now() - 1`: once the clock ticks over, that is the first one's
    // timestamp again, the same signature, and rightly a replay.)
    let fresh = Signed {
        at: request.at - 1,
        ..request
    };
    assert_eq!(fresh.send(&s.gateways[1]).await.status, StatusCode::OK);
}

/// Without a usable key-encryption key the gateway does not start, and says why.
#[test]
fn a_missing_or_malformed_kek_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        &format!("\"sqlite:{}\"", dir.path().join("keys.db").display()),
        "\"memory\"",
    );
    for (env, expected) in [
        (vec![], KEK_ENV),
        (vec![(KEK_ENV, "not-a-key")], "key-encryption-key"),
    ] {
        let seen = GatewayProcess::try_start(
            common::binary(),
            &policy,
            Some("http://127.0.0.1:9"),
            &[],
            &env,
        )
        .err()
        .unwrap_or_else(|| panic!("started with {env:?}"));
        let text = seen.join("\n");
        assert!(text.contains(expected), "{env:?}: {text}");
        assert!(!text.contains("not-a-key"), "the value was echoed: {text}");
    }
}
