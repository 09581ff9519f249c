//! `portcullis doc`: the security page, end to end.
//!
//! The checked-in pages `docs/security/<example>.{md,html}` are snapshots: each is compared with
//! what the binary renders now (at a fixed time), so a policy change that is not regenerated
//! fails here. Regenerate them, and the fixture's insta snapshots, with:
//!
//! ```text
//! UPDATE_DOCS=1 INSTA_UPDATE=always cargo nextest run -p portcullis-cli --test doc
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use portcullis_test::gateway::write_temp;

/// 2026-01-01T00:00:00Z: the time every checked-in page says it was generated.
const FIXED_EPOCH: &str = "1767225600";
const REGENERATE: &str =
    "UPDATE_DOCS=1 INSTA_UPDATE=always cargo nextest run -p portcullis-cli --test doc";

fn doc(config: &Path, args: &[&str]) -> Output {
    Command::new(common::binary())
        .arg("doc")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("SOURCE_DATE_EPOCH", FIXED_EPOCH)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn example(name: &str) -> PathBuf {
    common::repo_root()
        .join("examples")
        .join(format!("{name}.toml"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doc-everything.toml")
}

fn checked_in(name: &str, ext: &str) -> PathBuf {
    common::repo_root()
        .join("docs/security")
        .join(format!("{name}.{ext}"))
}

/// Compares the rendered page with the checked-in one, or rewrites it under `UPDATE_DOCS=1`.
fn assert_page(name: &str, format: &str) {
    let page = stdout(&doc(&example(name), &["--format", format]));
    let path = checked_in(name, format);
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if page != expected {
        let line = page
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| page.lines().count().min(expected.lines().count()));
        panic!(
            "docs/security/{name}.{format} is not the page examples/{name}.toml renders (first \
             difference at line {}):\n  rendered: {:?}\n  checked in: {:?}\n\
             Regenerate the pages with:\n  {REGENERATE}",
            line + 1,
            page.lines().nth(line).unwrap_or("<end>"),
            expected.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

macro_rules! page_snapshots {
    ($($test:ident: $name:literal, $format:literal;)*) => {
        $(
            #[test]
            fn $test() {
                assert_page($name, $format);
            }
        )*

        /// Every example has its pages, so a new example cannot ship without one.
        #[test]
        fn every_example_has_a_page_snapshot() {
            let covered = [$($name),*];
            for entry in std::fs::read_dir(common::repo_root().join("examples")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    assert!(
                        covered.contains(&stem.as_str()),
                        "examples/{stem}.toml has no page test in tests/doc.rs"
                    );
                }
            }
        }
    };
}

page_snapshots! {
    dashboard_md: "dashboard", "md";
    dashboard_html: "dashboard", "html";
    keys_limits_md: "keys-limits", "md";
    keys_limits_html: "keys-limits", "html";
    multi_tenant_md: "multi-tenant", "md";
    multi_tenant_html: "multi-tenant", "html";
    public_internal_md: "public-internal", "md";
    public_internal_html: "public-internal", "html";
    sdk_api_md: "sdk-api", "md";
    sdk_api_html: "sdk-api", "html";
}

/// Every section populated, hostile strings included: the escaping as a whole, in both formats.
#[test]
fn fixture_page_markdown() {
    let page = stdout(&doc(&fixture(), &[]));
    insta::assert_snapshot!("doc-everything.md", page);
}

#[test]
fn fixture_page_html() {
    let page = stdout(&doc(&fixture(), &["--format", "html"]));
    assert!(!page.to_ascii_lowercase().contains("<script"));
    insta::assert_snapshot!("doc-everything.html", page);
}

#[test]
fn writes_markdown_and_html_to_output_files() {
    let dir = tempfile::tempdir().unwrap();
    for (format, marker) in [
        ("md", "# Security page: sdk-api.toml (production)"),
        ("html", "<h1>Security page: sdk-api.toml (production)</h1>"),
    ] {
        let out_path = dir.path().join(format!("page.{format}"));
        let out = doc(
            &example("sdk-api"),
            &["--format", format, "--output", out_path.to_str().unwrap()],
        );
        assert_eq!(stdout(&out), "", "nothing on stdout with --output");
        let page = std::fs::read_to_string(&out_path).unwrap();
        assert!(page.contains(marker), "{page}");
        assert!(page.contains("max-age=63072000; includeSubDomains; preload"));
    }
}

#[test]
fn markdown_is_the_default_and_the_digest_is_of_the_file() {
    let page = stdout(&doc(&example("sdk-api"), &[]));
    assert!(page.starts_with("# Security page: sdk-api.toml (production)\n"));
    assert!(page.contains("Generated: `2026-01-01T00:00:00Z`"));
    // SHA-256 of the file's bytes, computed independently.
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(example("sdk-api")).unwrap();
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(page.contains(&format!("Policy SHA-256: `{hex}`")), "{page}");
}

#[test]
fn env_changes_the_page() {
    let production = stdout(&doc(&example("dashboard"), &[]));
    let development = stdout(&doc(&example("dashboard"), &["--env", "development"]));
    let sent_table = |page: &str| {
        let start = page.find("## Response headers").unwrap();
        let end = page[start..].find("Removed from every upstream").unwrap() + start;
        let section = page[start..end].to_owned();
        // Rows before the "not sent" table, if any.
        section
            .split("Declared but not sent")
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(sent_table(&production).contains("| `strict-transport-security` |"));
    assert!(!production.contains("Declared but not sent"));
    assert!(!sent_table(&development).contains("strict-transport-security"));
    assert!(development.contains("Declared but not sent in development"));
    assert!(development.starts_with("# Security page: dashboard.toml (development)\n"));
    // Per-environment CORS origins: the development list is the one in force.
    assert!(development.contains("Origins per environment (the development list is in force"));
}

#[test]
fn a_broken_policy_exits_1_with_the_diagnostic_and_writes_nothing() {
    let policy = write_temp(
        "doc-broken.toml",
        "environment = \"production\"\n[upstrem]\nurl = \"http://127.0.0.1:3000\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("page.md");
    let out = doc(&policy, &["--output", out_path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&policy);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("upstrem"), "{stderr}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!out_path.exists());
}

#[test]
fn an_unreadable_policy_or_a_bad_source_date_epoch_exits_2() {
    let out = doc(Path::new("/nonexistent/policy.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(common::binary())
        .args(["doc", "--config"])
        .arg(example("sdk-api"))
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn without_source_date_epoch_the_time_is_now() {
    let out = Command::new(common::binary())
        .args(["doc", "--config"])
        .arg(example("sdk-api"))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let page = stdout(&out);
    let stamp = page
        .split("Generated: `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap();
    let generated = humantime::parse_rfc3339(stamp).unwrap();
    let age = SystemTime::now()
        .duration_since(generated)
        .unwrap_or(Duration::ZERO);
    assert!(age < Duration::from_secs(600), "{stamp}");
}

#[test]
fn hostile_strings_are_escaped_in_both_formats() {
    let policy = write_temp(
        "doc-hostile.toml",
        r#"environment = "production"
[headers.set.x-frame-options]
value = "DENY"
reason = "</td><script>alert('x')</script> | injected | cell |"
[[route]]
name = "r"
paths = ["/r"]
cache-control = "no-store"
reason = "line one\n## injected heading"
"#,
    );
    let html = stdout(&doc(&policy, &["--format", "html"]));
    let md = stdout(&doc(&policy, &[]));
    let _ = std::fs::remove_file(&policy);
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(html.contains("&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // Every `<` is escaped: no raw HTML tag reaches a Markdown renderer.
    assert!(!md.replace("\\<", "").contains("<script"), "{md}");
    assert!(md.contains("\\<script\\>"), "{md}");
    assert!(md.contains("\\| injected \\| cell \\|"), "{md}");
    assert!(!md.contains("\n## injected heading"), "{md}");
}
