//! JWT bearer tokens through the real gateway: a valid token reaches the upstream as identity
//! headers, and every attack on issue 4's list is refused with the right status. Tokens are
//! minted here with `jsonwebtoken`; the RS256 key is a test-only fixture (tests/fixtures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use data_encoding::BASE64URL_NOPAD;
use http::StatusCode;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use portcullis_test::{Client, GatewayProcess, Page, PageServer, Reply, TestUpstream};
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-for-the-jwt-end-to-end-tests-0123456789";
const ACME_SECRET: &str = "acme-only-secret-for-the-end-to-end-tests-ABCDEF";
const GLOBEX_SECRET: &str = "globex-only-secret-for-the-end-to-end-tests-UVWXYZ";
const ISSUER: &str = "https://auth.example.com";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn now() -> u64 {
    get_current_timestamp()
}

/// Registered caller of tenant `acme`, valid for ten minutes.
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": "api",
        "sub": "user-42",
        "tenant": "acme",
        "role": "registered",
        "scope": "things:read things:write",
        "iat": now(),
        "exp": now() + 600,
    })
}

/// `base` with the keys of `changes` replaced (a `null` removes the key).
fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(kid: &str, claims: &Value) -> String {
    rs256_with("jwt-rsa-private.pem", kid, claims)
}

/// An RS256 token signed with the fixture key `pem`.
fn rs256_with(pem: &str, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(pem)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// `{"alg":"none"}`, the claims, and an empty signature.
fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    )
}

/// The same token with its payload replaced, signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// Writes a secret file into `dir` and returns its path.
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    // A trailing newline, as `echo` leaves it: the gateway trims it.
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

const ROUTES: &str = r#"
[[route]]
name = "public"
paths = ["/public/*"]
[route.auth]
mode = "none"

[[route]]
name = "write"
paths = ["/write/*"]
[route.auth]
require-registered = true

[[route]]
name = "admin"
paths = ["/admin/*"]
[route.auth]
scopes = ["admin"]
"#;

async fn get(gw: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client = Client::http1(gw.addr);
    let mut req = client.request("GET", path);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await
}

async fn bearer(gw: &GatewayProcess, path: &str, token: &str) -> Reply {
    get(gw, path, &[("authorization", &format!("Bearer {token}"))]).await
}

/// Asserts `token` is refused on `/v1/things` with `401 invalid_credentials`.
async fn refused(gw: &GatewayProcess, upstream: &TestUpstream, what: &str, token: &str) {
    let before = upstream.received().len();
    let reply = bearer(gw, "/v1/things", token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        reply.json()["error"]["code"],
        "invalid_credentials",
        "{what}"
    );
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"api\""),
        "{what}"
    );
    assert_eq!(
        upstream.received().len(),
        before,
        "{what} reached the upstream"
    );
}

