//! Keys, suspensions and the audit log in PostgreSQL, shared by many gateway instances.
//!
//! The store keeps to its own schema (`portcullis` unless told otherwise): every connection sets
//! `search_path` to it, so its tables and its migration history (`_sqlx_migrations`) cannot
//! collide with an application's own in the same database. Connecting creates the schema if
//! needed (the role needs `CREATE` on the database the first time) and runs the migrations; sqlx
//! takes an advisory lock for that, so instances starting together do not race.
//!
//! A rotation locks the old key's row (`SELECT … FOR UPDATE`) for its transaction, so two
//! concurrent rotations of one key are serialised and the second finds the first's successor.
//!
//! TLS to the database is not built in yet: `sslmode=require` fails to connect.

use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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
        include_str!("../migrations/postgres/0001_api_keys.sql"),
    ),
    (
        2,
        "signing secret",
        include_str!("../migrations/postgres/0002_signing_secret.sql"),
    ),
    (
        3,
        "revocations",
        include_str!("../migrations/postgres/0003_revocations.sql"),
    ),
    (
        4,
        "tenant rates",
        include_str!("../migrations/postgres/0004_tenant_rates.sql"),
    ),
]);

/// Keys, suspensions and the audit log in a PostgreSQL schema.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: String,
    clock: Arc<dyn Clock>,
}

impl PostgresStore {
    /// The schema [`connect`](Self::connect) uses.
    pub const DEFAULT_SCHEMA: &'static str = "portcullis";

    /// Connects to `url` (`postgres://user:password@host:port/database`), using the `portcullis`
    /// schema, creating it and bringing it up to date. On the system clock.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, Self::DEFAULT_SCHEMA).await
    }

    /// Like [`connect`](Self::connect), in another schema: `[a-z_][a-z0-9_]{0,62}`.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        if !is_valid_schema(schema) {
            return Err(StoreError::invalid(
                "schema",
                "must be [a-z_][a-z0-9_]{0,62}",
            ));
        }
        let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
        let pool = PgPoolOptions::new().connect_with(options).await?;
        // The name was checked above: identifiers cannot be bound, so it is quoted in place.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        if let Err(err) = sqlx::query(&create).execute(&pool).await {
            // Two instances creating the schema at once: the loser sees a duplicate, and the
            // schema exists, which is all that was asked.
            let duplicate = err
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P06" || code == "23505");
            if !duplicate {
                return Err(err.into());
            }
        }
        sqlx::migrate::Migrator::new(MIGRATIONS)
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            pool,
            schema: schema.to_owned(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store on another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The schema this store keeps to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn is_valid_schema(schema: &str) -> bool {
    let mut bytes = schema.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

async fn fetch_key<'e, E>(
    executor: E,
    id: &KeyId,
    lock: bool,
) -> Result<Option<ApiKeyRecord>, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1{lock}");
    sqlx::query_as::<_, KeyRow>(&sql)
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?
        .map(decode_key)
        .transpose()
}

async fn insert_key<'e, E>(executor: E, record: &ApiKeyRecord) -> Result<(), StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    let sql = format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12)"
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

