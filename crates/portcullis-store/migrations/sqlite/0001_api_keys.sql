-- API keys, tenant suspensions and the audit log (portcullis-store, SQLite).
-- Times are milliseconds since the Unix epoch; scopes are space-separated scope tokens.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    prefix       TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    subject      TEXT,
    scopes       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    rotated_from TEXT REFERENCES api_keys (id),
    -- SHA-256 of the secret; the secret itself is never stored.
    secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32)
) STRICT;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);

-- A key has at most one successor: concurrent rotations of one key cannot both succeed.
CREATE UNIQUE INDEX api_keys_one_successor ON api_keys (rotated_from) WHERE rotated_from IS NOT NULL;

CREATE TABLE tenant_suspensions (
    tenant       TEXT PRIMARY KEY NOT NULL,
    suspended_at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    correlation_id TEXT,
    detail         TEXT
) STRICT;
