//! `portcullis keys`: tenant API keys in the store the policy's `[auth.api-keys]` names.
//!
//! - The plaintext key exists once, in the output of `create` and `rotate`, and goes to stdout
//!   only: stderr carries errors and notes, and is often collected into logs.
//! - Every change writes an audit record (actor `cli:<user>`) to the store's own audit log, so
//!   the CLI and the admin API leave one trail.
//! - Error messages never contain the store location: a PostgreSQL URL carries a password.
//!
//! Exit codes follow `check` and `serve`: 1 for the caller's mistake (a policy error, a policy
//! without `[auth.api-keys]`, an unknown or malformed id, a refused rotation, invalid input),
//! 2 when the environment fails (unreadable file, unreachable database).

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use portcullis::key_store::{KeyStoreError, open_store, resolve};
use portcullis::policy::auth::ApiKeySettings;
use portcullis::policy::{CompileOptions, Environment, LoadError, load_file};
use portcullis_store::key::InvalidKeyId;
use portcullis_store::{
    ApiKeyRecord, AuditRecord, KeyId, KeyState, KeyStore, NewKey, PlaintextKey, StoreError,
};
use serde_json::{Value, json};

use super::{EXIT_FAILURE, EXIT_INVALID, failure, print_diagnostics};

/// What to do with the keys.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Make a key for a tenant and print it, once.
    Create {
        /// The tenant the key acts for (1 to 128 of `A-Z a-z 0-9 . _ : -`).
        #[arg(long)]
        tenant: String,
        /// A label for whom or what the key is for.
        #[arg(long)]
        subject: Option<String>,
        /// A scope to grant; repeat for several.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime (`30d`, `12h`) or an RFC 3339 UTC time; no expiry if absent.
        #[arg(long, value_name = "DURATION|TIME", value_parser = parse_expiry)]
        expires: Option<Expiry>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets), oldest first.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// The key id (the part of the key between the first two `_`).
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Issue a successor and print it, once; the old key keeps working for the grace period.
    Rotate {
        /// The id of the key to replace.
        id: String,
        /// How long the old key keeps working; default: the policy's `rotation-grace`.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, for good.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Refuse every key of a tenant until it is unsuspended.
    Suspend {
        /// The tenant.
        tenant: String,
    },
    /// Lift a tenant's suspension.
    Unsuspend {
        /// The tenant.
        tenant: String,
    },
    /// Print the newest audit records, oldest first.
    Audit {
        /// How many records.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// When a new key stops working.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    After(Duration),
    At(SystemTime),
}

fn parse_expiry(text: &str) -> Result<Expiry, String> {
    if let Ok(after) = humantime::parse_duration(text) {
        return Ok(Expiry::After(after));
    }
    humantime::parse_rfc3339_weak(text)
        .map(Expiry::At)
        .map_err(|_| {
            format!("`{text}` is neither a duration (`30d`, `12h`) nor an RFC 3339 UTC time")
        })
}

/// Why a command stopped, and with which exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The caller's mistake: exit 1, like a policy error.
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_INVALID,
            message: message.into(),
        }
    }

    /// The environment failed (file, database): exit 2.
    fn environment(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => Self::invalid(format!("no key with id {id}")),
            err @ (StoreError::InvalidInput { .. } | StoreError::NotRotatable { .. }) => {
                Self::invalid(err.to_string())
            }
            err => Self::environment(err.to_string()),
        }
    }
}

pub fn run(config: &Path, environment: Option<Environment>, action: Action) -> ExitCode {
    let compiled = match load_file(config, &CompileOptions { environment }) {
        Ok(compiled) => compiled,
        Err(LoadError::Invalid(diagnostics)) => {
            print_diagnostics(&diagnostics);
            eprintln!(
                "{}: {} error(s)",
                config.display(),
                diagnostics.error_count()
            );
            return ExitCode::from(EXIT_INVALID);
        }
        Err(e) => return failure(e),
    };
    print_diagnostics(&compiled.warnings);
    let Some(settings) = compiled.policy.auth.api_keys else {
        eprintln!(
            "error: {}: the policy has no `[auth.api-keys]` table, so it names no key store; add one, e.g.\n\n\
             [auth.api-keys]\nprefix = \"pcl\"\nstore = \"sqlite:portcullis-keys.db\"",
            config.display()
        );
        return ExitCode::from(EXIT_INVALID);
    };
    // One command, a few queries: no worker threads needed.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failure(format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(execute(&settings, action)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", redact(&f.message, &settings));
            ExitCode::from(f.code)
        }
    }
}

