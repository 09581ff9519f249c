//! Who the client is (trusted proxies) and which addresses may call (IP allow/deny lists).

use portcullis::policy::Policy;
use portcullis::policy::ip_filter::IpFilter;

use super::caching::{route_label, routes};
use super::refusal_table;
use crate::security_page::model::{Line, Section, Table, code_list, strong, text};
use crate::security_page::refusals;

fn ranges<T: ToString>(list: &[T], empty: &str) -> Line {
    code_list(list.iter().map(|n| n.to_string()), empty)
}

fn filter_row(who: Line, filter: &IpFilter) -> Vec<Line> {
    vec![
        who,
        ranges(&filter.allow, "any address"),
        ranges(&filter.deny, "none"),
        filter.reason.clone().map(text).into_iter().collect(),
    ]
}

pub fn section(policy: &Policy) -> Section {
    let server = &policy.server;
    let mut s = Section::new("network", "Client addresses and IP filtering");
    let mut proxies = if server.trusted_proxies.is_empty() {
        vec![text(
            "Trusted proxies: none. The client IP is the TCP peer's address; X-Forwarded-For and Forwarded are ignored.",
        )]
    } else {
        let mut line = vec![text(
            "Trusted proxies (their X-Forwarded-For / Forwarded headers are believed to find the client IP): ",
        )];
        line.extend(ranges(&server.trusted_proxies, ""));
        line.push(text("."));
        line
    };
    proxies.push(text(format!(
        " IPv6 clients are counted per /{} (one host usually holds a whole prefix).",
        server.ipv6_bucket
    )));
    s.paragraph(proxies);
    let per_route: Vec<Vec<Line>> = routes(policy)
        .filter(|(r, _)| !r.ip_filter.is_empty())
        .map(|(r, d)| filter_row(vec![strong(route_label(r, d))], &r.ip_filter))
        .collect();
    if policy.ip_filter.is_empty() && per_route.is_empty() {
        s.paragraph(vec![text(
            "No IP allow or deny lists: every address may call.",
        )]);
        return s;
    }
    s.paragraph(vec![text(
        "Deny wins; a non-empty allow list admits only its ranges; the global lists are checked before a route's.",
    )]);
    let mut table = Table::new(&["Applies to", "Allow", "Deny", "Why"]);
    if !policy.ip_filter.is_empty() {
        table.row(filter_row(vec![strong("every request")], &policy.ip_filter));
    }
    for row in per_route {
        table.row(row);
    }
    s.table(table);
    s.table(refusal_table(&[refusals::IP_DENIED]));
    s
}
