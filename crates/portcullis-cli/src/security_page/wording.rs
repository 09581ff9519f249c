//! Small phrasing helpers shared by the section builders.

use std::time::Duration;

use portcullis::policy::Route;
use portcullis::policy::rate_limit::Rate;
use portcullis::policy::state_store::{OnStoreError, StateStore};

use super::model::{Line, code, text};

/// `10m`, `24h`, `1h 30m`, `500ms`: the units a policy is written in, hours the largest (a
/// policy says `24h`, not `1day`).
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if words.is_empty() {
        "0s".to_owned()
    } else {
        words.join(" ")
    }
}

/// `100 per 1m, burst 20`.
pub fn rate(r: &Rate) -> String {
    format!("{} per {}, burst {}", r.limit, duration(r.per), r.burst)
}

/// A route's paths as code spans; the default route has none of its own.
pub fn route_paths(route: &Route, is_default: bool) -> Line {
    if is_default {
        return vec![text("every path no route above matches")];
    }
    super::model::code_list(route.patterns.iter().map(|p| p.as_str().to_owned()), "none")
}

/// Where shared state lives, without ever showing a secret (a Redis URL may carry a password;
/// only a reference is shown).
pub fn store(store: &StateStore) -> Line {
    match store {
        StateStore::Memory => vec![text(
            "in memory: each gateway instance counts only the traffic it sees",
        )],
        StateStore::Redis(source) => {
            let mut line = vec![text("Redis, shared by every instance (")];
            line.extend(secret_source(source));
            line.push(text(")"));
            line
        }
    }
}

/// Where a secret or connection string comes from; literal values are never shown (a literal
/// Redis or database URL is named only by its scheme).
pub fn secret_source(source: &portcullis::policy::auth::SecretRef) -> Line {
    use portcullis::policy::auth::SecretRef;
    match source {
        SecretRef::Env(name) => vec![text("environment variable "), code(name)],
        SecretRef::File(path) => vec![text("file "), code(path.display().to_string())],
        SecretRef::Literal(value) => {
            let scheme = value.split(':').next().unwrap_or_default();
            if scheme == "sqlite" {
                // A SQLite path is not a secret (the compiler only accepts literals where the
                // value is not one); showing it tells the reviewer where keys live.
                vec![text("SQLite "), code(value)]
            } else {
                vec![
                    text("a "),
                    code(format!("{scheme}:")),
                    text(" URL in the policy"),
                ]
            }
        }
    }
}

/// What `on-store-error` means for a section; `open` says what fail-open does there.
pub fn on_store_error(mode: OnStoreError, open: &str, closed: Line) -> Line {
    match mode {
        OnStoreError::FailOpen => vec![code("fail-open"), text(format!(": {open}"))],
        OnStoreError::FailClosed => {
            let mut line = vec![code("fail-closed"), text(": ")];
            line.extend(closed);
            line
        }
    }
}

/// "a, b and c".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_policy() {
        let d = |s| duration(Duration::from_secs(s));
        assert_eq!(d(86_400), "24h");
        assert_eq!(d(600), "10m");
        assert_eq!(d(5_400), "1h 30m");
        assert_eq!(d(0), "0s");
        assert_eq!(duration(Duration::from_millis(1_500)), "1s 500ms");
    }

    #[test]
    fn and_list_joins() {
        let s = |v: &[&str]| and_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b", "c"]), "a, b and c");
    }
}
