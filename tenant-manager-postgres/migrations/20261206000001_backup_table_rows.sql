-- Rows of each table at backup time, counted in the snapshot the artifact holds; a restore
-- test compares a restored copy with them. NULL for backups taken before they were recorded.
ALTER TABLE tm_backups ADD COLUMN table_rows jsonb;
