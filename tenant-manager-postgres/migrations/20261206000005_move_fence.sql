-- Moves: a write fence on the source while a move copies, cancelled moves, and several moves
-- of one tenant waiting for their old storage's drop.

-- What the fence took away on the source (the app login's table privileges for a schema
-- tenant, the previous `default_transaction_read_only` of a database tenant's role and
-- database), captured once before it is applied and given back from here.
ALTER TABLE tm_tenant_moves ADD COLUMN fence jsonb;
-- Whether the fence is in place now.
ALTER TABLE tm_tenant_moves ADD COLUMN fenced boolean NOT NULL DEFAULT false;

ALTER TABLE tm_tenant_moves DROP CONSTRAINT tm_tenant_moves_state_check;
ALTER TABLE tm_tenant_moves ADD CONSTRAINT tm_tenant_moves_state_check CHECK (state IN
    ('running', 'switched', 'completed', 'cancelled'));

-- One running move per tenant; switched moves (old storage waiting for its grace) may be several.
DROP INDEX tm_tenant_moves_tenant_key;
CREATE UNIQUE INDEX tm_tenant_moves_running_key ON tm_tenant_moves (tenant_id)
    WHERE state = 'running';
