//! `portcullis check`: parse, validate and lint a policy.

use std::path::Path;
use std::process::ExitCode;

use portcullis::policy::csrf::CsrfMode;
use portcullis::policy::{CompileOptions, Environment, LoadError, Policy, load_file};

use super::secret_lengths::{self, Finding};
use super::{EXIT_INVALID, failure, print_diagnostics};
use portcullis::jwt_keys::MIN_SECRET_LEN;

/// With `deny_warnings`, a policy that loads with warnings exits 1 too (after printing them and
/// the summary): CI can keep a policy free of them.
pub fn run(config: &Path, environment: Option<Environment>, deny_warnings: bool) -> ExitCode {
    match load_file(config, &CompileOptions { environment }) {
        Ok(compiled) => {
            print_diagnostics(&compiled.warnings);
            let p = &compiled.policy;
            let (short_secrets, secret_errors) = report_secrets(config, p);
            if secret_errors > 0 {
                eprintln!("{}: {secret_errors} error(s)", config.display());
                return ExitCode::from(EXIT_INVALID);
            }
            let warnings = compiled.warnings.len() + short_secrets;
            if deny_warnings && warnings > 0 {
                eprintln!(
                    "{}: {warnings} warning(s), denied by --deny-warnings",
                    config.display(),
                );
                return ExitCode::from(EXIT_INVALID);
            }
            outln!(
                "{}: ok ({} environment, {} route(s) + default, {warnings} warning(s))",
                config.display(),
                p.environment,
                p.routes.len(),
            );
            print_cross_origin(p);
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(diagnostics)) => {
            print_diagnostics(&diagnostics);
            eprintln!(
                "{}: {} error(s)",
                config.display(),
                diagnostics.error_count()
            );
            ExitCode::from(EXIT_INVALID)
        }
        Err(e @ LoadError::Read { .. }) => failure(e),
    }
}

/// Prints what [`secret_lengths::check`] finds: a short secret is a warning, an error in
/// production; one that cannot be read here is a note. Returns (warnings, errors).
fn report_secrets(config: &Path, p: &Policy) -> (usize, usize) {
    let (mut warnings, mut errors) = (0, 0);
    for finding in secret_lengths::check(p) {
        match finding {
            Finding::Short { at, source, len } => {
                let severity = if p.environment == Environment::Production {
                    errors += 1;
                    "error"
                } else {
                    warnings += 1;
                    "warning"
                };
                eprintln!(
                    "{severity}: {}: {at}: {source} holds {len} bytes; a secret needs at least {MIN_SECRET_LEN} random bytes (`openssl rand -base64 48`)",
                    config.display()
                );
            }
            Finding::Unavailable { at, source } => eprintln!(
                "note: {at}: {source} cannot be read here, so its length is not checked (production refuses fewer than {MIN_SECRET_LEN} bytes at start-up)"
            ),
        }
    }
    (warnings, errors)
}

/// What a reviewer most needs to see at a glance: who may call from a browser, and which
/// paths skip the CSRF check.
fn print_cross_origin(p: &Policy) {
    for cors in &p.cors {
        let routes: Vec<&str> = p
            .all_routes()
            .filter(|r| r.cors.as_deref() == Some(cors.name.as_str()))
            .map(|r| r.name.as_str())
            .collect();
        let origins: Vec<&str> = cors.active_origins().iter().map(|o| o.as_str()).collect();
        outln!(
            "  cors {}: {} on {}{}",
            cors.name,
            if origins.is_empty() {
                "no origin".to_owned()
            } else {
                origins.join(", ")
            },
            routes.join(", "),
            if cors.credentials {
                " (credentials)"
            } else {
                ""
            }
        );
    }
    let denied: Vec<&str> = p
        .all_routes()
        .filter(|r| r.cors.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if !denied.is_empty() {
        outln!("  cross-origin denied on: {}", denied.join(", "));
    }
    outln!("  csrf: {}", p.csrf.mode.as_str());
    if p.csrf.mode != CsrfMode::Off {
        for exempt in &p.csrf.exempt {
            outln!(
                "  csrf exempt: {} ({})",
                exempt.pattern.as_str(),
                exempt.reason
            );
        }
    }
}
