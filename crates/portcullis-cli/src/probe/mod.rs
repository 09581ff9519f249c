//! `portcullis probe`: requests sent to a running deployment, and each response compared with
//! what the policy promises (docs/probe.md).
//!
//! - [`plan`]: which requests, from the policy alone ([`sample`] paths, [`origins`] to send);
//! - [`client`]: sending them, each within a timeout;
//! - [`checks`]: one response against the policy, producing [`finding`]s;
//! - [`report`]: the table and the JSON.
//!
//! Requests go one at a time: the probe is a check, not a load test, and a deployment's rate
//! limits should see it as one well-behaved client.

pub mod checks;
pub mod client;
pub mod finding;
pub mod origins;
pub mod plan;
pub mod report;
pub mod sample;

use std::time::Duration;

use portcullis::policy::Policy;

use client::{ProbeClient, Target};
use report::Report;

/// Why a probe did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The client could not be set up (no CA roots for an `https` target).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// A request got no response: connection refused, DNS, TLS, timeout, reset.
    #[error("{target} did not answer {request}: {error}")]
    Unreachable {
        target: String,
        request: String,
        error: String,
        requests_sent: usize,
    },
    /// The whole probe took longer than allowed.
    #[error("{target}: the probe did not finish within {} ms ({requests_sent} request(s) sent)", .total.as_millis())]
    TotalTimeout {
        target: String,
        total: Duration,
        requests_sent: usize,
    },
}

impl ProbeError {
    pub fn requests_sent(&self) -> usize {
        match self {
            ProbeError::Setup(_) => 0,
            ProbeError::Unreachable { requests_sent, .. }
            | ProbeError::TotalTimeout { requests_sent, .. } => *requests_sent,
        }
    }
}

/// How long to wait: for each request, and for the whole probe.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub per_request: Duration,
    pub total: Duration,
}

/// Probes `target` against `policy`. The first request without a response ends the probe:
/// later answers could not be trusted to describe the deployment either.
pub async fn run(
    policy: &Policy,
    target: Target,
    timeouts: Timeouts,
) -> Result<Report, ProbeError> {
    let plan = plan::plan(policy);
    let name = target.to_string();
    let client = ProbeClient::new(target, timeouts.per_request)
        .map_err(|e| ProbeError::Setup(e.to_string()))?;
    let mut sent = 0;
    let mut findings = Vec::new();
    let all = async {
        for request in &plan.requests {
            sent += 1;
            let observed = client
                .send(request)
                .await
                .map_err(|e| ProbeError::Unreachable {
                    target: name.clone(),
                    request: request.to_string(),
                    error: e.to_string(),
                    requests_sent: sent,
                })?;
            findings.extend(checks::check(policy, request, &observed));
        }
        Ok::<(), ProbeError>(())
    };
    // A statement of its own: the finished (or abandoned) future must release `sent`.
    let outcome = tokio::time::timeout(timeouts.total, all).await;
    match outcome {
        Ok(result) => result?,
        Err(_) => {
            return Err(ProbeError::TotalTimeout {
                target: name,
                total: timeouts.total,
                requests_sent: sent,
            });
        }
    }
    Ok(Report {
        target: name,
        environment: policy.environment.to_string(),
        findings: finding::dedup(findings),
        not_probed: plan.not_probed,
        requests_sent: sent,
    })
}
