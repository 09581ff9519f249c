//! What the SQL backends share: the row shapes, their decoding, and embedded migrations.
//!
//! Both backends store the same columns with the same meaning, so a row decodes through one
//! function here. Times are integer milliseconds since the Unix epoch (see `clock`), scopes one
//! space-separated string (a scope token has no space), the state `active` or `revoked`, the
//! sealed signing secret its bytes (NULL for a key that does not sign). Revoked tokens and
//! suspended subjects are plain rows, read whole into a snapshot; so are tenants' rates, whose
//! period is integer milliseconds.
//!
//! Queries are built at run time with binds (`sqlx::query`), never with the compile-time checked
//! macros: the build needs no database. Migrations are embedded in the binary with
//! `include_str!` and run by sqlx's migrator, which records them in `_sqlx_migrations`.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use crate::clock::{from_unix_millis, to_unix_millis};
use crate::error::StoreError;
use crate::key::{KeyId, SecretHash};
use crate::record::{ApiKeyRecord, AuditRecord, KeyState};
use crate::revocation::RevocationSnapshot;
use crate::signing::SealedSecret;
use crate::tenant_rate::TenantRate;

/// The key columns, in the order of [`KeyRow`].
pub(crate) const KEY_COLUMNS: &str = "id, prefix, tenant, subject, scopes, state, created_at, \
     expires_at, last_used_at, rotated_from, secret_hash, signing_secret";

/// The audit columns, in the order of [`AuditRow`].
pub(crate) const AUDIT_COLUMNS: &str = "at, actor, action, target, correlation_id, detail";

/// One `api_keys` row as the database returns it.
pub(crate) type KeyRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Vec<u8>,
    Option<Vec<u8>>,
);

/// The tenant rate columns, in the order of [`TenantRateRow`].
pub(crate) const TENANT_RATE_COLUMNS: &str =
    "tenant, quota, request_limit, per_ms, burst, updated_at";

/// One `tenant_rates` row as the database returns it.
pub(crate) type TenantRateRow = (String, String, i64, i64, i64, i64);

/// One `audit_log` row as the database returns it.
pub(crate) type AuditRow = (i64, String, String, String, Option<String>, Option<String>);

pub(crate) fn millis(at: SystemTime) -> i64 {
    to_unix_millis(at)
}

fn time(column: &str, ms: i64) -> Result<SystemTime, StoreError> {
    from_unix_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} {ms} is out of range")))
}

fn key_id(column: &str, id: &str) -> Result<KeyId, StoreError> {
    id.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} {id:?} is not a key id")))
}

pub(crate) fn scopes_column(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub(crate) fn decode_key(row: KeyRow) -> Result<ApiKeyRecord, StoreError> {
    let (
        id,
        prefix,
        tenant,
        subject,
        scopes,
        state,
        created_at,
        expires_at,
        last_used_at,
        rotated_from,
        secret_hash,
        signing_secret,
    ) = row;
    let id = key_id("id", &id)?;
    let state = KeyState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("key {id} has state {state:?}")))?;
    let secret_hash: [u8; 32] = secret_hash
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("key {id} has a hash that is not 32 bytes")))?;
    Ok(ApiKeyRecord {
        prefix,
        tenant,
        subject,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        state,
        created_at: time("created_at", created_at)?,
        expires_at: expires_at.map(|ms| time("expires_at", ms)).transpose()?,
        last_used_at: last_used_at
            .map(|ms| time("last_used_at", ms))
            .transpose()?,
        rotated_from: rotated_from
            .map(|from| key_id("rotated_from", &from))
            .transpose()?,
        secret_hash: SecretHash::from_bytes(secret_hash),
        signing_secret: signing_secret.map(SealedSecret::from_bytes),
        id,
    })
}

pub(crate) fn decode_audit(row: AuditRow) -> Result<AuditRecord, StoreError> {
    let (at, actor, action, target, correlation_id, detail) = row;
    Ok(AuditRecord {
        at: time("at", at)?,
        actor,
        action,
        target,
        correlation_id,
        detail,
    })
}

/// A duration as stored: whole milliseconds (saturating; a checked rate is far below).
pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn decode_tenant_rate(row: TenantRateRow) -> Result<TenantRate, StoreError> {
    let (tenant, quota, limit, per_ms, burst, updated_at) = row;
    let count = |column: &str, value: i64| {
        u32::try_from(value).map_err(|_| {
            StoreError::Corrupt(format!(
                "tenant rate {tenant}/{quota} has {column} {value}, not a u32"
            ))
        })
    };
    let limit = count("request_limit", limit)?;
    let burst = count("burst", burst)?;
    let per = u64::try_from(per_ms)
        .map(Duration::from_millis)
        .map_err(|_| {
            StoreError::Corrupt(format!(
                "tenant rate {tenant}/{quota} has per_ms {per_ms}, below zero"
            ))
        })?;
    Ok(TenantRate {
        updated_at: time("updated_at", updated_at)?,
        tenant,
        quota,
        limit,
        per,
        burst,
    })
}

/// The snapshot from the rows of `revoked_tokens` (its `jti` column, already filtered by expiry)
/// and `suspended_subjects` (`tenant, subject`).
pub(crate) fn revocation_snapshot(
    tokens: Vec<String>,
    subjects: Vec<(String, String)>,
) -> RevocationSnapshot {
    RevocationSnapshot {
        tokens: tokens.into_iter().collect(),
        subjects: subjects.into_iter().collect(),
    }
}

/// Migrations compiled into the binary: `(version, description, sql)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmbeddedMigrations(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> crate::store::BoxFuture<
        'static,
        Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>,
    > {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}
