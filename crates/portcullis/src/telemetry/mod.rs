//! Logging set-up: JSON lines in production, readable text in development, to stdout in batches.

mod access_line;
mod batched_stdout;
mod span_fields;

#[cfg(test)]
mod captured;

use std::sync::OnceLock;

use portcullis_policy::{LogFormat, LoggingSettings};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use access_line::TARGET as ACCESS_TARGET;
pub use batched_stdout::{BatchedStdout, FLUSH_EVERY};

/// The stdout sink of the installed subscriber, for [`flush`].
static STDOUT: OnceLock<BatchedStdout> = OnceLock::new();

/// Installs the global `tracing` subscriber. `RUST_LOG`, when set, overrides the policy's level.
///
/// Lines reach stdout within [`FLUSH_EVERY`]. Keep the returned guard until the process ends
/// (`let _logging = telemetry::init(..)`): dropping it writes what is still buffered. A panic
/// writes it too.
pub fn init(settings: &LoggingSettings) -> LogGuard {
    let out = match BatchedStdout::start() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("portcullis: cannot start the log writer thread: {e}");
            return LogGuard { installed: false };
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(out.clone())
        .with_target(true)
        .with_ansi(ansi);
    let installed = match settings.format {
        LogFormat::Json => {
            // The access log's line is the same JSON, formatted by a faster hand-written layer.
            let fmt = fmt
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .fmt_fields(span_fields::SpanFields);
            let fmt = access_line::WithoutAccessEvents::new(fmt);
            Registry::default()
                .with(filter)
                .with(fmt)
                .with(access_line::AccessLineLayer::new(out.clone()))
                .try_init()
                .is_ok()
        }
        LogFormat::Text => Registry::default()
            .with(filter)
            .with(fmt.compact())
            .try_init()
            .is_ok(),
    };
    if installed && STDOUT.set(out).is_ok() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(out) = STDOUT.get() {
                out.try_flush();
            }
            previous(info);
        }));
    }
    LogGuard { installed }
}

/// Returned by [`init`]; writes the buffered log lines when dropped.
#[must_use = "dropping the guard at once only flushes; keep it until the process ends"]
#[derive(Debug)]
pub struct LogGuard {
    installed: bool,
}

impl LogGuard {
    /// False if a subscriber was already installed (or the log thread could not start, in which
    /// case the error is on stderr): this call installed nothing.
    pub fn installed(&self) -> bool {
        self.installed
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush();
    }
}

/// Writes every log line buffered so far to stdout.
pub fn flush() {
    if let Some(out) = STDOUT.get() {
        out.flush();
    }
}
