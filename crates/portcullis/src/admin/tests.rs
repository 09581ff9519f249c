//! The admin API as a service, without a socket: authentication, every status, the error
//! shape and the audit trail. The gateway process itself is tested end to end in
//! `crates/portcullis-cli/tests/admin.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_policy::{CompileOptions, load_str};
use portcullis_store::{
    ApiKeyRecord, AuditRecord, BoxFuture, Clock, Kek, KeyId, KeyStore, MemoryStore,
    RevocationSnapshot, Rotation, StoreError, TenantRate, TokenRevocation,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AdminToken, service};

const TOKEN: &str = "an-admin-token-that-is-long-enough-0123";

/// A memory store that can be made to fail: entirely (the database is down), or only when
/// writing audit records.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    audit_down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Backend(Box::new(std::io::Error::other(
                "connection refused",
            ))))
        } else {
            Ok(())
        }
    }

    fn guarded<'a, T: Send + 'a>(
        &'a self,
        call: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            self.check()?;
            call.await
        })
    }
}

impl KeyStore for Flaky {
    fn clock(&self) -> &dyn Clock {
        self.inner.clock()
    }
    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded(self.inner.insert(record))
    }
    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        self.guarded(self.inner.get(id))
    }
    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
        self.guarded(self.inner.list(tenant))
    }
    fn commit_rotation(
        &self,
        rotation: Rotation,
    ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>> {
        self.guarded(self.inner.commit_rotation(rotation))
    }
    fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>> {
        self.guarded(self.inner.revoke(id))
    }
    fn set_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.guarded(self.inner.set_tenant_suspended(tenant, suspended))
    }
    fn is_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.guarded(self.inner.is_tenant_suspended(tenant))
    }
    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>> {
        self.guarded(self.inner.touch(id, at))
    }
    fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        if self.audit_down.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(StoreError::Backend(Box::new(std::io::Error::other(
                    "disk full",
                ))))
            });
        }
        self.guarded(self.inner.record_audit(record))
    }
    fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
        self.guarded(self.inner.list_audit(limit))
    }
    fn revoke_token(&self, revocation: TokenRevocation) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded(self.inner.revoke_token(revocation))
    }
    fn set_subject_suspended<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.guarded(self.inner.set_subject_suspended(tenant, subject, suspended))
    }
    fn revocation_snapshot(
        &self,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>> {
        self.guarded(self.inner.revocation_snapshot(now))
    }
    fn purge_expired_revocations(&self, now: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.guarded(self.inner.purge_expired_revocations(now))
    }
    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded(self.inner.put_tenant_rate(rate))
    }
    fn delete_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.guarded(self.inner.delete_tenant_rate(tenant, quota))
    }
    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
        self.guarded(self.inner.tenant_rates())
    }
}

struct Api {
    app: Router,
    store: Arc<Flaky>,
}

fn api() -> Api {
    api_with(None)
}

/// The API with this key-encryption key, as `AdminServer::bind` loads it from
/// `[auth.api-keys.signing]`.
fn api_with(kek: Option<Kek>) -> Api {
    let policy = load_str(
        "admin.toml",
        "environment = \"test\"\n\
         [auth.api-keys]\nprefix = \"pcl\"\nstore = \"sqlite:unused.db\"\nrotation-grace = \"1h\"\n\
         [admin]\ntoken = { env = \"UNUSED\" }\n\
         [rate-limit.quotas.per-key]\nkey = \"api-key\"\nlimit = 10\nper = \"1s\"\n\
         [rate-limit.quotas.per-ip]\nkey = \"ip\"\nlimit = 10\nper = \"1s\"\n",
        &CompileOptions::default(),
    )
    .unwrap()
    .policy;
    let store = Arc::new(Flaky::default());
    let keys = policy.auth.api_keys.clone().unwrap();
    let app = service(store.clone(), keys, AdminToken::new(TOKEN), kek, &policy);
    Api { app, store }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    json: Value,
}

impl Api {
    async fn call(&self, req: Request<Body>) -> Reply {
        let res: Response<Body> = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            json,
        }
    }

    /// `method path` with the admin token and, if given, a JSON body.
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.call(req.body(body).unwrap()).await
    }
}

/// Asserts the one error shape, and returns its code.
fn error_code(reply: &Reply) -> &str {
    let error = &reply.json["error"];
    assert!(error["message"].is_string(), "{}", reply.json);
    assert!(error["correlation_id"].is_string(), "{}", reply.json);
    assert_eq!(reply.headers["content-type"], "application/json");
    error["code"].as_str().unwrap()
}

