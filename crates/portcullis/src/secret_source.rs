//! Reading a value the policy references: itself, an environment variable, or a file.
//!
//! Errors name the variable or the file, never the value, and no key path: callers prefix the
//! key path they were resolving (`auth.api-keys.store`, `…signing.key-encryption-key`).

use portcullis_policy::auth::SecretRef;

/// Why a referenced value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The value: a literal as written, an environment variable as set, a file's contents without
/// surrounding whitespace (files usually end with a newline).
pub fn read(reference: &SecretRef) -> Result<String, SourceError> {
    match reference {
        SecretRef::Literal(v) => Ok(v.clone()),
        SecretRef::Env(name) => {
            std::env::var(name).map_err(|_| SourceError::MissingEnv(name.clone()))
        }
        // The untrimmed copy is wiped: the value may be a key (callers wipe what they get).
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| zeroize::Zeroizing::new(s).trim().to_owned())
            .map_err(|source| SourceError::File {
                path: path.clone(),
                source,
            }),
    }
}