async fn execute(settings: &ApiKeySettings, action: Action) -> Result<(), Failure> {
    // Ids are checked before the store is opened: a typo needs no database.
    match action {
        Action::Create {
            tenant,
            subject,
            scopes,
            expires,
            json,
        } => {
            let store = open(settings, Access::Write).await?;
            create(settings, &*store, tenant, subject, scopes, expires, json).await
        }
        Action::List { tenant, json } => {
            let store = open(settings, Access::Read).await?;
            list(&*store, tenant.as_deref(), json).await
        }
        Action::Show { id, json } => {
            let id = parse_id(&id)?;
            let store = open(settings, Access::Read).await?;
            show(&*store, &id, json).await
        }
        Action::Rotate { id, grace, json } => {
            let id = parse_id(&id)?;
            let store = open(settings, Access::Write).await?;
            let grace = grace.unwrap_or(settings.rotation_grace);
            rotate(settings, &*store, &id, grace, json).await
        }
        Action::Revoke { id } => {
            let id = parse_id(&id)?;
            let store = open(settings, Access::Write).await?;
            revoke(settings, &*store, &id).await
        }
        Action::Suspend { tenant } => {
            let store = open(settings, Access::Write).await?;
            set_suspended(settings, &*store, &tenant, true).await
        }
        Action::Unsuspend { tenant } => {
            let store = open(settings, Access::Write).await?;
            set_suspended(settings, &*store, &tenant, false).await
        }
        Action::Audit { limit, json } => {
            let store = open(settings, Access::Read).await?;
            audit_log(&*store, limit, json).await
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Opens the policy's store.
///
/// A relative SQLite path is resolved from the current directory, as `serve` does; run from
/// elsewhere, opening would quietly make a new, empty store. So a command that only reads
/// refuses a store that does not exist, and one that writes says that it made one.
async fn open(settings: &ApiKeySettings, access: Access) -> Result<Arc<dyn KeyStore>, Failure> {
    let new_sqlite = resolve(&settings.store)
        .ok()
        .and_then(|location| sqlite_path(&location))
        .filter(|path| !path.exists());
    if let (Some(path), Access::Read) = (&new_sqlite, access) {
        let hint = if path.is_relative() {
            " (a relative path is resolved from the current directory)"
        } else {
            ""
        };
        return Err(Failure::environment(format!(
            "there is no key store at {}{hint}; `portcullis keys create` makes one",
            path.display()
        )));
    }
    // `KeyStoreError` never quotes the location; `redact` checks once more.
    let store = open_store(settings)
        .await
        .map_err(|e: KeyStoreError| Failure::environment(e.to_string()))?;
    if let Some(path) = new_sqlite {
        eprintln!("note: created a new key store at {}", path.display());
    }
    Ok(store)
}

/// The file of a `sqlite:PATH` location, read the way `open_store` reads it.
fn sqlite_path(location: &str) -> Option<PathBuf> {
    let path = location.strip_prefix("sqlite:")?;
    Some(PathBuf::from(path.strip_prefix("//").unwrap_or(path)))
}

/// Removes the store location and its password from a message, should a database error ever
/// quote them.
fn redact(message: &str, settings: &ApiKeySettings) -> String {
    let Ok(location) = resolve(&settings.store) else {
        return message.to_owned();
    };
    let mut secrets = vec![location.clone()];
    if let Some((_, rest)) = location.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                secrets.push(password.to_owned());
            }
        }
    }
    let mut message = message.to_owned();
    // A one- or two-character password would garble every message, and guards nothing anyway.
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        message = message.replace(secret.as_str(), "<redacted>");
    }
    message
}

fn parse_id(text: &str) -> Result<KeyId, Failure> {
    text.parse().map_err(|e: InvalidKeyId| {
        // A whole key pasted in place of its id must not be echoed to stderr.
        if text.contains('_') || text.len() > 32 {
            Failure::invalid(format!(
                "not a key id: {e}; pass only the id, the part of a key between the first two `_`"
            ))
        } else {
            Failure::invalid(format!("{text:?} is not a key id: {e}"))
        }
    })
}

/// `cli:<$USER>`, or `cli:unknown`.
fn actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    // `audit` prints it to a terminal: no control characters.
    let user: String = user
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("cli:{user}")
}

/// Writes an audit record for a change that has been made.
async fn audit(
    store: &dyn KeyStore,
    action: &str,
    target: &str,
    detail: Option<String>,
) -> Result<(), Failure> {
    let record = AuditRecord {
        at: store.clock().now(),
        actor: actor(),
        action: action.to_owned(),
        target: target.to_owned(),
        correlation_id: None,
        detail,
    };
    store.record_audit(record).await.map_err(|e| {
        Failure::environment(format!(
            "{action} {target} was done, but its audit record could not be written: {e}"
        ))
    })
}

