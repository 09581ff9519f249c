//! Key administration, written once for `portcullis keys` and the admin HTTP API
//! ([`crate::admin`]): the actions, their audit records, and the JSON views both print.
//!
//! - Every change writes one audit record (`key.create`, `key.rotate`, `key.revoke`,
//!   `tenant.suspend`, `tenant.unsuspend`, `token.revoke`, `subject.suspend`,
//!   `subject.unsuspend`) naming the [`Actor`], to the store's own audit log, so the CLI and the
//!   API leave one trail. Reads leave none.
//! - Revoked JWTs (by `jti`) and suspended subjects are not cached like keys: every gateway
//!   instance reloads the whole list every second, so they take effect everywhere within
//!   [`REVOCATION_EFFECTIVE_WITHIN`], whatever the policy's `cache-ttl`.
//! - The plaintext key of `create` and `rotate` exists once, in [`Issued`], and so does the
//!   signing secret of a key that signs requests. Once the store has made a key nothing may keep
//!   it from its caller, so a failed audit write after a create or rotate is reported beside the
//!   key ([`Issued::audit`]) rather than instead of it.
//! - Keys that sign requests need the policy's key-encryption key (KEK, from
//!   `[auth.api-keys.signing]`): the callers load it and pass it to [`create`] and [`rotate`];
//!   this module never reads the environment.
//! - No error message quotes a secret: a whole key given where an id belongs is not echoed, and
//!   [`redact`] removes the store location (a PostgreSQL URL carries a password).
//!
//! Presentation (tables, exit codes, HTTP statuses) belongs to the callers.
//!
//! ```
//! use portcullis::key_admin::{self, Actor, NewKeyRequest};
//! use portcullis_store::{KeyStore, MemoryStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let actor = Actor::new("admin").with_correlation_id("req-1");
//! let issued = key_admin::create(&store, &actor, "pcl", NewKeyRequest::new("acme"), None)
//!     .await
//!     .unwrap();
//! assert!(issued.audit.is_ok());
//! let json = issued.json(store.clock().now());
//! assert_eq!(json["tenant"], "acme");
//! assert_eq!(json["key"], issued.key.expose_secret());
//! assert_eq!(json["signed"], false);
//! let log = key_admin::audit(&store, 10).await.unwrap();
//! assert_eq!(log[0].action, "key.create");
//! assert_eq!(log[0].correlation_id.as_deref(), Some("req-1"));
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use portcullis_policy::auth::ApiKeySettings;
use portcullis_policy::rate_limit::RateLimits;
use portcullis_store::key::InvalidKeyId;
use portcullis_store::{
    ApiKeyRecord, AuditRecord, Kek, KeyId, KeyState, KeyStore, NewKey, PlaintextKey, SigningSecret,
    StoreError, TenantRate, TokenRevocation,
};
use serde_json::{Value, json};

use crate::key_store::resolve;

/// How soon every gateway instance honours a token revocation or a subject suspension: each
/// reloads the whole list every second; the rest is room for a slow store.
pub const REVOCATION_EFFECTIVE_WITHIN: Duration = Duration::from_secs(5);

/// Who makes a change, as the audit record names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `cli:<user>`, `admin`, ...
    pub name: String,
    /// The request's correlation ID, when the change came over HTTP.
    pub correlation_id: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            correlation_id: None,
        }
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// When a new key stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This long after it is made.
    After(Duration),
    /// At this instant.
    At(SystemTime),
}

/// What to make a key for; the prefix comes from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyRequest {
    pub tenant: String,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
    pub expires: Option<Expiry>,
    /// Whether the key signs its requests: it then gets a signing secret too, which takes the
    /// key-encryption key.
    pub signed: bool,
}

impl NewKeyRequest {
    /// A key for `tenant`: no subject, no scopes, no expiry, no signing.
    pub fn new(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            subject: None,
            scopes: Vec::new(),
            expires: None,
            signed: false,
        }
    }
}

/// Why an action failed. Messages name ids, tenants and fields, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    /// No key has this id.
    #[error("no key with id {0}")]
    NotFound(KeyId),
    /// The caller's input is not acceptable: a malformed id, a field the store refuses, an
    /// expiry in the past.
    #[error("{0}")]
    Invalid(String),
    /// The store refuses to rotate the key (revoked, expired, rotated already).
    #[error(transparent)]
    NotRotatable(StoreError),
    /// The store failed or cannot be reached.
    #[error(transparent)]
    Store(StoreError),
    /// The change was made, but its audit record could not be written.
    #[error("{action} {target} was done, but its audit record could not be written: {source}")]
    Audit {
        action: &'static str,
        target: String,
        #[source]
        source: StoreError,
    },
}

