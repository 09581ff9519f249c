//! `portcullis check`: parse, validate and lint a policy.

use std::path::Path;
use std::process::ExitCode;

use portcullis::policy::csrf::CsrfMode;
use portcullis::policy::{CompileOptions, Environment, LoadError, Policy, load_file};

use super::{EXIT_INVALID, failure, print_diagnostics};

/// With `deny_warnings`, a policy that loads with warnings exits 1 too (after printing them and
/// the summary): CI can keep a policy free of them.
pub fn run(config: &Path, environment: Option<Environment>, deny_warnings: bool) -> ExitCode {
    match load_file(config, &CompileOptions { environment }) {
        Ok(compiled) if deny_warnings && !compiled.warnings.is_empty() => {
            print_diagnostics(&compiled.warnings);
            eprintln!(
                "{}: {} warning(s), denied by --deny-warnings",
                config.display(),
                compiled.warnings.len()
            );
            ExitCode::from(EXIT_INVALID)
        }
        Ok(compiled) => {
            print_diagnostics(&compiled.warnings);
            let p = &compiled.policy;
            println!(
                "{}: ok ({} environment, {} route(s) + default, {} warning(s))",
                config.display(),
                p.environment,
                p.routes.len(),
                compiled.warnings.len()
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
        println!(
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
        println!("  cross-origin denied on: {}", denied.join(", "));
    }
    println!("  csrf: {}", p.csrf.mode.as_str());
    if p.csrf.mode != CsrfMode::Off {
        for exempt in &p.csrf.exempt {
            println!(
                "  csrf exempt: {} ({})",
                exempt.pattern.as_str(),
                exempt.reason
            );
        }
    }
}
