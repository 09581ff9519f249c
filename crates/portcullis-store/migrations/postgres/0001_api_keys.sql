-- API keys, tenant suspensions and the audit log (portcullis-store, PostgreSQL).
-- Runs inside the store's own schema (search_path). Times are milliseconds since the Unix epoch,
-- as in the SQLite store, so both decode through the same code; scopes are space-separated
-- scope tokens.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    prefix       TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    subject      TEXT,
    scopes       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    rotated_from TEXT REFERENCES api_keys (id),
    -- SHA-256 of the secret; the secret itself is never stored.
    secret_hash  BYTEA NOT NULL CHECK (length(secret_hash) = 32)
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);

-- A key has at most one successor: concurrent rotations of one key cannot both succeed.
CREATE UNIQUE INDEX api_keys_one_successor ON api_keys (rotated_from) WHERE rotated_from IS NOT NULL;

CREATE TABLE tenant_suspensions (
    tenant       TEXT PRIMARY KEY,
    suspended_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    correlation_id TEXT,
    detail         TEXT
);
