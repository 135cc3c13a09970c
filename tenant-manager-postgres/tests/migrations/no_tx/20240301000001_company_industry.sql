-- A plain migration before the no-transaction one: it commits on its own, so a tenant whose
-- index fails below still moves to this version.
ALTER TABLE companies ADD COLUMN industry text;
