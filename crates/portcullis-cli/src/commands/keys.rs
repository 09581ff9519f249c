//! `portcullis keys`: tenant API keys in the store the policy's `[auth.api-keys]` names.
//!
//! The actions, their audit records and the JSON views are [`portcullis::key_admin`], shared
//! with the admin HTTP API; this module opens the store, prints tables or JSON, and picks exit
//! codes.
//!
//! - The plaintext key exists once, in the output of `create` and `rotate`, and goes to stdout
//!   only: stderr carries errors and notes, and is often collected into logs. So does the
//!   signing secret of a key that signs requests (`create --signed`), and the key-encryption
//!   key that `kek` prints.
//! - Signing keys need the key-encryption key (KEK) of the policy's `[auth.api-keys.signing]`,
//!   read from where the policy says (an environment variable or a file), as `serve` reads it:
//!   `create --signed` always, `rotate` whenever the policy has that table.
//! - Every change writes an audit record (actor `cli:<user>`) to the store's own audit log, so
//!   the CLI and the admin API leave one trail.
//! - Key revocations and tenant suspensions reach gateways within the policy's `cache-ttl`;
//!   JWT revocations (`revoke-token`) and subject suspensions (`suspend --subject`) within 5 s,
//!   as every gateway reloads that list every second.
//! - Error messages never contain the store location: a PostgreSQL URL carries a password.
//!
//! Exit codes follow `check` and `serve`: 1 for the caller's mistake (a policy error, a policy
//! without `[auth.api-keys]`, or without `[auth.api-keys.signing]` for a signing key, an unknown
//! or malformed id, a refused rotation, invalid input), 2 when the environment fails (unreadable
//! file, unreachable database, a key-encryption key that is missing or does not parse).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use portcullis::key_admin::{
    self, Actor, Expiry, Issued, KeyAdminError, KeyView, NewKeyRequest, redact,
};
use portcullis::key_store::{KeyStoreError, open_store, resolve};
use portcullis::policy::Environment;
use portcullis::policy::auth::{ApiKeySettings, SecretRef};
use portcullis::policy::rate_limit::RateLimits;
use portcullis::policy::signing::SigningSettings;
use portcullis::signing::load_kek;
use portcullis_store::{Kek, KeyId, KeyStore, TenantRate};
use serde_json::Value;

use super::{EXIT_FAILURE, EXIT_INVALID, failure, load_policy};

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
        /// The key must sign every request: also make a signing secret and print it, once.
        /// Needs `[auth.api-keys.signing]` and its key-encryption key.
        #[arg(long)]
        signed: bool,
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
    ///
    /// A signing key's successor gets a new signing secret, printed once too; with
    /// `[auth.api-keys.signing]` in the policy, its key-encryption key must be set.
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
    /// Refuse every key of a tenant until it is unsuspended; with `--subject`, every JWT of
    /// that one subject of the tenant instead.
    Suspend {
        /// The tenant.
        tenant: String,
        /// Suspend only this subject (a JWT's `sub`) of the tenant; its JWTs are refused
        /// within 5 s. The tenant's keys are not affected.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Lift a tenant's suspension, or with `--subject` a subject's.
    Unsuspend {
        /// The tenant.
        tenant: String,
        /// Lift only this subject's suspension.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke one JWT by its `jti` claim: every gateway refuses it within 5 s.
    RevokeToken {
        /// The token's `jti` claim (not the token itself).
        jti: String,
        /// The token's own expiry, its `exp`: an RFC 3339 UTC time, or a duration from now
        /// (`1h`). The revocation is kept until then, after which the token is refused anyway.
        #[arg(long, value_name = "TIME|DURATION", value_parser = parse_expiry)]
        until: Expiry,
        /// The tenant the token was for, recorded for operators.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Give a tenant its own rate for one quota of `[rate-limit]` (its plan), or with `--clear`
    /// take it away: every gateway applies the change within 5 s, without a restart.
    Limit {
        /// The tenant.
        tenant: String,
        /// The quota's name (`[rate-limit.quotas.NAME]`), one counted per API key, tenant or
        /// subject.
        #[arg(long)]
        quota: String,
        /// Requests per `--per`.
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        limit: Option<u32>,
        /// The period (`1s`, `1m`, `1h`); default: the quota's.
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "clear")]
        per: Option<Duration>,
        /// The most requests at once; default: `--limit`.
        #[arg(long, conflicts_with = "clear")]
        burst: Option<u32>,
        /// Take the tenant's own rate away: the policy's applies again.
        #[arg(long)]
        clear: bool,
    },
    /// List the tenants' own rates.
    Limits {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Print a new random key-encryption key (KEK) for `[auth.api-keys.signing]`, once.
    ///
    /// Needs no `[auth.api-keys]` table and opens no store.
    Kek,
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

impl From<KeyAdminError> for Failure {
    fn from(err: KeyAdminError) -> Self {
        match err {
            KeyAdminError::NotFound(_)
            | KeyAdminError::Invalid(_)
            | KeyAdminError::NotRotatable(_) => Self::invalid(err.to_string()),
            KeyAdminError::Store(_) | KeyAdminError::Audit { .. } => {
                Self::environment(err.to_string())
            }
        }
    }
}

pub fn run(config: &Path, environment: Option<Environment>, action: Action) -> ExitCode {
    let compiled = match load_policy(config, environment, "") {
        Ok(compiled) => compiled,
        Err(not_loaded) => return not_loaded.exit_code(),
    };
    // Before the `[auth.api-keys]` check: a KEK is usually made before the table that uses it.
    if matches!(action, Action::Kek) {
        let signing = compiled
            .policy
            .auth
            .api_keys
            .as_ref()
            .and_then(|keys| keys.signing.as_ref());
        return match print_kek(signing) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("error: {}", f.message);
                ExitCode::from(f.code)
            }
        };
    }
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
    match runtime.block_on(execute(&settings, &compiled.policy.rate_limit, action)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", redact(&f.message, &settings));
            ExitCode::from(f.code)
        }
    }
}

