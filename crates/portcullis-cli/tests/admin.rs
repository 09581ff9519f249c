//! The admin HTTP API through the real gateway process: its own listener and credential, the
//! key lifecycle over HTTP seen by the gateway's main listener, the audit trail it shares with
//! `portcullis keys`, and no secret in any log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::StatusCode;
use http_body_util::Full;
use portcullis_store::{Kek, KeyStore};
use portcullis_test::{Client, GatewayProcess, Reply, TestUpstream};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// 40 bytes: enough for production.
const TOKEN: &str = "admin-token-0123456789-abcdefghijklmnopq";

/// The variable the signing policy names for its key-encryption key.
const KEK_ENV: &str = "PORTCULLIS_ADMIN_TEST_KEK";

struct Setup {
    _upstream: TestUpstream,
    gw: GatewayProcess,
    admin: Client,
    dir: tempfile::TempDir,
}

fn policy(db: &Path, token_file: &Path, signing: bool) -> String {
    let signing = if signing {
        format!("\n[auth.api-keys.signing]\nkey-encryption-key = {{ env = \"{KEK_ENV}\" }}\n")
    } else {
        String::new()
    };
    format!(
        r#"environment = "test"

# Failures say why, so a failing test does too.
[errors]
expose-detail = true

[auth.api-keys]
prefix = "pcl"
store = "sqlite:{}"
cache-ttl = "1s"
rotation-grace = "1h"
{}
[admin]
listen = "127.0.0.1:0"
token = {{ file = "{}" }}
"#,
        db.display(),
        signing,
        token_file.display()
    )
}

async fn setup() -> Setup {
    setup_with(None).await
}

/// With `kek`: a policy with `[auth.api-keys.signing]`, and the gateway started with the KEK
/// in [`KEK_ENV`].
async fn setup_with(kek: Option<&Kek>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let text = policy(&dir.path().join("keys.db"), &token_file, kek.is_some());
    std::fs::write(dir.path().join("policy.toml"), &text).unwrap();
    let upstream = TestUpstream::start().await;
    let kek_hex = kek.map(Kek::to_hex);
    let env: Vec<(&str, &str)> = kek_hex
        .as_ref()
        .map(|hex| (KEK_ENV, hex.as_str()))
        .into_iter()
        .collect();
    let gw = GatewayProcess::try_start(common::binary(), &text, Some(&upstream.url()), &[], &env)
        .unwrap_or_else(|seen| panic!("the gateway did not start:\n{}", seen.join("\n")));
    let admin_addr = gw
        .admin_addr
        .expect("the admin API's address was not logged");
    assert!(admin_addr.ip().is_loopback());
    assert_ne!(admin_addr, gw.addr);
    Setup {
        _upstream: upstream,
        gw,
        admin: Client::http1(admin_addr),
        dir,
    }
}

impl Setup {
    fn policy_file(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// `method path` on the admin listener, with `authorization` (if any), a correlation ID
    /// (if any) and a JSON body (if any).
    async fn admin(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        correlation_id: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.admin.request(method, path);
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        if let Some(id) = correlation_id {
            req = req.header("x-correlation-id", id);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::default(),
        };
        self.admin.send(req.body(body).unwrap()).await
    }

    /// An authorised admin request.
    async fn call(
        &self,
        method: &str,
        path: &str,
        correlation_id: &str,
        body: Option<Value>,
    ) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        self.admin(method, path, Some(&bearer), Some(correlation_id), body)
            .await
    }

    /// The gateway's main listener, with an API key.
    async fn with_key(&self, key: &str) -> StatusCode {
        let client = Client::http1(self.gw.addr);
        let req = client
            .request("GET", "/v1/things")
            .header("x-api-key", key)
            .body(Full::<Bytes>::default())
            .unwrap();
        client.send(req).await.status
    }

