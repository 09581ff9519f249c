//! `portcullis probe`: does a running deployment behave as its policy says?

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use portcullis::policy::Environment;

use super::{load_policy, runtime};
use crate::probe::client::Target;
use crate::probe::{self, ProbeError, Timeouts};

/// Every response matched the policy.
pub const EXIT_MATCH: u8 = 0;
/// At least one finding: the deployment drifted from the policy.
pub const EXIT_DRIFT: u8 = 1;
/// The target could not be reached, or stopped answering: connection refused, DNS, TLS,
/// timeout. Nothing can be said about drift.
pub const EXIT_UNREACHABLE: u8 = 2;
/// The probe could not start: the policy does not load, or an argument is unusable. Distinct
/// from drift (1) so a pipeline never mistakes a broken policy file for a broken deployment.
pub const EXIT_CANNOT_PROBE: u8 = 3;

#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub url: String,
    pub environment: Option<Environment>,
    pub json: bool,
    pub timeout: Duration,
    pub total_timeout: Duration,
}

pub fn run(args: Args) -> ExitCode {
    let Ok(compiled) = load_policy(&args.config, args.environment, "; nothing probed") else {
        return ExitCode::from(EXIT_CANNOT_PROBE);
    };
    let target = match Target::parse(&args.url) {
        Ok(target) => target,
        Err(message) => return cannot_probe(message),
    };
    if args.timeout.is_zero() || args.total_timeout.is_zero() {
        return cannot_probe("--timeout and --total-timeout must be more than zero");
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return cannot_probe(format!("cannot start the runtime: {e}")),
    };
    let timeouts = Timeouts {
        per_request: args.timeout,
        total: args.total_timeout,
    };
    let result = runtime.block_on(probe::run(&compiled.policy, target, timeouts));
    match result {
        Ok(report) => {
            if args.json {
                outln!("{:#}", report.to_json());
            } else {
                out!("{}", report.to_table());
            }
            ExitCode::from(if report.drift() {
                EXIT_DRIFT
            } else {
                EXIT_MATCH
            })
        }
        Err(ProbeError::Setup(message)) => cannot_probe(message),
        Err(e) => {
            eprintln!("error: {e}");
            if args.json {
                let doc = serde_json::json!({
                    "target": args.url,
                    "environment": compiled.policy.environment.to_string(),
                    "error": e.to_string(),
                    "summary": { "unreachable": true, "requests_sent": e.requests_sent() },
                });
                outln!("{doc:#}");
            }
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

fn cannot_probe(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_CANNOT_PROBE)
}
