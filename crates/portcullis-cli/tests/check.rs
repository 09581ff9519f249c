//! `portcullis check`: exit codes and diagnostics with file, line and key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use portcullis_test::gateway::write_temp;

fn check(policy: &str) -> (i32, String, String) {
    check_with(policy, &[])
}

fn check_with(policy: &str, args: &[&str]) -> (i32, String, String) {
    let file = write_temp("check.toml", policy);
    let out = Command::new(common::binary())
        .arg("check")
        .arg("--config")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_policy_passes() {
    let dir = common::repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if path.ends_with("dashboard.toml") {
                // Seed 001 sets a document CSP on its API's every response; the example keeps
                // it, and `check` says what that CSP's allowances are worth there.
                let out = Command::new(common::binary())
                    .arg("check")
                    .arg("--config")
                    .arg(&path)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{stderr}");
                assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
                assert!(stderr.contains("no route serves HTML"), "{stderr}");
                checked += 1;
                continue;
            }
            // Free of warnings too: an example is what users copy.
            let out = Command::new(common::binary())
                .arg("check")
                .arg("--config")
                .arg(&path)
                .arg("--deny-warnings")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn the_bundled_demo_policy_passes() {
    let policy =
        std::fs::read_to_string(common::repo_root().join("crates/portcullis-cli/demo/policy.toml"))
            .unwrap();
    let (code, _, stderr) = check(&policy);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bad_toml_names_file_line_and_column() {
    let (code, _, stderr) = check("environment = \"production\"\n[server\nlisten = \"x\"\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("check.toml:2:"), "{stderr}");
}

#[test]
fn unknown_keys_and_wrong_types_are_all_reported_at_once() {
    let policy = "environment = \"production\"\n\
                  [server]\n\
                  listen = 8080\n\
                  lsiten = \"127.0.0.1:1\"\n\
                  [[route]]\n\
                  name = \"private\"\n\
                  paths = [\"/v1/account/*\"]\n\
                  cache-contrl = \"no-store\"\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("server.listen: invalid type: integer `8080`, expected a string"),
        "{stderr}"
    );
    assert!(stderr.contains("check.toml:3:10"), "{stderr}");
    assert!(stderr.contains("server.lsiten: unknown key"), "{stderr}");
    assert!(stderr.contains("check.toml:4:1"), "{stderr}");
    assert!(
        stderr.contains("route[0].cache-contrl: unknown key"),
        "{stderr}"
    );
    assert!(stderr.contains("check.toml:8:1"), "{stderr}");
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn production_refuses_unsafe_settings() {
    let policy = "environment = \"production\"\n\
                  [errors]\n\
                  expose-detail = true\n\
                  [headers.set.strict-transport-security]\n\
                  value = \"max-age=600; preload\"\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("errors.expose-detail"), "{stderr}");
    assert!(
        stderr.contains("headers.set.strict-transport-security: HSTS `preload` requires"),
        "{stderr}"
    );
    // The same file is only a warning while developing.
    let (code, _, stderr) = check(&policy.replace("production", "development"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
}

#[test]
fn unreadable_file_is_a_different_exit_code() {
    let out = Command::new(common::binary())
        .args(["check", "--config", "/nonexistent/policy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.toml"));
}

#[test]
fn settings_that_would_silently_misbehave_are_errors() {
    let policy = "environment = \"development\"\n\
                  [logging]\n\
                  level = \"verbose\"\n\
                  [upstream]\n\
                  url = \"http://127.0.0.1:3000\"\n\
                  protocol = \"h2c\"\n\
                  preserve-host = true\n\
                  max-connections = 0\n\
                  [headers.set.X-Frame-Options]\n\
                  value = \"DENY\"\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("logging.level: `verbose` is not a log level"),
        "{stderr}"
    );
    assert!(stderr.contains("upstream.preserve-host"), "{stderr}");
    assert!(
        stderr.contains("upstream.max-connections: 0 is out of range (1 to 65536)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("write header names in lower case (`x-frame-options`)"),
        "{stderr}"
    );
}

#[test]
fn cross_origin_mistakes_are_errors_with_their_keys() {
    let policy = r#"environment = "production"
[cors.web]
origins = ["*", "http://app.example.com", "https://*.com", "https://app.example.com/", "https://a.example.com", "https://A.example.com:443"]
methods = ["get"]
credentials = true

[cors.dev]
origins = ["null"]
methods = ["GET"]

[csrf]
trusted-origins = ["*"]

[[csrf.exempt]]
path = "/auth/*"
reason = "too broad"

[cookies.session]
secure = false

[[route]]
name = "api"
paths = ["/api/*"]
cors = "webb"

[default-route]
cors = "dev"
"#;
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    for (key, message) in [
        (
            "cors.web.origins[0]",
            "`*` (any origin) is not allowed in production",
        ),
        (
            "cors.web.origins",
            "`*` cannot be combined with `credentials = true`",
        ),
        (
            "cors.web.origins[1]",
            "`http://app.example.com` is a plain-HTTP origin",
        ),
        ("cors.web.origins[2]", "`https://*.com` is too broad"),
        (
            "cors.web.origins[3]",
            "`https://app.example.com/` is not just an origin",
        ),
        (
            "cors.web.origins[5]",
            "`https://A.example.com:443` duplicates entry 4",
        ),
        (
            "cors.web.methods[0]",
            "methods are case-sensitive; write `GET`",
        ),
        ("cors.dev.origins[0]", "`null` admits sandboxed iframes"),
        ("csrf.trusted-origins[0]", "`*` is not allowed here"),
        ("csrf.exempt[0].path", "`/auth/*` exempts a whole subtree"),
        (
            "cookies.session.secure",
            "cookies must be `Secure` in production",
        ),
        ("route[0].cors", "no CORS policy named `webb`"),
        ("cors.web", "CORS policy `web` is not used by any route"),
    ] {
        assert!(
            stderr.contains(&format!("{key}: {message}")),
            "missing `{key}: {message}` in:\n{stderr}"
        );
    }
    // Each diagnostic points at its line: the origins list is on line 3.
    assert!(stderr.contains("check.toml:3:"), "{stderr}");
}

#[test]
fn development_origins_belong_in_per_environment_lists() {
    let shared = r#"environment = "development"
[cors.app]
origins = ["http://localhost:5173"]
methods = ["GET"]
[default-route]
cors = "app"
"#;
    // A shared list applies in production too, so `check` refuses it even in development.
    let (code, _, stderr) = check(shared);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("applies in every environment"), "{stderr}");

    let per_env = shared.replace(
        r#"origins = ["http://localhost:5173"]"#,
        r#"origins = { development = ["http://localhost:5173"], production = ["https://app.example.com"] }"#,
    );
    let (code, stdout, stderr) = check(&per_env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("cors app: http://localhost:5173 on default"),
        "{stdout}"
    );
}

#[test]
fn check_lists_csrf_exemptions() {
    let policy = r#"environment = "production"
[[csrf.exempt]]
path = "/auth/sso/callback"
reason = "signed assertion from the IdP"
"#;
    let (code, stdout, stderr) = check(policy);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("csrf: enforce"), "{stdout}");
    assert!(
        stdout.contains("csrf exempt: /auth/sso/callback (signed assertion from the IdP)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cross-origin denied on: default"),
        "{stdout}"
    );
}

#[test]
fn auth_mistakes_are_errors_with_their_keys() {
    let policy = r#"environment = "production"
[auth]
credentials = ["api-key", "jwt", "password"]

[auth.identity-headers]
tenant = "x-api-key"
scopes = "x-portcullis-subject"

[auth.api-keys]
prefix = "PCL_"
store = "postgres://user:pw@db/keys"
cache-ttl = "10s"

[[route]]
name = "open"
paths = ["/open"]
[route.auth]
mode = "none"
scopes = ["a b", "read"]
"#;
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    for (key, message) in [
        ("auth.credentials[1]", "`jwt` needs an `[auth.jwt]` table"),
        ("auth.credentials[2]", "unknown credential `password`"),
        (
            "auth.identity-headers",
            "`x-api-key` cannot carry an identity",
        ),
        (
            "auth.identity-headers",
            "`x-portcullis-subject` is used for two identity headers",
        ),
        (
            "auth.api-keys.prefix",
            "`PCL_` must be 2 to 16 lower-case letters or digits",
        ),
        (
            "auth.api-keys.store",
            "a PostgreSQL URL carries credentials: reference it instead",
        ),
        ("auth.api-keys.cache-ttl", "at most 5 s"),
        ("route[0].auth.scopes[0]", "`a b` is not a scope"),
        (
            "route[0].auth.mode",
            "a route with `mode = \"none\"` cannot require scopes",
        ),
    ] {
        assert!(
            stderr.contains(&format!("{key}: {message}")),
            "missing `{key}: {message}` in:\n{stderr}"
        );
    }
}

#[test]
fn route_auth_needs_an_auth_table() {
    let policy = r#"environment = "development"
[default-route.auth]
mode = "required"
"#;
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("default-route.auth: route authentication needs an `[auth]` table"),
        "{stderr}"
    );
}

#[test]
fn shadowed_routes_and_unproxied_per_ip_counts_warn_and_deny_warnings_fails() {
    let policy = "environment = \"development\"\n\
        [rate-limit.quotas.per-ip]\nkey = \"ip\"\nlimit = 10\nper = \"1m\"\n\
        [[route]]\nname = \"api\"\npaths = [\"/v1/*\"]\nrate-limit = [\"per-ip\"]\n\
        [[route]]\nname = \"status\"\npaths = [\"/v1/status\", \"/health\"]\n\
        [[route]]\nname = \"account\"\npaths = [\"/v1/account/*\"]\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("route[1].paths[0]") && stderr.contains("`/v1/status` never matches first"),
        "{stderr}"
    );
    assert!(!stderr.contains("route[1].paths[1]"), "{stderr}");
    assert!(
        stderr.contains("route `account` is unreachable"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("route `status` is unreachable"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rate-limit.quotas.per-ip.key") && stderr.contains("no proxy is trusted"),
        "{stderr}"
    );
    assert!(stderr.contains("check.toml:"), "positions: {stderr}");

    let (code, _, stderr) = check_with(policy, &["--deny-warnings"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("denied by --deny-warnings"), "{stderr}");
}

#[test]
fn hsts_sent_in_development_warns() {
    let policy = "environment = \"development\"\n\
        [headers.set]\nstrict-transport-security = \"max-age=63072000; includeSubDomains\"\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("headers.set.strict-transport-security")
            && stderr.contains("sent in development"),
        "{stderr}"
    );
    // Limited to production, as the built-in rule is: no warning.
    let policy = "environment = \"development\"\n\
        [headers.set]\nstrict-transport-security = { value = \"max-age=63072000; includeSubDomains\", environments = [\"production\"] }\n";
    let (code, _, stderr) = check(policy);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("sent in development"), "{stderr}");
}

#[test]
fn csp_lints_follow_what_the_routes_serve() {
    // An HTML route with no CSP: an error in production, a warning elsewhere.
    let html = "environment = \"ENV\"\n[headers]\ndefaults = false\n\
        [[route]]\nname = \"pages\"\npaths = [\"/app/*\"]\nhtml = true\n";
    let (code, _, stderr) = check(&html.replace("ENV", "production"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("route[0].html")
            && stderr.contains("serves HTML and sends no Content-Security-Policy"),
        "{stderr}"
    );
    let (code, _, stderr) = check(&html.replace("ENV", "development"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: route[0].html"), "{stderr}");

    // A document CSP on an API with no HTML route: a warning; the built-in one is not.
    let json_api = "environment = \"development\"\n\
        [headers.set]\ncontent-security-policy = \"default-src 'self'; script-src 'self'\"\n";
    let (code, _, stderr) = check(json_api);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("headers.set.content-security-policy")
            && stderr.contains("no route serves HTML"),
        "{stderr}"
    );
    let (_, _, stderr) = check("environment = \"development\"\n");
    assert!(!stderr.contains("no route serves HTML"), "{stderr}");
    // Marking the route that serves pages silences it.
    let (_, _, stderr) = check(&format!(
        "{json_api}[[route]]\nname = \"pages\"\npaths = [\"/app/*\"]\nhtml = true\n"
    ));
    assert!(!stderr.contains("no route serves HTML"), "{stderr}");
    assert!(
        !stderr.contains("sends no Content-Security-Policy"),
        "{stderr}"
    );
}

#[test]
fn short_referenced_secrets_are_measured_where_they_can_be_read() {
    let policy = r#"environment = "ENV"
[auth.jwt]
algorithms = ["HS256"]
issuer = "https://id.example"
audience = ["api"]
secret = { env = "PORTCULLIS_TEST_JWT_SECRET" }
"#;
    let run = |env: &str, secret: Option<&str>, args: &[&str]| {
        let file = write_temp("check.toml", &policy.replace("ENV", env));
        let mut cmd = Command::new(common::binary());
        cmd.arg("check").arg("--config").arg(&file).args(args);
        cmd.env_remove("PORTCULLIS_TEST_JWT_SECRET");
        if let Some(s) = secret {
            cmd.env("PORTCULLIS_TEST_JWT_SECRET", s);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run("production", Some("short"), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error:")
            && stderr.contains("auth.jwt.secret")
            && stderr.contains("holds 5 bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short\n"),
        "the secret itself is never printed: {stderr}"
    );
    let (code, stderr) = run("development", Some("short"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning:"), "{stderr}");
    let (code, stderr) = run("development", Some("short"), &["--deny-warnings"]);
    assert_eq!(code, 1, "{stderr}");
    let long = "k".repeat(48);
    let (code, stderr) = run("production", Some(&long), &["--deny-warnings"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run("production", None, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("note:") && stderr.contains("not checked"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    // `portcullis check | head -1`: the reader goes away before the command writes.
    for args in [
        vec!["check", "--config", "examples/sdk-api.toml"],
        vec!["doc", "--config", "examples/sdk-api.toml"],
    ] {
        let mut child = Command::new(common::binary())
            .current_dir(common::repo_root())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
