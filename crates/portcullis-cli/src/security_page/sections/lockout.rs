//! Login lockout rules.

use portcullis::policy::Policy;

use super::caching::{route_label, routes};
use super::refusal_table;
use crate::security_page::model::{Section, Table, code, code_list, text};
use crate::security_page::refusals;
use crate::security_page::wording::{duration, on_store_error, store};

pub fn section(policy: &Policy) -> Section {
    let lockout = &policy.lockout;
    let mut s = Section::new("lockout", "Login lockout");
    if lockout.rules.is_empty() {
        s.paragraph(vec![text("No lockout rules.")]);
        return s;
    }
    s.paragraph(vec![text(
        "Failed attempts on login routes are counted per account (only a SHA-256 of the trimmed, lower-cased account is stored) and, where the rule says so, per client IP; while either is locked, attempts are refused without reaching the upstream. Each further lock lasts twice as long, up to the cap; a success forgets the account's failures (not the IP's).",
    )]);
    let mut table = Table::new(&[
        "Rule",
        "Routes",
        "Account field",
        "Per IP",
        "Lock after",
        "Lock for",
        "Failure statuses",
        "Why",
    ]);
    for (i, rule) in lockout.rules.iter().enumerate() {
        let users: Vec<String> = routes(policy)
            .filter(|(r, _)| r.lockout == Some(i))
            .map(|(r, d)| route_label(r, d))
            .collect();
        table.row(vec![
            vec![code(rule.name.clone())],
            code_list(users, "no route"),
            match &rule.account_field {
                Some(f) => vec![
                    code(f.clone()),
                    text(format!(" (body read up to {} bytes)", rule.max_body)),
                ],
                None => vec![text("none: per client IP only")],
            },
            vec![text(if rule.per_ip { "yes" } else { "no" })],
            vec![text(format!(
                "{} failures within {}",
                rule.failures,
                duration(rule.window)
            ))],
            vec![text(format!(
                "{}, doubling up to {}",
                duration(rule.lockout),
                duration(rule.max_lockout)
            ))],
            code_list(
                rule.failure_statuses
                    .iter()
                    .map(|st| st.as_u16().to_string()),
                "none",
            ),
            rule.reason.clone().map(text).into_iter().collect(),
        ]);
    }
    s.table(table);
    let mut store_line = vec![text("Counters: ")];
    store_line.extend(store(&lockout.store));
    if lockout.store.is_shared() {
        store_line.push(text("."));
    } else {
        store_line.push(text(format!(
            "; at most {} accounts and addresses tracked.",
            lockout.max_entries
        )));
    }
    let mut error_line = vec![text("When the store cannot be reached: ")];
    error_line.extend(on_store_error(
        lockout.on_store_error,
        "failures are counted and locks applied in each gateway instance's own memory until it answers again (logged).",
        vec![text("attempts are refused ("), code("503"), text(").")],
    ));
    s.list(vec![store_line, error_line]);
    s.table(refusal_table(&[
        refusals::LOCKED_OUT,
        refusals::LOGIN_BODY_TOO_LARGE,
        refusals::LOCKOUT_UNAVAILABLE,
    ]));
    s
}
