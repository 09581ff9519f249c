//! CSRF: the mode, the decision rules with this policy's values, and the exemptions.

use portcullis::policy::Policy;
use portcullis::policy::csrf::CsrfMode;

use super::refusal_table;
use crate::security_page::model::{Line, Section, Table, code, code_list, text};
use crate::security_page::refusals;

pub fn section(policy: &Policy) -> Section {
    let csrf = &policy.csrf;
    let mut s = Section::new("csrf", "CSRF");
    let mode = match csrf.mode {
        CsrfMode::Enforce => "failing requests are refused with 403 and never reach the upstream.",
        CsrfMode::ReportOnly => {
            "failing requests are logged and counted, but let through (not refused)."
        }
        CsrfMode::Off => {
            "no CSRF check runs: cross-site cookie-authenticated requests are not refused."
        }
    };
    s.paragraph(vec![
        text("Mode: "),
        code(csrf.mode.as_str()),
        text(format!(": {mode}")),
    ]);
    if csrf.mode == CsrfMode::Off {
        return s;
    }
    let session = if csrf.session_cookies.is_empty() {
        vec![text("any cookie counts as a session")]
    } else {
        let mut line = vec![text("only these cookies count as a session: ")];
        line.extend(code_list(csrf.session_cookies.iter().cloned(), ""));
        line
    };
    let mut exempt_credentials = vec![text(
        "A request carrying a credential browsers never attach on their own passes: ",
    )];
    exempt_credentials.push(code("Authorization: Bearer"));
    exempt_credentials.push(text(" or an API-key header ("));
    exempt_credentials.extend(code_list(
        csrf.api_key_headers.iter().map(|h| h.as_str().to_owned()),
        "none configured",
    ));
    exempt_credentials.push(text(
        "). A page can add these cross-site only after a CORS preflight, which CORS decides.",
    ));
    let mut trusted = vec![text("Otherwise the site must be trusted: ")];
    trusted.push(code("Sec-Fetch-Site: same-origin"));
    trusted.push(text(" or "));
    trusted.push(code("none"));
    trusted.push(text(
        " passes; any other value passes only if Origin is trusted. Without Sec-Fetch-Site: no Origin passes; a malformed or ",
    ));
    trusted.push(code("null"));
    trusted.push(text(
        " Origin fails; an Origin naming the request's own host and port, or a trusted one, passes.",
    ));
    let mut trusted_list = vec![text(
        "Trusted origins: the route's credentialed CORS origins, and ",
    )];
    trusted_list.extend(code_list(
        csrf.trusted_origins
            .active
            .iter()
            .map(|o| o.as_str().to_owned()),
        "no others",
    ));
    trusted_list.push(text("."));
    let mut cookies: Line = vec![text(
        "A request without a session cookie passes: there is no ambient credential to ride on (",
    )];
    cookies.extend(session);
    cookies.push(text(")."));
    s.paragraph(vec![text(
        "Checked in order on every request (the gateway trusts the browser's own Sec-Fetch-Site and Origin headers, which pages cannot forge; no tokens):",
    )]);
    s.list(vec![
        vec![text(
            "A safe method (GET, HEAD, OPTIONS, TRACE) passes; every other method is unsafe.",
        )],
        cookies,
        exempt_credentials,
        trusted,
        trusted_list,
    ]);
    if csrf.exempt.is_empty() {
        s.paragraph(vec![text("No exemptions.")]);
    } else {
        s.paragraph(vec![text("Exempt paths (a failing request passes there):")]);
        let mut table = Table::new(&["Path", "Why"]);
        for e in &csrf.exempt {
            table.row(vec![
                vec![code(e.pattern.as_str())],
                vec![text(e.reason.clone())],
            ]);
        }
        s.table(table);
    }
    if csrf.mode == CsrfMode::Enforce {
        s.table(refusal_table(&[refusals::CSRF_ORIGIN_MISMATCH]));
    }
    s
}
