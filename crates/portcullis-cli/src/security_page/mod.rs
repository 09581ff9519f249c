//! The reviewer's security page (`portcullis doc`): a compiled policy turned into a page model
//! ([`model`]), one builder per section ([`sections`]), and two renderers over that model
//! ([`markdown`], [`html`]).
//!
//! Everything on the page comes from the compiled [`Policy`] for one environment, or from the
//! gateway's fixed behaviour (refusal codes, rate-limit header names) that the policy switches
//! on. A section with nothing in the policy says so in one line instead of vanishing: what is
//! absent is a fact a reviewer needs too.

pub mod html;
pub mod markdown;
pub mod model;
mod refusals;
mod sections;
mod wording;

use std::time::SystemTime;

use portcullis::policy::{Diagnostics, Policy};

use model::{Line, Page, code, text};

/// What the page is about besides the policy itself.
pub struct PageInput<'a> {
    /// The policy file's name as shown in the title (no directories: the page must not depend
    /// on where it was generated).
    pub file_name: &'a str,
    /// SHA-256 of the policy file's bytes, lower-case hex.
    pub sha256: &'a str,
    /// When the page was generated. Injected, never read from the clock here, so that pages
    /// are reproducible (tests pass a fixed time; the CLI honours `SOURCE_DATE_EPOCH`).
    pub generated_at: SystemTime,
    pub policy: &'a Policy,
    /// What `check` warns about in this environment (listed on the page, last).
    pub warnings: &'a Diagnostics,
}

/// Builds the page model for `input.policy`.
pub fn build(input: &PageInput<'_>) -> Page {
    let policy = input.policy;
    let about: Vec<Line> = vec![
        vec![text("Policy file: "), code(input.file_name)],
        vec![
            text("Environment: "),
            code(policy.environment.as_str()),
            text(" (this page describes the policy compiled for this environment only)"),
        ],
        vec![text("Policy SHA-256: "), code(input.sha256)],
        vec![
            text("Generated: "),
            code(humantime::format_rfc3339_seconds(input.generated_at).to_string()),
            text(" by "),
            code(format!(
                "portcullis doc --config {} --env {}",
                input.file_name, policy.environment
            )),
        ],
    ];
    Page {
        title: format!(
            "Security page: {} ({})",
            input.file_name, policy.environment
        ),
        about,
        sections: {
            let mut all = sections::all(policy);
            all.push(sections::warnings::section(input.warnings));
            all
        },
    }
}
