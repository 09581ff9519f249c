//! The always-on response headers, the headers removed from upstream responses, and what is
//! deliberately not set.

use portcullis::policy::{HeaderRule, Policy};

use crate::security_page::model::{Line, Section, Table, code, code_list, strong, text};

/// "Sent only in production" for a rule limited to some environments.
pub(super) fn environments_note(rule: &HeaderRule) -> Option<String> {
    rule.environments.as_ref().map(|envs| {
        let names: Vec<String> = envs.iter().map(|e| e.as_str().to_owned()).collect();
        format!(
            "Sent only in {}.",
            crate::security_page::wording::and_list(&names)
        )
    })
}

fn why(rule: &HeaderRule) -> Line {
    let mut line = Vec::new();
    if let Some(reason) = &rule.reason {
        line.push(text(reason.clone()));
    }
    if let Some(note) = environments_note(rule) {
        if !line.is_empty() {
            line.push(text(" "));
        }
        line.push(strong(note));
    }
    line
}

pub fn section(policy: &Policy) -> Section {
    let env = policy.environment;
    let mut s = Section::new("response-headers", "Response headers");
    let (sent, held_back): (Vec<&HeaderRule>, Vec<&HeaderRule>) =
        policy.headers.iter().partition(|r| r.applies_in(env));
    if sent.is_empty() {
        s.paragraph(vec![text(format!(
            "No security headers are set on every response in {env}."
        ))]);
    } else {
        s.paragraph(vec![text(format!(
            "Set by the gateway on every response in {env} (an upstream's own value is replaced), unless a route overrides them (see Cache-Control per path). Cache-Control is per route."
        ))]);
        let mut table = Table::new(&["Header", "Value", "Why"]);
        for rule in sent {
            table.row(vec![
                vec![code(rule.name.as_str())],
                vec![code(String::from_utf8_lossy(rule.value.as_bytes()))],
                why(rule),
            ]);
        }
        s.table(table);
    }
    if !held_back.is_empty() {
        s.paragraph(vec![text(format!("Declared but not sent in {env}:"))]);
        let mut table = Table::new(&["Header", "Value", "Why"]);
        for rule in held_back {
            table.row(vec![
                vec![code(rule.name.as_str())],
                vec![code(String::from_utf8_lossy(rule.value.as_bytes()))],
                why(rule),
            ]);
        }
        s.table(table);
    }
    let mut removed = vec![text(
        "Removed from every upstream response (they advertise the software stack): ",
    )];
    removed.extend(code_list(
        policy.removed_headers.iter().map(|h| h.as_str().to_owned()),
        "none",
    ));
    removed.push(text("."));
    s.paragraph(removed);
    s
}

pub fn not_set_section(policy: &Policy) -> Section {
    let mut s = Section::new("not-set", "What is deliberately not set");
    let mut items: Vec<Line> = policy
        .not_set
        .iter()
        .map(|n| vec![code(n.name.as_str()), text(": "), text(n.reason.clone())])
        .collect();
    for (route, is_default) in super::caching::routes(policy) {
        for n in route
            .not_set
            .iter()
            .filter(|n| !policy.not_set.iter().any(|g| g.name == n.name))
        {
            let mut item = vec![code(n.name.as_str()), text(" on route ")];
            item.push(code(super::caching::route_label(route, is_default)));
            item.push(text(": "));
            item.push(text(n.reason.clone()));
            items.push(item);
        }
    }
    if items.is_empty() {
        s.paragraph(vec![text(
            "The policy lists nothing as deliberately not set.",
        )]);
    } else {
        s.paragraph(vec![text(
            "Not sent, and removed if the upstream sends them, with the policy's reason:",
        )]);
        s.list(items);
    }
    s
}