impl From<StoreError> for KeyAdminError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => Self::NotFound(id),
            err @ StoreError::InvalidInput { .. } => Self::Invalid(err.to_string()),
            err @ StoreError::NotRotatable { .. } => Self::NotRotatable(err),
            err => Self::Store(err),
        }
    }
}

/// A key with what its record alone does not say.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub record: ApiKeyRecord,
    /// The key that replaced this one by rotation.
    pub successor: Option<KeyId>,
    pub tenant_suspended: bool,
}

/// A key's state as an operator thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
    /// Replaced, still working until its grace runs out.
    Rotating(Option<SystemTime>),
}

impl KeyStatus {
    /// The JSON spelling: `active`, `revoked`, `expired`, `rotating`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Rotating(_) => "rotating",
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rotating(Some(at)) => write!(
                f,
                "rotating (expires at {})",
                humantime::format_rfc3339_seconds(*at)
            ),
            other => f.write_str(other.code()),
        }
    }
}

impl KeyView {
    /// The state at `now`, in order of precedence: revoked, expired, rotating, active.
    pub fn status(&self, now: SystemTime) -> KeyStatus {
        let r = &self.record;
        if r.state == KeyState::Revoked {
            KeyStatus::Revoked
        } else if r.is_expired_at(now) {
            KeyStatus::Expired
        } else if self.successor.is_some() {
            KeyStatus::Rotating(r.expires_at)
        } else {
            KeyStatus::Active
        }
    }

    /// Whether the key signs its requests (has a signing secret).
    pub fn signed(&self) -> bool {
        self.record.signing_secret.is_some()
    }

    /// The stable JSON shape: times as RFC 3339 (milliseconds, as stored), null when absent.
    /// Never the secret or its hash, nor the sealed signing secret: `signed` only says whether
    /// there is one.
    pub fn json(&self, now: SystemTime) -> Value {
        let r = &self.record;
        json!({
            "id": r.id.as_str(),
            "prefix": r.prefix,
            "tenant": r.tenant,
            "subject": r.subject,
            "scopes": r.scopes,
            "signed": self.signed(),
            "state": self.status(now).code(),
            "tenant_suspended": self.tenant_suspended,
            "created_at": rfc3339(r.created_at),
            "expires_at": r.expires_at.map(rfc3339),
            "last_used_at": r.last_used_at.map(rfc3339),
            "rotated_from": r.rotated_from.as_ref().map(KeyId::as_str),
            "rotated_to": self.successor.as_ref().map(KeyId::as_str),
        })
    }
}

/// A key just made by `create` or `rotate`.
#[derive(Debug)]
pub struct Issued {
    /// The new key.
    pub view: KeyView,
    /// The plaintext key, shown once and wiped on drop.
    pub key: PlaintextKey,
    /// The new key's signing secret, if it signs: shown once, like the key, and wiped on drop.
    /// The store keeps only its sealed form.
    pub signing_secret: Option<SigningSecret>,
    /// After a rotation: the old key as it is now (with its shortened expiry).
    pub previous: Option<KeyView>,
    /// After a rotation: why the old key could not be read back, if it could not. The rotation
    /// happened; only the old key's view is missing.
    pub read_back_error: Option<StoreError>,
    /// Whether the audit record was written. The key exists either way and must reach its
    /// caller, who then reports this.
    pub audit: Result<(), KeyAdminError>,
}

impl Issued {
    /// The new key's JSON view plus `"key"`, `"signing_secret"` when the key signs, and after a
    /// rotation `"previous"` (null when the old key could not be read back).
    pub fn json(&self, now: SystemTime) -> Value {
        let mut value = self.view.json(now);
        if let Value::Object(map) = &mut value {
            // These copies are not wiped on drop, unlike `PlaintextKey` and `SigningSecret`:
            // callers send them and drop them.
            map.insert("key".to_owned(), Value::from(self.key.expose_secret()));
            if let Some(secret) = &self.signing_secret {
                map.insert(
                    "signing_secret".to_owned(),
                    Value::from(secret.expose_secret()),
                );
            }
            if self.view.record.rotated_from.is_some() {
                map.insert(
                    "previous".to_owned(),
                    self.previous.as_ref().map_or(Value::Null, |p| p.json(now)),
                );
            }
        }
        value
    }
}

/// An audit record's JSON view.
pub fn audit_json(record: &AuditRecord) -> Value {
    json!({
        "at": rfc3339(record.at),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "correlation_id": record.correlation_id,
        "detail": record.detail,
    })
}

/// Parses a key id. A whole key given in its place is not echoed back: it is a secret.
pub fn parse_key_id(text: &str) -> Result<KeyId, KeyAdminError> {
    text.parse().map_err(|e: InvalidKeyId| {
        if text.contains('_') || text.len() > 32 {
            KeyAdminError::Invalid(format!(
                "not a key id: {e}; pass only the id, the part of a key between the first two `_`"
            ))
        } else {
            KeyAdminError::Invalid(format!("{text:?} is not a key id: {e}"))
        }
    })
}

