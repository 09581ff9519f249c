//! `check`'s look at the secrets a policy references: an HMAC secret or admin token shorter
//! than 32 bytes can be brute-forced offline from one signed token or one captured request.
//!
//! The policy file only names where a secret lives (`{ env = … }`, `{ file = … }`), so the
//! policy compiler, which reads nothing but the file, cannot see its length. `check` reads the
//! ones that are available where it runs (a CI job usually has them) and says which it could
//! not read. `serve` refuses short secrets in production on its own; this tells you before the
//! deploy.

use portcullis::admin::read_token;
use portcullis::jwt_keys::{MIN_SECRET_LEN, read_secret};
use portcullis::policy::Policy;
use portcullis::policy::auth::{JwtKeyKind, SecretRef};

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

/// Every secret `policy` references by environment variable or file, read by the gateway's own
/// reader for it (so trimming and encoding are judged as `serve` judges them) and measured.
pub fn check(policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(jwt) = &policy.auth.jwt {
        for source in jwt.key_sources() {
            if let JwtKeyKind::Secret(reference) = &source.kind {
                let at = source.at.to_string();
                let len = read_secret(&at, reference).ok().map(|s| s.len());
                out.extend(measure(at, reference, len));
            }
        }
    }
    if let Some(admin) = &policy.admin {
        let len = read_token(&admin.token).ok().map(|t| t.len());
        out.extend(measure("admin.token".to_owned(), &admin.token, len));
    }
    out
}

/// What a secret of `len` bytes (`None`: it could not be read) at `at` is worth reporting.
fn measure(at: String, reference: &SecretRef, len: Option<usize>) -> Option<Finding> {
    let source = match reference {
        SecretRef::Env(name) => format!("environment variable `{name}`"),
        SecretRef::File(path) => format!("file {}", path.display()),
        // Refused by the compiler wherever a secret goes; nothing to read.
        SecretRef::Literal(_) => return None,
    };
    match len {
        Some(len) if len < MIN_SECRET_LEN => Some(Finding::Short { at, source, len }),
        Some(_) => None,
        None => Some(Finding::Unavailable { at, source }),
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

        let jwt = |reference: SecretRef| {
            let len = read_secret("k", &reference).ok().map(|s| s.len());
            measure("k".into(), &reference, len)
        };
        // The file's final newline is not part of the secret, as for the gateway.
        assert_eq!(
            jwt(SecretRef::File(short.clone())),
            Some(Finding::Short {
                at: "k".into(),
                source: format!("file {}", short.display()),
                len: 8
            })
        );
        assert_eq!(jwt(SecretRef::File(long)), None);
        assert!(matches!(
            jwt(SecretRef::File(dir.join("absent"))),
            Some(Finding::Unavailable { .. })
        ));
        assert_eq!(jwt(SecretRef::Literal("x".into())), None);
    }
}