async fn create(
    settings: &ApiKeySettings,
    store: &dyn KeyStore,
    tenant: String,
    subject: Option<String>,
    scopes: Vec<String>,
    expires: Option<Expiry>,
    json: bool,
) -> Result<(), Failure> {
    let mut new = NewKey::new(settings.prefix.clone(), tenant).with_scopes(scopes);
    if let Some(subject) = subject {
        new = new.with_subject(subject);
    }
    if let Some(expires) = expires {
        let at = match expires {
            Expiry::After(after) => store
                .clock()
                .now()
                .checked_add(after)
                .ok_or_else(|| Failure::invalid("--expires: too far in the future"))?,
            Expiry::At(at) => at,
        };
        new = new.with_expiry(at);
    }
    // Asked before the key exists: once it does, nothing may fail before it is printed.
    let suspended = store.is_tenant_suspended(&new.tenant).await?;
    let (record, key) = store.create(new).await?;
    let audited = audit(
        store,
        "key.create",
        record.id.as_str(),
        Some(create_detail(&record)),
    )
    .await;
    if suspended {
        eprintln!(
            "note: tenant {} is suspended: the key is refused until `portcullis keys unsuspend {0}`",
            record.tenant
        );
    }
    let view = KeyView {
        record,
        successor: None,
        tenant_suspended: suspended,
    };
    print_new_key(&[&view], &view, &key, json, None, store.clock().now())?;
    audited
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
    detail
}

async fn list(store: &dyn KeyStore, tenant: Option<&str>, json: bool) -> Result<(), Failure> {
    let records = store.list(tenant).await?;
    let views = annotate(store, records.clone(), &records).await?;
    let now = store.clock().now();
    if json {
        let all: Vec<Value> = views.iter().map(|v| v.json(now)).collect();
        return emit_json(&Value::Array(all));
    }
    if views.is_empty() {
        return emit(match tenant {
            Some(tenant) => format!("no API keys for tenant {tenant}\n"),
            None => "no API keys\n".to_owned(),
        });
    }
    let refs: Vec<&KeyView> = views.iter().collect();
    emit(key_table(&refs, now))
}

async fn show(store: &dyn KeyStore, id: &KeyId, json: bool) -> Result<(), Failure> {
    let Some(record) = store.get(id).await? else {
        return Err(Failure::invalid(format!("no key with id {id}")));
    };
    // A successor always belongs to the same tenant.
    let family = store.list(Some(&record.tenant)).await?;
    let mut views = annotate(store, vec![record], &family).await?;
    let now = store.clock().now();
    let Some(view) = views.pop() else {
        return Err(Failure::invalid(format!("no key with id {id}")));
    };
    if json {
        return emit_json(&view.json(now));
    }
    let r = &view.record;
    let mut tenant = r.tenant.clone();
    if view.tenant_suspended {
        tenant.push_str(" (suspended)");
    }
    let rows = [
        ("id", r.id.to_string()),
        ("prefix", r.prefix.clone()),
        ("tenant", tenant),
        ("subject", or_dash(r.subject.clone())),
        ("scopes", scopes_cell(&r.scopes)),
        ("state", view.status(now).to_string()),
        ("created", time_cell(Some(r.created_at))),
        ("expires", time_cell(r.expires_at)),
        ("last used", time_cell(r.last_used_at)),
        (
            "rotated from",
            or_dash(r.rotated_from.as_ref().map(KeyId::to_string)),
        ),
        (
            "rotated to",
            or_dash(view.successor.as_ref().map(KeyId::to_string)),
        ),
    ];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, value)| vec![name.to_owned(), value])
        .collect();
    emit(table(None, &rows))
}

