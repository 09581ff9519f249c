//! `[admin]`: the admin HTTP API (API keys and tenants over HTTP), on a listener of its own.
//!
//! The admin API can mint keys for any tenant, so the table is strict where a mistake would
//! expose it:
//!
//! - its token is always a reference (`{ env = ... }` / `{ file = ... }`): a literal would put
//!   the credential in a file that is reviewed, copied and committed;
//! - it listens on loopback unless the policy says otherwise, and in production a non-loopback
//!   address is refused without `allow-remote = true`, so exposing it is a decision a reviewer
//!   sees, not a typo;
//! - it manages the `[auth.api-keys]` store, so it needs one.
//!
//! The token's length cannot be checked here (its value is only known where the gateway runs):
//! the gateway checks it when it starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use crate::Environment;
use crate::auth::{AuthSettings, SecretRef};
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawSecret;

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<RawSecret>,
    pub allow_remote: Option<bool>,
}

/// The admin API's listener and credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where the admin API listens; loopback unless the policy allows remote access.
    pub listen: SocketAddr,
    /// The bearer token callers present: always `Env` or `File`, never `Literal`.
    pub token: SecretRef,
    /// Whether a non-loopback `listen` was deliberately allowed.
    pub allow_remote: bool,
}

impl AdminSettings {
    /// The default admin address: loopback, next to the gateway's default 8080.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);
}

/// Whether `addr` is reachable from this host only (`::ffff:127.0.0.1` counts).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

pub(crate) fn build(
    cx: &mut Cx,
    raw: Option<RawAdmin>,
    environment: Environment,
    auth: &AuthSettings,
    server_listen: SocketAddr,
) -> Option<AdminSettings> {
    let raw = raw?;
    let path = KeyPath::root().key("admin");
    if auth.api_keys.is_none() {
        cx.diags.push(
            Diagnostic::error(
                path.clone(),
                "the admin API manages API keys: it needs an `[auth.api-keys]` table",
            )
            .with_help("add `[auth.api-keys]` (it names the key store), or remove `[admin]`"),
        );
    }
    let listen = raw
        .listen
        .as_deref()
        .and_then(|l| {
            cx.parse(&path.key("listen"), l, |v| {
                SocketAddr::from_str(v).map_err(|_| {
                    format!(
                        "`{v}` is not a socket address; write e.g. \"127.0.0.1:9090\" or \"[::1]:9090\""
                    )
                })
            })
        })
        .unwrap_or(AdminSettings::DEFAULT_LISTEN);
    let allow_remote = raw.allow_remote.unwrap_or(false);
    check_listen(cx, &path, listen, allow_remote, environment, server_listen);
    let token = match raw.token {
        None => {
            cx.missing(
                path.key("token"),
                "missing key `token`: the admin API needs its own credential",
            );
            None
        }
        Some(raw) => token_ref(cx, &path.key("token"), raw),
    };
    Some(AdminSettings {
        listen,
        token: token?,
        allow_remote,
    })
}

fn check_listen(
    cx: &mut Cx,
    path: &KeyPath,
    listen: SocketAddr,
    allow_remote: bool,
    environment: Environment,
    server_listen: SocketAddr,
) {
    let at = path.key("listen");
    if listen.port() != 0 && listen == server_listen {
        cx.error(
            at.clone(),
            format!(
                "`{listen}` is also `server.listen`: the admin API needs a listener of its own"
            ),
        );
    }
    if is_loopback(&listen) {
        return;
    }
    if allow_remote {
        if environment == Environment::Production {
            cx.diags.push(
                Diagnostic::warning(
                    at,
                    format!("the admin API listens on `{listen}` without TLS"),
                )
                .with_help("its token crosses the network in clear text: keep the address on a private network or behind a TLS-terminating proxy"),
            );
        }
        return;
    }
    let message = format!("the admin API listens on `{listen}`, which is not a loopback address");
    let help = "anyone who can reach it may try the admin token; keep it on 127.0.0.1 or [::1], or set `allow-remote = true` if that is intended";
    let diag = if environment == Environment::Production {
        Diagnostic::error(at, message)
    } else {
        Diagnostic::warning(at, message)
    };
    cx.diags.push(diag.with_help(help));
}

