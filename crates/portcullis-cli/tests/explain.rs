//! `portcullis explain` agrees with the live gateway: each request is explained offline and then
//! sent to a real gateway running the same policy; the status, the refusal code and every
//! header the gateway controls must be the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use portcullis_test::Client;
use portcullis_test::gateway::write_temp;
use serde_json::Value;

/// Every pipeline step, each with something to decide: IP lists, CORS with credentials, a
/// one-request quota, the CSRF check on a cookie route, a path that tries to escape its group.
const POLICY: &str = r#"
environment = "development"

[cors.app]
origins = ["https://app.example"]
methods = ["GET", "POST"]
allow-headers = ["content-type"]
credentials = true

[rate-limit.quotas.tight]
key = "ip"
limit = 1
per = "1h"

[[route]]
name = "blocked"
paths = ["/blocked/*"]
cache-control = "no-store"
ip-filter = { deny = ["127.0.0.0/8"] }

[[route]]
name = "limited"
paths = ["/limited"]
cache-control = "no-store"
rate-limit = ["tight"]

[[route]]
name = "account"
paths = ["/v1/account/*"]
cache-control = "no-store, private"
cors = "app"

[[route]]
name = "status"
paths = ["/v1/status"]
cache-control = "public, max-age=30"
"#;

/// Headers that differ between any two responses (or come from the test upstream's own
/// answer rather than the gateway).
const UNCOMPARED: &[&str] = &[
    "date",
    "content-length",
    "content-type",
    "x-correlation-id",
    "x-upstream",
    "x-ratelimit-reset",
    "ratelimit",
];

fn explain(
    policy_file: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut cmd = Command::new(common::binary());
    cmd.args(["explain", "--json", "--config"])
        .arg(policy_file)
        .args([method, path]);
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn compared(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .filter(|(n, _)| !UNCOMPARED.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

async fn agree(
    policy_file: &std::path::Path,
    client: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Value {
    let explained = explain(policy_file, method, path, headers);
    let mut req = client.request(method, path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let live = client
        .send(req.body(Full::<Bytes>::default()).unwrap())
        .await;

    let outcome = &explained["outcome"];
    assert_eq!(
        outcome["status"].as_u64(),
        Some(u64::from(live.status.as_u16())),
        "{method} {path}: explain said {explained:#}"
    );
    let live_code = if live.status.is_success() || live.status.is_redirection() {
        Value::Null
    } else {
        live.json()["error"]["code"].clone()
    };
    assert_eq!(outcome["code"], live_code, "{method} {path}");
    let explained_headers = compared(outcome["headers"].as_array().unwrap().iter().map(|p| {
        (
            p[0].as_str().unwrap().to_owned(),
            p[1].as_str().unwrap().to_owned(),
        )
    }));
    let live_headers = compared(
        live.headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())),
    );
    assert_eq!(explained_headers, live_headers, "{method} {path}");
    explained
}

fn step<'a>(explained: &'a Value, name: &str) -> &'a Value {
    explained["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {explained:#}"))
}

fn verdict<'a>(explained: &'a Value, name: &str) -> &'a str {
    step(explained, name)["verdict"].as_str().unwrap()
}

#[tokio::test]
async fn explain_agrees_with_the_live_gateway() {
    let policy_file = write_temp("explain.toml", POLICY);
    let (_upstream, gw) = common::gateway(POLICY).await;
    let client = Client::http1(gw.addr);
    let app = ("origin", "https://app.example");

    let e = agree(&policy_file, &client, "GET", "/v1/status", &[]).await;
    assert_eq!(e["route"], "status");
    assert_eq!(verdict(&e, "upstream"), "pass");

    // A path that tries to leave its group is matched on its normalised form.
    let e = agree(
        &policy_file,
        &client,
        "GET",
        "/v1//status/../account/x",
        &[],
    )
    .await;
    assert_eq!(e["route"], "account");

    let e = agree(&policy_file, &client, "GET", "/blocked/x", &[]).await;
    assert_eq!(verdict(&e, "route-ip-filter"), "refuse");
    assert_eq!(verdict(&e, "upstream"), "not-reached");

    let preflight = [app, ("access-control-request-method", "POST")];
    let e = agree(
        &policy_file,
        &client,
        "OPTIONS",
        "/v1/account/x",
        &preflight,
    )
    .await;
    assert_eq!(verdict(&e, "cors"), "pass");
    let evil = [
        ("origin", "https://app.example.evil.test"),
        ("access-control-request-method", "POST"),
    ];
    let e = agree(&policy_file, &client, "OPTIONS", "/v1/account/x", &evil).await;
    assert_eq!(verdict(&e, "cors"), "refuse");
    let e = agree(&policy_file, &client, "GET", "/v1/account/x", &[app]).await;
    assert!(
        step(&e, "cors")["reason"]
            .as_str()
            .unwrap()
            .contains("matches `https://app.example`"),
        "{e:#}"
    );

    // A cookie-bearing cross-site POST is refused by the CSRF check; the same from the
    // credentialed CORS origin passes.
    let cross_site = [
        ("cookie", "session=1"),
        ("origin", "https://evil.test"),
        ("sec-fetch-site", "cross-site"),
    ];
    let e = agree(&policy_file, &client, "POST", "/v1/account/x", &cross_site).await;
    assert_eq!(verdict(&e, "csrf"), "refuse");
    let from_app = [
        ("cookie", "session=1"),
        app,
        ("sec-fetch-site", "same-site"),
    ];
    let e = agree(&policy_file, &client, "POST", "/v1/account/x", &from_app).await;
    assert_eq!(verdict(&e, "csrf"), "pass");

    // The first request of a quota passes in both; explain always counts from zero.
    let e = agree(&policy_file, &client, "GET", "/limited", &[]).await;
    assert_eq!(verdict(&e, "rate-limit"), "pass");
}

#[tokio::test]
async fn a_credential_is_undecided_offline_and_its_absence_is_refused() {
    let text = common::example("sdk-api.toml");
    let policy_file = write_temp("sdk-api.toml", &text);

    let e = explain(&policy_file, "GET", "/v1/account/me", &[]);
    assert_eq!(e["outcome"]["status"], 401);
    assert_eq!(e["outcome"]["code"], "authentication_required");
    assert_eq!(verdict(&e, "auth"), "refuse");
    assert_eq!(e["outcome"]["decided"], true);

    let e = explain(
        &policy_file,
        "GET",
        "/v1/account/me",
        &[("x-api-key", "sk_live_not_checked_offline")],
    );
    assert_eq!(verdict(&e, "auth"), "undecided");
    assert_eq!(verdict(&e, "csrf"), "not-reached");
    assert_eq!(e["outcome"]["decided"], false);
}

#[test]
fn bad_arguments_and_broken_policies_are_reported() {
    let policy_file = write_temp("explain.toml", POLICY);
    let out = Command::new(common::binary())
        .args(["explain", "--config"])
        .arg(&policy_file)
        .args(["GET", "no-slash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("starting with `/`"));

    let broken = write_temp(
        "broken.toml",
        "environment = \"development\"\n[[route]]\nnme = \"x\"\n",
    );
    let out = Command::new(common::binary())
        .args(["explain", "--config"])
        .arg(&broken)
        .args(["GET", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nme"));
}
