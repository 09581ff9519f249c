//! The deployment environment a policy is compiled for.

use std::fmt;
use std::str::FromStr;

/// `development`, `test` or `production`. Defaults differ per environment: HSTS and safe error
/// bodies in production, readable logs in development, and production refuses to start on
/// settings that are only acceptable while developing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 3] = [Self::Development, Self::Test, Self::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a name that is not an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment `{0}`: expected development, test or production")]
pub struct UnknownEnvironment(pub String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEnvironment(s.to_owned()))
    }
}
