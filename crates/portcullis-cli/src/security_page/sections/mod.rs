//! One builder per section of the page, in page order.

mod admin;
mod auth;
mod caching;
mod cookies;
mod cors;
mod csrf;
mod disclosure;
mod errors;
mod headers;
mod lockout;
mod network;
pub mod rate_limit;
pub mod warnings;

use portcullis::policy::Policy;

use super::model::{Section, Table, code, text};
use super::refusals::Refusal;

pub fn all(policy: &Policy) -> Vec<Section> {
    vec![
        headers::section(policy),
        headers::not_set_section(policy),
        caching::section(policy),
        cors::section(policy),
        csrf::section(policy),
        cookies::section(policy),
        auth::section(policy),
        rate_limit::section(policy),
        lockout::section(policy),
        network::section(policy),
        errors::section(policy),
        admin::section(policy),
        disclosure::section(policy),
    ]
}

/// Status | Code | When, for the refusals a section can produce.
fn refusal_table(refusals: &[Refusal]) -> Table {
    let mut table = Table::new(&["Status", "Code", "When"]);
    for r in refusals {
        table.row(vec![
            vec![text(r.status.to_string())],
            vec![code(r.code)],
            vec![text(r.when)],
        ]);
    }
    table
}
