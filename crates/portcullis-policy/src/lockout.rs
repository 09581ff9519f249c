//! `[lockout]`: progressive lockout on login routes (seed 002: brute-force protection on
//! `/auth/password/*`, the magic-link and phone-code routes).
//!
//! ```toml
//! [lockout]
//! store = { env = "REDIS_URL" }      # or "memory" (the default)
//!
//! [lockout.rules.password]
//! account-field = "email"            # the JSON or form field naming the account
//! failures = 5                       # failed attempts within `window` that lock...
//! window = "15m"
//! lockout = "1m"                     # ...for this long, doubling with each lock...
//! max-lockout = "1h"                 # ...up to this
//! failure-statuses = [401, 403]      # the upstream's answers that count as a failure
//!
//! [[route]]
//! name = "password-login"
//! paths = ["/auth/password/*"]
//! lockout = "password"
//! ```
//!
//! Failures count per account (the field's value, trimmed and lower-cased) and per client IP;
//! a request while either is locked gets `429` without reaching the upstream. A success (2xx)
//! forgets the account's failures.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawSecret;
use crate::signing::parse_size;
use crate::state_store::{self, OnStoreError, StateStore};

/// `[lockout]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawLockout {
    pub store: Option<RawSecret>,
    pub on_store_error: Option<String>,
    pub max_entries: Option<i64>,
    pub rules: Option<BTreeMap<String, RawLockoutRule>>,
}

/// `[lockout.rules.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawLockoutRule {
    pub account_field: Option<String>,
    pub per_ip: Option<bool>,
    pub failures: Option<i64>,
    pub window: Option<String>,
    pub lockout: Option<String>,
    pub max_lockout: Option<String>,
    pub failure_statuses: Option<Vec<i64>>,
    pub max_body: Option<String>,
    pub reason: Option<String>,
}

/// `[lockout]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutSettings {
    pub store: StateStore,
    /// While the shared store cannot be reached: `FailOpen` counts in each instance's memory
    /// (the same rules, per instance); `FailClosed` refuses attempts with `503`.
    pub on_store_error: OnStoreError,
    /// Most accounts and addresses the in-memory store tracks at once.
    pub max_entries: usize,
    /// Every rule, sorted by name; routes refer to them by index.
    pub rules: Vec<LockoutRule>,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            store: StateStore::Memory,
            on_store_error: OnStoreError::FailOpen,
            max_entries: DEFAULT_MAX_ENTRIES,
            rules: Vec::new(),
        }
    }
}

/// One named lockout rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutRule {
    pub name: String,
    /// The top-level JSON or form field naming the account; `None`: per client IP only.
    pub account_field: Option<String>,
    /// Whether failures also count per client IP.
    pub per_ip: bool,
    pub failures: u32,
    pub window: Duration,
    pub lockout: Duration,
    pub max_lockout: Duration,
    pub failure_statuses: Vec<StatusCode>,
    /// The largest body read to find the account (`413` beyond).
    pub max_body: u64,
    pub reason: Option<String>,
}

pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
const DEFAULT_MAX_BODY: u64 = 64 * 1024;
/// Login bodies are small; the body is held in memory while the field is read.
const MAX_MAX_BODY: u64 = 1024 * 1024;

pub(crate) fn build(cx: &mut Cx, raw: Option<RawLockout>) -> LockoutSettings {
    let at = KeyPath::root().key("lockout");
    let Some(raw) = raw else {
        return LockoutSettings::default();
    };
    let store = state_store::build(cx, &at.key("store"), raw.store);
    let on_store_error = state_store::on_store_error(
        cx,
        &at.key("on-store-error"),
        raw.on_store_error.as_deref(),
        &store,
    );
    let max_entries = state_store::capacity(
        cx,
        &at.key("max-entries"),
        raw.max_entries,
        DEFAULT_MAX_ENTRIES,
    );
    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, r)| rule(cx, &at.key("rules").key(&name), name, r))
        .collect();
    LockoutSettings {
        store,
        on_store_error,
        max_entries,
        rules,
    }
}