/// What to do about a signing key when the caller has no key-encryption key: the policy lacks
/// `[auth.api-keys.signing]` (callers load the KEK whenever it is there).
const NEEDS_SIGNING_TABLE: &str = "add `[auth.api-keys.signing]` with its `key-encryption-key` \
     to the policy (the gateway's policy: the same KEK must seal and open the secrets), and set \
     the environment variable or file it names";

/// Makes a key for a tenant. A signed key (`request.signed`) needs `kek`, the policy's
/// key-encryption key, to seal its signing secret; without one it is refused before anything is
/// made. `kek` is not used for a key that does not sign.
pub async fn create(
    store: &dyn KeyStore,
    actor: &Actor,
    prefix: &str,
    request: NewKeyRequest,
    kek: Option<&Kek>,
) -> Result<Issued, KeyAdminError> {
    let kek = match (request.signed, kek) {
        (false, _) => None,
        (true, Some(kek)) => Some(kek),
        (true, None) => {
            return Err(KeyAdminError::Invalid(format!(
                "a signed key needs the key-encryption key its signing secret is stored \
                 encrypted with: {NEEDS_SIGNING_TABLE}"
            )));
        }
    };
    let mut new = NewKey::new(prefix, request.tenant).with_scopes(request.scopes);
    if let Some(subject) = request.subject {
        new = new.with_subject(subject);
    }
    if let Some(expires) = request.expires {
        let at = match expires {
            Expiry::After(after) => store.clock().now().checked_add(after).ok_or_else(|| {
                KeyAdminError::Invalid("the expiry is too far in the future".to_owned())
            })?,
            Expiry::At(at) => at,
        };
        new = new.with_expiry(at);
    }
    // Asked before the key exists: once it does, nothing may fail before it is handed over.
    let suspended = store.is_tenant_suspended(&new.tenant).await?;
    let (record, key, signing_secret) = match kek {
        Some(kek) => {
            let (record, key, secret) = store.create_signed(new, kek).await?;
            (record, key, Some(secret))
        }
        None => {
            let (record, key) = store.create(new).await?;
            (record, key, None)
        }
    };
    let audit = record_change(
        store,
        actor,
        "key.create",
        record.id.as_str(),
        Some(create_detail(&record)),
    )
    .await;
    Ok(Issued {
        view: KeyView {
            record,
            successor: None,
            tenant_suspended: suspended,
        },
        key,
        signing_secret,
        previous: None,
        read_back_error: None,
        audit,
    })
}

fn create_detail(record: &ApiKeyRecord) -> String {
    let mut detail = format!("tenant={}", record.tenant);
    if let Some(subject) = &record.subject {
        detail.push_str(&format!(" subject={subject:?}"));
    }
    if !record.scopes.is_empty() {
        detail.push_str(&format!(" scopes={}", record.scopes.join(",")));
    }
    if let Some(at) = record.expires_at {
        detail.push_str(&format!(
            " expires={}",
            humantime::format_rfc3339_seconds(at)
        ));
    }
    // That it signs, never the (sealed) secret.
    if record.signing_secret.is_some() {
        detail.push_str(" signed");
    }
    detail
}

/// Keys (never their secrets), oldest first; all of them or one tenant's.
pub async fn list(
    store: &dyn KeyStore,
    tenant: Option<&str>,
) -> Result<Vec<KeyView>, KeyAdminError> {
    let records = store.list(tenant).await?;
    annotate(store, records.clone(), &records).await
}

/// One key.
pub async fn show(store: &dyn KeyStore, id: &KeyId) -> Result<KeyView, KeyAdminError> {
    let Some(record) = store.get(id).await? else {
        return Err(KeyAdminError::NotFound(id.clone()));
    };
    // A successor always belongs to the same tenant.
    let family = store.list(Some(&record.tenant)).await?;
    let mut views = annotate(store, vec![record], &family).await?;
    views
        .pop()
        .ok_or_else(|| KeyAdminError::NotFound(id.clone()))
}

