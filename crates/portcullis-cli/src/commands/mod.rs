pub mod check;
pub mod demo;
pub mod doc;
pub mod explain;
pub mod keys;
pub mod probe;
pub mod secret_lengths;
pub mod serve;

use std::process::ExitCode;

use portcullis::policy::Diagnostics;

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
