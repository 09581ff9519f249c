//! The embedded default: keys, suspensions and the audit log in one SQLite file, created (with
//! its directory) on first open.
//!
//! The file is opened in WAL mode, so the gateway's reads never wait for a writer (the CLI,
//! another process, an admin call) and vice versa. Writers wait up to 5 s for each other. A
//! rotation runs in a `BEGIN IMMEDIATE` transaction: it takes the write lock before reading the
//! old key, so it cannot fail half-way when another writer commits in between.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::key::KeyId;
use crate::record::{ApiKeyRecord, AuditRecord};
use crate::revocation::{RevocationSnapshot, TokenRevocation};
use crate::signing::SealedSecret;
use crate::sql::{
    AUDIT_COLUMNS, AuditRow, EmbeddedMigrations, KEY_COLUMNS, KeyRow, TENANT_RATE_COLUMNS,
    TenantRateRow, decode_audit, decode_key, decode_tenant_rate, duration_millis, millis,
    revocation_snapshot, scopes_column,
};
use crate::store::{BoxFuture, KeyStore, Rotation};
use crate::tenant_rate::TenantRate;

const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[
    (
        1,
        "api keys",
        include_str!("../migrations/sqlite/0001_api_keys.sql"),
    ),
    (
        2,
        "signing secret",
        include_str!("../migrations/sqlite/0002_signing_secret.sql"),
    ),
    (
        3,
        "revocations",
        include_str!("../migrations/sqlite/0003_revocations.sql"),
    ),
    (
        4,
        "tenant rates",
        include_str!("../migrations/sqlite/0004_tenant_rates.sql"),
    ),
]);

/// Keys, suspensions and the audit log in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its directory if missing, and brings its
    /// schema up to date. On the system clock.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate::Migrator::new(MIGRATIONS)
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            pool,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store on another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Closes every connection, checkpointing the WAL into the main file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the directory and an empty file readable by its owner only, before SQLite creates it
/// with the process umask: the file holds tenant names and the audit log. SQLite gives its
/// `-wal` and `-shm` files the main file's permissions. (Runs once, at startup.)
///
/// An existing file is not opened at all: closing any descriptor of a file drops every POSIX
/// lock the process holds on it, so opening and closing the file while this process already
/// has it open in SQLite (the gateway and its admin API each open the store) would strip those
/// connections of their locks, and another process could then checkpoint and delete the WAL
/// under them: a corrupt database (sqlite.org/howtocorrupt.html, §2.2).
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let backend = |err: std::io::Error| StoreError::Backend(Box::new(err));
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(backend)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(backend(e)),
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

async fn fetch_key<'e, E>(executor: E, id: &KeyId) -> Result<Option<ApiKeyRecord>, StoreError>
where
    E: sqlx::SqliteExecutor<'e>,
{
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1");
    sqlx::query_as::<_, KeyRow>(&sql)
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?
        .map(decode_key)
        .transpose()
}

async fn insert_key<'e, E>(executor: E, record: &ApiKeyRecord) -> Result<(), StoreError>
where
    E: sqlx::SqliteExecutor<'e>,
{
    let sql = format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12)"
    );
    let result = sqlx::query(&sql)
        .bind(record.id.as_str())
        .bind(&record.prefix)
        .bind(&record.tenant)
        .bind(record.subject.as_deref())
        .bind(scopes_column(&record.scopes))
        .bind(record.state.as_str())
        .bind(millis(record.created_at))
        .bind(record.expires_at.map(millis))
        .bind(record.last_used_at.map(millis))
        .bind(record.rotated_from.as_ref().map(KeyId::as_str))
        .bind(record.secret_hash.as_bytes().as_slice())
        .bind(record.signing_secret.as_ref().map(SealedSecret::as_bytes))
        .execute(executor)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Err(StoreError::DuplicateId(record.id.clone())),
        Err(err) => Err(err.into()),
    }
}

