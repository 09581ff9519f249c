//! Reporting a finding: the disclosure contact served as security.txt.

use portcullis::policy::Policy;

use crate::security_page::model::{Line, Section, code, code_list, text};

pub fn section(policy: &Policy) -> Section {
    let mut s = Section::new("disclosure", "Reporting a finding");
    let Some(d) = &policy.disclosure else {
        s.paragraph(vec![text(
            "No disclosure contact: the gateway serves no security.txt.",
        )]);
        return s;
    };
    let mut contact = vec![text("Send disclosures to ")];
    contact.extend(code_list(d.contact.iter().cloned(), ""));
    contact.push(text("."));
    s.paragraph(contact);
    let mut items: Vec<Line> = Vec::new();
    if !d.encryption.is_empty() {
        let mut line = vec![text("Encryption key: ")];
        line.extend(code_list(d.encryption.iter().cloned(), ""));
        items.push(line);
    }
    if let Some(p) = &d.policy {
        items.push(vec![text("Disclosure policy: "), code(p.clone())]);
    }
    if let Some(a) = &d.acknowledgments {
        items.push(vec![text("Acknowledgments: "), code(a.clone())]);
    }
    if let Some(l) = &d.preferred_languages {
        items.push(vec![text("Preferred languages: "), code(l.clone())]);
    }
    if let Some(h) = &d.hiring {
        items.push(vec![text("Hiring: "), code(h.clone())]);
    }
    items.push(vec![text("Expires: "), code(d.expires.clone())]);
    s.list(items);
    s.paragraph(vec![
        text("The gateway answers "),
        code("GET /.well-known/security.txt"),
        text(" (RFC 9116) with:"),
    ]);
    s.preformatted(d.to_security_txt());
    s
}