/// Issues a successor; the old key keeps working for `grace` (callers default it to the
/// policy's `rotation-grace`).
///
/// The successor of a key that signs requests gets a new signing secret, sealed with `kek`; such
/// a key cannot be rotated without it (refused, nothing changed). `kek` is not used for a key
/// that does not sign.
pub async fn rotate(
    store: &dyn KeyStore,
    actor: &Actor,
    id: &KeyId,
    grace: Duration,
    kek: Option<&Kek>,
) -> Result<Issued, KeyAdminError> {
    let Some(old) = store.get(id).await? else {
        return Err(KeyAdminError::NotFound(id.clone()));
    };
    // Asked before the successor exists: once it does, nothing may fail before it is handed over.
    let suspended = store.is_tenant_suspended(&old.tenant).await?;
    let (successor, key, signing_secret) = store.rotate_with_kek(id, grace, kek).await.map_err(
        |err| match err {
            // The store's message names the KEK but not where it comes from.
            StoreError::InvalidInput { field: "kek", .. } => KeyAdminError::Invalid(format!(
                "key {id} signs requests: rotating it needs the key-encryption key, to seal its \
                 successor's new signing secret; {NEEDS_SIGNING_TABLE}"
            )),
            err => err.into(),
        },
    )?;
    // The old key's shortened life is the store's decision: read it back. A failed read must not
    // lose the new key, so it only leaves the old key out.
    let (old_after, read_back_error) = match store.get(id).await {
        Ok(old) => (old, None),
        Err(e) => (None, Some(e)),
    };
    let detail = format!(
        "successor={} grace={}{}",
        successor.id,
        humantime::format_duration(grace),
        old_after
            .as_ref()
            .and_then(|o| o.expires_at)
            .map(|at| format!(" old_expires={}", humantime::format_rfc3339_seconds(at)))
            .unwrap_or_default()
    );
    let audit = record_change(store, actor, "key.rotate", id.as_str(), Some(detail)).await;
    Ok(Issued {
        previous: old_after.map(|record| KeyView {
            record,
            successor: Some(successor.id.clone()),
            tenant_suspended: suspended,
        }),
        view: KeyView {
            record: successor,
            successor: None,
            tenant_suspended: suspended,
        },
        key,
        signing_secret,
        read_back_error,
        audit,
    })
}

/// Revokes a key for good; returns it as the store left it.
pub async fn revoke(
    store: &dyn KeyStore,
    actor: &Actor,
    id: &KeyId,
) -> Result<ApiKeyRecord, KeyAdminError> {
    let record = store.revoke(id).await?;
    record_change(
        store,
        actor,
        "key.revoke",
        id.as_str(),
        Some(format!("tenant={}", record.tenant)),
    )
    .await?;
    Ok(record)
}

/// Refuses every key of a tenant until it is unsuspended.
pub async fn suspend(
    store: &dyn KeyStore,
    actor: &Actor,
    tenant: &str,
) -> Result<(), KeyAdminError> {
    store.suspend_tenant(tenant).await?;
    record_change(store, actor, "tenant.suspend", tenant, None).await
}

/// Lifts a tenant's suspension.
pub async fn unsuspend(
    store: &dyn KeyStore,
    actor: &Actor,
    tenant: &str,
) -> Result<(), KeyAdminError> {
    store.unsuspend_tenant(tenant).await?;
    record_change(store, actor, "tenant.unsuspend", tenant, None).await
}

/// Revokes a JWT by its `jti` until `expires_at`, the token's own `exp` (after it the token is
/// refused anyway, and the revocation is dropped). `tenant` is recorded for operators; the
/// gateway refuses the `jti` whatever the tenant. Returns the revocation as written.
pub async fn revoke_token(
    store: &dyn KeyStore,
    actor: &Actor,
    jti: &str,
    tenant: Option<&str>,
    expires_at: SystemTime,
) -> Result<TokenRevocation, KeyAdminError> {
    if looks_like_a_jwt(jti) {
        // Not echoed, and never stored or audited: it is a credential.
        return Err(KeyAdminError::Invalid(
            "that is a whole JWT: pass only its `jti` claim".to_owned(),
        ));
    }
    let revocation = store.revoke_jwt(jti, tenant, expires_at).await?;
    let mut detail = String::new();
    if let Some(tenant) = &revocation.tenant {
        detail.push_str(&format!("tenant={tenant} "));
    }
    detail.push_str(&format!(
        "expires={}",
        humantime::format_rfc3339_seconds(revocation.expires_at)
    ));
    // A `jti` names a token; it is no credential, so it may be the target.
    record_change(store, actor, "token.revoke", jti, Some(detail)).await?;
    Ok(revocation)
}

/// Refuses every JWT of one subject of a tenant until it is unsuspended. Keys are not affected:
/// a key's subject is a label, and a whole tenant's keys are suspended with [`suspend`].
pub async fn suspend_subject(
    store: &dyn KeyStore,
    actor: &Actor,
    tenant: &str,
    subject: &str,
) -> Result<(), KeyAdminError> {
    store.suspend_subject(tenant, subject).await?;
    let target = subject_target(tenant, subject);
    record_change(store, actor, "subject.suspend", &target, None).await
}

/// Lifts a subject's suspension.
pub async fn unsuspend_subject(
    store: &dyn KeyStore,
    actor: &Actor,
    tenant: &str,
    subject: &str,
) -> Result<(), KeyAdminError> {
    store.unsuspend_subject(tenant, subject).await?;
    let target = subject_target(tenant, subject);
    record_change(store, actor, "subject.unsuspend", &target, None).await
}

