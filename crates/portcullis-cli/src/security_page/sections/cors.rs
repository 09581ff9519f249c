//! CORS per route group, and the routes where cross-origin access is denied.

use portcullis::policy::Policy;
use portcullis::policy::cors::CorsPolicy;
use portcullis::policy::origins::OriginEntry;

use super::caching::{route_label, routes};
use super::refusal_table;
use crate::security_page::model::{Line, Section, Table, code, code_list, text};
use crate::security_page::refusals;
use crate::security_page::wording::duration;

fn origins_cell(cors: &CorsPolicy) -> Line {
    let active = cors.active_origins();
    if active.contains(&OriginEntry::Any) {
        return vec![
            code("*"),
            text(" (any origin; never combined with credentials)"),
        ];
    }
    let mut line = vec![text("the request's Origin, reflected when it is one of: ")];
    line.extend(code_list(
        active.iter().map(|o| o.as_str().to_owned()),
        "(none: no origin is allowed in this environment)",
    ));
    line.push(text("; other origins get no CORS headers"));
    line
}

/// The list as the header value the gateway sends (`a, b, c`), or `empty` when not sent.
fn joined<'a>(items: impl Iterator<Item = &'a str>, empty: &str) -> Line {
    let value = items.collect::<Vec<_>>().join(", ");
    if value.is_empty() {
        vec![text(empty)]
    } else {
        vec![code(value)]
    }
}

fn policy_table(cors: &CorsPolicy) -> Table {
    let mut table = Table::new(&["Response header", "Value"]);
    table.row(vec![
        vec![code("Access-Control-Allow-Origin")],
        origins_cell(cors),
    ]);
    table.row(vec![
        vec![code("Access-Control-Allow-Methods")],
        joined(
            cors.methods.iter().map(|m| m.as_str()),
            "not sent (no method is allowed in a preflight)",
        ),
    ]);
    table.row(vec![
        vec![code("Access-Control-Allow-Headers")],
        joined(
            cors.allow_headers.iter().map(|h| h.as_str()),
            "not sent (no request header beyond the CORS-safelisted ones)",
        ),
    ]);
    table.row(vec![
        vec![code("Access-Control-Expose-Headers")],
        joined(
            cors.expose_headers.iter().map(|h| h.as_str()),
            "not sent (pages read only the CORS-safelisted response headers)",
        ),
    ]);
    table.row(vec![
        vec![code("Access-Control-Max-Age")],
        match cors.max_age {
            Some(age) => vec![
                code(age.as_secs().to_string()),
                text(format!(" (preflights cached for {})", duration(age))),
            ],
            None => vec![text(
                "not sent (browsers use their own default, at most 5 s)",
            )],
        },
    ]);
    table.row(vec![
        vec![code("Access-Control-Allow-Credentials")],
        if cors.credentials {
            vec![
                code("true"),
                text(" (cookies may ride on cross-origin requests)"),
            ]
        } else {
            vec![text(
                "not sent (cross-origin requests carry no cookies the page can use)",
            )]
        },
    ]);
    table
}

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("cors", "CORS");
    if policy.cors.is_empty() {
        s.paragraph(vec![text(
            "No CORS policies: cross-origin access is denied on every route (no CORS headers; preflights refused).",
        )]);
    }
    for cors in &policy.cors {
        let users: Vec<String> = routes(policy)
            .filter(|(r, _)| r.cors.as_deref() == Some(cors.name.as_str()))
            .map(|(r, d)| route_label(r, d))
            .collect();
        s.subheading(vec![text("Policy "), code(cors.name.clone())]);
        let mut used = vec![text("Used by: ")];
        used.extend(code_list(users, "no route"));
        used.push(text("."));
        s.paragraph(used);
        if let Some(reason) = &cors.reason {
            s.paragraph(vec![text(reason.clone())]);
        }
        s.table(policy_table(cors));
        if !cors.origins.everywhere {
            let items = cors
                .origins
                .by_environment
                .iter()
                .map(|(env, list)| {
                    let mut item = vec![code(env.as_str()), text(": ")];
                    item.extend(code_list(
                        list.iter().map(|o| o.as_str().to_owned()),
                        "none",
                    ));
                    item
                })
                .collect();
            s.paragraph(vec![text(format!(
                "Origins per environment (the {} list is in force on this page):",
                policy.environment
            ))]);
            s.list(items);
        }
    }
    let denied: Vec<String> = routes(policy)
        .filter(|(r, _)| r.cors.is_none())
        .map(|(r, d)| route_label(r, d))
        .collect();
    if !policy.cors.is_empty() {
        if denied.is_empty() {
            s.paragraph(vec![text("Every route has a CORS policy.")]);
        } else {
            let mut line = vec![text(
                "Cross-origin access denied (no CORS headers, preflights refused) on: ",
            )];
            line.extend(code_list(denied, ""));
            line.push(text("."));
            s.paragraph(line);
        }
    }
    let mut refusals = vec![refusals::CORS_PREFLIGHT_REFUSED];
    if routes(policy).any(|(r, _)| r.websocket) {
        refusals.push(refusals::WEBSOCKET_ORIGIN_REFUSED);
    }
    s.table(refusal_table(&refusals));
    s
}