async fn rotate(
    settings: &ApiKeySettings,
    store: &dyn KeyStore,
    id: &KeyId,
    grace: Duration,
    json: bool,
) -> Result<(), Failure> {
    let Some(old) = store.get(id).await? else {
        return Err(Failure::invalid(format!("no key with id {id}")));
    };
    // Asked before the successor exists: once it does, nothing may fail before it is printed.
    let suspended = store.is_tenant_suspended(&old.tenant).await?;
    let (successor, key) = store.rotate(id, grace).await?;
    // The old key's shortened life is the store's decision: read it back. A failed read must not
    // lose the new key, so it only leaves the old key out of the output.
    let old_after = match store.get(id).await {
        Ok(Some(old)) => Some(old),
        Ok(None) => None,
        Err(e) => {
            let e = redact(&e.to_string(), settings);
            eprintln!("note: could not read back key {id} after the rotation: {e}");
            None
        }
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
    let audited = audit(store, "key.rotate", id.as_str(), Some(detail)).await;
    let old_view = old_after.map(|record| KeyView {
        record,
        successor: Some(successor.id.clone()),
        tenant_suspended: suspended,
    });
    let new_view = KeyView {
        record: successor,
        successor: None,
        tenant_suspended: suspended,
    };
    let rows: Vec<&KeyView> = old_view.iter().chain([&new_view]).collect();
    print_new_key(
        &rows,
        &new_view,
        &key,
        json,
        old_view.as_ref(),
        store.clock().now(),
    )?;
    audited
}

async fn revoke(
    settings: &ApiKeySettings,
    store: &dyn KeyStore,
    id: &KeyId,
) -> Result<(), Failure> {
    let record = store.revoke(id).await?;
    audit(
        store,
        "key.revoke",
        id.as_str(),
        Some(format!("tenant={}", record.tenant)),
    )
    .await?;
    emit(format!(
        "revoked key {id} of tenant {}: gateways refuse it within {}\n",
        record.tenant,
        humantime::format_duration(settings.cache_ttl)
    ))
}

async fn set_suspended(
    settings: &ApiKeySettings,
    store: &dyn KeyStore,
    tenant: &str,
    suspended: bool,
) -> Result<(), Failure> {
    let within = humantime::format_duration(settings.cache_ttl);
    if suspended {
        store.suspend_tenant(tenant).await?;
        audit(store, "tenant.suspend", tenant, None).await?;
        emit(format!(
            "suspended tenant {tenant}: gateways refuse its keys within {within}\n"
        ))
    } else {
        store.unsuspend_tenant(tenant).await?;
        audit(store, "tenant.unsuspend", tenant, None).await?;
        emit(format!(
            "unsuspended tenant {tenant}: gateways accept its keys again within {within}\n"
        ))
    }
}

async fn audit_log(store: &dyn KeyStore, limit: usize, json: bool) -> Result<(), Failure> {
    let mut records = store.list_audit(limit).await?;
    // The store gives the newest first; a log reads oldest first, the newest at the bottom.
    records.reverse();
    if json {
        let all: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "at": rfc3339(r.at),
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "correlation_id": r.correlation_id,
                    "detail": r.detail,
                })
            })
            .collect();
        return emit_json(&Value::Array(all));
    }
    if records.is_empty() {
        return emit("no audit records\n".to_owned());
    }
    let rows: Vec<Vec<String>> = records
        .into_iter()
        .map(|r| {
            vec![
                time_cell(Some(r.at)),
                r.actor,
                r.action,
                r.target,
                or_dash(r.correlation_id),
                or_dash(r.detail),
            ]
        })
        .collect();
    emit(table(
        Some(&[
            "AT",
            "ACTOR",
            "ACTION",
            "TARGET",
            "CORRELATION ID",
            "DETAIL",
        ]),
        &rows,
    ))
}

/// A key with what its record alone does not say.
#[derive(Debug)]
struct KeyView {
    record: ApiKeyRecord,
    /// The key that replaced this one by rotation.
    successor: Option<KeyId>,
    tenant_suspended: bool,
}

/// A key's state as an operator thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Revoked,
    Expired,
    /// Replaced, still working until its grace runs out.
    Rotating(Option<SystemTime>),
}

impl Status {
    fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Rotating(_) => "rotating",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    fn status(&self, now: SystemTime) -> Status {
        let r = &self.record;
        if r.state == KeyState::Revoked {
            Status::Revoked
        } else if r.is_expired_at(now) {
            Status::Expired
        } else if self.successor.is_some() {
            Status::Rotating(r.expires_at)
        } else {
            Status::Active
        }
    }

    /// The stable JSON shape: times as RFC 3339 (milliseconds, as stored), null when absent.
    /// Never the secret or its hash.
    fn json(&self, now: SystemTime) -> Value {
        let r = &self.record;
        json!({
            "id": r.id.as_str(),
            "prefix": r.prefix,
            "tenant": r.tenant,
            "subject": r.subject,
            "scopes": r.scopes,
            "state": self.status(now).code(),
            "tenant_suspended": self.tenant_suspended,
            "created_at": rfc3339(r.created_at),
            "expires_at": r.expires_at.map(rfc3339),
            "last_used_at": r.last_used_at.map(rfc3339),
            "rotated_from": r.rotated_from.as_ref().map(KeyId::as_str),
            "rotated_to": self.successor.as_ref().map(KeyId::as_str),
        })
    }