async fn execute(
    settings: &ApiKeySettings,
    limits: &RateLimits,
    action: Action,
) -> Result<(), Failure> {
    let actor = Actor::new(actor());
    // Ids are checked before the store is opened: a typo needs no database.
    match action {
        Action::Create {
            tenant,
            subject,
            scopes,
            expires,
            signed,
            json,
        } => {
            // Before the store: without a usable KEK nothing is opened or made.
            let kek = if signed {
                let Some(signing) = &settings.signing else {
                    return Err(Failure::invalid(NO_SIGNING_TABLE));
                };
                Some(signing_kek(signing)?)
            } else {
                None
            };
            let store = open(settings, Access::Write).await?;
            let request = NewKeyRequest {
                tenant,
                subject,
                scopes,
                expires,
                signed,
            };
            let issued =
                key_admin::create(&*store, &actor, &settings.prefix, request, kek.as_ref()).await?;
            if issued.view.tenant_suspended {
                eprintln!(
                    "note: tenant {} is suspended: the key is refused until `portcullis keys unsuspend {0}`",
                    issued.view.record.tenant
                );
            }
            print_issued(&*store, issued, json)
        }
        Action::List { tenant, json } => {
            let store = open(settings, Access::Read).await?;
            let views = key_admin::list(&*store, tenant.as_deref()).await?;
            print_list(&views, tenant.as_deref(), json, store.clock().now())
        }
        Action::Show { id, json } => {
            let id = parse_id(&id)?;
            let store = open(settings, Access::Read).await?;
            let view = key_admin::show(&*store, &id).await?;
            print_show(&view, json, store.clock().now())
        }
        Action::Rotate { id, grace, json } => {
            let id = parse_id(&id)?;
            // Whether this key signs is not known before the store is read, so with the table
            // the KEK is always needed; without it a signing key is refused by `key_admin`, with
            // a message naming the table.
            let kek = settings.signing.as_ref().map(signing_kek).transpose()?;
            let store = open(settings, Access::Write).await?;
            let grace = grace.unwrap_or(settings.rotation_grace);
            let issued = key_admin::rotate(&*store, &actor, &id, grace, kek.as_ref()).await?;
            if let Some(e) = &issued.read_back_error {
                let e = redact(&e.to_string(), settings);
                eprintln!("note: could not read back key {id} after the rotation: {e}");
            }
            print_issued(&*store, issued, json)
        }
        Action::Revoke { id } => {
            let id = parse_id(&id)?;
            let store = open(settings, Access::Write).await?;
            let record = key_admin::revoke(&*store, &actor, &id).await?;
            emit(format!(
                "revoked key {id} of tenant {}: gateways refuse it within {}\n",
                record.tenant,
                humantime::format_duration(settings.cache_ttl)
            ))
        }
        Action::Suspend {
            tenant,
            subject: Some(subject),
        } => {
            let store = open(settings, Access::Write).await?;
            key_admin::suspend_subject(&*store, &actor, &tenant, &subject).await?;
            emit(format!(
                "suspended subject {subject:?} of tenant {tenant}: gateways refuse its tokens \
                 within {}\n",
                revocation_within()
            ))
        }
        Action::Unsuspend {
            tenant,
            subject: Some(subject),
        } => {
            let store = open(settings, Access::Write).await?;
            key_admin::unsuspend_subject(&*store, &actor, &tenant, &subject).await?;
            emit(format!(
                "unsuspended subject {subject:?} of tenant {tenant}: gateways accept its tokens \
                 again within {}\n",
                revocation_within()
            ))
        }
        Action::RevokeToken { jti, until, tenant } => {
            let store = open(settings, Access::Write).await?;
            let expires_at = match until {
                Expiry::At(at) => at,
                Expiry::After(after) => {
                    store.clock().now().checked_add(after).ok_or_else(|| {
                        Failure::invalid("--until: the time is too far in the future")
                    })?
                }
            };
            let revocation =
                key_admin::revoke_token(&*store, &actor, &jti, tenant.as_deref(), expires_at)
                    .await?;
            emit(format!(
                "revoked token {jti:?} until {}: gateways refuse it within {}\n",
                humantime::format_rfc3339_seconds(revocation.expires_at),
                revocation_within()
            ))
        }
        Action::Suspend {
            tenant,
            subject: None,
        } => {
            let store = open(settings, Access::Write).await?;
            key_admin::suspend(&*store, &actor, &tenant).await?;
            emit(format!(
                "suspended tenant {tenant}: gateways refuse its keys within {}\n",
                humantime::format_duration(settings.cache_ttl)
            ))
        }
        Action::Unsuspend {
            tenant,
            subject: None,
        } => {
            let store = open(settings, Access::Write).await?;
            key_admin::unsuspend(&*store, &actor, &tenant).await?;
            emit(format!(
                "unsuspended tenant {tenant}: gateways accept its keys again within {}\n",
                humantime::format_duration(settings.cache_ttl)
            ))
        }
        Action::Limit {
            tenant,
            quota,
            clear: true,
            ..
        } => {
            let store = open(settings, Access::Write).await?;
            if key_admin::clear_tenant_rate(&*store, &actor, &tenant, &quota).await? {
                emit(format!(
                    "tenant {tenant} has no rate of its own for quota {quota} any more: gateways \
                     apply the policy's within {}\n",
                    revocation_within()
                ))
            } else {
                emit(format!(
                    "tenant {tenant} had no rate of its own for quota {quota}\n"
                ))
            }
        }
        Action::Limit {
            tenant,
            quota,
            limit,
            per,
            burst,
            clear: false,
        } => {
            let Some(rule) = limits.quotas.iter().find(|q| q.name == quota) else {
                let known: Vec<&str> = limits.quotas.iter().map(|q| q.name.as_str()).collect();
                return Err(Failure::invalid(format!(
                    "--quota: the policy has no quota named `{quota}` (its quotas: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let limit = limit.ok_or_else(|| Failure::invalid("--limit is required"))?;
            let store = open(settings, Access::Write).await?;
            let rate = TenantRate {
                tenant,
                quota,
                limit,
                per: per.unwrap_or(rule.rate.per),
                burst: burst.unwrap_or(limit),
                updated_at: store.clock().now(),
            };
            let rate = key_admin::set_tenant_rate(&*store, &actor, limits, rate).await?;
            emit(format!(
                "tenant {} now has {} per {} (burst {}) for quota {}: gateways apply it within {}\n",
                rate.tenant,
                rate.limit,
                humantime::format_duration(rate.per),
                rate.burst,
                rate.quota,
                revocation_within()
            ))
        }
        Action::Limits { json } => {
            let store = open(settings, Access::Read).await?;
            let rates = key_admin::tenant_rates(&*store).await?;
            if json {
                let all: Vec<Value> = rates
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "tenant": r.tenant,
                            "quota": r.quota,
                            "limit": r.limit,
                            "per": humantime::format_duration(r.per).to_string(),
                            "burst": r.burst,
                            "updated_at": humantime::format_rfc3339_seconds(r.updated_at).to_string(),
                        })
                    })
                    .collect();
                return emit_json(&Value::Array(all));
            }
            if rates.is_empty() {
                return emit("no tenant has a rate of its own\n".to_owned());
            }
            let rows: Vec<Vec<String>> = rates
                .into_iter()
                .map(|r| {
                    vec![
                        r.tenant,
                        r.quota,
                        r.limit.to_string(),
                        humantime::format_duration(r.per).to_string(),
                        r.burst.to_string(),
                        time_cell(Some(r.updated_at)),
                    ]
                })
                .collect();
            emit(table(
                Some(&["TENANT", "QUOTA", "LIMIT", "PER", "BURST", "UPDATED"]),
                &rows,
            ))
        }
        Action::Audit { limit, json } => {
            let store = open(settings, Access::Read).await?;
            let records = key_admin::audit(&*store, limit).await?;
            print_audit(records, json)
        }
        // Handled by `run` before the policy's `[auth.api-keys]` is required.
        Action::Kek => print_kek(settings.signing.as_ref()),
    }
}

