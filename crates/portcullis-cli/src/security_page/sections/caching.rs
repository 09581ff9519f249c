//! Cache-Control per path, with each route's header overrides and reason.

use portcullis::policy::{Policy, Route};

use crate::security_page::model::{Line, Section, Table, code, strong, text};
use crate::security_page::wording::route_paths;

/// Every route with whether it is the default one, in matching order.
pub(super) fn routes(policy: &Policy) -> impl Iterator<Item = (&Route, bool)> {
    policy
        .routes
        .iter()
        .map(|r| (r, false))
        .chain(std::iter::once((&policy.default_route, true)))
}

/// The name a route is shown by; the default route says what it is unless its name does.
pub(super) fn route_label(route: &Route, is_default: bool) -> String {
    if is_default && route.name != "default" {
        format!("{} (default route)", route.name)
    } else {
        route.name.clone()
    }
}

/// How a route's headers differ from the global set: added or changed values, dropped headers
/// (environment limits included).
fn overrides(policy: &Policy, route: &Route) -> Line {
    let mut parts: Vec<Line> = Vec::new();
    for rule in &route.headers {
        match policy.headers.iter().find(|g| g.name == rule.name) {
            Some(global) if global == rule => {}
            _ => {
                let mut part = vec![code(format!(
                    "{}: {}",
                    rule.name,
                    String::from_utf8_lossy(rule.value.as_bytes())
                ))];
                if let Some(note) = super::headers::environments_note(rule) {
                    part.push(text(format!(" ({note})")));
                }
                parts.push(part);
            }
        }
    }
    // A header the route deliberately does not send is said once, below, with that wording.
    for global in &policy.headers {
        if !route.headers.iter().any(|r| r.name == global.name)
            && !route.not_set.iter().any(|n| n.name == global.name)
        {
            parts.push(vec![text("drops "), code(global.name.as_str())]);
        }
    }
    for n in &route.not_set {
        if !policy.not_set.iter().any(|g| g.name == n.name) {
            parts.push(vec![text("does not send "), code(n.name.as_str())]);
        }
    }
    let mut line = Vec::new();
    for part in parts {
        if !line.is_empty() {
            line.push(text("; "));
        }
        line.extend(part);
    }
    if line.is_empty() {
        line.push(text("none"));
    }
    line
}

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("cache-control", "Cache-Control per path");
    s.paragraph(vec![
        text("Routes are matched in this order; the first whose pattern matches wins ("),
        code("*"),
        text(" covers the path and everything below it). The gateway sets the route's Cache-Control on every response, replacing the upstream's."),
    ]);
    let mut table = Table::new(&["Route", "Paths", "Cache-Control", "Header overrides", "Why"]);
    for (route, is_default) in routes(policy) {
        table.row(vec![
            vec![strong(route_label(route, is_default))],
            route_paths(route, is_default),
            vec![code(String::from_utf8_lossy(
                route.cache_control.as_bytes(),
            ))],
            overrides(policy, route),
            route.reason.clone().map(text).into_iter().collect(),
        ]);
    }
    s.table(table);
    // What the routes serve decides what a Content-Security-Policy is worth (check's CSP lints).
    let html: Vec<&str> = policy
        .all_routes()
        .filter(|r| r.html)
        .map(|r| r.name.as_str())
        .collect();
    if html.is_empty() {
        s.paragraph(vec![text(
            "No route is declared to serve HTML documents (html = true): every response is an API response.",
        )]);
    } else {
        let mut line = vec![text("Routes that serve HTML documents (html = true): ")];
        for (i, name) in html.iter().enumerate() {
            if i > 0 {
                line.push(text(", "));
            }
            line.push(strong(*name));
        }
        line.push(text("."));
        s.paragraph(line);
    }
    s
}