    fn row(&self, now: SystemTime) -> Vec<String> {
        let r = &self.record;
        let mut state = self.status(now).to_string();
        if self.tenant_suspended {
            state.push_str(", tenant suspended");
        }
        vec![
            r.id.to_string(),
            r.tenant.clone(),
            or_dash(r.subject.clone()),
            scopes_cell(&r.scopes),
            state,
            time_cell(Some(r.created_at)),
            time_cell(r.expires_at),
            time_cell(r.last_used_at),
        ]
    }
}

/// Adds successors (looked up in `family`) and tenant suspensions to records.
async fn annotate(
    store: &dyn KeyStore,
    records: Vec<ApiKeyRecord>,
    family: &[ApiKeyRecord],
) -> Result<Vec<KeyView>, Failure> {
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

/// Prints keys and, once, the new plaintext key: the `key` field in JSON; in a table, its own
/// line after a warning that it is not shown again.
fn print_new_key(
    rows: &[&KeyView],
    new: &KeyView,
    key: &PlaintextKey,
    json: bool,
    previous: Option<&KeyView>,
    now: SystemTime,
) -> Result<(), Failure> {
    if json {
        let mut value = new.json(now);
        if let Value::Object(map) = &mut value {
            // This copy is not wiped on drop, unlike `PlaintextKey`; the process ends right after.
            map.insert("key".to_owned(), Value::from(key.expose_secret()));
            if new.record.rotated_from.is_some() {
                map.insert(
                    "previous".to_owned(),
                    previous.map_or(Value::Null, |p| p.json(now)),
                );
            }
        }
        return emit_json(&value);
    }
    let mut out = key_table(rows, now);
    out.push_str("\nStore this key now: it is not shown again.\n");
    out.push_str(key.expose_secret());
    out.push('\n');
    emit(out)
}

fn key_table(views: &[&KeyView], now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = views.iter().map(|v| v.row(now)).collect();
    table(
        Some(&[
            "ID",
            "TENANT",
            "SUBJECT",
            "SCOPES",
            "STATE",
            "CREATED",
            "EXPIRES",
            "LAST USED",
        ]),
        &rows,
    )
}

/// Left-aligned columns two spaces apart, without trailing spaces.
fn table(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let header: Option<Vec<String>> = header.map(|h| h.iter().map(|s| (*s).to_owned()).collect());
    let all: Vec<&Vec<String>> = header.iter().chain(rows).collect();
    let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            all.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            let pad = width - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn time_cell(at: Option<SystemTime>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| humantime::format_rfc3339_seconds(at).to_string(),
    )
}

fn scopes_cell(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "-".to_owned()
    } else {
        scopes.join(",")
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

fn emit_json(value: &Value) -> Result<(), Failure> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::environment(format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    emit(text)
}

/// Writes to stdout, reporting a closed pipe as an error instead of panicking as `print!` does.
fn emit(text: String) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::environment(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use portcullis::policy::auth::SecretRef;

    use super::*;

    fn settings(location: &str) -> ApiKeySettings {
        ApiKeySettings {
            prefix: "pcl".to_owned(),
            store: SecretRef::Literal(location.to_owned()),
            rotation_grace: Duration::from_secs(3600),
            cache_ttl: Duration::from_secs(2),
        }
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
    fn tables_align_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "-".to_owned()],
            vec!["longer".to_owned(), "b".to_owned(), "x".to_owned()],
        ];
        let text = table(Some(&["ONE", "TWO", "THREE"]), &rows);
        assert_eq!(
            text,
            "ONE     TWO         THREE\n\
             a       long value  -\n\
             longer  b           x\n"
        );
    }

    #[test]
    fn ids_are_checked_and_whole_keys_not_echoed() {
        assert!(parse_id("abcdefgh234567zz").is_ok());
        let err = parse_id("nope").unwrap_err();
        assert_eq!(err.code, EXIT_INVALID);
        assert!(err.message.contains("\"nope\""), "{}", err.message);
        let key = "pcl_abcdefgh234567zz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let err = parse_id(key).unwrap_err();
        assert!(!err.message.contains("AAAA"), "{}", err.message);
    }

    #[test]
    fn expiry_is_a_duration_or_a_time() {
        assert!(matches!(
            parse_expiry("30d"),
            Ok(Expiry::After(d)) if d == Duration::from_secs(30 * 86400)
        ));
        assert!(matches!(
            parse_expiry("2030-01-01T00:00:00Z"),
            Ok(Expiry::At(_))
        ));
        assert!(parse_expiry("soon").is_err());
    }
}
