//! `portcullis check`: parse, validate and lint a policy.

use std::path::Path;
use std::process::ExitCode;

use portcullis::policy::{CompileOptions, Environment, LoadError, load_file};

use super::{EXIT_INVALID, failure, print_diagnostics};

pub fn run(config: &Path, environment: Option<Environment>) -> ExitCode {
    match load_file(config, &CompileOptions { environment }) {
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
