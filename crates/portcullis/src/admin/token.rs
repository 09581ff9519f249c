//! The admin credential: resolved once at start-up, kept only as a SHA-256, compared in
//! constant time.
//!
//! Keeping the digest instead of the token means the process holds no copy of the secret after
//! start-up, and comparing two fixed-size digests with `subtle` reveals neither the token's
//! bytes nor its length through timing.

use std::fmt;
use std::path::PathBuf;

use portcullis_policy::Environment;
use portcullis_policy::auth::SecretRef;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The shortest token production accepts: 256 bits of base64 or hex is longer still.
pub const MIN_PRODUCTION_LEN: usize = 32;

/// Why the admin token cannot be used. Names the key path, never the value.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin.token: environment variable `{0}` is not set (or not UTF-8)")]
    MissingEnv(String),
    #[error("admin.token: cannot read {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "admin.token: a literal token is not accepted; reference it with `{{ env = \"NAME\" }}` or `{{ file = \"PATH\" }}`"
    )]
    Literal,
    #[error("admin.token is empty")]
    Empty,
    #[error(
        "admin.token is {len} bytes; production needs at least {MIN_PRODUCTION_LEN} (e.g. `openssl rand -base64 32`)"
    )]
    TooShort { len: usize },
}

/// The admin API's bearer token, as a digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The token the policy references, as [`AdminToken::resolve`] reads it: surrounding
/// whitespace (a file's final newline) removed, nothing else checked. `portcullis check` measures
/// it with this, so it judges the very bytes the gateway would use.
pub fn read(reference: &SecretRef) -> Result<Zeroizing<String>, TokenError> {
    let raw = Zeroizing::new(match reference {
        SecretRef::Literal(_) => return Err(TokenError::Literal),
        SecretRef::Env(name) => {
            std::env::var(name).map_err(|_| TokenError::MissingEnv(name.clone()))?
        }
        SecretRef::File(path) => {
            std::fs::read_to_string(path).map_err(|source| TokenError::File {
                path: path.clone(),
                source,
            })?
        }
    });
    Ok(Zeroizing::new(raw.trim().to_owned()))
}

impl AdminToken {
    /// Reads the token the policy references. Surrounding whitespace (a file's final newline)
    /// is removed. Production refuses a token shorter than [`MIN_PRODUCTION_LEN`] bytes;
    /// elsewhere a short token starts with a warning, and an empty one never does.
    pub fn resolve(reference: &SecretRef, environment: Environment) -> Result<Self, TokenError> {
        let token = read(reference)?;
        let token = token.as_str();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if token.len() < MIN_PRODUCTION_LEN {
            if environment == Environment::Production {
                return Err(TokenError::TooShort { len: token.len() });
            }
            tracing::warn!(
                len = token.len(),
                "admin.token is shorter than {MIN_PRODUCTION_LEN} bytes: production refuses it"
            );
        }
        Ok(Self::new(token))
    }

    /// A token from its value (tests, and library users who hold it already).
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token, in time independent of both values.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A token file that lives as long as the returned directory.
    fn file(contents: &str) -> (tempfile::TempDir, SecretRef) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, contents).unwrap();
        (dir, SecretRef::File(path))
    }

    #[test]
    fn matches_only_the_token() {
        let token = AdminToken::new("correct horse battery staple");
        assert!(token.matches(b"correct horse battery staple"));
        assert!(!token.matches(b"correct horse battery stapl"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn production_refuses_a_short_token_without_quoting_it() {
        let (_guard, reference) = file("short-but-secret\n");
        let err = AdminToken::resolve(&reference, Environment::Production).unwrap_err();
        assert!(matches!(err, TokenError::TooShort { len: 16 }), "{err}");
        assert!(err.to_string().starts_with("admin.token"), "{err}");
        assert!(!err.to_string().contains("short-but-secret"), "{err}");
        // Elsewhere it starts (with a warning), and the final newline is not part of it.
        let token = AdminToken::resolve(&reference, Environment::Test).unwrap();
        assert!(token.matches(b"short-but-secret"));
        let (_guard, long) = file(&"x".repeat(MIN_PRODUCTION_LEN));
        assert!(AdminToken::resolve(&long, Environment::Production).is_ok());
    }

    #[test]
    fn empty_missing_and_literal_tokens_are_refused_everywhere() {
        let (_guard, empty) = file("  \n");
        assert!(matches!(
            AdminToken::resolve(&empty, Environment::Development),
            Err(TokenError::Empty)
        ));
        let missing = SecretRef::Env("PORTCULLIS_TEST_UNSET_ADMIN_TOKEN".to_owned());
        let err = AdminToken::resolve(&missing, Environment::Development).unwrap_err();
        assert!(
            err.to_string()
                .contains("PORTCULLIS_TEST_UNSET_ADMIN_TOKEN")
        );
        assert!(matches!(
            AdminToken::resolve(&SecretRef::Literal("x".repeat(40)), Environment::Test),
            Err(TokenError::Literal)
        ));
    }
}
