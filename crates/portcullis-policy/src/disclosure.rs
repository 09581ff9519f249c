//! The disclosure contact, served as `/.well-known/security.txt` (RFC 9116).

use std::fmt::Write as _;

/// The fields of a security.txt file. `contact` and `expires` are required by RFC 9116.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// `mailto:`, `https:` or `tel:` URIs, in order of preference.
    pub contact: Vec<String>,
    /// RFC 3339 date-time after which the file must be considered stale.
    pub expires: String,
    pub encryption: Vec<String>,
    pub policy: Option<String>,
    pub acknowledgments: Option<String>,
    pub preferred_languages: Option<String>,
    pub canonical: Vec<String>,
    pub hiring: Option<String>,
}

impl Disclosure {
    /// The security.txt body, with RFC 9116 field names.
    pub fn to_security_txt(&self) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: &str| {
            let _ = writeln!(out, "{name}: {value}");
        };
        for contact in &self.contact {
            field("Contact", contact);
        }
        field("Expires", &self.expires);
        for key in &self.encryption {
            field("Encryption", key);
        }
        if let Some(v) = &self.acknowledgments {
            field("Acknowledgments", v);
        }
        if let Some(v) = &self.preferred_languages {
            field("Preferred-Languages", v);
        }
        for url in &self.canonical {
            field("Canonical", url);
        }
        if let Some(v) = &self.policy {
            field("Policy", v);
        }
        if let Some(v) = &self.hiring {
            field("Hiring", v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc_9116_fields_in_order() {
        let d = Disclosure {
            contact: vec!["mailto:security@example.com".into()],
            expires: "2027-01-01T00:00:00Z".into(),
            encryption: vec!["https://example.com/pgp.txt".into()],
            policy: Some("https://example.com/disclosure".into()),
            acknowledgments: None,
            preferred_languages: Some("en".into()),
            canonical: vec![],
            hiring: None,
        };
        assert_eq!(
            d.to_security_txt(),
            "Contact: mailto:security@example.com\nExpires: 2027-01-01T00:00:00Z\n\
             Encryption: https://example.com/pgp.txt\nPreferred-Languages: en\n\
             Policy: https://example.com/disclosure\n"
        );
    }
}
