-- Moving tenants between database servers: the `moving` status and the record of each move.

ALTER TABLE tm_tenants DROP CONSTRAINT tm_tenants_status_check;
ALTER TABLE tm_tenants ADD CONSTRAINT tm_tenants_status_check CHECK (status IN
    ('pending', 'provisioning', 'active', 'suspended', 'moving', 'failed', 'deleting', 'deleted'));

CREATE TABLE tm_tenant_moves (
    id             uuid        NOT NULL CONSTRAINT tm_tenant_moves_pkey PRIMARY KEY,
    tenant_id      uuid        NOT NULL CONSTRAINT tm_tenant_moves_tenant_id_fkey
                                 REFERENCES tm_tenants (id) ON DELETE CASCADE,
    from_server    text        NOT NULL,
    from_database  text        NOT NULL,
    from_schema    text,
    to_server      text        NOT NULL,
    to_database    text        NOT NULL,
    to_schema      text,
    -- Steps done, in the order they were recorded.
    done           text[]      NOT NULL DEFAULT '{}',
    state          text        NOT NULL CONSTRAINT tm_tenant_moves_state_check CHECK (state IN
                     ('running', 'switched', 'completed')),
    failed_step    text,
    last_error     text,
    drop_after     timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One unfinished move per tenant (a move is finished once its old storage is dropped).
CREATE UNIQUE INDEX tm_tenant_moves_tenant_key ON tm_tenant_moves (tenant_id)
    WHERE state <> 'completed';
CREATE INDEX tm_tenant_moves_latest_idx ON tm_tenant_moves (tenant_id, created_at DESC);
