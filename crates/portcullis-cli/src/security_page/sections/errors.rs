//! Correlation IDs and what error bodies look like.

use portcullis::policy::{Policy, UpstreamProtocol};

use super::refusal_table;
use crate::security_page::model::{Section, code, code_list, text};
use crate::security_page::refusals;

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("errors", "Correlation IDs and error responses");
    let cid = &policy.correlation_id;
    let mut line = vec![
        text("Every request gets a correlation ID in "),
        code(cid.header.as_str()),
        text(
            ", forwarded to the upstream and echoed in the response. A caller's own ID is kept when well-formed (at most ",
        ),
        text(format!("{} characters", cid.max_length)),
        text("), taken from "),
    ];
    line.extend(code_list(
        cid.accept.iter().map(|h| h.as_str().to_owned()),
        "no header (callers cannot supply one)",
    ));
    line.push(text("."));
    s.paragraph(line);
    s.paragraph(vec![text(
        "Every refusal and failure the gateway produces itself has one JSON shape:",
    )]);
    let detail = if policy.errors.expose_detail {
        ",\n    \"detail\": \"<internal detail>\""
    } else {
        ""
    };
    s.preformatted(format!(
        "{{\n  \"error\": {{\n    \"code\": \"<stable code>\",\n    \"message\": \"<human-readable message>\",\n    \"correlation_id\": \"<the request's correlation ID>\"{detail}\n  }}\n}}"
    ));
    s.paragraph(if policy.errors.expose_detail {
        vec![text(format!(
            "In {} error bodies include internal detail (why the upstream failed, which check refused): never the case in production.",
            policy.environment
        ))]
    } else {
        vec![text(
            "No internal detail is sent: bodies carry the code, message and correlation ID only; the detail is logged.",
        )]
    });
    let mut gateway = vec![refusals::BAD_REQUEST, refusals::METHOD_NOT_ALLOWED];
    if let Some(upstream) = &policy.upstream {
        gateway.push(refusals::UPSTREAM_UNAVAILABLE);
        // Only HTTP/1.1 connections are capped: h2c multiplexes one.
        if upstream.protocol == UpstreamProtocol::Http1 {
            gateway.push(refusals::UPSTREAM_BUSY);
        }
        gateway.push(refusals::UPSTREAM_TIMEOUT);
    }
    s.paragraph(vec![text("Besides the refusals listed in each section:")]);
    s.table(refusal_table(&gateway));
    s
}