#[tokio::test]
async fn hs256_tokens_and_every_attack() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "jwt-secret", SECRET);
    let policy = format!(
        r#"environment = "test"

[auth]
tenant-header = "x-app-id"

[auth.jwt]
algorithms = ["HS256"]
secret = {{ file = "{}" }}
issuer = "{ISSUER}"
audience = ["api"]
leeway = "30s"
max-lifetime = "1h"
{ROUTES}"#,
        secret.display()
    );
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let mut tokens = Vec::new();

    // A valid token: 200, the verified identity upstream, the token itself not forwarded.
    let forged_identity = [
        ("x-portcullis-tenant", "globex"),
        ("x-portcullis-role", "registered"),
        ("x-portcullis-scopes", "admin"),
    ];
    let token = hs256(&claims(), SECRET.as_bytes());
    let auth = format!("Bearer {token}");
    let mut headers = forged_identity.to_vec();
    headers.push(("authorization", &auth));
    let reply = get(&gw, "/v1/things", &headers).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(seen.header_all("x-portcullis-tenant"), ["acme"]);
    assert_eq!(seen.header_all("x-portcullis-subject"), ["user-42"]);
    assert_eq!(seen.header_all("x-portcullis-role"), ["registered"]);
    assert_eq!(
        seen.header_all("x-portcullis-scopes"),
        ["things:read,things:write"]
    );
    assert_eq!(seen.header_all("x-portcullis-key-id"), ["jwt"]);
    assert!(
        seen.header("authorization").is_none(),
        "the token was forwarded"
    );
    tokens.push(token.clone());

    // No token: 401 authentication_required.
    let reply = get(&gw, "/v1/things", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"]["code"], "authentication_required");

    // Every attack: the same 401.
    let attacks = [
        ("alg none", unsigned(&claims())),
        (
            "alg none, signature kept",
            format!(
                "{}{}",
                unsigned(&claims()),
                token.rsplit('.').next().unwrap()
            ),
        ),
        (
            "bad signature",
            hs256(&claims(), b"another-secret-of-the-same-length-0123456"),
        ),
        (
            "payload swapped under a valid signature",
            tampered(&token, &with(claims(), json!({"tenant": "globex"}))),
        ),
        (
            "expired",
            hs256(
                &with(claims(), json!({"exp": now() - 120})),
                SECRET.as_bytes(),
            ),
        ),
        (
            "not yet valid",
            hs256(
                &with(claims(), json!({"nbf": now() + 300})),
                SECRET.as_bytes(),
            ),
        ),
        (
            "wrong issuer",
            hs256(
                &with(claims(), json!({"iss": "https://evil.example"})),
                SECRET.as_bytes(),
            ),
        ),
        (
            "no issuer",
            hs256(&with(claims(), json!({"iss": null})), SECRET.as_bytes()),
        ),
        (
            "wrong audience",
            hs256(&with(claims(), json!({"aud": "web"})), SECRET.as_bytes()),
        ),
        (
            "lifetime over max-lifetime",
            hs256(
                &with(claims(), json!({"iat": now(), "exp": now() + 7200})),
                SECRET.as_bytes(),
            ),
        ),
        (
            "no iat with max-lifetime",
            hs256(&with(claims(), json!({"iat": null})), SECRET.as_bytes()),
        ),
        (
            "missing tenant claim",
            hs256(&with(claims(), json!({"tenant": null})), SECRET.as_bytes()),
        ),
        (
            "no exp",
            hs256(&with(claims(), json!({"exp": null})), SECRET.as_bytes()),
        ),
        ("not a JWT", "eyJhbGciOiJIUzI1NiJ9.garbage".to_owned()),
    ];
    for (what, token) in &attacks {
        refused(&gw, &upstream, what, token).await;
        tokens.push(token.clone());
    }

    // Valid, but naming another tenant in the tenant header: 403.
    let reply = get(
        &gw,
        "/v1/things",
        &[("authorization", &auth), ("x-app-id", "globex")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "tenant_mismatch");
    let reply = get(
        &gw,
        "/v1/things",
        &[("authorization", &auth), ("x-app-id", "acme")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Guests may read, not write; registered callers may write.
    let guest = hs256(&with(claims(), json!({"role": "guest"})), SECRET.as_bytes());
    assert_eq!(
        bearer(&gw, "/v1/things", &guest).await.status,
        StatusCode::OK
    );
    let reply = bearer(&gw, "/write/x", &guest).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "registration_required");
    assert_eq!(upstream.last().header("x-portcullis-role"), Some("guest"));
    assert_eq!(bearer(&gw, "/write/x", &token).await.status, StatusCode::OK);
    tokens.push(guest);

    // Scopes: 403, not 401.
    let reply = bearer(&gw, "/admin/x", &token).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["code"], "insufficient_scope");

    // `none` routes read no token, not even a broken one.
    assert_eq!(
        bearer(&gw, "/public/x", "garbage").await.status,
        StatusCode::OK
    );

    // Refusals were logged with a reason; no token and no secret ever was.
    let lines = gw.output();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("credential refused") && l.contains("expired")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains(SECRET), "the secret was logged: {line}");
        for token in &tokens {
            for part in token.split('.').filter(|p| p.len() > 16) {
                assert!(!line.contains(part), "a token was logged: {line}");
            }
        }
    }
}