fn rule(cx: &mut Cx, at: &KeyPath, name: String, raw: RawLockoutRule) -> Option<LockoutRule> {
    let account_field = raw.account_field.filter(|f| {
        let ok = !f.trim().is_empty();
        if !ok {
            cx.error(at.key("account-field"), "`account-field` cannot be empty");
        }
        ok
    });
    let per_ip = raw.per_ip.unwrap_or(true);
    if account_field.is_none() && !per_ip {
        cx.error(
            at.key("per-ip"),
            "with neither `account-field` nor `per-ip`, nothing is counted",
        );
    }
    let failures = match raw.failures {
        None => 5,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(n) => {
            cx.error(
                at.key("failures"),
                format!("{n} is out of range (1 to 1000)"),
            );
            5
        }
    };
    let window = cx.duration(
        at.key("window"),
        raw.window.as_deref(),
        Duration::from_secs(15 * 60),
    );
    let lockout = cx.duration(
        at.key("lockout"),
        raw.lockout.as_deref(),
        Duration::from_secs(60),
    );
    let max_lockout = cx.duration(
        at.key("max-lockout"),
        raw.max_lockout.as_deref(),
        Duration::from_secs(3600).max(lockout),
    );
    if max_lockout < lockout {
        cx.error(
            at.key("max-lockout"),
            "`max-lockout` is shorter than `lockout`, the first lock",
        );
    }
    let failure_statuses = match raw.failure_statuses {
        None => vec![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN],
        Some(list) if list.is_empty() => {
            cx.error(
                at.key("failure-statuses"),
                "`failure-statuses = []` counts nothing as a failure",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, &code)| {
                let status = u16::try_from(code)
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .and_then(|c| StatusCode::from_u16(c).ok());
                if status.is_none() {
                    cx.diags.push(
                        Diagnostic::error(
                            at.key("failure-statuses").index(i),
                            format!("{code} is not an error status (400 to 599)"),
                        )
                        .with_help("a failed login is an error answer, e.g. 401 or 403"),
                    );
                }
                status
            })
            .collect(),
    };
    let max_body = match raw.max_body.as_deref() {
        None => DEFAULT_MAX_BODY,
        Some(text) => cx
            .parse(&at.key("max-body"), text, parse_size)
            .unwrap_or(DEFAULT_MAX_BODY),
    };
    if max_body > MAX_MAX_BODY {
        cx.error(
            at.key("max-body"),
            "at most 1 MiB: the body is held in memory while the account field is read",
        );
    }
    Some(LockoutRule {
        name,
        account_field,
        per_ip,
        failures,
        window,
        lockout,
        max_lockout,
        failure_statuses,
        max_body,
        reason: raw.reason,
    })
}

/// A route's `lockout = "NAME"`, as an index into the rules.
pub(crate) fn route_rule(
    cx: &mut Cx,
    at: &KeyPath,
    name: Option<String>,
    settings: &LockoutSettings,
) -> Option<usize> {
    let name = name?;
    let found = settings.rules.iter().position(|r| r.name == name);
    if found.is_none() {
        let known: Vec<&str> = settings.rules.iter().map(|r| r.name.as_str()).collect();
        cx.diags.push(
            Diagnostic::error(at.clone(), format!("no lockout rule named `{name}`")).with_help(
                if known.is_empty() {
                    "define it as a `[lockout.rules.NAME]` table".to_owned()
                } else {
                    format!("defined: {}", known.join(", "))
                },
            ),
        );
    }
    found
}

