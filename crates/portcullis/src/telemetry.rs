//! Logging set-up: JSON lines in production, readable text in development.

use portcullis_policy::{LogFormat, LoggingSettings};
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. `RUST_LOG`, when set, overrides the policy's level.
/// Returns false if a subscriber was already installed.
pub fn init(settings: &LoggingSettings) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
            .is_ok(),
        LogFormat::Text => builder.compact().try_init().is_ok(),
    }
}