/// `{ env = "NAME" }` or `{ file = "PATH" }`; a literal is refused.
fn token_ref(cx: &mut Cx, at: &KeyPath, raw: RawSecret) -> Option<SecretRef> {
    match raw {
        // The value is not repeated in the diagnostic: it is the secret.
        RawSecret::Literal(_) => {
            cx.diags.push(
                Diagnostic::error(at.clone(), "a secret in the policy file: reference the admin token instead")
                    .with_help("write `token = { env = \"PORTCULLIS_ADMIN_TOKEN\" }` (or `{ file = \"/run/secrets/admin-token\" }`), and rotate the token that was in the file"),
            );
            None
        }
        RawSecret::Reference(r) => match (r.env, r.file) {
            (Some(env), None) if !env.is_empty() => Some(SecretRef::Env(env)),
            (None, Some(file)) if !file.is_empty() => Some(SecretRef::File(PathBuf::from(file))),
            _ => {
                cx.error(
                    at.clone(),
                    "write exactly one of `env = \"NAME\"` or `file = \"PATH\"`",
                );
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::{CompileOptions, Severity, load_str};

    use super::*;

    const KEYS: &str = "[auth.api-keys]\nstore = \"sqlite:keys.db\"\n";

    fn compile(environment: &str, rest: &str) -> Result<crate::Compiled, crate::Diagnostics> {
        let text = format!("environment = \"{environment}\"\n{rest}");
        load_str("admin.toml", &text, &CompileOptions::default())
    }

    /// (key path, severity, message) of every diagnostic about `admin`.
    fn admin_diagnostics(diags: &crate::Diagnostics) -> Vec<(String, Severity, String)> {
        diags
            .iter()
            .filter(|d| d.path.to_string().starts_with("admin"))
            .map(|d| (d.path.to_string(), d.severity, d.message.clone()))
            .collect()
    }

    #[test]
    fn defaults_to_loopback_9090() {
        let policy = compile(
            "production",
            &format!("{KEYS}[admin]\ntoken = {{ env = \"PORTCULLIS_ADMIN_TOKEN\" }}\n"),
        )
        .unwrap()
        .policy;
        let admin = policy.admin.unwrap();
        assert_eq!(admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(
            admin.token,
            SecretRef::Env("PORTCULLIS_ADMIN_TOKEN".to_owned())
        );
        assert!(!admin.allow_remote);
        assert!(compile("test", KEYS).unwrap().policy.admin.is_none());
    }

    #[test]
    fn a_literal_token_is_refused_without_being_quoted() {
        let err = compile(
            "development",
            &format!("{KEYS}[admin]\ntoken = \"hunter2-hunter2\"\n"),
        )
        .unwrap_err();
        let found = admin_diagnostics(&err);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "admin.token");
        assert!(found[0].2.contains("a secret in the policy file"));
        // The message never quotes it (the rendered source excerpt, like any excerpt, does).
        assert!(!found[0].2.contains("hunter2"), "{found:?}");
    }

    #[test]
    fn token_is_required_and_a_reference_names_one_source() {
        let err = compile("test", &format!("{KEYS}[admin]\n")).unwrap_err();
        assert_eq!(admin_diagnostics(&err)[0].0, "admin.token");
        let err = compile(
            "test",
            &format!("{KEYS}[admin]\ntoken = {{ env = \"A\", file = \"/b\" }}\n"),
        )
        .unwrap_err();
        assert!(admin_diagnostics(&err)[0].2.contains("exactly one"));
        let file = compile(
            "test",
            &format!("{KEYS}[admin]\ntoken = {{ file = \"/run/secrets/admin\" }}\n"),
        )
        .unwrap();
        assert_eq!(
            file.policy.admin.unwrap().token,
            SecretRef::File("/run/secrets/admin".into())
        );
    }

    #[test]
    fn api_keys_are_required() {
        let err = compile("test", "[admin]\ntoken = { env = \"T\" }\n").unwrap_err();
        let found = admin_diagnostics(&err);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "admin");
        assert!(found[0].2.contains("[auth.api-keys]"));
    }

    #[test]
    fn a_remote_listener_is_an_error_in_production_only_unless_allowed() {
        let remote = |environment: &str, extra: &str| {
            compile(
                environment,
                &format!(
                    "{KEYS}[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = {{ env = \"T\" }}\n{extra}"
                ),
            )
        };
        let err = remote("production", "").unwrap_err();
        let found = admin_diagnostics(&err);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1),
            ("admin.listen", Severity::Error)
        );
        let warned = remote("test", "").unwrap();
        let found = admin_diagnostics(&warned.warnings);
        assert_eq!(
            (found[0].0.as_str(), found[0].1),
            ("admin.listen", Severity::Warning)
        );
        // Allowed: compiles; production still hears that there is no TLS.
        let allowed = remote("production", "allow-remote = true\n").unwrap();
        assert!(allowed.policy.admin.unwrap().allow_remote);
        assert!(admin_diagnostics(&allowed.warnings)[0].2.contains("TLS"));
        assert!(
            admin_diagnostics(&remote("test", "allow-remote = true\n").unwrap().warnings)
                .is_empty()
        );
        // Loopback in either family, and IPv4-mapped loopback, are fine.
        for listen in ["[::1]:9090", "[::ffff:127.0.0.1]:9090", "127.0.0.1:0"] {
            let ok = compile(
                "production",
                &format!("{KEYS}[admin]\nlisten = \"{listen}\"\ntoken = {{ env = \"T\" }}\n"),
            )
            .unwrap();
            assert!(admin_diagnostics(&ok.warnings).is_empty(), "{listen}");
        }
    }

    #[test]
    fn listen_must_parse_and_differ_from_the_gateway() {
        let err = compile(
            "test",
            &format!("{KEYS}[admin]\nlisten = \"localhost:9090\"\ntoken = {{ env = \"T\" }}\n"),
        )
        .unwrap_err();
        assert!(
            admin_diagnostics(&err)[0]
                .2
                .contains("not a socket address")
        );
        let err = compile(
            "test",
            &format!(
                "[server]\nlisten = \"127.0.0.1:9090\"\n{KEYS}[admin]\ntoken = {{ env = \"T\" }}\n"
            ),
        )
        .unwrap_err();
        assert!(admin_diagnostics(&err)[0].2.contains("server.listen"));
        let err = compile(
            "test",
            &format!("{KEYS}[admin]\ntoken = {{ env = \"T\" }}\nport = 1\n"),
        )
        .unwrap_err();
        assert_eq!(admin_diagnostics(&err)[0].2, "unknown key");
    }
}