/// Warns about rules no route uses.
pub(crate) fn unused(cx: &mut Cx, settings: &LockoutSettings, used: &[Option<usize>]) {
    for (i, rule) in settings.rules.iter().enumerate() {
        if !used.contains(&Some(i)) {
            cx.diags.push(
                Diagnostic::warning(
                    KeyPath::root().key("lockout").key("rules").key(&rule.name),
                    format!("lockout rule `{}` is not used by any route", rule.name),
                )
                .with_help("attach it to the login routes with `lockout = \"NAME\"`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompileOptions, Severity, load_str};

    fn compile(rest: &str) -> Result<crate::Compiled, crate::Diagnostics> {
        let text = format!("environment = \"development\"\n{rest}");
        load_str("lockout.toml", &text, &CompileOptions::default())
    }

    fn diags(d: &crate::Diagnostics) -> Vec<(String, Severity, Option<usize>)> {
        d.iter()
            .map(|d| (d.path.to_string(), d.severity, d.line_col.map(|(l, _)| l)))
            .collect()
    }

    #[test]
    fn rules_and_routes_compile_with_defaults() {
        let policy = compile(
            "[lockout]\nstore = { env = \"REDIS_URL\" }\n\
             [lockout.rules.password]\naccount-field = \"email\"\nfailures = 3\nlockout = \"30s\"\n\
             [lockout.rules.codes]\nper-ip = true\nfailure-statuses = [400, 401]\nmax-body = \"4 KiB\"\n\
             [[route]]\nname = \"login\"\npaths = [\"/auth/password/*\"]\nlockout = \"password\"\n\
             [[route]]\nname = \"codes\"\npaths = [\"/auth/phone/*\"]\nlockout = \"codes\"\n",
        )
        .unwrap()
        .policy;
        let settings = &policy.lockout;
        assert!(settings.store.is_shared());
        let names: Vec<&str> = settings.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["codes", "password"]);
        let password = &settings.rules[1];
        assert_eq!(password.account_field.as_deref(), Some("email"));
        assert!(password.per_ip);
        assert_eq!(password.failures, 3);
        assert_eq!(password.lockout, Duration::from_secs(30));
        assert_eq!(password.max_lockout, Duration::from_secs(3600));
        assert_eq!(password.window, Duration::from_secs(900));
        assert_eq!(
            password.failure_statuses,
            [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]
        );
        assert_eq!(password.max_body, 64 * 1024);
        let codes = &settings.rules[0];
        assert_eq!(codes.account_field, None);
        assert_eq!(
            codes.failure_statuses,
            [StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED]
        );
        assert_eq!(codes.max_body, 4096);
        assert_eq!(policy.routes[0].lockout, Some(1));
        assert_eq!(policy.routes[1].lockout, Some(0));
        assert_eq!(policy.default_route.lockout, None);
    }

    #[test]
    fn mistakes_are_reported_with_key_paths_and_lines() {
        let err = compile(
            "[lockout]\non-store-error = \"sometimes\"\n\
             [lockout.rules.a]\naccount-field = \"\"\nper-ip = false\nfailures = 0\n\
             [lockout.rules.b]\nlockout = \"2h\"\nmax-lockout = \"1h\"\nfailure-statuses = [200]\nmax-body = \"2 MiB\"\n\
             [[route]]\nname = \"r\"\npaths = [\"/r\"]\nlockout = \"nope\"\n",
        )
        .unwrap_err();
        let d = diags(&err);
        for (path, line) in [
            ("lockout.on-store-error", 3),
            ("lockout.rules.a.account-field", 5),
            ("lockout.rules.a.per-ip", 6),
            ("lockout.rules.a.failures", 7),
            ("lockout.rules.b.max-lockout", 10),
            ("lockout.rules.b.failure-statuses[0]", 11),
            ("lockout.rules.b.max-body", 12),
            ("route[0].lockout", 16),
        ] {
            assert!(
                d.contains(&(path.into(), Severity::Error, Some(line))),
                "{path}:{line} in {d:?}"
            );
        }
    }

    #[test]
    fn a_fail_mode_for_the_memory_store_warns() {
        let compiled = compile(
            "[lockout]\non-store-error = \"fail-closed\"\n\
             [lockout.rules.login]\naccount-field = \"user\"\n\
             [[route]]\nname = \"login\"\npaths = [\"/login\"]\nlockout = \"login\"\n",
        )
        .unwrap();
        let d = diags(&compiled.warnings);
        assert!(
            d.contains(&("lockout.on-store-error".into(), Severity::Warning, Some(3))),
            "{d:?}"
        );
    }

    #[test]
    fn an_unused_rule_warns() {
        let compiled = compile("[lockout.rules.idle]\naccount-field = \"user\"\n").unwrap();
        let d = diags(&compiled.warnings);
        assert!(
            d.contains(&("lockout.rules.idle".into(), Severity::Warning, Some(2))),
            "{d:?}"
        );
    }
}