#[tokio::test]
async fn per_tenant_secrets_never_cross() {
    let dir = tempfile::tempdir().unwrap();
    let acme = secret_file(dir.path(), "acme", ACME_SECRET);
    let globex = secret_file(dir.path(), "globex", GLOBEX_SECRET);
    let policy = format!(
        r#"environment = "test"

[auth.jwt]
algorithms = ["HS256"]
[auth.jwt.tenants.acme]
secret = {{ file = "{}" }}
[auth.jwt.tenants.globex]
secret = {{ file = "{}" }}
{ROUTES}"#,
        acme.display(),
        globex.display()
    );
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    // No `audience` in this policy, so no `aud` in the tokens (one would be refused).
    let acme_claims = with(claims(), json!({"aud": null}));
    let globex_claims = with(acme_claims.clone(), json!({"tenant": "globex"}));

    let reply = bearer(
        &gw,
        "/v1/things",
        &hs256(&acme_claims, ACME_SECRET.as_bytes()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().header("x-portcullis-tenant"), Some("acme"));
    let reply = bearer(
        &gw,
        "/v1/things",
        &hs256(&globex_claims, GLOBEX_SECRET.as_bytes()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        upstream.last().header("x-portcullis-tenant"),
        Some("globex")
    );

    // Globex holds a valid secret, but only for its own tokens.
    refused(
        &gw,
        &upstream,
        "globex's secret signing a token for acme",
        &hs256(&acme_claims, GLOBEX_SECRET.as_bytes()),
    )
    .await;
    refused(
        &gw,
        &upstream,
        "a tenant with no key",
        &hs256(
            &with(acme_claims.clone(), json!({"tenant": "initech"})),
            ACME_SECRET.as_bytes(),
        ),
    )
    .await;
    refused(
        &gw,
        &upstream,
        "no tenant claim",
        &hs256(
            &with(acme_claims.clone(), json!({"tenant": null})),
            ACME_SECRET.as_bytes(),
        ),
    )
    .await;
}

#[tokio::test]
async fn rs256_from_a_jwks_file() {
    let policy = format!(
        r#"environment = "test"

[auth.jwt]
algorithms = ["RS256"]
jwks = {{ file = "{}" }}
{ROUTES}"#,
        fixture("jwt-jwks.json").display()
    );
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);

    // No `audience` in this policy, so no `aud` in the tokens (one would be refused).
    let unaddressed = || with(claims(), json!({"aud": null}));
    let token = rs256("rsa-1", &unaddressed());
    let reply = bearer(&gw, "/v1/things", &token).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().header("x-portcullis-key-id"), Some("rsa-1"));

    // HS/RS key confusion: an HS256 token whose HMAC "secret" is the RSA public key the
    // gateway trusts (the PEM a naive verifier would feed to HMAC).
    let public_pem = std::fs::read(fixture("jwt-rsa-public.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".to_owned());
    let confused = encode(
        &header,
        &unaddressed(),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    refused(
        &gw,
        &upstream,
        "HS256 signed with the RSA public key",
        &confused,
    )
    .await;

    refused(
        &gw,
        &upstream,
        "unknown kid",
        &rs256("rsa-2", &unaddressed()),
    )
    .await;
    refused(
        &gw,
        &upstream,
        "bad signature",
        &tampered(
            &token,
            &with(unaddressed(), json!({"role": "registered", "sub": "root"})),
        ),
    )
    .await;
    refused(&gw, &upstream, "alg none", &unsigned(&unaddressed())).await;
    refused(
        &gw,
        &upstream,
        "expired",
        &rs256("rsa-1", &with(unaddressed(), json!({"exp": now() - 120}))),
    )
    .await;
}

/// The identity provider's JWKS as served at its URL: the fixture set, which the test can swap
/// for the rotated one (a `PageServer` page is replaced in place).
fn jwks_page(name: &str) -> Page {
    Page::json(std::fs::read_to_string(fixture(name)).unwrap())
}

fn jwks_url_policy(url: &str) -> String {
    format!(
        r#"environment = "test"

[auth.jwt]
algorithms = ["RS256"]
jwks = {{ url = "{url}" }}
{ROUTES}"#
    )
}

// Multi-threaded: `GatewayProcess::start` blocks its thread while the gateway starts, and the
// gateway's start-up fetch needs the JWKS server (a task on this runtime) to answer meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_from_a_jwks_url_follows_a_key_rotation() {
    let idp = PageServer::start().await;
    idp.serve("/jwks.json", jwks_page("jwt-jwks.json"));
    // The query stands for a token some providers want: it must never be logged.
    let policy = jwks_url_policy(&format!("{}/jwks.json?access=q-s3cr3t", idp.url()));
    let upstream = TestUpstream::start().await;
    let gw = GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]);
    let unaddressed = || with(claims(), json!({"aud": null}));

    let reply = bearer(&gw, "/v1/things", &rs256("rsa-1", &unaddressed())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().header("x-portcullis-key-id"), Some("rsa-1"));
    assert_eq!(idp.received().len(), 1, "one fetch at start-up");

    // The provider rotates to a new key. The first token with its `kid` is refused (no request
    // waits on the network) and triggers a fetch; tokens with it then verify.
    idp.serve("/jwks.json", jwks_page("jwt-jwks-rotated.json"));
    let rotated = rs256_with("jwt-rsa-2-private.pem", "rsa-2", &unaddressed());
    refused(
        &gw,
        &upstream,
        "a kid the gateway has not fetched yet",
        &rotated,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let reply = bearer(&gw, "/v1/things", &rotated).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key was not fetched within 5 s: {}",
            reply.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.last().header("x-portcullis-key-id"), Some("rsa-2"));
    // The key the provider dropped is gone with its set.
    refused(
        &gw,
        &upstream,
        "a key no longer in the set",
        &rs256("rsa-1", &unaddressed()),
    )
    .await;
    // However many tokens named the new `kid` meanwhile, the rate limit allowed one fetch.
    let fetches = idp.received();
    assert_eq!(fetches.len(), 2, "start-up and one kid-triggered fetch");
    assert_eq!(fetches[1].target, "/jwks.json?access=q-s3cr3t");

    let output = gw.output();
    assert!(
        output
            .iter()
            .any(|l| l.contains("JWKS refreshed with other keys")),
        "{output:?}"
    );
    assert_eq!(quoting_the_query(&output), None);
}

