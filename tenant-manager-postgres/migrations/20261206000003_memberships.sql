-- One e-mail in several tenants: an e-mail is unique within a tenant, no longer globally.
-- Invitations to join a tenant, and refresh tokens (stored as digests only).

ALTER TABLE tm_users DROP CONSTRAINT tm_users_email_key;
ALTER TABLE tm_users ADD CONSTRAINT tm_users_email_key UNIQUE (tenant_id, email);
-- Login looks a person up by e-mail across tenants.
CREATE INDEX tm_users_email_idx ON tm_users (email, created_at, id);

CREATE TABLE tm_invitations (
    id            uuid        NOT NULL CONSTRAINT tm_invitations_pkey PRIMARY KEY,
    tenant_id     uuid        NOT NULL CONSTRAINT tm_invitations_tenant_id_fkey
                                REFERENCES tm_tenants (id) ON DELETE CASCADE,
    email         text        NOT NULL,
    role          text        NOT NULL CONSTRAINT tm_invitations_role_check CHECK (role IN
                    ('owner', 'admin', 'member')),
    -- No foreign key: an invitation outlives the removal of who sent it.
    invited_by    uuid        NOT NULL,
    token_digest  bytea       NOT NULL CONSTRAINT tm_invitations_token_digest_check
                                CHECK (octet_length(token_digest) = 32),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX tm_invitations_tenant_idx ON tm_invitations (tenant_id, created_at, id);
-- One open invitation per e-mail and tenant (an expired one is revoked before a new one).
CREATE UNIQUE INDEX tm_invitations_email_key ON tm_invitations (tenant_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE tm_refresh_tokens (
    id            uuid        NOT NULL CONSTRAINT tm_refresh_tokens_pkey PRIMARY KEY,
    -- Every token rotated from one login shares its family; reuse revokes the family.
    family_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    tenant_id     uuid        NOT NULL,
    token_digest  bytea       NOT NULL CONSTRAINT tm_refresh_tokens_token_digest_check
                                CHECK (octet_length(token_digest) = 32),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    rotated_at    timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX tm_refresh_tokens_family_idx ON tm_refresh_tokens (family_id);
CREATE INDEX tm_refresh_tokens_user_idx ON tm_refresh_tokens (user_id);
CREATE INDEX tm_refresh_tokens_expires_idx ON tm_refresh_tokens (expires_at);
