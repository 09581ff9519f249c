//! `portcullis doc`: the policy as the security page a reviewer reads (Markdown or HTML).
//!
//! The generation time comes from `SOURCE_DATE_EPOCH` when set (the reproducible-builds
//! convention: seconds since the Unix epoch), else from the clock; everything else on the page
//! comes from the policy file, so the same file and time give the same page byte for byte.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::ValueEnum;
use portcullis::policy::{CompileOptions, Environment, load_str};
use sha2::{Digest, Sha256};

use super::{EXIT_INVALID, failure, print_diagnostics};
use crate::security_page::{self, PageInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Md,
    Html,
}

#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub format: Format,
    pub environment: Option<Environment>,
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let generated_at = match generation_time(std::env::var_os("SOURCE_DATE_EPOCH")) {
        Ok(t) => t,
        Err(message) => return failure(message),
    };
    // One read: the digest on the page is of exactly the bytes that were compiled.
    let bytes = match std::fs::read(&args.config) {
        Ok(b) => b,
        Err(e) => {
            return failure(format!(
                "cannot read policy file {}: {e}",
                args.config.display()
            ));
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return failure(format!(
            "cannot read policy file {}: not UTF-8",
            args.config.display()
        ));
    };
    let options = CompileOptions {
        environment: args.environment,
    };
    let compiled = match load_str(&args.config, text, &options) {
        Ok(c) => c,
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            eprintln!(
                "{}: {} error(s)",
                args.config.display(),
                diagnostics.error_count()
            );
            return ExitCode::from(EXIT_INVALID);
        }
    };
    print_diagnostics(&compiled.warnings);
    let page = render(
        &PageInput {
            file_name: &file_name(&args.config),
            sha256: &sha256_hex(&bytes),
            generated_at,
            policy: &compiled.policy,
            warnings: &compiled.warnings,
        },
        args.format,
    );
    match &args.output {
        None => {
            out!("{page}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failure(format!("cannot write {}: {e}", path.display())),
        },
    }
}

/// The page in `format`.
pub fn render(input: &PageInput<'_>, format: Format) -> String {
    let page = security_page::build(input);
    match format {
        Format::Md => security_page::markdown::render(&page),
        Format::Html => security_page::html::render(&page),
    }
}

/// `SOURCE_DATE_EPOCH` (whole seconds since the Unix epoch) if set, else now.
fn generation_time(source_date_epoch: Option<std::ffi::OsString>) -> Result<SystemTime, String> {
    let Some(raw) = source_date_epoch else {
        return Ok(SystemTime::now());
    };
    raw.to_str()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or_else(|| {
            format!(
                "SOURCE_DATE_EPOCH must be whole seconds since the Unix epoch, not {:?}",
                raw
            )
        })
}

/// The file's name without its directories, so the page does not depend on where it was made.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_sets_the_time() {
        let t = generation_time(Some("1767225600".into())).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert!(generation_time(Some("yesterday".into())).is_err());
        assert!(generation_time(Some("-1".into())).is_err());
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