impl KeyStore for PostgresStore {
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { insert_key(&self.pool, &record).await })
    }

    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(fetch_key(&self.pool, id, false))
    }

    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
        Box::pin(async move {
            let rows = match tenant {
                Some(tenant) => {
                    let sql = format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
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
            let mut tx = self.pool.begin().await?;
            let old_id = rotation.old_id();
            let old = fetch_key(&mut *tx, old_id, true)
                .await?
                .ok_or_else(|| StoreError::NotFound(old_id.clone()))?;
            let has_successor: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE rotated_from = $1)",
            )
            .bind(old_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let plan = rotation.plan(&old, has_successor)?;
            insert_key(&mut *tx, &plan.successor).await?;
            sqlx::query("UPDATE api_keys SET expires_at = $2 WHERE id = $1")
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
                "UPDATE api_keys SET state = 'revoked' WHERE id = $1 RETURNING {KEY_COLUMNS}"
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
                    "INSERT INTO tenant_suspensions (tenant, suspended_at) VALUES ($1, $2) \
                     ON CONFLICT (tenant) DO NOTHING",
                )
                .bind(tenant)
                .bind(millis(self.clock.now()))
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query("DELETE FROM tenant_suspensions WHERE tenant = $1")
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
                "SELECT EXISTS (SELECT 1 FROM tenant_suspensions WHERE tenant = $1)",
            )
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
            Ok(suspended)
        })
    }

    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // GREATEST ignores NULL, so a first use sets the time.
            sqlx::query(
                "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2) WHERE id = $1",
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
                format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
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
            let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1");
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
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (jti) DO UPDATE \
                 SET expires_at = GREATEST(revoked_tokens.expires_at, excluded.expires_at)",
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
                     VALUES ($1, $2, $3) ON CONFLICT (tenant, subject) DO NOTHING",
                )
                .bind(tenant)
                .bind(subject)
                .bind(millis(self.clock.now()))
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query("DELETE FROM suspended_subjects WHERE tenant = $1 AND subject = $2")
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
                sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE expires_at > $1")
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
            let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1")
                .bind(millis(now))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "INSERT INTO tenant_rates ({TENANT_RATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
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
            let done = sqlx::query("DELETE FROM tenant_rates WHERE tenant = $1 AND quota = $2")
                .bind(tenant)
                .bind(quota)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
        Box::pin(async move {
            // Byte order, as the other backends sort, whatever the database's collation.
            let sql = format!(
                "SELECT {TENANT_RATE_COLUMNS} FROM tenant_rates \
                 ORDER BY tenant COLLATE \"C\", quota COLLATE \"C\""
            );
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
    //! Against the database in `DATABASE_URL` (CI sets it). Each test works in a fresh schema,
    //! dropped at its end, so parallel runs and reruns never see each other's rows.

    use std::sync::Arc;

    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::{MIGRATIONS, PostgresStore, is_valid_schema};
    use crate::clock::ManualClock;
    use crate::conformance::{Setup, Teardown};
    use crate::key::{KeyId, KeyMaterial};
    use crate::record::NewKey;
    use crate::signing::Kek;
    use crate::sql::EmbeddedMigrations;
    use crate::store::KeyStore;

    fn database_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| {
            panic!(
                "DATABASE_URL is not set: the PostgreSQL store tests need a database \
                 (CI uses DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)"
            )
        })
    }

    fn fresh_schema() -> String {
        let material = KeyMaterial::generate().unwrap();
        format!("portcullis_test_{}", material.id())
    }

    async fn drop_schema(store: &PostgresStore) {
        let sql = format!("DROP SCHEMA \"{}\" CASCADE", store.schema());
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
        store.close().await;
    }

    fn setup(clock: Arc<ManualClock>) -> Setup {
        Box::pin(async move {
            let store = PostgresStore::connect_in_schema(&database_url(), &fresh_schema())
                .await
                .unwrap()
                .with_clock(clock);
            let owner = store.clone();
            let store: Arc<dyn KeyStore> = Arc::new(store);
            let teardown: Teardown = Box::pin(async move { drop_schema(&owner).await });
            (store, teardown)
        })
    }

    crate::key_store_conformance!(
        #[ignore = "needs DATABASE_URL (CI sets it)"]
        setup
    );

    #[tokio::test]
    #[ignore = "needs DATABASE_URL (CI sets it)"]
    async fn connecting_again_keeps_the_schema_and_its_keys() {
        let url = database_url();
        let schema = fresh_schema();
        let first = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .unwrap();
        let (record, key) = first.create(NewKey::new("acme", "tenant-a")).await.unwrap();
        let second = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .unwrap();
        assert_eq!(second.get(&record.id).await.unwrap(), Some(record));
        assert!(second.verify(key.expose_secret()).await.is_ok());
        second.close().await;
        drop_schema(&first).await;
    }

    #[tokio::test]
    #[ignore = "needs DATABASE_URL (CI sets it)"]
    async fn concurrent_rotations_of_one_key_yield_one_successor() {
        let store = PostgresStore::connect_in_schema(&database_url(), &fresh_schema())
            .await
            .unwrap();
        let (record, _) = store.create(NewKey::new("acme", "tenant-a")).await.unwrap();
        let grace = std::time::Duration::from_secs(60);
        let (a, b) = tokio::join!(
            store.rotate(&record.id, grace),
            store.rotate(&record.id, grace)
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{a:?} {b:?}"
        );
        assert_eq!(store.list(Some("tenant-a")).await.unwrap().len(), 2);
        drop_schema(&store).await;
    }

    #[tokio::test]
    #[ignore = "needs DATABASE_URL (CI sets it)"]
    async fn a_schema_from_before_signing_secrets_is_brought_up_to_date() {
        let url = database_url();
        let schema = fresh_schema();
        // The schema as the first migration left it, with a key in it.
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new().connect_with(options).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(EmbeddedMigrations(&MIGRATIONS.0[..1]))
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let id: KeyId = "abcdefgh234567zz".parse().unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, prefix, tenant, scopes, state, created_at, secret_hash) \
             VALUES ($1, 'acme', 'tenant-a', '', 'active', 0, $2)",
        )
        .bind(id.as_str())
        .bind([7u8; 32].as_slice())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .unwrap();
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
        drop_schema(&store).await;
    }

    #[test]
    fn schema_names_are_checked_before_they_are_quoted_into_sql() {
        for ok in ["portcullis", "_x", "portcullis_test_abc234"] {
            assert!(is_valid_schema(ok), "{ok}");
        }
        for bad in [
            "",
            "9x",
            "Portcullis",
            "a-b",
            "a\"b",
            "a;drop",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_schema(bad), "{bad}");
        }
    }
}
