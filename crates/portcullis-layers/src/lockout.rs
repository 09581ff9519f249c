//! Progressive lockout on login routes: failed attempts counted per account and per client IP,
//! and `429` with `Retry-After`, without reaching the upstream, while either is locked.
//!
//! On a route with a [`LockoutRule`]:
//! 1. The account is read from the request body's top-level field (JSON, or a form), the body
//!    read whole up to the rule's limit (`413` beyond) and passed on unchanged. It is trimmed and
//!    lower-cased, and only its SHA-256 is ever stored: the counters hold no e-mail addresses.
//! 2. If the account or the client IP is locked: `429 locked_out`.
//! 3. Otherwise the request goes on, and the upstream's answer is recorded: a status the rule
//!    counts as a failure (401 and 403 by default) is one failure for the account and for the
//!    IP; a success (2xx) forgets the account's failures (not the IP's: an attacker's own
//!    account must not wipe the count of the addresses it guesses from).
//!
//! The counting (a lock after `failures` failures within `window`, each further lock twice as
//! long up to a cap) is a [`LockoutStore`] from `portcullis_store`: in memory, or in Redis for
//! many instances. While the store cannot answer, [`StoreFailure`] decides: attempts go through
//! unchecked and uncounted (`Open`), or are refused with `503 lockout_unavailable` (`Closed`).
//! Both are logged under `portcullis::lockout` and counted in
//! `portcullis_lockout_store_errors_total`; locks in `portcullis_lockouts_total{rule}`, refused
//! attempts in `portcullis_lockout_refused_total{rule}`.
//!
//! It runs inside the authentication layer, before the credential is checked
//! ([`AuthLayer::lockout`](crate::auth::AuthLayer::lockout)): login routes rarely take
//! credentials, and a locked client should not cost a key lookup.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use portcullis_store::{LockoutPolicy, LockoutStore};
use sha2::{Digest, Sha256};

use crate::client_ip::ClientIp;
use crate::rejection::Rejection;

/// What happens to attempts while the lockout store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Through, unchecked and uncounted.
    Open,
    /// `503 lockout_unavailable`.
    Closed,
}

/// One login route's rule.
#[derive(Debug, Clone)]
pub struct LockoutRule {
    name: Arc<str>,
    account_field: Option<String>,
    per_ip: bool,
    policy: LockoutPolicy,
    failure_statuses: Vec<StatusCode>,
    max_body: usize,
}

impl LockoutRule {
    /// Counts per client IP, on 401 and 403, reading at most 64 KiB of body.
    pub fn new(name: impl Into<Arc<str>>, policy: LockoutPolicy) -> Self {
        Self {
            name: name.into(),
            account_field: None,
            per_ip: true,
            policy,
            failure_statuses: vec![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN],
            max_body: 64 * 1024,
        }
    }

    /// Also counts per account, named by this top-level JSON or form field.
    pub fn account_field(mut self, field: impl Into<String>) -> Self {
        self.account_field = Some(field.into());
        self
    }

    /// Whether failures count per client IP too (default true).
    pub fn per_ip(mut self, per_ip: bool) -> Self {
        self.per_ip = per_ip;
        self
    }

    /// The upstream statuses that are a failed attempt.
    pub fn failure_statuses(mut self, statuses: Vec<StatusCode>) -> Self {
        self.failure_statuses = statuses;
        self
    }

    /// The largest body read to find the account.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

/// Every route's rule (by route index, the default route last) and the store.
#[derive(Debug)]
pub struct LockoutGuard {
    store: Arc<dyn LockoutStore>,
    per_route: Vec<Option<Arc<LockoutRule>>>,
    on_store_error: StoreFailure,
}

/// An attempt under way: the keys its outcome is recorded against.
#[derive(Debug)]
pub struct Attempt {
    rule: Arc<LockoutRule>,
    account: Option<Vec<u8>>,
    ip: Option<Vec<u8>>,
}

impl LockoutGuard {
    pub fn new(
        store: Arc<dyn LockoutStore>,
        per_route: Vec<Option<LockoutRule>>,
        on_store_error: StoreFailure,
    ) -> Self {
        Self {
            store,
            per_route: per_route.into_iter().map(|r| r.map(Arc::new)).collect(),
            on_store_error,
        }
    }

