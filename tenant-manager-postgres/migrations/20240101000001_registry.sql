-- Global registry of tenant-manager: tenants, their users and plans.
-- Unique constraints are named <table>_<field>_key so errors report the field that is taken.

CREATE TABLE tm_plans (
    name        text        NOT NULL CONSTRAINT tm_plans_pkey PRIMARY KEY,
    policy      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tm_tenants (
    id             uuid        NOT NULL CONSTRAINT tm_tenants_pkey PRIMARY KEY,
    slug           text        NOT NULL CONSTRAINT tm_tenants_slug_key UNIQUE,
    name           text        NOT NULL,
    status         text        NOT NULL CONSTRAINT tm_tenants_status_check CHECK (status IN
                     ('pending', 'provisioning', 'active', 'suspended', 'failed', 'deleting', 'deleted')),
    status_reason  text,
    plan           text        NOT NULL,
    quota          jsonb,
    isolation      text        NOT NULL CONSTRAINT tm_tenants_isolation_check CHECK (isolation IN
                     ('database', 'schema', 'shared')),
    server_id      text        NOT NULL,
    database_name  text        NOT NULL,
    schema_name    text,
    region         text,
    domain         text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- Custom domains are unique case-insensitively and looked up by lower(domain).
CREATE UNIQUE INDEX tm_tenants_domain_key ON tm_tenants (lower(domain));
-- Listings filter by status and page by id.
CREATE INDEX tm_tenants_status_id_idx ON tm_tenants (status, id);
-- Placement lookups (which tenants live on a server / in a database).
CREATE INDEX tm_tenants_placement_idx ON tm_tenants (server_id, database_name);

CREATE TABLE tm_users (
    id             uuid        NOT NULL CONSTRAINT tm_users_pkey PRIMARY KEY,
    tenant_id      uuid        NOT NULL CONSTRAINT tm_users_tenant_id_fkey
                                 REFERENCES tm_tenants (id) ON DELETE CASCADE,
    email          text        NOT NULL CONSTRAINT tm_users_email_key UNIQUE,
    role           text        NOT NULL CONSTRAINT tm_users_role_check CHECK (role IN
                     ('owner', 'admin', 'member')),
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE INDEX tm_users_tenant_idx ON tm_users (tenant_id, created_at, id);
