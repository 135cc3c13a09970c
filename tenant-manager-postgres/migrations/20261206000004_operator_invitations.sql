-- An invitation the operator made (`tenant-cli users invite`, a restore as a new tenant)
-- records no inviter: `invited_by` is NULL. Before, it named the tenant's oldest owner, which
-- a tenant without users does not have. Existing rows keep their inviter.
ALTER TABLE tm_invitations ALTER COLUMN invited_by DROP NOT NULL;
