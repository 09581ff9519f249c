//! Portcullis policy files: one reviewable TOML file that declares an HTTP API's security
//! posture, parsed and validated into a [`Policy`].
//!
//! This crate is pure: no async runtime, no middleware. Loading reports *every* problem at
//! once, each with its key path, file, line and column:
//!
//! ```
//! use portcullis_policy::{load_str, CompileOptions};
//!
//! let src = r#"
//! environment = "production"
//!
//! [[route]]
//! name = "account"
//! paths = ["/v1/account/*"]
//! cache-control = "no-store, private"
//! "#;
//! let compiled = load_str("policy.toml", src, &CompileOptions::default()).unwrap();
//! let (_, route) = compiled.policy.match_route("/v1/account/settings");
//! assert_eq!(route.name, "account");
//!
//! let broken = "environment = \"production\"\n[server]\nlisten = 8080\n[upstrem]\nurl = \"x\"\n";
//! let errors = load_str("broken.toml", broken, &CompileOptions::default()).unwrap_err();
//! assert_eq!(errors.error_count(), 2);
//! ```

pub mod admin;
pub mod auth;
mod compile;
pub mod cookies;
pub mod cors;
pub mod csrf;
mod diagnostic;
mod disclosure;
mod environment;
pub mod headers;
pub mod ip_filter;
mod key_path;
mod lints;
pub mod lockout;
mod normalize;
pub mod origins;
mod policy;
pub mod rate_limit;
mod raw;
mod route;
pub mod signing;
pub mod state_store;

use std::path::{Path, PathBuf};

pub use compile::{CompileOptions, Compiled, parse_upstream_url};
pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use disclosure::Disclosure;
pub use environment::{Environment, UnknownEnvironment};
pub use headers::{HeaderRule, NotSet};
pub use key_path::{KeyPath, Segment};
pub use normalize::{NormalizedPath, PathError, normalize_path};
pub use policy::*;
pub use route::{PathPattern, PatternError};

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy {} has {} error(s)", .0.origin().display(), .0.error_count())]
    Invalid(Diagnostics),
}

/// Reads and compiles a policy file.
pub fn load_file(path: &Path, options: &CompileOptions) -> Result<Compiled, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    compile::compile(path, &text, options).map_err(LoadError::Invalid)
}

/// Compiles policy text; `origin` names it in diagnostics.
pub fn load_str(
    origin: impl AsRef<Path>,
    text: &str,
    options: &CompileOptions,
) -> Result<Compiled, Diagnostics> {
    compile::compile(origin.as_ref(), text, options)
}
