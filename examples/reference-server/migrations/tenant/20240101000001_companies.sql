-- The reference server's CRM: companies of a tenant (database or schema isolation).
CREATE TABLE companies (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    domain      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
