//! `portcullis check` on a corpus of broken policies, one per lint
//! (`tests/fixtures/lints/*.toml`): each file's diagnostics, as `check` prints them with file,
//! line, column and key path, are snapshot-tested, so a lint that stops firing, or changes its
//! words or its position, fails here. Regenerate after a deliberate change with
//! `INSTA_UPDATE=always cargo nextest run -p portcullis-cli --test lints` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn check(name: &str) -> (i32, String) {
    let dir = common::repo_root().join("crates/portcullis-cli/tests/fixtures/lints");
    let out = Command::new(common::binary())
        .current_dir(&dir)
        .args(["check", "--config", &format!("{name}.toml")])
        .env_remove("PORTCULLIS_TEST_JWT_SECRET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The corpus and what `check` must conclude: 0 (warnings only) or 1 (errors).
const CORPUS: &[(&str, i32)] = &[
    ("wildcard-origin-with-credentials", 1),
    ("wildcard-origin-in-production", 1),
    ("http-origin-in-production", 1),
    ("null-origin", 0),
    ("hsts-preload-without-subdomains", 1),
    ("hsts-short-max-age", 1),
    ("hsts-in-development", 0),
    ("csp-on-json-api", 0),
    ("html-route-without-csp", 1),
    ("per-ip-without-trusted-proxies", 0),
    ("inline-secret", 1),
    ("csrf-exempt-subtree", 1),
    ("shadowed-and-unreachable-route", 0),
    ("trusted-proxies-everything", 1),
];

#[test]
fn every_lint_in_the_corpus_fires_where_it_should() {
    for (name, expected) in CORPUS {
        let (code, stderr) = check(name);
        assert_eq!(code, *expected, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.toml:")),
            "{name}: diagnostics name the file and line: {stderr}"
        );
        insta::assert_snapshot!(format!("lint-{name}"), stderr);
    }
}

#[test]
fn the_corpus_is_complete() {
    let dir = common::repo_root().join("crates/portcullis-cli/tests/fixtures/lints");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(
        files,
        listed,
        "every fixture in {} is in CORPUS",
        Path::new("tests/fixtures/lints").display()
    );
}
