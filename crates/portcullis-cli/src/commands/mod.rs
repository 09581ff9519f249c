pub mod check;
pub mod demo;
pub mod doc;
pub mod explain;
pub mod keys;
pub mod probe;
pub mod secret_lengths;
pub mod serve;

use std::path::Path;
use std::process::ExitCode;

use portcullis::policy::{
    CompileOptions, Compiled, Diagnostics, Environment, LoadError, load_file,
};

/// Exit code for a policy with errors (and for `check` finding any).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for everything else that stops a command: unreadable file, port in use, ...
pub const EXIT_FAILURE: u8 = 2;

/// Prints diagnostics to stderr, the way a compiler does.
pub fn print_diagnostics(diagnostics: &Diagnostics) {
    if !diagnostics.is_empty() {
        eprint!("{}", diagnostics.render());
    }
}

/// Why a command has no policy to run on; what was wrong has been printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLoaded {
    /// The policy has errors.
    Invalid,
    /// The file cannot be read.
    Unreadable,
}

impl NotLoaded {
    /// The usual exit code: [`EXIT_INVALID`] for a policy with errors, else [`EXIT_FAILURE`].
    pub fn exit_code(self) -> ExitCode {
        match self {
            NotLoaded::Invalid => ExitCode::from(EXIT_INVALID),
            NotLoaded::Unreadable => ExitCode::from(EXIT_FAILURE),
        }
    }
}

/// Loads the policy a command runs on and prints its warnings. A policy with errors gets
/// every diagnostic, then `FILE: N error(s)` followed by `consequence` (e.g. `"; not
/// starting"`); an unreadable file gets `error: …`.
pub fn load_policy(
    config: &Path,
    environment: Option<Environment>,
    consequence: &str,
) -> Result<Compiled, NotLoaded> {
    match load_file(config, &CompileOptions { environment }) {
        Ok(compiled) => {
            print_diagnostics(&compiled.warnings);
            Ok(compiled)
        }
        Err(LoadError::Invalid(diagnostics)) => {
            print_diagnostics(&diagnostics);
            eprintln!(
                "{}: {} error(s){consequence}",
                config.display(),
                diagnostics.error_count()
            );
            Err(NotLoaded::Invalid)
        }
        Err(e @ LoadError::Read { .. }) => {
            eprintln!("error: {e}");
            Err(NotLoaded::Unreadable)
        }
    }
}

pub fn failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_FAILURE)
}

/// A multi-threaded runtime for the gateway.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