/// A line of the gateway's own that repeats the URL's query. The plain-http warning's excerpt
/// of the policy file (the lines drawn with `│`) quotes the file as written, and is not one.
fn quoting_the_query(lines: &[String]) -> Option<&String> {
    lines
        .iter()
        .find(|l| l.contains("q-s3cr3t") && !l.contains('│'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_that_fails_at_start_up_stops_the_start() {
    // Nothing listens on this port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let idp = PageServer::start().await;
    idp.serve("/not-a-set.json", Page::json(r#"{"keys": []}"#));
    for (url, expected) in [
        (
            format!("http://127.0.0.1:{port}/jwks.json?access=q-s3cr3t"),
            format!("auth.jwt.jwks: cannot fetch the JWKS from 127.0.0.1:{port}: "),
        ),
        (
            format!("{}/missing.json?access=q-s3cr3t", idp.url()),
            format!(
                "auth.jwt.jwks: cannot fetch the JWKS from {}: status 404 Not Found, expected 200",
                idp.addr
            ),
        ),
        (
            format!("{}/not-a-set.json?access=q-s3cr3t", idp.url()),
            format!(
                "auth.jwt.jwks: the JWKS from {}: not a usable JWKS",
                idp.addr
            ),
        ),
    ] {
        let (started, lines) = start_with_env(&jwks_url_policy(&url), &[]);
        let text = lines.join("\n");
        assert!(!started, "started with {url}: {text}");
        assert!(text.contains(&expected), "{url}: {text}");
        assert_eq!(quoting_the_query(&lines), None);
    }
}

/// Runs `portcullis serve` with `env` set until it listens or exits; returns whether it
/// started and every line it printed until then.
fn start_with_env(policy: &str, env: &[(&str, &str)]) -> (bool, Vec<String>) {
    match GatewayProcess::try_start(
        common::binary(),
        policy,
        Some("http://127.0.0.1:9"),
        &[],
        env,
    ) {
        Ok(gw) => (true, gw.output()),
        Err(lines) => (false, lines),
    }
}

#[test]
fn a_short_secret_stops_production_and_is_a_warning_elsewhere() {
    const SHORT: &str = "only-16-bytes-xx";
    let policy = |environment: &str| {
        format!(
            r#"environment = "{environment}"

[auth.jwt]
algorithms = ["HS256"]
secret = {{ env = "PORTCULLIS_TEST_JWT_SECRET" }}
"#
        )
    };
    let env = [("PORTCULLIS_TEST_JWT_SECRET", SHORT)];

    let (started, lines) = start_with_env(&policy("production"), &env);
    assert!(!started, "{lines:#?}");
    let output = lines.join("\n");
    assert!(
        output.contains("auth.jwt.secret: the secret is 16 bytes; production needs at least 32"),
        "{output}"
    );
    assert!(!output.contains(SHORT), "the secret was printed: {output}");

    let (started, lines) = start_with_env(&policy("test"), &env);
    assert!(started, "{lines:#?}");
    let output = lines.join("\n");
    assert!(
        output.contains("JWT secret is shorter than production accepts")
            && output.contains("auth.jwt.secret"),
        "{output}"
    );
    assert!(!output.contains(SHORT), "the secret was logged: {output}");

    // A missing variable stops the start in any environment, naming the key and the variable.
    let (started, lines) = start_with_env(&policy("test"), &[]);
    assert!(!started);
    assert!(
        lines.join("\n").contains(
            "auth.jwt.secret: environment variable `PORTCULLIS_TEST_JWT_SECRET` is not set"
        ),
        "{lines:#?}"
    );
}

/// Seed 002's stolen-token and RequireActive controls: a revoked `jti` and a suspended subject
/// are refused by every instance within 5 s (the lists live in the key store).
#[tokio::test]
async fn revoked_tokens_and_suspended_subjects_are_refused_by_every_instance() {
    use portcullis_store::{KeyStore, SqliteStore};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "jwt-secret", SECRET);
    let db = dir.path().join("keys.db");
    let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let policy = format!(
        "environment = \"test\"\n[errors]\nexpose-detail = true\n\
         [auth.api-keys]\nstore = \"sqlite:{}\"\n\
         [auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = {{ file = \"{}\" }}\n\
         issuer = \"{ISSUER}\"\naudience = [\"api\"]\n",
        db.display(),
        secret.display()
    );
    let upstream = TestUpstream::start().await;
    let gateways: Vec<GatewayProcess> = (0..2)
        .map(|_| GatewayProcess::start(common::binary(), &policy, Some(&upstream.url()), &[]))
        .collect();
    let stolen = hs256(
        &with(claims(), json!({"jti": "tok-stolen"})),
        SECRET.as_bytes(),
    );
    let other = hs256(
        &with(claims(), json!({"jti": "tok-fine"})),
        SECRET.as_bytes(),
    );
    for gw in &gateways {
        let reply = bearer(gw, "/v1/things", &stolen).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    }

    /// Polls every gateway until `token` gets `status`; returns the slowest time.
    async fn until(gateways: &[GatewayProcess], token: &str, status: StatusCode) -> Duration {
        let start = Instant::now();
        for gw in gateways {
            loop {
                if bearer(gw, "/v1/things", token).await.status == status {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "still not {status}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        start.elapsed()
    }

    store
        .revoke_jwt(
            "tok-stolen",
            Some("acme"),
            SystemTime::now() + Duration::from_secs(600),
        )
        .await
        .unwrap();
    until(&gateways, &stolen, StatusCode::UNAUTHORIZED).await;
    let reply = bearer(&gateways[1], "/v1/things", &stolen).await;
    assert_eq!(reply.json()["error"]["code"], "invalid_credentials");
    // Other tokens of the same user are unaffected.
    assert_eq!(
        bearer(&gateways[0], "/v1/things", &other).await.status,
        StatusCode::OK
    );

    // Suspending the subject refuses all of its tokens (403), and lifting it lets them back.
    store.suspend_subject("acme", "user-42").await.unwrap();
    until(&gateways, &other, StatusCode::FORBIDDEN).await;
    let reply = bearer(&gateways[0], "/v1/things", &other).await;
    assert_eq!(reply.json()["error"]["code"], "subject_suspended");
    store.unsuspend_subject("acme", "user-42").await.unwrap();
    until(&gateways, &other, StatusCode::OK).await;
}
