//! The admin HTTP API through the real gateway process: its own listener and credential, the
//! key lifecycle over HTTP seen by the gateway's main listener, the audit trail it shares with
//! `portcullis keys`, and no secret in any log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_test::{Client, GatewayProcess, Reply, TestUpstream};
use serde_json::{Value, json};

/// 40 bytes: enough for production.
const TOKEN: &str = "admin-token-0123456789-abcdefghijklmnopq";

struct Setup {
    _upstream: TestUpstream,
    gw: GatewayProcess,
    admin: Client,
    dir: tempfile::TempDir,
}

fn policy(db: &Path, token_file: &Path) -> String {
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

[admin]
listen = "127.0.0.1:0"
token = {{ file = "{}" }}
"#,
        db.display(),
        token_file.display()
    )
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let text = policy(&dir.path().join("keys.db"), &token_file);
    std::fs::write(dir.path().join("policy.toml"), &text).unwrap();
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &text, Some(&upstream.url()), &[]);
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

    // The admin API stops with the gateway.
    let admin_addr = s.gw.admin_addr.unwrap();
    assert_eq!(s.gw.terminate(), Some(0));
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
        key.rsplit('_').next().unwrap(),
        successor.rsplit('_').next().unwrap(),
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
