//! `portcullis`: run, try, check and document Portcullis policies, and manage their API keys.

mod commands;
mod demo_upstream;
mod security_page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::policy::Environment;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An API security gateway driven by one reviewable policy file"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in front of an upstream.
    Serve {
        /// The policy file.
        #[arg(long, short)]
        config: PathBuf,
        /// Listen address; overrides `[server] listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Upstream URL (`http://host:port`); overrides `[upstream] url`.
        #[arg(long)]
        upstream: Option<String>,
        /// Compile the policy for this environment instead of the file's.
        #[arg(long = "env")]
        environment: Option<Environment>,
    },
    /// Run the gateway with the bundled policy in front of a bundled demo API.
    Demo {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Validate a policy: exit 0 if it loads, else print every problem and exit 1.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long = "env")]
        environment: Option<Environment>,
        /// Exit 1 on warnings too (for CI).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Render the policy as the security page a reviewer reads (Markdown or HTML).
    Doc {
        /// The policy file.
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: commands::doc::Format,
        /// Compile the policy for this environment instead of the file's.
        #[arg(long = "env")]
        environment: Option<Environment>,
        /// Write the page here instead of to stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage tenant API keys in the store the policy's `[auth.api-keys]` names.
    Keys {
        /// The policy file.
        #[arg(long, short)]
        config: PathBuf,
        /// Compile the policy for this environment instead of the file's.
        #[arg(long = "env")]
        environment: Option<Environment>,
        #[command(subcommand)]
        action: commands::keys::Action,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            environment,
            deny_warnings,
        } => commands::check::run(&config, environment, deny_warnings),
        Command::Serve {
            config,
            listen,
            upstream,
            environment,
        } => commands::serve::run(commands::serve::Args {
            config,
            listen,
            upstream,
            environment,
        }),
        Command::Doc {
            config,
            format,
            environment,
            output,
        } => commands::doc::run(commands::doc::Args {
            config,
            format,
            environment,
            output,
        }),
        Command::Demo { listen } => commands::demo::run(listen),
        Command::Keys {
            config,
            environment,
            action,
        } => commands::keys::run(&config, environment, action),
    }
}
