-- Renews the lease of a delivery if it is still the current one: resets the idle time of its
-- pending entry, keeping its holder and delivery count, so the claim script reclaims it only
-- once it has been idle for the visibility timeout again. The idle time is set to the
-- visibility timeout minus the extension, so the entry becomes reclaimable after the extension.
-- KEYS[1] stream;  KEYS[2] job hash
-- ARGV[1] group;  ARGV[2] entry id;  ARGV[3] attempt of the delivery;  ARGV[4] idle ms to set
-- Returns 1 when extended, 0 for a stale receipt.
local stream, job_key = KEYS[1], KEYS[2]
local group, entry_id = ARGV[1], ARGV[2]
local holder = current_holder(stream, group, entry_id, job_key, ARGV[3])
if not holder then
  return 0
end
redis.call('XCLAIM', stream, group, holder, 0, entry_id, 'IDLE', ARGV[4], 'JUSTID')
return 1
