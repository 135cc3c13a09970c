-- Backup catalogue: one row per artifact in the backup store. Rows outlive a purged tenant so
-- its last backups can still be restored (as a clone) until retention prunes them.

CREATE TABLE tm_backups (
    id           uuid        NOT NULL CONSTRAINT tm_backups_pkey PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    tenant_slug  text        NOT NULL,
    isolation    text        NOT NULL,
    source_name  text        NOT NULL,
    key          text        NOT NULL CONSTRAINT tm_backups_key_key UNIQUE,
    size_bytes   bigint      NOT NULL,
    sha256       text        NOT NULL,
    format       text        NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE INDEX tm_backups_tenant_idx ON tm_backups (tenant_id, created_at DESC);
CREATE INDEX tm_backups_created_idx ON tm_backups (created_at);
