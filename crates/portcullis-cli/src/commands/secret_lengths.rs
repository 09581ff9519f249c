//! `check`'s look at the secrets a policy references: an HMAC secret or admin token shorter
//! than 32 bytes can be brute-forced offline from one signed token or one captured request.
//!
//! The policy file only names where a secret lives (`{ env = … }`, `{ file = … }`), so the
//! policy compiler, which reads nothing but the file, cannot see its length. `check` reads the
//! ones that are available where it runs (a CI job usually has them) and says which it could
//! not read. `serve` refuses short secrets in production on its own; this tells you before the
//! deploy.

use portcullis::jwt_keys::MIN_SECRET_LEN;
use portcullis::policy::Policy;
use portcullis::policy::auth::{JwtKeyKind, SecretRef};
use zeroize::Zeroizing;

/// What `check` found about one referenced secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// Shorter than [`MIN_SECRET_LEN`]: a warning, an error in production.
    Short {
        at: String,
        source: String,
        len: usize,
    },
    /// Not available here (variable unset, file unreadable): not checked.
    Unavailable { at: String, source: String },
}

/// Every secret `policy` references by environment variable or file, read and measured.
pub fn check(policy: &Policy) -> Vec<Finding> {
    let mut refs: Vec<(String, &SecretRef)> = Vec::new();
    if let Some(jwt) = &policy.auth.jwt {
        for source in jwt.key_sources() {
            if let JwtKeyKind::Secret(reference) = &source.kind {
                refs.push((source.at.to_string(), reference));
            }
        }
    }
    if let Some(admin) = &policy.admin {
        refs.push(("admin.token".to_owned(), &admin.token));
    }
    refs.into_iter()
        .filter_map(|(at, reference)| measure(at, reference))
        .collect()
}

fn measure(at: String, reference: &SecretRef) -> Option<Finding> {
    let source = match reference {
        SecretRef::Env(name) => format!("environment variable `{name}`"),
        SecretRef::File(path) => format!("file {}", path.display()),
        // Refused by the compiler wherever a secret goes; nothing to read.
        SecretRef::Literal(_) => return None,
    };
    match portcullis::secret_source::read(reference) {
        Ok(value) => {
            let value = Zeroizing::new(value);
            (value.len() < MIN_SECRET_LEN).then(|| Finding::Short {
                at,
                source,
                len: value.len(),
            })
        }
        Err(_) => Some(Finding::Unavailable { at, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_missing_secrets() {
        let dir =
            std::env::temp_dir().join(format!("portcullis-secret-lengths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "tooshort\n").unwrap();
        let long = dir.join("long");
        std::fs::write(&long, "x".repeat(48)).unwrap();

        assert_eq!(
            measure("a".into(), &SecretRef::File(short.clone())),
            Some(Finding::Short {
                at: "a".into(),
                source: format!("file {}", short.display()),
                len: 8
            })
        );
        assert_eq!(measure("b".into(), &SecretRef::File(long)), None);
        assert!(matches!(
            measure("c".into(), &SecretRef::File(dir.join("absent"))),
            Some(Finding::Unavailable { .. })
        ));
        assert_eq!(measure("d".into(), &SecretRef::Literal("x".into())), None);
    }
}