impl KeyStore for SqliteStore {
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { insert_key(&self.pool, &record).await })
    }

    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(fetch_key(&self.pool, id))
    }

    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            let rows = match tenant {
                Some(tenant) => {
                    let sql = format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_at, id"
                    );
                    sqlx::query_as::<_, KeyRow>(&sql)
                        .bind(tenant)
                        .fetch_all(&self.pool)
                        .await?
                }
                None => {
                    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
                    sqlx::query_as::<_, KeyRow>(&sql)
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            rows.into_iter().map(decode_key).collect()
        })
    }

    fn commit_rotation(
        &self,
        rotation: Rotation,
    ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>> {
        Box::pin(async move {
            // Dropping the transaction on any early return rolls it back.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let old_id = rotation.old_id();
            let old = fetch_key(&mut *tx, old_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(old_id.clone()))?;
            let has_successor: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE rotated_from = ?1)",
            )
            .bind(old_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let plan = rotation.plan(&old, has_successor)?;
            insert_key(&mut *tx, &plan.successor).await?;
            sqlx::query("UPDATE api_keys SET expires_at = ?2 WHERE id = ?1")
                .bind(old_id.as_str())
                .bind(millis(plan.old_expires_at))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(plan.successor)
        })
    }

    fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "UPDATE api_keys SET state = 'revoked' WHERE id = ?1 RETURNING {KEY_COLUMNS}"
            );
            sqlx::query_as::<_, KeyRow>(&sql)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(decode_key)
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(id.clone()))
        })
    }

    fn set_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if suspended {
                sqlx::query(
                    "INSERT INTO tenant_suspensions (tenant, suspended_at) VALUES (?1, ?2) \
                     ON CONFLICT (tenant) DO NOTHING",
                )
                .bind(tenant)
                .bind(millis(self.clock.now()))
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query("DELETE FROM tenant_suspensions WHERE tenant = ?1")
                    .bind(tenant)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        })
    }

    fn is_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let suspended: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM tenant_suspensions WHERE tenant = ?1)",
            )
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
            Ok(suspended)
        })
    }

    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, ?2), ?2) WHERE id = ?1",
            )
            .bind(id.as_str())
            .bind(millis(at))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let sql =
                format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
            sqlx::query(&sql)
                .bind(millis(record.at))
                .bind(&record.actor)
                .bind(&record.action)
                .bind(&record.target)
                .bind(record.correlation_id.as_deref())
                .bind(record.detail.as_deref())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT ?1");
            sqlx::query_as::<_, AuditRow>(&sql)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(decode_audit)
                .collect()
        })
    }
    fn revoke_token(&self, revocation: TokenRevocation) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, tenant, expires_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (jti) DO UPDATE \
                 SET expires_at = MAX(revoked_tokens.expires_at, excluded.expires_at)",
            )
            .bind(&revocation.jti)
            .bind(revocation.tenant.as_deref())
            .bind(millis(revocation.expires_at))
            .bind(millis(revocation.revoked_at))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn set_subject_suspended<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if suspended {
                sqlx::query(
                    "INSERT INTO suspended_subjects (tenant, subject, suspended_at) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (tenant, subject) DO NOTHING",
                )
                .bind(tenant)
                .bind(subject)
                .bind(millis(self.clock.now()))
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query("DELETE FROM suspended_subjects WHERE tenant = ?1 AND subject = ?2")
                    .bind(tenant)
                    .bind(subject)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        })
    }

    fn revocation_snapshot(
        &self,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>> {
        Box::pin(async move {
            let tokens: Vec<String> =
                sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE expires_at > ?1")
                    .bind(millis(now))
                    .fetch_all(&self.pool)
                    .await?;
            let subjects: Vec<(String, String)> =
                sqlx::query_as("SELECT tenant, subject FROM suspended_subjects")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(revocation_snapshot(tokens, subjects))
        })
    }

    fn purge_expired_revocations(&self, now: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= ?1")
                .bind(millis(now))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "INSERT INTO tenant_rates ({TENANT_RATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (tenant, quota) DO UPDATE SET request_limit = excluded.request_limit, \
                 per_ms = excluded.per_ms, burst = excluded.burst, updated_at = excluded.updated_at"
            );
            sqlx::query(&sql)
                .bind(&rate.tenant)
                .bind(&rate.quota)
                .bind(i64::from(rate.limit))
                .bind(duration_millis(rate.per))
                .bind(i64::from(rate.burst))
                .bind(millis(rate.updated_at))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn delete_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tenant_rates WHERE tenant = ?1 AND quota = ?2")
                .bind(tenant)
                .bind(quota)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
        Box::pin(async move {
            let sql =
                format!("SELECT {TENANT_RATE_COLUMNS} FROM tenant_rates ORDER BY tenant, quota");
            sqlx::query_as::<_, TenantRateRow>(&sql)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(decode_tenant_rate)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    use super::{MIGRATIONS, SqliteStore};
    use crate::clock::ManualClock;
    use crate::conformance::{Setup, Teardown};
    use crate::key::KeyId;
    use crate::record::NewKey;
    use crate::signing::Kek;
    use crate::sql::EmbeddedMigrations;
    use crate::store::KeyStore;

    fn setup(clock: Arc<ManualClock>) -> Setup {
        Box::pin(async move {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("keys.db"))
                .await
                .unwrap()
                .with_clock(clock);
            let closer = store.clone();
            let store: Arc<dyn KeyStore> = Arc::new(store);
            let teardown: Teardown = Box::pin(async move {
                closer.close().await;
                drop(dir);
            });
            (store, teardown)
        })
    }

    crate::key_store_conformance!(setup);

    #[tokio::test]
    async fn the_file_and_its_directory_are_created_on_first_open_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("portcullis.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let (record, key) = store.create(NewKey::new("acme", "tenant-a")).await.unwrap();
        store.close().await;

        // Reopening runs the migrations again (nothing to do) and finds the key.
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.get(&record.id).await.unwrap(), Some(record));
        assert!(store.verify(key.expose_secret()).await.is_ok());
        let missing: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
        assert_eq!(store.get(&missing).await.unwrap(), None);
        store.close().await;
    }

    #[tokio::test]
    async fn a_file_from_before_signing_secrets_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.db");
        // The schema as the first migration left it, with a key in it.
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(EmbeddedMigrations(&MIGRATIONS.0[..1]))
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let id: KeyId = "abcdefgh234567zz".parse().unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, prefix, tenant, scopes, state, created_at, secret_hash) \
             VALUES (?1, 'acme', 'tenant-a', '', 'active', 0, ?2)",
        )
        .bind(id.as_str())
        .bind([7u8; 32].as_slice())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let old = store.get(&id).await.unwrap().unwrap();
        assert_eq!(old.signing_secret, None);
        let kek = Kek::generate().unwrap();
        let (signed, _, secret) = store
            .create_signed(NewKey::new("acme", "tenant-a"), &kek)
            .await
            .unwrap();
        let stored = store.get(&signed.id).await.unwrap().unwrap();
        let sealed = stored.signing_secret.as_ref().unwrap();
        assert_eq!(
            kek.open(&signed.id, sealed).unwrap().expose_secret(),
            secret.expose_secret()
        );
        store.close().await;
    }
}
