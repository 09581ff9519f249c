//! The attributes the gateway forces on the upstream's `Set-Cookie` headers.

use portcullis::policy::Policy;

use crate::security_page::model::{Section, Table, code, text};

fn yes_no(forced: bool) -> &'static str {
    if forced { "forced" } else { "upstream's" }
}

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("cookies", "Cookies");
    if policy.cookies.is_empty() {
        s.paragraph(vec![text(
            "No cookie rules: upstream Set-Cookie headers pass unchanged.",
        )]);
        return s;
    }
    s.paragraph(vec![text(
        "Attributes forced on the upstream's Set-Cookie headers (\"upstream's\": left as the upstream sent it). A cookie under a rule that cannot be parsed is removed.",
    )]);
    let mut table = Table::new(&["Cookie", "Secure", "HttpOnly", "SameSite", "Path", "Why"]);
    for rule in &policy.cookies {
        table.row(vec![
            match &rule.name {
                Some(name) => vec![code(name.clone())],
                None => vec![text("every other cookie ("), code("*"), text(")")],
            },
            vec![text(yes_no(rule.secure))],
            vec![text(yes_no(rule.http_only))],
            match rule.same_site {
                Some(v) => vec![code(v.as_str())],
                None => vec![text("upstream's")],
            },
            match &rule.path {
                Some(p) => vec![code(p.clone())],
                None => vec![text("upstream's")],
            },
            rule.reason.clone().map(text).into_iter().collect(),
        ]);
    }
    s.table(table);
    s
}
