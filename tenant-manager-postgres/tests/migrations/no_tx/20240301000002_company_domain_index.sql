-- no-transaction
-- Postgres refuses CREATE INDEX CONCURRENTLY inside a transaction block, so this runs alone.
-- It fails for a tenant with two companies of the same domain.
CREATE UNIQUE INDEX CONCURRENTLY companies_domain_idx ON companies (domain);
