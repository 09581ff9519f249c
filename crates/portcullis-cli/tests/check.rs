//! `portcullis check`: exit codes and diagnostics with file, line and key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use portcullis_test::gateway::write_temp;

fn check(policy: &str) -> (i32, String, String) {
    let file = write_temp("check.toml", policy);
    let out = Command::new(common::binary())
        .arg("check")
        .arg("--config")
        .arg(&file)
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
            let out = Command::new(common::binary())
                .arg("check")
                .arg("--config")
                .arg(&path)
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
        stderr.contains("write header names in lower case (`x-frame-options`)"),
        "{stderr}"
    );
}