/// How soon gateways honour a token revocation or subject suspension (`5s`): the gateway
/// reloads that list every second, whatever the policy's `cache-ttl`.
fn revocation_within() -> humantime::FormattedDuration {
    humantime::format_duration(key_admin::REVOCATION_EFFECTIVE_WITHIN)
}

/// `create --signed` with a policy that has no `[auth.api-keys.signing]`.
const NO_SIGNING_TABLE: &str = "`--signed` needs `[auth.api-keys.signing]` in the policy: a \
     signing secret is stored encrypted with its `key-encryption-key`, which the gateway needs \
     too to check signatures; add e.g.\n\n\
     [auth.api-keys.signing]\n\
     key-encryption-key = { env = \"PORTCULLIS_SIGNING_KEK\" }\n\n\
     and set that variable to the output of `portcullis keys kek`";

/// Loads the policy's key-encryption key. The message names the policy key and the variable or
/// file, never the value.
fn signing_kek(signing: &SigningSettings) -> Result<Kek, Failure> {
    load_kek(signing).map_err(|e| Failure::environment(e.to_string()))
}

/// Prints a new KEK to stdout (64 hex digits) and, on stderr, where it goes.
fn print_kek(signing: Option<&SigningSettings>) -> Result<(), Failure> {
    let kek = Kek::generate()
        .map_err(|e| Failure::environment(format!("cannot make a key-encryption key: {e}")))?;
    // Written from the wiped-on-drop string, not copied into one `emit` would leave behind.
    let hex = kek.to_hex();
    let mut out = std::io::stdout().lock();
    out.write_all(hex.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::environment(format!("cannot write to stdout: {e}")))?;
    let place = match signing.map(|s| &s.key_encryption_key) {
        Some(SecretRef::Env(name)) => format!("in the environment variable `{name}`"),
        Some(SecretRef::File(path)) => format!("in the file {}", path.display()),
        // A literal never compiles; and without the table, say how to write it.
        Some(SecretRef::Literal(_)) | None => "in an environment variable that the policy \
            names: `[auth.api-keys.signing] key-encryption-key = { env = \"PORTCULLIS_SIGNING_KEK\" }`"
            .to_owned(),
    };
    eprintln!(
        "note: put this key-encryption key {place}; the gateway and `portcullis keys` both read \
         it from there. It is not shown again, and signing secrets sealed with another KEK do \
         not open with it"
    );
    Ok(())
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

fn parse_id(text: &str) -> Result<KeyId, Failure> {
    key_admin::parse_key_id(text).map_err(Failure::from)
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

/// Prints a key just made and, once, its plaintext and its signing secret (if it signs): the
/// `key` and `signing_secret` fields in JSON; in a table, each on its own line after a warning
/// that it is not shown again. Then reports a failed audit write: the key had to be printed
/// first, or it would be lost.
fn print_issued(store: &dyn KeyStore, issued: Issued, json: bool) -> Result<(), Failure> {
    let now = store.clock().now();
    if json {
        emit_json(&issued.json(now))?;
    } else {
        let rows: Vec<&KeyView> = issued.previous.iter().chain([&issued.view]).collect();
        let mut out = key_table(&rows, now);
        out.push_str("\nStore this key now: it is not shown again.\n");
        out.push_str(issued.key.expose_secret());
        out.push('\n');
        if let Some(secret) = &issued.signing_secret {
            out.push_str("\nStore this signing secret now: it is not shown again.\n");
            out.push_str(secret.expose_secret());
            out.push('\n');
        }
        emit(out)?;
    }
    issued.audit.map_err(Failure::from)
}

fn print_list(
    views: &[KeyView],
    tenant: Option<&str>,
    json: bool,
    now: SystemTime,
) -> Result<(), Failure> {
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

fn print_show(view: &KeyView, json: bool, now: SystemTime) -> Result<(), Failure> {
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
        ("signed", yes_no(view.signed())),
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

fn print_audit(records: Vec<portcullis_store::AuditRecord>, json: bool) -> Result<(), Failure> {
    if json {
        let all: Vec<Value> = records.iter().map(key_admin::audit_json).collect();
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

/// A table row for a key.
fn key_row(view: &KeyView, now: SystemTime) -> Vec<String> {
    let r = &view.record;
    let mut state = view.status(now).to_string();
    if view.tenant_suspended {
        state.push_str(", tenant suspended");
    }
    vec![
        r.id.to_string(),
        r.tenant.clone(),
        or_dash(r.subject.clone()),
        scopes_cell(&r.scopes),
        yes_no(view.signed()),
        state,
        time_cell(Some(r.created_at)),
        time_cell(r.expires_at),
        time_cell(r.last_used_at),
    ]
}

fn key_table(views: &[&KeyView], now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = views.iter().map(|v| key_row(v, now)).collect();
    table(
        Some(&[
            "ID",
            "TENANT",
            "SUBJECT",
            "SCOPES",
            "SIGNED",
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

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
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
    // The redaction of store locations is tested beside it, in `portcullis::key_admin`.
    use super::*;

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
