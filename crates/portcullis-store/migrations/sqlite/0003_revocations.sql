-- Revoked JWTs and suspended subjects (portcullis-store, SQLite).
-- Every gateway instance reads both tables whole, every second, into memory. A revoked token is
-- kept until its own expiry (expires_at, the token's `exp`), after which it is refused anyway
-- and its row is purged; the index serves that purge and the snapshot's filter. Times are
-- milliseconds since the Unix epoch, as in api_keys.

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

CREATE TABLE suspended_subjects (
    tenant       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    suspended_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, subject)
) STRICT;