/// Gives `tenant` its own rate for the policy's quota `quota` (its plan): `limit` requests per
/// `per`, bursts of `burst`. Every gateway applies it within [`REVOCATION_EFFECTIVE_WITHIN`]. The
/// quota must be one of `limits`' quotas counted after authentication (per API key, tenant or
/// subject): the tenant is not known before. Replaces the tenant's earlier rate for the quota.
pub async fn set_tenant_rate(
    store: &dyn KeyStore,
    actor: &Actor,
    limits: &RateLimits,
    rate: TenantRate,
) -> Result<TenantRate, KeyAdminError> {
    let Some(quota) = limits.quotas.iter().find(|q| q.name == rate.quota) else {
        let known: Vec<&str> = limits.quotas.iter().map(|q| q.name.as_str()).collect();
        return Err(KeyAdminError::Invalid(format!(
            "the policy has no quota named `{}` (its quotas: {})",
            rate.quota,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    if quota.key.before_auth() {
        return Err(KeyAdminError::Invalid(format!(
            "quota `{}` is counted per {}, before authentication, when the tenant is not known: \
             tenant rates apply to quotas keyed by api-key, tenant or subject",
            quota.name,
            quota.key.as_str()
        )));
    }
    let rate = rate.checked()?;
    store.set_tenant_rate(&rate).await?;
    let detail = format!(
        "quota={} limit={} per={} burst={}",
        rate.quota,
        rate.limit,
        humantime::format_duration(rate.per),
        rate.burst
    );
    record_change(store, actor, "tenant.rate.set", &rate.tenant, Some(detail)).await?;
    Ok(rate)
}

/// Takes `tenant`'s own rate for `quota` away: the policy's applies again. False if it had none.
pub async fn clear_tenant_rate(
    store: &dyn KeyStore,
    actor: &Actor,
    tenant: &str,
    quota: &str,
) -> Result<bool, KeyAdminError> {
    let cleared = store.clear_tenant_rate(tenant, quota).await?;
    if cleared {
        let detail = format!("quota={quota}");
        record_change(store, actor, "tenant.rate.clear", tenant, Some(detail)).await?;
    }
    Ok(cleared)
}

/// Every tenant's own rates, by tenant and quota.
pub async fn tenant_rates(store: &dyn KeyStore) -> Result<Vec<TenantRate>, KeyAdminError> {
    Ok(store.tenant_rates().await?)
}

/// Whether `text` is a compact JWS (`eyJ…` header, three dot-separated base64url parts) rather
/// than a `jti`: a pasted token would otherwise be kept in the store and the audit log.
fn looks_like_a_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && text.starts_with("eyJ")
        && parts.iter().all(|part| {
            part.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `tenant/subject`: unambiguous, as a tenant name has no `/`.
fn subject_target(tenant: &str, subject: &str) -> String {
    format!("{tenant}/{subject}")
}

/// The newest `limit` audit records, oldest first (as a log reads, the newest at the bottom).
pub async fn audit(store: &dyn KeyStore, limit: usize) -> Result<Vec<AuditRecord>, KeyAdminError> {
    let mut records = store.list_audit(limit).await?;
    records.reverse();
    Ok(records)
}

/// Writes the audit record of a change that has been made.
async fn record_change(
    store: &dyn KeyStore,
    actor: &Actor,
    action: &'static str,
    target: &str,
    detail: Option<String>,
) -> Result<(), KeyAdminError> {
    // Ids and tenants only: the detail and target never hold a secret.
    tracing::info!(actor = %actor.name, action, target, "key administration");
    let record = AuditRecord {
        at: store.clock().now(),
        actor: actor.name.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        correlation_id: actor.correlation_id.clone(),
        detail,
    };
    store
        .record_audit(record)
        .await
        .map_err(|source| KeyAdminError::Audit {
            action,
            target: target.to_owned(),
            source,
        })
}

/// Adds successors (looked up in `family`) and tenant suspensions to records.
async fn annotate(
    store: &dyn KeyStore,
    records: Vec<ApiKeyRecord>,
    family: &[ApiKeyRecord],
) -> Result<Vec<KeyView>, KeyAdminError> {
    let successors: HashMap<&KeyId, &KeyId> = family
        .iter()
        .filter_map(|r| r.rotated_from.as_ref().map(|old| (old, &r.id)))
        .collect();
    let tenants: HashSet<&str> = records.iter().map(|r| r.tenant.as_str()).collect();
    let mut suspended = HashSet::new();
    for tenant in tenants {
        if store.is_tenant_suspended(tenant).await? {
            suspended.insert(tenant.to_owned());
        }
    }
    Ok(records
        .into_iter()
        .map(|record| KeyView {
            successor: successors.get(&record.id).map(|id| (*id).clone()),
            tenant_suspended: suspended.contains(&record.tenant),
            record,
        })
        .collect())
}

/// Removes the store location and its password from a message, should a database error ever
/// quote them.
pub fn redact(message: &str, settings: &ApiKeySettings) -> String {
    let Ok(location) = resolve(&settings.store) else {
        return message.to_owned();
    };
    let mut secrets = vec![location.clone()];
    if let Some((_, rest)) = location.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            secrets.push(password.to_owned());
        }
    }
    let mut message = message.to_owned();
    // A one- or two-character password would garble every message, and guards nothing anyway.
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        message = message.replace(secret.as_str(), "<redacted>");
    }
    message
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use portcullis_policy::auth::SecretRef;
    use portcullis_store::MemoryStore;

    use super::*;

    fn settings(location: &str) -> ApiKeySettings {
        ApiKeySettings {
            prefix: "pcl".to_owned(),
            store: SecretRef::Literal(location.to_owned()),
            rotation_grace: Duration::from_secs(3600),
            cache_ttl: Duration::from_secs(2),
            signing: None,
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn redact_hides_the_location_and_its_password() {
        let url = "postgres://app:s3cret-pw@db.internal:5432/keys";
        let s = settings(url);
        let message = format!("cannot connect to {url}: password s3cret-pw rejected");
        let redacted = redact(&message, &s);
        assert!(!redacted.contains("s3cret-pw"), "{redacted}");
        assert!(!redacted.contains("db.internal"), "{redacted}");
        assert_eq!(redact("no key with id x", &s), "no key with id x");
        // A user without a password hides nothing else.
        let s = settings("postgres://app@db/keys");
        assert_eq!(redact("role app unknown", &s), "role app unknown");
    }

    #[test]
    fn ids_are_checked_and_whole_keys_not_echoed() {
        assert!(parse_key_id("abcdefgh234567zz").is_ok());
        let err = parse_key_id("nope").unwrap_err();
        assert!(matches!(&err, KeyAdminError::Invalid(m) if m.contains("\"nope\"")));
        let key = "pcl_abcdefgh234567zz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let err = parse_key_id(key).unwrap_err();
        assert!(!err.to_string().contains("AAAA"), "{err}");
    }

    #[test]
    fn every_change_is_audited_with_actor_and_correlation_id() {
        block_on(async {
            let store = MemoryStore::new();
            let actor = Actor::new("admin").with_correlation_id("corr-1");
            let mut request = NewKeyRequest::new("acme");
            request.scopes = vec!["read".to_owned()];
            request.expires = Some(Expiry::After(Duration::from_secs(3600)));
            let issued = create(&store, &actor, "pcl", request, None).await.unwrap();
            let id = issued.view.record.id.clone();
            let rotated = rotate(&store, &actor, &id, Duration::from_secs(60), None)
                .await
                .unwrap();
            let now = store.clock().now();
            let json = rotated.json(now);
            assert_eq!(json["previous"]["id"], id.as_str());
            assert_eq!(json["previous"]["state"], "rotating");
            assert_eq!(json["rotated_from"], id.as_str());
            revoke(&store, &actor, &rotated.view.record.id)
                .await
                .unwrap();
            suspend(&store, &actor, "acme").await.unwrap();
            unsuspend(&store, &actor, "acme").await.unwrap();
            let log = audit(&store, 10).await.unwrap();
            let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
            assert_eq!(
                actions,
                [
                    "key.create",
                    "key.rotate",
                    "key.revoke",
                    "tenant.suspend",
                    "tenant.unsuspend"
                ]
            );
            for record in &log {
                assert_eq!(record.actor, "admin");
                assert_eq!(record.correlation_id.as_deref(), Some("corr-1"));
                let text = audit_json(record).to_string();
                assert!(!text.contains(issued.key.expose_secret()));
                assert!(!text.contains(rotated.key.expose_secret()));
            }
            assert_eq!(
                show(&store, &id).await.unwrap().status(now).code(),
                "rotating"
            );
        });
    }

    #[test]
    fn store_errors_are_classified() {
        block_on(async {
            let store = MemoryStore::new();
            let actor = Actor::new("t");
            let unknown: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
            assert!(matches!(
                show(&store, &unknown).await,
                Err(KeyAdminError::NotFound(_))
            ));
            assert!(matches!(
                rotate(&store, &actor, &unknown, Duration::ZERO, None).await,
                Err(KeyAdminError::NotFound(_))
            ));
            assert!(matches!(
                create(&store, &actor, "pcl", NewKeyRequest::new("a b"), None).await,
                Err(KeyAdminError::Invalid(m)) if m.contains("invalid tenant")
            ));
            let issued = create(&store, &actor, "pcl", NewKeyRequest::new("acme"), None)
                .await
                .unwrap();
            revoke(&store, &actor, &issued.view.record.id)
                .await
                .unwrap();
            assert!(matches!(
                rotate(&store, &actor, &issued.view.record.id, Duration::ZERO, None).await,
                Err(KeyAdminError::NotRotatable(_))
            ));
        });
    }

    #[test]
    fn token_revocations_and_subject_suspensions_reach_the_snapshot_and_the_audit_log() {
        block_on(async {
            let store = MemoryStore::new();
            let actor = Actor::new("admin").with_correlation_id("corr-2");
            let now = store.clock().now();
            let exp = now + Duration::from_secs(3600);
            let written = revoke_token(&store, &actor, "jti-1", Some("acme"), exp)
                .await
                .unwrap();
            assert_eq!(written.jti, "jti-1");
            suspend_subject(&store, &actor, "acme", "alice")
                .await
                .unwrap();
            suspend_subject(&store, &actor, "acme", "bob")
                .await
                .unwrap();
            unsuspend_subject(&store, &actor, "acme", "bob")
                .await
                .unwrap();
            let snapshot = store.revocation_snapshot(now).await.unwrap();
            assert!(snapshot.is_token_revoked("jti-1"));
            assert!(snapshot.is_subject_suspended("acme", "alice"));
            assert!(!snapshot.is_subject_suspended("acme", "bob"));
            // A subject suspension is not a tenant suspension.
            assert!(!store.is_tenant_suspended("acme").await.unwrap());

            let log = audit(&store, 10).await.unwrap();
            let seen: Vec<(&str, &str, Option<&str>)> = log
                .iter()
                .map(|r| (r.action.as_str(), r.target.as_str(), r.detail.as_deref()))
                .collect();
            let expires = humantime::format_rfc3339_seconds(exp).to_string();
            assert_eq!(
                seen,
                [
                    (
                        "token.revoke",
                        "jti-1",
                        Some(format!("tenant=acme expires={expires}").as_str())
                    ),
                    ("subject.suspend", "acme/alice", None),
                    ("subject.suspend", "acme/bob", None),
                    ("subject.unsuspend", "acme/bob", None),
                ]
            );
            for record in &log {
                assert_eq!(record.actor, "admin");
                assert_eq!(record.correlation_id.as_deref(), Some("corr-2"));
            }
        });
    }

    #[test]
    fn unsound_revocations_are_invalid_and_not_audited() {
        block_on(async {
            let store = MemoryStore::new();
            let actor = Actor::new("t");
            let now = store.clock().now();
            let later = now + Duration::from_secs(60);
            for (result, field) in [
                (revoke_token(&store, &actor, "", None, later).await, "jti"),
                (
                    revoke_token(&store, &actor, "j", Some("a b"), later).await,
                    "tenant",
                ),
                (
                    revoke_token(&store, &actor, "j", None, now).await,
                    "expires_at",
                ),
            ] {
                assert!(
                    matches!(&result, Err(KeyAdminError::Invalid(m)) if m.contains(field)),
                    "{field}: {result:?}"
                );
            }
            assert!(matches!(
                suspend_subject(&store, &actor, "acme", "").await,
                Err(KeyAdminError::Invalid(m)) if m.contains("subject")
            ));
            assert!(matches!(
                unsuspend_subject(&store, &actor, "a b", "alice").await,
                Err(KeyAdminError::Invalid(m)) if m.contains("tenant")
            ));
            let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";
            let err = revoke_token(&store, &actor, jwt, None, later)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, KeyAdminError::Invalid(m) if m.contains("jti")),
                "{err}"
            );
            assert!(!err.to_string().contains("eyJzdWIi"), "{err}");
            assert!(audit(&store, 10).await.unwrap().is_empty());
            assert_eq!(
                store.revocation_snapshot(now).await.unwrap(),
                portcullis_store::RevocationSnapshot::default()
            );
        });
    }

    fn signed_request(tenant: &str) -> NewKeyRequest {
        let mut request = NewKeyRequest::new(tenant);
        request.signed = true;
        request
    }

    #[test]
    fn signed_keys_get_a_signing_secret_shown_once() {
        block_on(async {
            let store = MemoryStore::new();
            let kek = Kek::generate().unwrap();
            let actor = Actor::new("admin");
            let issued = create(&store, &actor, "pcl", signed_request("acme"), Some(&kek))
                .await
                .unwrap();
            let secret = issued.signing_secret.as_ref().unwrap();
            assert!(secret.expose_secret().starts_with("pcl_sig_"));
            // Stored sealed, under this KEK, for this key.
            let id = issued.view.record.id.clone();
            let stored = store.get(&id).await.unwrap().unwrap();
            let sealed = stored.signing_secret.as_ref().unwrap();
            assert_eq!(
                kek.open(&id, sealed).unwrap().expose_secret(),
                secret.expose_secret()
            );
            let now = store.clock().now();
            let json = issued.json(now);
            assert_eq!(json["signed"], true);
            assert_eq!(json["signing_secret"], secret.expose_secret());
            assert_eq!(json["key"], issued.key.expose_secret());

            // Every later view says that it signs, and nothing else of the secret.
            let shown = show(&store, &id).await.unwrap().json(now);
            assert_eq!(shown["signed"], true);
            assert!(shown.get("signing_secret").is_none(), "{shown}");
            let listed = list(&store, None).await.unwrap();
            assert_eq!(listed[0].json(now), shown);
            let body = &secret.expose_secret()["pcl_sig_".len()..];
            assert!(!shown.to_string().contains(body), "{shown}");

            // A plain key made with a KEK at hand does not sign.
            let plain = create(
                &store,
                &actor,
                "pcl",
                NewKeyRequest::new("acme"),
                Some(&kek),
            )
            .await
            .unwrap();
            assert!(plain.signing_secret.is_none());
            let json = plain.json(now);
            assert_eq!(json["signed"], false);
            assert!(json.get("signing_secret").is_none(), "{json}");

            let log = audit(&store, 10).await.unwrap();
            let details: Vec<&str> = log.iter().filter_map(|r| r.detail.as_deref()).collect();
            assert_eq!(details, ["tenant=acme signed", "tenant=acme"]);
            for record in &log {
                assert!(!audit_json(record).to_string().contains(body));
            }
        });
    }

    #[test]
    fn a_signed_keys_successor_gets_a_new_signing_secret() {
        block_on(async {
            let store = MemoryStore::new();
            let kek = Kek::generate().unwrap();
            let actor = Actor::new("admin");
            let issued = create(&store, &actor, "pcl", signed_request("acme"), Some(&kek))
                .await
                .unwrap();
            let old_secret = issued.signing_secret.unwrap();
            let id = issued.view.record.id.clone();
            let rotated = rotate(&store, &actor, &id, Duration::from_secs(60), Some(&kek))
                .await
                .unwrap();
            let new_secret = rotated.signing_secret.as_ref().unwrap();
            assert_ne!(new_secret.expose_secret(), old_secret.expose_secret());
            let new_id = rotated.view.record.id.clone();
            let stored = store.get(&new_id).await.unwrap().unwrap();
            assert_eq!(
                kek.open(&new_id, stored.signing_secret.as_ref().unwrap())
                    .unwrap()
                    .expose_secret(),
                new_secret.expose_secret()
            );
            let json = rotated.json(store.clock().now());
            assert_eq!(json["signed"], true);
            assert_eq!(json["signing_secret"], new_secret.expose_secret());
            assert_eq!(json["previous"]["signed"], true);
            assert!(json["previous"].get("signing_secret").is_none());

            // A plain key's successor does not sign, KEK or not.
            let plain = create(&store, &actor, "pcl", NewKeyRequest::new("acme"), None)
                .await
                .unwrap();
            let rotated = rotate(
                &store,
                &actor,
                &plain.view.record.id,
                Duration::from_secs(60),
                Some(&kek),
            )
            .await
            .unwrap();
            assert!(rotated.signing_secret.is_none());
            assert_eq!(rotated.json(store.clock().now())["signed"], false);
        });
    }

    #[test]
    fn signing_without_a_kek_is_refused_and_changes_nothing() {
        block_on(async {
            let store = MemoryStore::new();
            let actor = Actor::new("admin");
            let err = create(&store, &actor, "pcl", signed_request("acme"), None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, KeyAdminError::Invalid(m)
                    if m.contains("[auth.api-keys.signing]") && m.contains("key-encryption-key")),
                "{err}"
            );
            assert!(store.list(None).await.unwrap().is_empty());
            assert!(audit(&store, 10).await.unwrap().is_empty());

            // A signing key cannot be rotated without the KEK either, and says where it comes
            // from.
            let kek = Kek::generate().unwrap();
            let issued = create(&store, &actor, "pcl", signed_request("acme"), Some(&kek))
                .await
                .unwrap();
            let id = issued.view.record.id.clone();
            let err = rotate(&store, &actor, &id, Duration::from_secs(60), None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, KeyAdminError::Invalid(m)
                    if m.contains("[auth.api-keys.signing]") && m.contains(id.as_str())),
                "{err}"
            );
            assert_eq!(store.list(None).await.unwrap().len(), 1);
            assert_eq!(
                show(&store, &id).await.unwrap().status(store.clock().now()),
                KeyStatus::Active
            );
            assert_eq!(audit(&store, 10).await.unwrap().len(), 1);
        });
    }
}