    /// Route `index`'s rule, if it is a login route.
    pub fn rule(&self, index: usize) -> Option<Arc<LockoutRule>> {
        self.per_route.get(index).cloned().flatten()
    }

    /// Reads the account from the body, and refuses the request if the account or the client
    /// is locked. `Ok` gives the request back (its body intact) and the attempt to
    /// [`record`](Self::record) once the upstream has answered (`None`: nothing to record).
    pub async fn admit<B, ResBody>(
        &self,
        rule: Arc<LockoutRule>,
        req: Request<B>,
    ) -> Result<(Request<B>, Option<Attempt>), Response<ResBody>>
    where
        B: Body<Data = Bytes> + From<Bytes>,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
        ResBody: Default,
    {
        let (parts, body) = req.into_parts();
        let (account, body) = match &rule.account_field {
            None => (None, body),
            Some(field) => {
                let bytes = match Limited::new(body, rule.max_body).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                        return Err(Rejection::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            "the request body is too large",
                        )
                        .with_detail(format!(
                            "a login body may have at most {} bytes",
                            rule.max_body
                        ))
                        .into_response());
                    }
                    Err(e) => {
                        return Err(Rejection::bad_request("the request body could not be read")
                            .with_detail(e.to_string())
                            .into_response());
                    }
                };
                let account = account(&parts.headers, &bytes, field)
                    .map(|a| key(&rule.name, "account", &Sha256::digest(a.as_bytes())));
                (account, B::from(bytes))
            }
        };
        let ip = rule.per_ip.then(|| {
            let ip = parts
                .extensions
                .get::<ClientIp>()
                .map_or_else(|| "unknown".to_owned(), |ip| ip.bucket.to_string());
            key(&rule.name, "ip", ip.as_bytes())
        });
        let req = Request::from_parts(parts, body);
        let keys: Vec<&[u8]> = account.iter().chain(ip.iter()).map(Vec::as_slice).collect();
        if keys.is_empty() {
            return Ok((req, None));
        }
        match self.store.locked(&keys).await {
            Ok(None) => Ok((
                req,
                Some(Attempt {
                    rule: rule.clone(),
                    account,
                    ip,
                }),
            )),
            Ok(Some(remaining)) => {
                metrics::counter!("portcullis_lockout_refused_total", "rule" => rule.name.to_string())
                    .increment(1);
                tracing::info!(
                    target: "portcullis::lockout",
                    rule = %rule.name,
                    retry_after_secs = remaining.as_secs(),
                    "attempt refused: locked out"
                );
                Err(locked_out(remaining).into_response())
            }
            Err(e) => {
                metrics::counter!("portcullis_lockout_store_errors_total").increment(1);
                match self.on_store_error {
                    StoreFailure::Open => {
                        tracing::error!(target: "portcullis::lockout", error = %e, "lockout store failed; attempt let through unchecked (fail-open)");
                        Ok((req, None))
                    }
                    StoreFailure::Closed => {
                        tracing::error!(target: "portcullis::lockout", error = %e, "lockout store failed; attempt refused (fail-closed)");
                        Err(Rejection::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "lockout_unavailable",
                            "login attempts cannot be checked right now",
                        )
                        .with_detail(e.to_string())
                        .into_response())
                    }
                }
            }
        }
    }

    /// Records the upstream's answer to `attempt`.
    pub async fn record(&self, attempt: Attempt, status: StatusCode) {
        let rule = &attempt.rule;
        if rule.failure_statuses.contains(&status) {
            let keys: Vec<&[u8]> = attempt
                .account
                .iter()
                .chain(attempt.ip.iter())
                .map(Vec::as_slice)
                .collect();
            match self.store.record_failure(&keys, &rule.policy).await {
                Ok(locks) => {
                    if let Some(lock) = locks.iter().flatten().max() {
                        metrics::counter!("portcullis_lockouts_total", "rule" => rule.name.to_string())
                            .increment(1);
                        tracing::warn!(
                            target: "portcullis::lockout",
                            rule = %rule.name,
                            lock_secs = lock.as_secs(),
                            "failed attempts: locked out"
                        );
                    }
                }
                Err(e) => {
                    metrics::counter!("portcullis_lockout_store_errors_total").increment(1);
                    tracing::error!(target: "portcullis::lockout", error = %e, "lockout store failed; a failed attempt was not counted");
                }
            }
        } else if status.is_success()
            && let Some(account) = &attempt.account
            && let Err(e) = self.store.record_success(account).await
        {
            metrics::counter!("portcullis_lockout_store_errors_total").increment(1);
            tracing::error!(target: "portcullis::lockout", error = %e, "lockout store failed; a success was not recorded");
        }
    }
}

