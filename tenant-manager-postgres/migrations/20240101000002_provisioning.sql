-- Provisioning: the recorded steps of each tenant, and the last failure.
-- No foreign key to tm_tenants: a provisioner may serve tenants of another registry; purging a
-- tenant deletes its rows here explicitly.

CREATE TABLE tm_provision_steps (
    tenant_id  uuid        NOT NULL,
    step       text        NOT NULL CONSTRAINT tm_provision_steps_step_check CHECK (step IN
                 ('reserved', 'storage_created', 'migrated', 'seeded', 'active')),
    done_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tm_provision_steps_pkey PRIMARY KEY (tenant_id, step)
);

CREATE TABLE tm_provision_state (
    tenant_id    uuid        NOT NULL CONSTRAINT tm_provision_state_pkey PRIMARY KEY,
    attempts     integer     NOT NULL DEFAULT 0,
    used_template text,
    failed_step  text,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Which migration of the host's tenant migration set each tenant is at. One query over this
-- table tells which tenants are behind, without connecting to any tenant database.
CREATE TABLE tm_tenant_migrations (
    tenant_id    uuid        NOT NULL CONSTRAINT tm_tenant_migrations_pkey PRIMARY KEY,
    version      bigint      NOT NULL DEFAULT 0,
    migrated_at  timestamptz,
    last_error   text,
    failed_at    timestamptz
);

CREATE INDEX tm_tenant_migrations_version_idx ON tm_tenant_migrations (version);