#[tokio::test]
async fn no_token_no_entry_and_no_record() {
    let api = api();
    let body = json!({"tenant": "acme"}).to_string();
    for (auth, code) in [
        (None, "authentication_required"),
        (Some("Bearer wrong-token"), "invalid_credentials"),
        (Some(&*format!("Bearer {TOKEN}x")), "invalid_credentials"),
        (Some(&*format!("Basic {TOKEN}")), "invalid_credentials"),
        (Some("Bearer "), "invalid_credentials"),
    ] {
        for (method, path) in [
            ("POST", "/v1/keys"),
            ("GET", "/v1/keys"),
            ("POST", "/v1/tenants/acme/suspend"),
            ("GET", "/v1/audit"),
            ("GET", "/no/such/path"),
        ] {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json");
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let reply = api.call(req.body(Body::from(body.clone())).unwrap()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(error_code(&reply), code, "{method} {path}");
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer realm=\"portcullis-admin\""
            );
            assert_eq!(reply.headers["cache-control"], "no-store");
        }
    }
    // Two Authorization headers, one of them right: refused too.
    let req = Request::get("/v1/keys")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("authorization", "Bearer other")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.call(req).await.status, StatusCode::UNAUTHORIZED);
    assert!(api.store.inner.list(None).await.unwrap().is_empty());
    assert!(api.store.inner.list_audit(10).await.unwrap().is_empty());
    // The scheme is case-insensitive.
    let req = Request::get("/v1/keys")
        .header("authorization", format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.call(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn lifecycle_with_the_cli_s_json() {
    let api = api();
    let created = api
        .send(
            "POST",
            "/v1/keys",
            Some(
                json!({"tenant": "acme", "subject": "ci", "scopes": ["read"], "expires_in": "30d"}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/v1/keys/{id}").as_str()
    );
    assert_eq!(created.headers["cache-control"], "no-store");
    let mut fields: Vec<&str> = created
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "expires_at",
            "id",
            "key",
            "last_used_at",
            "prefix",
            "rotated_from",
            "rotated_to",
            "scopes",
            "signed",
            "state",
            "subject",
            "tenant",
            "tenant_suspended",
        ]
    );
    let key = created.json["key"].as_str().unwrap().to_owned();
    assert!(api.store.verify(&key).await.is_ok());

    let shown = api.send("GET", &format!("/v1/keys/{id}"), None).await;
    let mut without_key = created.json.clone();
    without_key.as_object_mut().unwrap().remove("key");
    assert_eq!(shown.json, without_key);
    assert_eq!(
        api.send("GET", "/v1/keys?tenant=acme", None).await.json,
        json!([without_key])
    );
    assert_eq!(
        api.send("GET", "/v1/keys?tenant=other", None).await.json,
        json!([])
    );

    // Rotation: with no body the policy's grace; the old key comes back as `previous`.
    let rotated = api
        .send("POST", &format!("/v1/keys/{id}/rotate"), None)
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.json);
    assert_eq!(rotated.json["rotated_from"], id.as_str());
    assert_eq!(rotated.json["previous"]["state"], "rotating");
    let new_id = rotated.json["id"].as_str().unwrap().to_owned();
    let again = api
        .send(
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace": "1m"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&again), "not_rotatable");

    let revoked = api
        .send("POST", &format!("/v1/keys/{new_id}/revoke"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.json["state"], "revoked");
    assert_eq!(revoked.json["tenant"], "acme");
    for path in ["/v1/tenants/acme/suspend", "/v1/tenants/acme/unsuspend"] {
        let reply = api.send("POST", path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        assert_eq!(reply.json["tenant"], "acme");
    }

    let audit = api.send("GET", "/v1/audit?limit=10", None).await.json;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("key.create", "admin"),
            ("key.rotate", "admin"),
            ("key.revoke", "admin"),
            ("tenant.suspend", "admin"),
            ("tenant.unsuspend", "admin"),
        ]
    );
    let text = audit.to_string();
    assert!(!text.contains(&key));
    assert!(!text.contains(rotated.json["key"].as_str().unwrap()));
}

#[tokio::test]
async fn every_mistake_has_its_status_and_the_json_shape() {
    let api = api();
    let key = "pcl_abcdefgh234567zz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let cases: Vec<(&str, String, Option<Value>, StatusCode, &str)> = vec![
        (
            "GET",
            "/v1/keys/aaaaaaaaaaaaaaaa".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/keys/aaaaaaaaaaaaaaaa/rotate".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/keys/aaaaaaaaaaaaaaaa/revoke".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/v1/keys/not-an-id".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "GET",
            format!("/v1/keys/{key}"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "a b"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "scope": ["x"]})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "expires_in": "soon"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!(["tenant"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tenants/a%20b/suspend".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/keys?tenat=acme".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/audit?limit=many".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/audit?limit=100000".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "DELETE",
            "/v1/keys".into(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v2/keys".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let reply = api.send(method, &path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.json);
        assert_eq!(error_code(&reply), code, "{method} {path}");
        assert!(!reply.json.to_string().contains("AAAA"), "{}", reply.json);
    }

    // Not JSON, or not said to be.
    let req = |content_type: &str, body: &str| {
        Request::post("/v1/keys")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let reply = api.call(req("application/json", "{\"tenant\":")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = api.call(req("text/plain", "{\"tenant\":\"t\"}")).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = api
        .call(req("application/json; charset=utf-8", "{\"tenant\":\"t\"}"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let big = format!("{{\"tenant\":\"{}\"}}", "t".repeat(20_000));
    let reply = api.call(req("application/json", &big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&reply), "payload_too_large");

    // Nothing above but the one create changed anything.
    assert_eq!(api.store.inner.list_audit(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_store_is_503_and_a_lost_audit_record_is_said() {
    let api = api();
    let created = api
        .send("POST", "/v1/keys", Some(json!({"tenant": "acme"})))
        .await;
    let id = created.json["id"].as_str().unwrap().to_owned();

    api.store.down.store(true, Ordering::SeqCst);
    for (method, path) in [
        ("GET", "/v1/keys".to_owned()),
        ("GET", format!("/v1/keys/{id}")),
        ("POST", format!("/v1/keys/{id}/revoke")),
        ("GET", "/v1/audit".to_owned()),
    ] {
        let reply = api.send(method, &path, None).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(error_code(&reply), "store_unavailable");
        // `test` hides internal detail, as production does.
        assert!(
            reply.json["error"].get("detail").is_none(),
            "{}",
            reply.json
        );
    }
    api.store.down.store(false, Ordering::SeqCst);

    // The audit log is down: a revoke happens, and the caller is told its record is missing;
    // a new key is still handed over (it exists either way).
    api.store.audit_down.store(true, Ordering::SeqCst);
    let reply = api
        .send("POST", &format!("/v1/keys/{id}/revoke"), None)
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&reply), "audit_unavailable");
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was done"),
        "{}",
        reply.json
    );
    let created = api
        .send("POST", "/v1/keys", Some(json!({"tenant": "acme"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.json["key"].is_string());
}

#[tokio::test]
async fn the_callers_correlation_id_reaches_the_audit_record() {
    let api = api();
    let req = |id: &str| {
        Request::post("/v1/tenants/acme/suspend")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("x-correlation-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let reply = api.call(req("change-4711")).await;
    assert_eq!(reply.headers["x-correlation-id"], "change-4711");
    // Malformed: replaced by a generated one, which the record carries instead.
    let reply = api.call(req("bad id with spaces")).await;
    let generated = reply.headers["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(generated, "bad id with spaces");
    let records = api.store.inner.list_audit(10).await.unwrap();
    let ids: Vec<Option<&str>> = records
        .iter()
        .map(|r| r.correlation_id.as_deref())
        .collect();
    assert_eq!(ids, [Some(generated.as_str()), Some("change-4711")]);
    // Errors carry the correlation ID too.
    let denied = api
        .call(
            Request::get("/v1/keys")
                .header("x-correlation-id", "denied-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(denied.json["error"]["correlation_id"], "denied-1");
}

#[tokio::test]
async fn signed_keys_come_with_a_signing_secret_once() {
    let kek = Kek::generate().unwrap();
    let kek_copy = Kek::from_encoded(&kek.to_hex()).unwrap();
    let api = api_with(Some(kek));
    let created = api
        .send(
            "POST",
            "/v1/keys",
            Some(json!({"tenant": "acme", "signed": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["signed"], true);
    let secret = created.json["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pcl_sig_"), "{secret}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    let key_id: KeyId = id.parse().unwrap();
    let stored = api.store.inner.get(&key_id).await.unwrap().unwrap();
    assert_eq!(
        kek_copy
            .open(&key_id, stored.signing_secret.as_ref().unwrap())
            .unwrap()
            .expose_secret(),
        secret
    );

    // Read back: `signed`, never the secret.
    let shown = api.send("GET", &format!("/v1/keys/{id}"), None).await.json;
    assert_eq!(shown["signed"], true);
    assert!(shown.get("signing_secret").is_none(), "{shown}");
    let listed = api.send("GET", "/v1/keys", None).await.json.to_string();
    assert!(!listed.contains(&secret), "{listed}");

    // The successor gets a secret of its own.
    let rotated = api
        .send("POST", &format!("/v1/keys/{id}/rotate"), None)
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.json);
    let new_secret = rotated.json["signing_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.json["signed"], true);
    assert!(rotated.json["previous"].get("signing_secret").is_none());

    // A plain key says so, and has no signing secret.
    let plain = api
        .send("POST", "/v1/keys", Some(json!({"tenant": "acme"})))
        .await;
    assert_eq!(plain.json["signed"], false);
    assert!(plain.json.get("signing_secret").is_none());

    let audit = api.send("GET", "/v1/audit", None).await.json;
    assert_eq!(audit[0]["detail"], "tenant=acme signed");
    let text = audit.to_string();
    assert!(
        !text.contains(&secret) && !text.contains(new_secret),
        "{text}"
    );
}

#[tokio::test]
async fn without_a_kek_signed_keys_are_refused_with_the_table_to_add() {
    let api = api();
    let reply = api
        .send(
            "POST",
            "/v1/keys",
            Some(json!({"tenant": "acme", "signed": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
    assert_eq!(error_code(&reply), "invalid_request");
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("[auth.api-keys.signing]"), "{message}");
    assert!(api.store.inner.list(None).await.unwrap().is_empty());

    // A signing key made elsewhere cannot be rotated here.
    let kek = Kek::generate().unwrap();
    let (record, _, _) = api
        .store
        .create_signed(portcullis_store::NewKey::new("pcl", "acme"), &kek)
        .await
        .unwrap();
    let reply = api
        .send("POST", &format!("/v1/keys/{}/rotate", record.id), None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
    let message = reply.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("[auth.api-keys.signing]"), "{message}");
    assert_eq!(api.store.inner.list(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn token_revocations_and_subject_suspensions_reach_the_snapshot_audited() {
    let api = api();
    let now = api.store.clock().now();
    let exp = humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(3600));
    let reply = api
        .send(
            "POST",
            "/v1/tokens/revoke",
            Some(json!({"jti": "jti-1", "expires_at": exp.to_string(), "tenant": "acme"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(
        reply.json,
        json!({
            "jti": "jti-1",
            "tenant": "acme",
            "expires_at": humantime::format_rfc3339_millis(
                humantime::parse_rfc3339(&exp.to_string()).unwrap()
            ).to_string(),
            "revoked": true,
            "effective_within": "5s",
        })
    );
    // Without a tenant, too.
    let reply = api
        .send(
            "POST",
            "/v1/tokens/revoke",
            Some(json!({"jti": "jti-2", "expires_at": exp.to_string()})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["tenant"], Value::Null);

    for (path, suspended) in [
        ("/v1/tenants/acme/subjects/alice/suspend", true),
        ("/v1/tenants/acme/subjects/bob%20smith/suspend", true),
        ("/v1/tenants/acme/subjects/alice/unsuspend", false),
    ] {
        let reply = api.send("POST", path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.json);
        assert_eq!(reply.json["tenant"], "acme");
        assert_eq!(reply.json["suspended"], suspended);
        assert_eq!(reply.json["effective_within"], "5s");
    }

    let snapshot = api.store.inner.revocation_snapshot(now).await.unwrap();
    assert!(snapshot.is_token_revoked("jti-1"));
    assert!(snapshot.is_token_revoked("jti-2"));
    assert_eq!(
        snapshot.subjects.into_iter().collect::<Vec<_>>(),
        [("acme".to_owned(), "bob smith".to_owned())]
    );
    assert!(!api.store.inner.is_tenant_suspended("acme").await.unwrap());

    let audit = api.send("GET", "/v1/audit", None).await.json;
    let records: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("token.revoke", "jti-1", "admin"),
            ("token.revoke", "jti-2", "admin"),
            ("subject.suspend", "acme/alice", "admin"),
            ("subject.suspend", "acme/bob smith", "admin"),
            ("subject.unsuspend", "acme/alice", "admin"),
        ]
    );
    assert_eq!(
        audit[0]["detail"],
        format!("tenant=acme expires={exp}").as_str()
    );
}

#[tokio::test]
async fn unsound_revocations_are_400_and_change_nothing() {
    let api = api();
    let now = api.store.clock().now();
    let later =
        humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(60)).to_string();
    let earlier =
        humantime::format_rfc3339_seconds(now - std::time::Duration::from_secs(60)).to_string();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        ("/v1/tokens/revoke", None, "body"),
        ("/v1/tokens/revoke", Some(json!({"jti": "j"})), "expires_at"),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "", "expires_at": later})),
            "jti",
        ),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "j", "expires_at": earlier})),
            "expires_at",
        ),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "j", "expires_at": "tomorrow"})),
            "expires_at",
        ),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "j", "expires_at": later, "tenant": "a b"})),
            "tenant",
        ),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "j", "expires_at": later, "sub": "x"})),
            "sub",
        ),
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": jwt, "expires_at": later})),
            "jti",
        ),
        ("/v1/tenants/a%20b/subjects/alice/suspend", None, "tenant"),
        (
            "/v1/tenants/acme/subjects/%20alice/suspend",
            None,
            "subject",
        ),
        ("/v1/tenants/acme/subjects/a%0Ab/unsuspend", None, "subject"),
    ];
    for (path, body, field) in cases {
        let reply = api.send("POST", path, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path} {body:?}: {}",
            reply.json
        );
        assert_eq!(error_code(&reply), "invalid_request");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{path} {body:?}: {message}");
        assert!(!message.contains("eyJzdWIi"), "{message}");
    }
    assert!(api.store.inner.list_audit(10).await.unwrap().is_empty());
    assert_eq!(
        api.store.inner.revocation_snapshot(now).await.unwrap(),
        RevocationSnapshot::default()
    );

    // The store is down: 503, as for keys.
    api.store.down.store(true, Ordering::SeqCst);
    for (path, body) in [
        (
            "/v1/tokens/revoke",
            Some(json!({"jti": "j", "expires_at": later})),
        ),
        ("/v1/tenants/acme/subjects/alice/suspend", None),
    ] {
        let reply = api.send("POST", path, body).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(error_code(&reply), "store_unavailable");
    }
}

#[tokio::test]
async fn tenant_rate_plans_are_set_listed_cleared_and_audited() {
    let api = api();
    let reply = api
        .send(
            "PUT",
            "/v1/tenants/acme/rates/per-key",
            Some(json!({"limit": 100, "burst": 200})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["limit"], 100);
    assert_eq!(reply.json["per"], "1s", "the quota's own period");
    assert_eq!(reply.json["burst"], 200);
    assert_eq!(reply.json["effective_within"], "5s");
    let reply = api
        .send(
            "PUT",
            "/v1/tenants/acme/rates/per-key",
            Some(json!({"limit": 50, "per": "1m"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let list = api.send("GET", "/v1/rates", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let all = list.json.as_array().unwrap();
    assert_eq!(all.len(), 1, "replaced, not added: {}", list.json);
    assert_eq!(all[0]["per"], "1m");
    assert_eq!(all[0]["burst"], 50);

    // Quotas counted before authentication, unknown quotas, bad bodies: 400, nothing stored.
    for (path, body) in [
        ("/v1/tenants/acme/rates/per-ip", json!({"limit": 5})),
        ("/v1/tenants/acme/rates/nope", json!({"limit": 5})),
        ("/v1/tenants/acme/rates/per-key", json!({"limit": 0})),
        (
            "/v1/tenants/acme/rates/per-key",
            json!({"limit": 5, "per": "soon"}),
        ),
        ("/v1/tenants/a%20b/rates/per-key", json!({"limit": 5})),
    ] {
        let reply = api.send("PUT", path, Some(body)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.json
        );
        error_code(&reply);
    }

    let reply = api
        .send("DELETE", "/v1/tenants/acme/rates/per-key", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["cleared"], true);
    let reply = api
        .send("DELETE", "/v1/tenants/acme/rates/per-key", None)
        .await;
    assert_eq!(reply.json["cleared"], false);
    assert_eq!(api.send("GET", "/v1/rates", None).await.json, json!([]));

    let audit = api.send("GET", "/v1/audit", None).await;
    let actions: Vec<&str> = audit
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["tenant.rate.set", "tenant.rate.set", "tenant.rate.clear"]
    );
}
