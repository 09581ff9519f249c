//! The admin HTTP API, if the policy enables it.

use portcullis::policy::Policy;

use crate::security_page::model::{Section, code, text};
use crate::security_page::wording::secret_source;

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("admin", "Admin API");
    let Some(admin) = &policy.admin else {
        s.paragraph(vec![text("No admin API.")]);
        return s;
    };
    let mut line = vec![
        text("Listens on "),
        code(admin.listen.to_string()),
        text(if portcullis::policy::admin::is_loopback(&admin.listen) {
            " (loopback: reachable from this host only)"
        } else {
            " (reachable from other hosts: deliberately allowed by the policy)"
        }),
        text("; callers present a bearer token from "),
    ];
    line.extend(secret_source(&admin.token));
    line.push(text("."));
    s.paragraph(line);
    s
}