    /// The gateway's main listener, with a key that signs and a request signed (as the README
    /// says) with `secret`. `n` goes into the query: a signature is accepted once, and two
    /// requests signed alike in the same second would be alike.
    async fn signed_with(&self, key: &str, secret: &str, n: u32) -> Reply {
        let target = format!("/v1/things?n={n}");
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let canonical = format!(
            "PORTCULLIS-HMAC-SHA256\n{timestamp}\nGET\n{target}\n{}",
            hex(&Sha256::digest(b""))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(canonical.as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        let client = Client::http1(self.gw.addr);
        let req = client
            .request("GET", &target)
            .header("x-api-key", key)
            .header("x-portcullis-timestamp", timestamp)
            .header("x-portcullis-signature", signature)
            .body(Full::<Bytes>::default())
            .unwrap();
        client.send(req).await
    }

    /// Polls the main listener with signed requests until `key` is accepted (a new key reaches
    /// the gateway within `cache-ttl`); returns the next unused `n`.
    async fn until_signed(&self, key: &str, secret: &str, mut n: u32) -> u32 {
        let start = Instant::now();
        loop {
            let reply = self.signed_with(key, secret, n).await;
            n += 1;
            if reply.status == StatusCode::OK {
                return n;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "still {} after 5s: {:?}",
                reply.status,
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the main listener until `key` gets `status`; returns how long that took.
    async fn until(&self, key: &str, status: StatusCode, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.with_key(key).await;
            if got == status {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "still {got} after {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn error_code(reply: &Reply) -> String {
    let json = reply.json();
    assert!(json["error"]["message"].is_string(), "{json}");
    assert!(json["error"]["correlation_id"].is_string(), "{json}");
    json["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_the_admin_token_nothing_happens_and_nothing_is_recorded() {
    let mut s = setup().await;
    let wrong = [
        None,
        Some("Bearer not-the-token".to_owned()),
        Some(format!("Bearer {TOKEN}0")),
        Some(format!("Basic {TOKEN}")),
    ];
    for authorization in &wrong {
        for (method, path, body) in [
            ("POST", "/v1/keys", Some(json!({"tenant": "acme"}))),
            ("GET", "/v1/keys", None),
            ("POST", "/v1/tenants/acme/suspend", None),
            ("GET", "/v1/audit", None),
        ] {
            let reply = s
                .admin(
                    method,
                    path,
                    authorization.as_deref(),
                    Some("probe-1"),
                    body,
                )
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{:?}",
                reply.headers
            );
            let code = error_code(&reply);
            assert!(
                ["authentication_required", "invalid_credentials"].contains(&code.as_str()),
                "{code}"
            );
            assert_eq!(reply.json()["error"]["correlation_id"], "probe-1");
        }
    }
    // The gateway's own key credential is not an admin credential, nor is the admin token a
    // key on the main listener.
    assert_eq!(s.with_key(TOKEN).await, StatusCode::UNAUTHORIZED);

    let audit = s.call("GET", "/v1/audit", "check-1", None).await;
    assert_eq!(audit.status, StatusCode::OK);
    assert_eq!(audit.json(), json!([]));
    assert_eq!(
        s.call("GET", "/v1/keys", "check-2", None).await.json(),
        json!([])
    );

    // Refusals are logged, without what was presented (the near-misses above contain the
    // token).
    let lines = s.gw.output();
    assert!(
        lines.iter().any(|l| l.contains("invalid_credentials")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains(TOKEN)), "{lines:#?}");

    // The admin API stops with the gateway, at once: the admin client's idle keep-alive
    // connections are told to close rather than waited for (30 s of shutdown grace).
    let admin_addr = s.gw.admin_addr.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(s.gw.terminate(), Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the admin API held the shutdown for {:?}",
        started.elapsed()
    );
    assert!(std::net::TcpStream::connect(admin_addr).is_err());
}

#[tokio::test]
async fn the_key_lifecycle_over_http_reaches_the_gateway() {
    let s = setup().await;

    // Create: 201, the key shown once, and it works on the main listener.
    let created = s
        .call(
            "POST",
            "/v1/keys",
            "create-1",
            Some(json!({"tenant": "acme", "subject": "ci bot", "scopes": ["things:read"], "expires_in": "30d"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    assert_eq!(created.header("x-correlation-id"), Some("create-1"));
    let created = created.json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["state"], "active");
    s.until(&key, StatusCode::OK, Duration::from_secs(5)).await;

    // Read back, through the API and through the CLI: the same JSON.
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("key");
    let shown = s
        .call("GET", &format!("/v1/keys/{id}"), "show-1", None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    let shown = shown.json();
    assert_eq!(shown["id"], expected["id"]);
    assert_eq!(shown["scopes"], json!(["things:read"]));
    let listed = s
        .call("GET", "/v1/keys?tenant=acme", "list-1", None)
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    let cli = Command::new(common::binary())
        .args(["keys", "--config"])
        .arg(s.policy_file())
        .args(["show", &id, "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["id"], shown["id"]);
    assert_eq!(cli["created_at"], shown["created_at"]);

    // Rotate: both keys work during the grace period.
    let rotated = s
        .call(
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            "rotate-1",
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{:?}", rotated.body);
    let rotated = rotated.json();
    let successor = rotated["key"].as_str().unwrap().to_owned();
    let successor_id = rotated["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["rotated_from"], id.as_str());
    assert_eq!(rotated["previous"]["state"], "rotating");
    s.until(&successor, StatusCode::OK, Duration::from_secs(5))
        .await;
    assert_eq!(s.with_key(&key).await, StatusCode::OK);

    // Rotating the old key again is a conflict; an unknown id is 404.
    let again = s
        .call("POST", &format!("/v1/keys/{id}/rotate"), "rotate-2", None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(error_code(&again), "not_rotatable");
    let unknown = s
        .call("GET", "/v1/keys/aaaaaaaaaaaaaaaa", "show-2", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["correlation_id"], "show-2");

    // Revoke: the successor stops working on the main listener within 5 s.
    let revoked = s
        .call(
            "POST",
            &format!("/v1/keys/{successor_id}/revoke"),
            "revoke-1",
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(revoked.json()["state"], "revoked");
    let took = s
        .until(&successor, StatusCode::UNAUTHORIZED, Duration::from_secs(5))
        .await;
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Suspension, then lifting it, for the old key still in its grace period.
    let suspended = s
        .call("POST", "/v1/tenants/acme/suspend", "suspend-1", None)
        .await;
    assert_eq!(suspended.status, StatusCode::OK);
    s.until(&key, StatusCode::UNAUTHORIZED, Duration::from_secs(5))
        .await;
    s.call("POST", "/v1/tenants/acme/unsuspend", "unsuspend-1", None)
        .await;
    s.until(&key, StatusCode::OK, Duration::from_secs(5)).await;

    // The audit trail: actor `admin`, the caller's correlation IDs, no reads, no refusals.
    let audit = s
        .call("GET", "/v1/audit?limit=10", "audit-1", None)
        .await
        .json();
    let seen: Vec<(&str, &str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["correlation_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("admin", "key.create", id.as_str(), "create-1"),
            ("admin", "key.rotate", id.as_str(), "rotate-1"),
            ("admin", "key.revoke", successor_id.as_str(), "revoke-1"),
            ("admin", "tenant.suspend", "acme", "suspend-1"),
            ("admin", "tenant.unsuspend", "acme", "unsuspend-1"),
        ]
    );

    // No secret in any log line: neither the admin token nor a key, nor a key's secret part.
    let lines = s.gw.output();
    assert!(
        lines.iter().any(|l| l.contains("key.revoke")),
        "admin actions are logged (without secrets): {lines:#?}"
    );
    for secret in [
        TOKEN,
        &key,
        &successor,
        // The secret part: everything after `<prefix>_<id>_` (it may itself contain `_`, so
        // the last `_`-separated piece could be a two-letter string found anywhere).
        key.splitn(3, '_').nth(2).unwrap(),
        successor.splitn(3, '_').nth(2).unwrap(),
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(secret)),
            "a secret was logged: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn a_production_policy_with_a_short_admin_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        format!(
            "environment = \"production\"\n\
             [auth.api-keys]\nstore = \"sqlite:{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = {{ env = \"PORTCULLIS_ADMIN_TOKEN\" }}\n",
            dir.path().join("keys.db").display()
        ),
    )
    .unwrap();
    let serve = |token: &str| {
        Command::new(common::binary())
            .args(["serve", "--config"])
            .arg(&file)
            .args([
                "--upstream",
                "http://127.0.0.1:9",
                "--listen",
                "127.0.0.1:0",
            ])
            .env("PORTCULLIS_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let short = "short-admin-token";
    let out = serve(short);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin.token"), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(
        !stderr.contains(short) && !stdout.contains(short),
        "{stderr}{stdout}"
    );
    assert!(!stdout.contains("listening on"), "{stdout}");
    // Nothing was opened either: the token is checked first.
    assert!(!dir.path().join("keys.db").exists());
}

#[tokio::test]
async fn signed_keys_over_http_come_with_their_signing_secret_once() {
    let kek = Kek::generate().unwrap();
    let s = setup_with(Some(&kek)).await;

    let created = s
        .call(
            "POST",
            "/v1/keys",
            "create-signed-1",
            Some(json!({"tenant": "acme", "signed": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let created = created.json();
    assert_eq!(created["signed"], true);
    let key = created["key"].as_str().unwrap().to_owned();
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pcl_sig_"), "{secret}");
    let id = created["id"].as_str().unwrap().to_owned();

    // The gateway opens the secret with the same KEK: a request signed with it passes, an
    // unsigned one does not.
    let n = s.until_signed(&key, &secret, 0).await;
    assert_eq!(s.with_key(&key).await, StatusCode::UNAUTHORIZED);

    // Read back: `signed`, never the secret.
    for path in [format!("/v1/keys/{id}"), "/v1/keys".to_owned()] {
        let reply = s.call("GET", &path, "read-1", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(text.contains("\"signed\":true"), "{text}");
        assert!(
            !text.contains("signing_secret") && !text.contains(&secret),
            "{text}"
        );
    }

    // Rotation: a new signing secret for the successor, once; the old key keeps its own.
    let rotated = s
        .call(
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            "rotate-signed-1",
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{:?}", rotated.body);
    let rotated = rotated.json();
    let successor = rotated["key"].as_str().unwrap().to_owned();
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["signed"], true);
    assert!(rotated["previous"].get("signing_secret").is_none());
    let n = s.until_signed(&successor, &new_secret, n).await;
    let reply = s.signed_with(&successor, &secret, n).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    let reply = s.signed_with(&key, &secret, n + 1).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    let audit = s.call("GET", "/v1/audit", "audit-1", None).await.json();
    assert_eq!(audit[0]["action"], "key.create");
    assert_eq!(audit[0]["detail"], "tenant=acme signed");

    // No signing secret in any log line.
    let lines = s.gw.output();
    for secret in [&secret, &new_secret] {
        let body = &secret["pcl_sig_".len()..];
        assert!(
            !lines.iter().any(|l| l.contains(body)),
            "a signing secret was logged: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn without_the_signing_table_signed_keys_are_refused() {
    let s = setup().await;
    let reply = s
        .call(
            "POST",
            "/v1/keys",
            "create-signed-2",
            Some(json!({"tenant": "acme", "signed": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(error_code(&reply), "invalid_request");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("[auth.api-keys.signing]"), "{message}");
    assert_eq!(
        s.call("GET", "/v1/keys", "list-2", None).await.json(),
        json!([])
    );
}

#[tokio::test]
async fn a_kek_that_does_not_load_stops_the_admin_api_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let text = policy(&dir.path().join("keys.db"), &token_file, true);
    let malformed = "not-a-key-encryption-key-0123456789";
    for env in [vec![], vec![(KEK_ENV, malformed)]] {
        let seen = GatewayProcess::try_start(
            common::binary(),
            &text,
            Some("http://127.0.0.1:9"),
            &[],
            &env,
        )
        .err()
        .unwrap_or_else(|| panic!("started with {env:?}"));
        let text = seen.join("\n");
        assert!(text.contains("admin API"), "{text}");
        assert!(text.contains("key-encryption-key"), "{text}");
        assert!(!text.contains(malformed), "{text}");
    }
    // Nothing was opened: the KEK is loaded before the store.
    assert!(!dir.path().join("keys.db").exists());
}

#[tokio::test]
async fn token_revocations_and_subject_suspensions_over_http_reach_the_store() {
    let s = setup().await;
    let exp = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600))
        .to_string();
    let revoked = s
        .call(
            "POST",
            "/v1/tokens/revoke",
            "revoke-token-1",
            Some(json!({"jti": "jti-1", "expires_at": exp, "tenant": "acme"})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(revoked.header("cache-control"), Some("no-store"));
    let body = revoked.json();
    assert_eq!(body["jti"], "jti-1");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["revoked"], true);
    assert_eq!(body["effective_within"], "5s");
    for (path, id) in [
        ("/v1/tenants/acme/subjects/alice/suspend", "subject-1"),
        ("/v1/tenants/acme/subjects/bob/suspend", "subject-2"),
        ("/v1/tenants/acme/subjects/bob/unsuspend", "subject-3"),
    ] {
        let reply = s.call("POST", path, id, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
        assert_eq!(reply.json()["effective_within"], "5s");
    }

    // Refused: 400 in the one error shape, nothing written.
    for (body, field) in [
        (
            json!({"jti": "j", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"jti": "", "expires_at": exp}), "jti"),
        (json!({"jti": "j"}), "expires_at"),
    ] {
        let reply = s
            .call("POST", "/v1/tokens/revoke", "bad-1", Some(body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(error_code(&reply), "invalid_request");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(field), "{body}: {message}");
    }
    let reply = s
        .call(
            "POST",
            "/v1/tenants/acme/subjects/%20x/suspend",
            "bad-2",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);

    // What every gateway instance loads from the store.
    let db = s.dir.path().join("keys.db");
    let store = portcullis_store::SqliteStore::open(&db).await.unwrap();
    let snapshot = store.revocation_snapshot(SystemTime::now()).await.unwrap();
    store.close().await;
    assert_eq!(snapshot.tokens.into_iter().collect::<Vec<_>>(), ["jti-1"]);
    assert_eq!(
        snapshot.subjects.into_iter().collect::<Vec<_>>(),
        [("acme".to_owned(), "alice".to_owned())]
    );

    // One trail with the CLI's: the CLI's change and the API's read back alike.
    let cli = Command::new(common::binary())
        .args(["keys", "--config"])
        .arg(s.policy_file())
        .args(["revoke-token", "jti-2", "--until", "1h"])
        .env("USER", "tester")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let audit = s
        .call("GET", "/v1/audit?limit=10", "audit-1", None)
        .await
        .json();
    let seen: Vec<(&str, &str, &str, Option<&str>)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["correlation_id"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("admin", "token.revoke", "jti-1", Some("revoke-token-1")),
            ("admin", "subject.suspend", "acme/alice", Some("subject-1")),
            ("admin", "subject.suspend", "acme/bob", Some("subject-2")),
            ("admin", "subject.unsuspend", "acme/bob", Some("subject-3")),
            ("cli:tester", "token.revoke", "jti-2", None),
        ]
    );
    assert_eq!(
        audit[0]["detail"],
        format!("tenant=acme expires={exp}").as_str()
    );
}