fn locked_out(remaining: Duration) -> Rejection {
    Rejection::new(
        StatusCode::TOO_MANY_REQUESTS,
        "locked_out",
        "too many failed attempts: retry after the time in Retry-After",
    )
    .with_retry_after(remaining)
}

/// `rule \x1f kind \x1f value`: one namespace per rule.
fn key(rule: &str, kind: &str, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(rule.len() + kind.len() + 2 + value.len());
    key.extend_from_slice(rule.as_bytes());
    key.push(0x1f);
    key.extend_from_slice(kind.as_bytes());
    key.push(0x1f);
    key.extend_from_slice(value);
    key
}

/// The account named by `field` in a JSON object or a form body, trimmed and lower-cased
/// (`Alice@Example.com ` and `alice@example.com` are one account). `None` when the body is
/// neither, or has no such non-empty string (or number) field: the attempt then counts per IP
/// only.
fn account(headers: &HeaderMap, body: &[u8], field: &str) -> Option<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })?;
    let value = if content_type == "application/json" || content_type.ends_with("+json") {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        match json.get(field)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        }
    } else if content_type == "application/x-www-form-urlencoded" {
        form_urlencoded::parse(body)
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.into_owned())?
    } else {
        return None;
    };
    let value = value.trim().to_lowercase();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn the_account_comes_from_json_or_form_bodies_normalised() {
        let json = headers("application/json; charset=utf-8");
        assert_eq!(
            account(
                &json,
                br#"{"email":" Alice@Example.COM ","password":"x"}"#,
                "email"
            ),
            Some("alice@example.com".to_owned())
        );
        assert_eq!(
            account(&json, br#"{"phone":4915112345}"#, "phone"),
            Some("4915112345".to_owned())
        );
        let form = headers("application/x-www-form-urlencoded");
        assert_eq!(
            account(&form, b"user=Bob%40example.com&password=x", "user"),
            Some("bob@example.com".to_owned())
        );
        assert_eq!(
            account(
                &headers("application/vnd.api+json"),
                br#"{"user":"c"}"#,
                "user"
            ),
            Some("c".to_owned())
        );
    }

    #[test]
    fn no_account_when_absent_empty_nested_or_unparsable() {
        let json = headers("application/json");
        assert_eq!(account(&json, br#"{"email":"  "}"#, "email"), None);
        assert_eq!(account(&json, br#"{"user":{"email":"a"}}"#, "email"), None);
        assert_eq!(account(&json, br#"{"email":["a"]}"#, "email"), None);
        assert_eq!(account(&json, b"not json", "email"), None);
        assert_eq!(account(&headers("text/plain"), b"email=a", "email"), None);
        assert_eq!(
            account(&HeaderMap::new(), br#"{"email":"a"}"#, "email"),
            None
        );
    }
}
