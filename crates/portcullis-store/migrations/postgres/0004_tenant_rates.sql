-- Tenants' own rates for the policy's named quotas (portcullis-store, PostgreSQL).
-- Every gateway instance reads the table whole, every second, into memory. A row overrides the
-- rate of quota `quota` ([rate-limit.quotas.NAME]) for one tenant: `request_limit` requests per
-- `per_ms` milliseconds, at most `burst` at once (BIGINT: both are u32). updated_at is
-- milliseconds since the Unix epoch, as in api_keys.

CREATE TABLE tenant_rates (
    tenant        TEXT NOT NULL,
    quota         TEXT NOT NULL,
    request_limit BIGINT NOT NULL CHECK (request_limit >= 1),
    per_ms        BIGINT NOT NULL CHECK (per_ms >= 1),
    burst         BIGINT NOT NULL CHECK (burst >= 1),
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant, quota)
);
